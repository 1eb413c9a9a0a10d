#define _GNU_SOURCE
#include "alsa_wait.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// THREAD_NAME is how the thread shows in ps and /proc (15 bytes at most).
#define THREAD_NAME "tutti-alsa-wait"

struct tutti_alsa_waiter {
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
	tutti_alsa_waiter *w = arg;
	tutti_alsa_shared *s = &w->shared;
	// Signals are the Go runtime's to handle, on its own threads.
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), THREAD_NAME);
	uint32_t seen = 0;
	for (;;) {
		uint32_t armed;
		while ((armed = __atomic_load_n(&s->armed, __ATOMIC_ACQUIRE)) == seen)
			syscall(SYS_futex, &s->armed, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
		seen = armed;
		if (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE))
			return NULL;
		int rc = snd_pcm_wait(w->pcm, w->timeout_ms);
		// An interrupted wait reports no room.
		if (rc == -EINTR || rc == -EAGAIN)
			rc = 0;
		if (rc > 0)
			rc = measure(w->pcm, s);
		s->rc = rc;
		__atomic_store_n(&s->done, seen, __ATOMIC_RELEASE);
		uint64_t one = 1;
		while (write(w->notify_fd, &one, sizeof one) < 0 && errno == EINTR) {
		}
	}
}

tutti_alsa_waiter *tutti_alsa_waiter_start(snd_pcm_t *pcm, int notify_fd, int timeout_ms, int *err) {
	tutti_alsa_waiter *w = calloc(1, sizeof *w);
	if (w == NULL) {
		*err = ENOMEM;
		return NULL;
	}
	w->pcm = pcm;
	w->notify_fd = notify_fd;
	w->timeout_ms = timeout_ms;
	if ((*err = pthread_create(&w->thread, NULL, run, w)) != 0) {
		free(w);
		return NULL;
	}
	return w;
}

tutti_alsa_shared *tutti_alsa_waiter_shared(tutti_alsa_waiter *w) { return &w->shared; }

void tutti_alsa_waiter_stop(tutti_alsa_waiter *w) {
	__atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&w->shared.armed, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &w->shared.armed, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pthread_join(w->thread, NULL);
	free(w);
}
