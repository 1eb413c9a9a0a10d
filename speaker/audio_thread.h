#ifndef TUTTI_AUDIO_THREAD_H
#define TUTTI_AUDIO_THREAD_H

#include <pthread.h>

// tutti_audio_thread_create starts fn(arg) as the outputs' native threads
// run: with real-time scheduling (SCHED_FIFO, low among real-time threads,
// above every ordinary process) where the process may have it (it needs
// CAP_SYS_NICE or an RLIMIT_RTPRIO), so that other processes' work does not
// delay its wake-ups, else as an ordinary thread. It returns 0 or the errno
// of the ordinary start; *not_rt is why the real-time one failed (0: it
// did not).
int tutti_audio_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg, int *not_rt);

// tutti_audio_thread_begin is the first thing such a thread does: it
// leaves signals to the Go runtime's own threads and takes a name to show
// in ps and /proc (15 bytes at most).
void tutti_audio_thread_begin(const char *name);

#endif
