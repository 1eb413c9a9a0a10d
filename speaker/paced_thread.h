// The paced output's timing thread: a native thread, outside the Go
// scheduler, that hands each block over at its due instant.
//
// Go and the thread share a tutti_paced in C memory. Go encodes a block
// into the slot and counts it handed; the thread sleeps ahead of the
// block's instant, writes it, records how it left, counts it left and
// signals the eventfd. Handing a block over is plain memory: it neither
// calls into C nor wakes the thread, which sleeps towards the instant Go
// predicted with the block before. Go waits for the eventfd to become
// readable without reading it (it stays readable; each signal is a new
// edge for an edge-triggered poller), so a block costs the Go side no
// system call at all.
#include <stddef.h>
#include <stdint.h>

// tutti_paced_left says how a block left.
typedef struct {
	int64_t due_ns;       // when it was due, CLOCK_MONOTONIC
	int64_t left_ns;      // when its write began (or, without a write, the thread let it go)
	int64_t woke_late_ns; // how late the last sleep before it ended; -1 if the thread did not sleep
	int err;              // errno of the write, 0 if it succeeded
} tutti_paced_left;

// tutti_paced_slot is the block handed over, written by Go while the
// block before has left and this one is not yet counted handed.
typedef struct {
	int64_t due_ns;      // when to write it, CLOCK_MONOTONIC
	int64_t next_due_ns; // when the block after it is expected due, to sleep towards
	int64_t ahead_ns;    // how long before an instant to wake and wait the rest awake
	size_t len;          // bytes in block
	unsigned char *block;
} tutti_paced_slot;

typedef struct tutti_paced tutti_paced;

// tutti_paced_shared is what Go reads and writes directly. The counters
// are atomic: handed is stored by Go after it wrote the slot, left by the
// thread after it wrote left; waiting is set by the thread before it
// sleeps until a block is handed, and tells Go to wake it.
typedef struct {
	uint64_t handed, left, waiting;
	tutti_paced_slot slot;
	tutti_paced_left left_block; // how block left-1 left
	size_t max_bytes;            // the slot's capacity
} tutti_paced_shared;

// tutti_paced_start starts the thread, which writes each block to fd
// (-1: no write) and signals notify_fd (an eventfd) after each block
// left. On failure it returns NULL with *err set; *not_rt is the errno of
// asking for real-time scheduling (0: granted).
tutti_paced *tutti_paced_start(int fd, int notify_fd, size_t max_bytes, int *not_rt, int *err);

// tutti_paced_shared_of returns the memory shared with p's thread.
tutti_paced_shared *tutti_paced_shared_of(tutti_paced *p);

// tutti_paced_wake wakes the thread, which found waiting that no block
// had been handed over yet.
void tutti_paced_wake(tutti_paced *p);

// tutti_paced_stop ends the thread, waits for it and frees p. A block
// not yet due is not written.
void tutti_paced_stop(tutti_paced *p);
