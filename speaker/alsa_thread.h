// The ALSA output's device thread: a native thread that writes the periods
// Go filled, waits for room in the device's buffer and measures the PCM
// delay, so that a period costs the Go side no call into C. A goroutine
// blocked in C holds its P in a system call, which the runtime's monitor
// (sysmon) takes back and hands over, polling every 20 µs around it; any
// call into C after the process was idle wakes the monitor too.
//
// Go fills a period into the shared slot and arms the thread (a futex,
// woken by a raw system call, outside the Go runtime's system call path);
// the thread writes it, waits, measures, counts the cycle done and signals
// an eventfd, which Go waits for through its poller without reading it.
#include <alsa/asoundlib.h>
#include <stdint.h>

// tutti_alsa_shared is what Go reads and writes directly. armed is a futex
// word Go advances to start a cycle, after it set frames; done is the
// count of cycles finished, stored by the thread after the results.
typedef struct {
	uint32_t armed, done;
	uint32_t frames;  // frames of samples to write before the wait; 0: none
	int16_t *samples; // the slot: a period of interleaved stereo frames
	int wrote;        // whether the write queued any frame
	int write_err;    // negative: the alsa error that ended the write (then no wait)
	int rc;           // 1: room for a period, measured below; 0: none within the timeout; negative: an alsa error of the wait or the status
	int state;        // the PCM's state when measured
	int64_t delay;    // frames queued ahead of the write pointer
	int64_t at_ns;    // CLOCK_MONOTONIC instant the delay was true
} tutti_alsa_shared;

typedef struct tutti_alsa_thread tutti_alsa_thread;

// tutti_alsa_thread_start starts the thread for pcm with a slot of
// period_frames, signalling notify_fd (an eventfd) after each cycle, each
// wait lasting at most timeout_ms. On failure it returns NULL with *err set.
tutti_alsa_thread *tutti_alsa_thread_start(snd_pcm_t *pcm, int notify_fd, unsigned period_frames, int timeout_ms, int *err);

// tutti_alsa_thread_shared returns the memory shared with t.
tutti_alsa_shared *tutti_alsa_thread_shared(tutti_alsa_thread *t);

// tutti_alsa_thread_stop ends the thread (after the cycle under way, if
// any), waits for it and frees t.
void tutti_alsa_thread_stop(tutti_alsa_thread *t);
