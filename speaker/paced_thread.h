// The paced output's timing thread: a native thread, outside the Go
// scheduler, that hands each block over at its due instant.
#include <stddef.h>
#include <stdint.h>

// tutti_paced_left says how a block left.
typedef struct {
	int64_t due_ns;       // when it was due, CLOCK_MONOTONIC
	int64_t left_ns;      // when its write began (or, without a write, the thread let it go)
	int64_t woke_late_ns; // how late the sleep before it ended; -1 if the thread did not sleep
	int err;              // errno of the write, 0 if it succeeded
} tutti_paced_left;

typedef struct tutti_paced tutti_paced;

// tutti_paced_start starts the thread, which writes each block to fd
// (-1: no write) and signals notify_fd (an eventfd) after each block
// left. On failure it returns NULL with *err set; *not_rt is the errno of
// asking for real-time scheduling (0: granted).
tutti_paced *tutti_paced_start(int fd, int notify_fd, size_t max_bytes, int *not_rt, int *err);

// tutti_paced_hand gives the thread the next block: len bytes to write at
// due_ns, waking ahead_ns before it to wait the rest awake. The block
// before must have left (its result taken). Returns 0, or EBUSY.
int tutti_paced_hand(tutti_paced *p, int64_t due_ns, int64_t ahead_ns, const void *bytes, size_t len);

// tutti_paced_take returns 1 and how the last handed block left, once it
// has, else 0.
int tutti_paced_take(tutti_paced *p, tutti_paced_left *out);

// tutti_paced_stop ends the thread, waits for it and frees p. A block
// not yet due is not written.
void tutti_paced_stop(tutti_paced *p);
