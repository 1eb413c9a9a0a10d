#define _GNU_SOURCE
#include "paced_thread.h"
#include "audio_thread.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

// THREAD_NAME is how the thread shows in ps and /proc (15 bytes at most).
#define THREAD_NAME "tutti-output"

// STALLED_WRITE_POLL_MS bounds how long a write to a full non-blocking fd
// waits before looking whether the output is stopping.
#define STALLED_WRITE_POLL_MS 100

struct tutti_paced {
	tutti_paced_shared shared;
	int fd, notify_fd;
	pthread_t thread;
	// mu and handed are for the thread's waits for a block that was not
	// handed over in time (and for stopping), never for a block on time.
	pthread_mutex_t mu;
	pthread_cond_t handed;
	int stop; // set under mu, read atomically
};

static int64_t mono_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

// stopping reads stop without the lock, which the caller may hold for a
// moment when the block is due.
static int stopping(tutti_paced *p) { return __atomic_load_n(&p->stop, __ATOMIC_ACQUIRE); }

// write_all writes the block, waiting (and looking whether to stop) while
// a non-blocking fd is full. Returns 0 or an errno.
static int write_all(tutti_paced *p, const unsigned char *b, size_t len) {
	while (len > 0) {
		ssize_t n = write(p->fd, b, len);
		if (n >= 0) {
			b += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return errno;
		struct pollfd pfd = {.fd = p->fd, .events = POLLOUT};
		if (poll(&pfd, 1, STALLED_WRITE_POLL_MS) < 0 && errno != EINTR)
			return errno;
		if (stopping(p))
			return 0;
	}
	return 0;
}

// sleep_ahead sleeps, if it is not past, to wake (absolute), and records
// in left how late the sleep ended. Returns 0 or an errno.
static int sleep_ahead(int64_t wake, tutti_paced_left *left) {
	if (mono_ns() >= wake)
		return 0;
	struct timespec ts = {.tv_sec = wake / 1000000000, .tv_nsec = wake % 1000000000};
	int err;
	while ((err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR) {
	}
	left->woke_late_ns = mono_ns() - wake;
	return err;
}

// await_block waits until block k (counting from 0) has been handed over;
// it returns 0 if the thread is to stop instead.
static int await_block(tutti_paced *p, uint64_t k) {
	tutti_paced_shared *s = &p->shared;
	if (__atomic_load_n(&s->handed, __ATOMIC_ACQUIRE) > k)
		return !stopping(p);
	// Late: tell Go to wake the thread. Go stores handed before it loads
	// waiting, the thread stores waiting before it loads handed (both
	// sequentially consistent): one of them sees the other's.
	pthread_mutex_lock(&p->mu);
	__atomic_store_n(&s->waiting, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&s->handed, __ATOMIC_SEQ_CST) <= k && !p->stop)
		pthread_cond_wait(&p->handed, &p->mu);
	__atomic_store_n(&s->waiting, 0, __ATOMIC_RELAXED);
	int stop = p->stop;
	pthread_mutex_unlock(&p->mu);
	return !stop;
}

static void *run(void *arg) {
	tutti_paced *p = arg;
	tutti_paced_shared *s = &p->shared;
	tutti_audio_thread_begin(THREAD_NAME);
	// Timer slack lets the kernel wake a thread up to 50 µs late to merge
	// wake-ups; this thread's wake-ups are its output's timing.
	prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
	int64_t next_wake = 0; // ahead of the instant the next block is expected due; 0: none expected
	for (uint64_t k = 0;; k++) {
		tutti_paced_left left = {.woke_late_ns = -1};
		// Sleep towards the expected instant first: Go hands the block
		// over meanwhile, without waking this thread.
		left.err = sleep_ahead(next_wake, &left);
		if (!await_block(p, k))
			return NULL;
		tutti_paced_slot slot = s->slot;
		left.due_ns = slot.due_ns;
		// A block due later than expected (the schedule restarted).
		if (left.err == 0)
			left.err = sleep_ahead(slot.due_ns - slot.ahead_ns, &left);
		// The last stretch, awake.
		while (left.err == 0 && mono_ns() < slot.due_ns) {
		}
		if (stopping(p))
			return NULL;
		left.left_ns = mono_ns();
		if (left.err == 0 && p->fd >= 0)
			left.err = write_all(p, slot.block, slot.len);
		next_wake = slot.next_due_ns - slot.ahead_ns;

		s->left_block = left;
		__atomic_store_n(&s->left, k + 1, __ATOMIC_RELEASE);
		uint64_t one = 1;
		while (write(p->notify_fd, &one, sizeof one) < 0 && errno == EINTR) {
		}
	}
}

tutti_paced *tutti_paced_start(int fd, int notify_fd, size_t max_bytes, int *not_rt, int *err) {
	tutti_paced *p = calloc(1, sizeof *p);
	if (p == NULL) {
		*err = ENOMEM;
		return NULL;
	}
	p->fd = fd;
	p->notify_fd = notify_fd;
	p->shared.max_bytes = max_bytes;
	p->shared.slot.block = malloc(max_bytes ? max_bytes : 1);
	if (p->shared.slot.block == NULL) {
		free(p);
		*err = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->handed, NULL);

	if ((*err = tutti_audio_thread_create(&p->thread, run, p, not_rt)) != 0) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->handed);
		free(p->shared.slot.block);
		free(p);
		return NULL;
	}
	*err = 0;
	return p;
}

tutti_paced_shared *tutti_paced_shared_of(tutti_paced *p) { return &p->shared; }

void tutti_paced_wake(tutti_paced *p) {
	pthread_mutex_lock(&p->mu);
	pthread_cond_signal(&p->handed);
	pthread_mutex_unlock(&p->mu);
}

void tutti_paced_stop(tutti_paced *p) {
	pthread_mutex_lock(&p->mu);
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_signal(&p->handed);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->handed);
	free(p->shared.slot.block);
	free(p);
}
