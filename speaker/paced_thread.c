#define _GNU_SOURCE
#include "paced_thread.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

// rt_priority is the thread's SCHED_FIFO priority: low among real-time
// threads (1-99), above every ordinary process.
#define RT_PRIORITY 10

// THREAD_NAME is how the thread shows in ps and /proc (15 bytes at most).
#define THREAD_NAME "tutti-output"

// STALLED_WRITE_POLL_MS bounds how long a write to a full non-blocking fd
// waits before looking whether the output is stopping.
#define STALLED_WRITE_POLL_MS 100

struct tutti_paced {
	int fd, notify_fd;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t handed;
	// Under mu: the block handed over and not yet taken by the thread, and
	// the result of the last block that left.
	int has_block, has_left;
	int stop; // set under mu, read atomically

	int64_t due_ns, ahead_ns;
	size_t len, max_bytes;
	unsigned char *block; // written by the caller while !has_block
	unsigned char *out;   // the thread's copy, being written
	tutti_paced_left left;
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

// sleep_until sleeps to at, absolute; returns 0 or an errno.
static int sleep_until(int64_t at) {
	struct timespec ts = {.tv_sec = at / 1000000000, .tv_nsec = at % 1000000000};
	int err;
	while ((err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR) {
	}
	return err;
}

static void *run(void *arg) {
	tutti_paced *p = arg;
	// Signals are the Go runtime's to handle, on its own threads.
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	// Timer slack lets the kernel wake a thread up to 50 µs late to merge
	// wake-ups; this thread's wake-ups are its output's timing.
	prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
	pthread_setname_np(pthread_self(), THREAD_NAME);
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (!p->has_block && !p->stop)
			pthread_cond_wait(&p->handed, &p->mu);
		if (p->stop) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		int64_t due = p->due_ns, ahead = p->ahead_ns;
		size_t len = p->len;
		memcpy(p->out, p->block, len);
		p->has_block = 0;
		pthread_mutex_unlock(&p->mu);

		tutti_paced_left left = {.due_ns = due, .woke_late_ns = -1};
		int64_t wake = due - ahead;
		if (mono_ns() < wake) {
			left.err = sleep_until(wake);
			left.woke_late_ns = mono_ns() - wake;
		}
		// The last stretch, awake.
		while (left.err == 0 && mono_ns() < due) {
		}
		if (stopping(p))
			return NULL;
		left.left_ns = mono_ns();
		if (left.err == 0 && p->fd >= 0)
			left.err = write_all(p, p->out, len);

		pthread_mutex_lock(&p->mu);
		p->left = left;
		p->has_left = 1;
		pthread_mutex_unlock(&p->mu);
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
	p->max_bytes = max_bytes;
	p->block = malloc(max_bytes ? max_bytes : 1);
	p->out = malloc(max_bytes ? max_bytes : 1);
	if (p->block == NULL || p->out == NULL) {
		free(p->block);
		free(p->out);
		free(p);
		*err = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->handed, NULL);

	// Real-time scheduling, as audio threads have, so that other
	// processes' work does not delay the wake-ups; it needs CAP_SYS_NICE or
	// an RLIMIT_RTPRIO, and without it the thread runs as an ordinary one.
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
	struct sched_param param = {.sched_priority = RT_PRIORITY};
	pthread_attr_setschedparam(&attr, &param);
	*not_rt = pthread_create(&p->thread, &attr, run, p);
	pthread_attr_destroy(&attr);
	if (*not_rt != 0) {
		*err = pthread_create(&p->thread, NULL, run, p);
		if (*err != 0) {
			pthread_mutex_destroy(&p->mu);
			pthread_cond_destroy(&p->handed);
			free(p->block);
			free(p->out);
			free(p);
			return NULL;
		}
	}
	*err = 0;
	return p;
}

int tutti_paced_hand(tutti_paced *p, int64_t due_ns, int64_t ahead_ns, const void *bytes, size_t len) {
	if (len > p->max_bytes)
		return EINVAL;
	pthread_mutex_lock(&p->mu);
	if (p->has_block) {
		pthread_mutex_unlock(&p->mu);
		return EBUSY;
	}
	memcpy(p->block, bytes, len);
	p->len = len;
	p->due_ns = due_ns;
	p->ahead_ns = ahead_ns;
	p->has_block = 1;
	pthread_cond_signal(&p->handed);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int tutti_paced_take(tutti_paced *p, tutti_paced_left *out) {
	pthread_mutex_lock(&p->mu);
	int has = p->has_left;
	if (has)
		*out = p->left;
	p->has_left = 0;
	pthread_mutex_unlock(&p->mu);
	return has;
}

void tutti_paced_stop(tutti_paced *p) {
	pthread_mutex_lock(&p->mu);
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_signal(&p->handed);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->handed);
	free(p->block);
	free(p->out);
	free(p);
}
