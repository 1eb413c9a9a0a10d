package speaker

/*
#include <linux/futex.h>
#include "alsa_thread.h"
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

// alsaThread is the native thread (alsa_thread.c) that does an ALSA PCM's
// input and output on the ALSA output's behalf: it writes the period Go
// filled into its slot, waits for room for the next and measures the
// delay. Go arms it through a futex, woken by a raw system call, and waits
// for its eventfd through the runtime's poller, so that a period costs the
// Go side neither a call into C nor a system call.
type alsaThread struct {
	t             *C.tutti_alsa_thread
	shared        *C.tutti_alsa_shared
	samples       []int16         // the slot, a period of interleaved stereo frames
	notify        syscall.RawConn // the eventfd the thread signals after each cycle
	file          *os.File        // notify's file
	armed         uint32          // cycles asked for
	mono          monoClock
	stopOnContext func() bool
}

// room is what a cycle's wait found: room for a period, and when the next
// frame written will be heard, or no room within the wait's timeout.
type room struct {
	ready   bool
	delay   int64     // frames queued ahead of the write pointer
	delayAt time.Time // when delay was true
}

// startALSAThread starts the thread for p, each wait lasting at most
// timeout. Once ctx is done, cycle returns at once; stop ends the thread.
func startALSAThread(ctx context.Context, p *pcm, timeout time.Duration) (*alsaThread, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("device thread: eventfd: %w", err)
	}
	file := os.NewFile(uintptr(efd), "alsa-thread")
	notify, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("device thread: eventfd: %w", err)
	}
	var cerr C.int
	t := C.tutti_alsa_thread_start(p.h, C.int(efd), C.uint(p.periodFrames), C.int(timeout.Milliseconds()), &cerr)
	if t == nil {
		file.Close()
		return nil, fmt.Errorf("device thread: starting it: %w", syscall.Errno(cerr))
	}
	shared := C.tutti_alsa_thread_shared(t)
	a := &alsaThread{t: t, shared: shared, samples: unsafe.Slice((*int16)(unsafe.Pointer(shared.samples)), 2*p.periodFrames),
		notify: notify, file: file, mono: newMonoClock()}
	a.stopOnContext = context.AfterFunc(ctx, func() { file.SetReadDeadline(time.Now()) })
	return a, nil
}

// slot is where Go fills the period the next cycle writes: the shared
// memory, which the thread leaves alone between cycles.
func (a *alsaThread) slot() []int16 { return a.samples }

// cycle has the thread write the slot's first frames frames (0: none), then
// wait for room for a period and measure the delay, and waits for it; the
// PCM is the thread's meanwhile. wrote says whether the write queued any
// frame. The error is an alsaError of the write, the wait or the
// measurement (an underrun is the PCM's state, EPIPE), or the context's
// end; a failed write skips the wait.
func (a *alsaThread) cycle(frames int) (wrote bool, r room, err error) {
	s := a.shared
	s.frames = C.uint32_t(frames)
	a.armed++
	(*atomic.Uint32)(unsafe.Pointer(&s.armed)).Store(a.armed)
	// A raw system call: the futex wake never blocks, and the runtime's
	// system call path would wake its monitor.
	unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&s.armed)), C.FUTEX_WAKE_PRIVATE, 1, 0, 0, 0)
	done := func(uintptr) bool { return (*atomic.Uint32)(unsafe.Pointer(&s.done)).Load() == a.armed }
	if err := a.notify.Read(done); err != nil {
		return false, room{}, err
	}
	wrote = s.wrote != 0
	switch {
	case s.write_err < 0:
		return wrote, room{}, &alsaError{op: "write", code: int(s.write_err)}
	case s.rc < 0:
		return wrote, room{}, &alsaError{op: "wait", code: int(s.rc)}
	case s.rc == 0:
		return wrote, room{}, nil
	}
	switch s.state {
	case C.SND_PCM_STATE_XRUN:
		return wrote, room{}, &alsaError{op: "status", code: -int(syscall.EPIPE)}
	case C.SND_PCM_STATE_SUSPENDED:
		return wrote, room{}, &alsaError{op: "status", code: -int(syscall.ESTRPIPE)}
	case C.SND_PCM_STATE_DISCONNECTED:
		return wrote, room{}, &alsaError{op: "status", code: -int(syscall.ENODEV)}
	}
	// A negative delay means the buffer already ran dry: what is written
	// now plays at once.
	at := a.mono.at.Add(time.Duration(int64(s.at_ns) - a.mono.atMono))
	return wrote, room{ready: true, delay: max(int64(s.delay), 0), delayAt: at}, nil
}

// stop ends the thread and waits for it.
func (a *alsaThread) stop() {
	a.stopOnContext()
	C.tutti_alsa_thread_stop(a.t)
	a.file.Close()
}
