#define _GNU_SOURCE
#include "audio_thread.h"

#include <sched.h>
#include <signal.h>

// RT_PRIORITY is the outputs' threads' SCHED_FIFO priority (1-99).
#define RT_PRIORITY 10

int tutti_audio_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg, int *not_rt) {
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
	struct sched_param param = {.sched_priority = RT_PRIORITY};
	pthread_attr_setschedparam(&attr, &param);
	*not_rt = pthread_create(thread, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (*not_rt == 0)
		return 0;
	return pthread_create(thread, NULL, fn, arg);
}

void tutti_audio_thread_begin(const char *name) {
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), name);
}
