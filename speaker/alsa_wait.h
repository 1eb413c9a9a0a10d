// The ALSA output's waiting thread: a native thread that waits for room in
// the device's buffer and measures the PCM delay, so that the Go side never
// blocks in a call into C. A Go goroutine blocked in C holds its P in a
// system call, which the runtime's monitor (sysmon) takes back and hands
// over, polling every 20 µs around it: with one P, several wake-ups of
// the monitor for every period.
//
// Go arms the thread (a futex, woken without the Go runtime's system call
// path) once the PCM is its to leave alone; the thread waits, measures,
// counts the wait done and signals an eventfd, which Go waits for through
// its poller without reading it.
#include <alsa/asoundlib.h>
#include <stdint.h>

// tutti_alsa_shared is what Go reads and writes directly. armed is a futex
// word Go advances to start a wait; done is the count of waits finished,
// stored by the thread after the results.
typedef struct {
	uint32_t armed, done;
	int rc;          // 1: room for a period, measured below; 0: none within the timeout; negative: an alsa error of the wait or the status
	int state;       // the PCM's state when measured
	int64_t delay;   // frames queued ahead of the write pointer
	int64_t at_ns;   // CLOCK_MONOTONIC instant the delay was true
} tutti_alsa_shared;

typedef struct tutti_alsa_waiter tutti_alsa_waiter;

// tutti_alsa_waiter_start starts the thread for pcm, signalling notify_fd
// (an eventfd) after each wait, each waiting at most timeout_ms. On
// failure it returns NULL with *err set.
tutti_alsa_waiter *tutti_alsa_waiter_start(snd_pcm_t *pcm, int notify_fd, int timeout_ms, int *err);

// tutti_alsa_waiter_shared returns the memory shared with w's thread.
tutti_alsa_shared *tutti_alsa_waiter_shared(tutti_alsa_waiter *w);

// tutti_alsa_waiter_stop ends the thread (after the wait under way, if
// any), waits for it and frees w.
void tutti_alsa_waiter_stop(tutti_alsa_waiter *w);
