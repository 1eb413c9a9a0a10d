package speaker

/*
#include <linux/futex.h>
#include "alsa_wait.h"
*/
import "C"

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// alsaWaiter is the native thread (alsa_wait.c) that waits for room in an
// ALSA PCM's buffer and measures its delay on the ALSA output's behalf, so
// that a period costs the Go side one call into C, the write, and no
// blocking one: Go arms the thread through a futex, woken by a raw system
// call, and waits for its eventfd through the runtime's poller.
type alsaWaiter struct {
	w             *C.tutti_alsa_waiter
	shared        *C.tutti_alsa_shared
	notify        syscall.RawConn // the eventfd the thread signals after each wait
	file          *os.File        // notify's file
	armed         uint32          // waits asked for
	mono          monoClock
	stopOnContext func() bool
}

// room is what a wait found: room for a period, and when the next frame
// written will be heard, or no room within the wait's timeout.
type room struct {
	ready   bool
	delay   int64     // frames queued ahead of the write pointer
	delayAt time.Time // when delay was true
}

// startALSAWaiter starts the thread for p, each wait lasting at most
// timeout. Once ctx is done, wait returns at once; stop ends the thread.
func startALSAWaiter(ctx context.Context, p *pcm, timeout time.Duration) (*alsaWaiter, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("waiting for the device: eventfd: %w", err)
	}
	file := os.NewFile(uintptr(efd), "alsa-wait")
	notify, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("waiting for the device: eventfd: %w", err)
	}
	var cerr C.int
	w := C.tutti_alsa_waiter_start(p.h, C.int(efd), C.int(timeout.Milliseconds()), &cerr)
	if w == nil {
		file.Close()
		return nil, fmt.Errorf("waiting for the device: starting the thread: %w", syscall.Errno(cerr))
	}
	a := &alsaWaiter{w: w, shared: C.tutti_alsa_waiter_shared(w), notify: notify, file: file, mono: newMonoClock()}
	a.stopOnContext = context.AfterFunc(ctx, func() { file.SetReadDeadline(time.Now()) })
	return a, nil
}

func counter32(c *C.uint32_t) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(c)) }

// wait has the thread wait for room for a period and measure the delay,
// and waits for it; the PCM is the thread's meanwhile. The error is an
// alsaError of the wait or the measurement (an underrun is the PCM's
// state, EPIPE), or the context's end.
func (a *alsaWaiter) wait() (room, error) {
	a.armed++
	counter32(&a.shared.armed).Store(a.armed)
	// A raw system call: the futex wake never blocks, and the runtime's
	// system call path would wake its monitor.
	unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&a.shared.armed)), C.FUTEX_WAKE_PRIVATE, 1, 0, 0, 0)
	done := func(uintptr) bool { return counter32(&a.shared.done).Load() == a.armed }
	if err := a.notify.Read(done); err != nil {
		return room{}, err
	}
	s := a.shared
	switch {
	case s.rc < 0:
		return room{}, &alsaError{op: "wait", code: int(s.rc)}
	case s.rc == 0:
		return room{}, nil
	}
	switch s.state {
	case C.SND_PCM_STATE_XRUN:
		return room{}, &alsaError{op: "status", code: -int(syscall.EPIPE)}
	case C.SND_PCM_STATE_SUSPENDED:
		return room{}, &alsaError{op: "status", code: -int(syscall.ESTRPIPE)}
	case C.SND_PCM_STATE_DISCONNECTED:
		return room{}, &alsaError{op: "status", code: -int(syscall.ENODEV)}
	}
	// A negative delay means the buffer already ran dry: what is written
	// now plays at once.
	return room{ready: true, delay: max(int64(s.delay), 0), delayAt: a.mono.at.Add(time.Duration(int64(s.at_ns) - a.mono.atMono))}, nil
}

// stop ends the thread and waits for it.
func (a *alsaWaiter) stop() {
	a.stopOnContext()
	C.tutti_alsa_waiter_stop(a.w)
	a.file.Close()
}
