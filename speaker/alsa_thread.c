#define _GNU_SOURCE
#include "alsa_thread.h"
#include "audio_thread.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// THREAD_NAME is how the thread shows in ps and /proc (15 bytes at most).
#define THREAD_NAME "tutti-alsa"

struct tutti_alsa_thread {
	tutti_alsa_shared shared;
	snd_pcm_t *pcm;
	int notify_fd, timeout_ms;
	int stop; // set before armed is advanced for the last time
	pthread_t thread;
};

static int64_t mono_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

// wait_room waits up to timeout_ms for room for a period: 1, 0 (none,
// or an interrupted wait) or a negative alsa error.
static int wait_room(tutti_alsa_thread *t) {
	int rc = snd_pcm_wait(t->pcm, t->timeout_ms);
	return rc == -EINTR || rc == -EAGAIN ? 0 : rc;
}

// write_slot queues the slot's frames. A period that finds no room within
// the timeout is cut short: Run's stall check notices a device that keeps
// doing that.
static void write_slot(tutti_alsa_thread *t, tutti_alsa_shared *s) {
	snd_pcm_uframes_t frames = s->frames, off = 0;
	while (off < frames) {
		snd_pcm_sframes_t n = snd_pcm_writei(t->pcm, s->samples + 2 * off, frames - off);
		if (n > 0) {
			off += (snd_pcm_uframes_t)n;
			s->wrote = 1;
		} else if (n == 0 || n == -EAGAIN || n == -EINTR) {
			int rc = wait_room(t);
			if (rc <= 0) {
				s->write_err = rc;
				return;
			}
		} else {
			s->write_err = (int)n;
			return;
		}
	}
}

// measure reads the PCM state and delay into s, and the instant the delay
// was true: the PCM's own time stamp when it is plausible (monotonic and
// under a second old), else the middle of the call.
static int measure(snd_pcm_t *pcm, tutti_alsa_shared *s) {
	snd_pcm_status_t *st;
	snd_htimestamp_t ts;
	snd_pcm_status_alloca(&st);
	int64_t before = mono_ns();
	int err = snd_pcm_status(pcm, st);
	int64_t after = mono_ns();
	if (err < 0)
		return err;
	s->state = snd_pcm_status_get_state(st);
	s->delay = snd_pcm_status_get_delay(st);
	s->at_ns = before + (after - before) / 2;
	snd_pcm_status_get_htstamp(st, &ts);
	if (ts.tv_sec != 0 || ts.tv_nsec != 0) {
		int64_t stamp = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
		if (stamp <= after && after - stamp < 1000000000)
			s->at_ns = stamp;
	}
	return 1;
}

static void *run(void *arg) {
	tutti_alsa_thread *t = arg;
	tutti_alsa_shared *s = &t->shared;
	tutti_audio_thread_begin(THREAD_NAME);
	uint32_t seen = 0;
	for (;;) {
		uint32_t armed;
		while ((armed = __atomic_load_n(&s->armed, __ATOMIC_ACQUIRE)) == seen)
			syscall(SYS_futex, &s->armed, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
		seen = armed;
		if (__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE))
			return NULL;
		s->wrote = 0;
		s->write_err = 0;
		s->rc = 0;
		if (s->frames > 0)
			write_slot(t, s);
		if (s->write_err == 0) {
			s->rc = wait_room(t);
			if (s->rc > 0)
				s->rc = measure(t->pcm, s);
		}
		__atomic_store_n(&s->done, seen, __ATOMIC_RELEASE);
		uint64_t one = 1;
		while (write(t->notify_fd, &one, sizeof one) < 0 && errno == EINTR) {
		}
	}
}

tutti_alsa_thread *tutti_alsa_thread_start(snd_pcm_t *pcm, int notify_fd, unsigned period_frames, int timeout_ms, int *err) {
	tutti_alsa_thread *t = calloc(1, sizeof *t);
	if (t == NULL) {
		*err = ENOMEM;
		return NULL;
	}
	t->shared.samples = calloc(2 * (size_t)period_frames, sizeof(int16_t));
	if (t->shared.samples == NULL) {
		free(t);
		*err = ENOMEM;
		return NULL;
	}
	t->pcm = pcm;
	t->notify_fd = notify_fd;
	t->timeout_ms = timeout_ms;
	// Real-time where the process may have it, as the paced outputs'
	// thread: each period takes two hops between this thread and Go, and
	// the device runs dry if they take a buffer's time.
	int not_rt;
	if ((*err = tutti_audio_thread_create(&t->thread, run, t, &not_rt)) != 0) {
		free(t->shared.samples);
		free(t);
		return NULL;
	}
	*err = 0;
	return t;
}

tutti_alsa_shared *tutti_alsa_thread_shared(tutti_alsa_thread *t) { return &t->shared; }

void tutti_alsa_thread_stop(tutti_alsa_thread *t) {
	__atomic_store_n(&t->stop, 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&t->shared.armed, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &t->shared.armed, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pthread_join(t->thread, NULL);
	free(t->shared.samples);
	free(t);
}
