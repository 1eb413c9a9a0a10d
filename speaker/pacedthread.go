package speaker

/*
#include "paced_thread.h"
*/
import "C"

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pacedThread is the native thread (paced_thread.c) that hands a paced
// output's blocks over at their due instants. Go fills and encodes each
// block a period ahead and hands it over; the thread sleeps in the kernel
// to shortly before the instant, waits the rest awake and writes the
// block. Being outside the Go scheduler, it need not win back a P from
// the goroutines that hold it (with GOMAXPROCS=1, any running goroutine),
// nor wait for a garbage collection, to write on time.
type pacedThread struct {
	p      *C.tutti_paced
	notify *os.File // the eventfd the thread signals after each block left
	// notRealtime says why the thread did not get real-time scheduling (it
	// needs CAP_SYS_NICE or an RLIMIT_RTPRIO); without it the timing holds
	// on an idle machine only.
	notRealtime   error
	mono          monoClock
	stopOnContext func() bool
}

// leftBlock is how a block left the thread.
type leftBlock struct {
	late     time.Duration // from its due instant to the start of its write
	wokeLate time.Duration // how late the sleep before it ended; negative if it did not sleep
	err      error         // of the write
}

// startPacedThread starts the thread writing to fd (-1: no write) blocks
// of up to maxBytes. Once ctx is done, waitLeft returns at once; stop
// ends the thread.
func startPacedThread(ctx context.Context, fd, maxBytes int) (*pacedThread, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("output timing: eventfd: %w", err)
	}
	notify := os.NewFile(uintptr(efd), "output-timing")
	var notRT, cerr C.int
	p := C.tutti_paced_start(C.int(fd), C.int(efd), C.size_t(maxBytes), &notRT, &cerr)
	if p == nil {
		notify.Close()
		return nil, fmt.Errorf("output timing: starting the thread: %w", syscall.Errno(cerr))
	}
	t := &pacedThread{p: p, notify: notify, mono: newMonoClock()}
	if notRT != 0 {
		t.notRealtime = syscall.Errno(notRT)
	}
	t.stopOnContext = context.AfterFunc(ctx, func() { notify.SetReadDeadline(time.Now()) })
	return t, nil
}

// hand gives the thread the next block, due at due, to wake ahead of.
// The block before must have left.
func (t *pacedThread) hand(due time.Time, ahead time.Duration, b []byte) error {
	var bytes unsafe.Pointer
	if len(b) > 0 {
		bytes = unsafe.Pointer(unsafe.SliceData(b))
	}
	if e := C.tutti_paced_hand(t.p, C.int64_t(t.mono.ns(due)), C.int64_t(ahead), bytes, C.size_t(len(b))); e != 0 {
		return fmt.Errorf("output timing: handing a block over: %w", syscall.Errno(e))
	}
	return nil
}

// waitLeft waits until the block handed over left, or the context is done.
func (t *pacedThread) waitLeft() (leftBlock, error) {
	var signal [8]byte
	for {
		var l C.tutti_paced_left
		if C.tutti_paced_take(t.p, &l) != 0 {
			left := leftBlock{late: time.Duration(l.left_ns - l.due_ns), wokeLate: time.Duration(l.woke_late_ns)}
			if l.err != 0 {
				left.err = fmt.Errorf("output: %w", syscall.Errno(l.err))
			}
			return left, nil
		}
		if _, err := t.notify.Read(signal[:]); err != nil {
			return leftBlock{}, err
		}
	}
}

// stop ends the thread and waits for it.
func (t *pacedThread) stop() {
	t.stopOnContext()
	C.tutti_paced_stop(t.p)
	t.notify.Close()
}

// monoClock converts time.Time instants to CLOCK_MONOTONIC nanoseconds,
// the clock of time.Now's monotonic reading and of the thread's timing.
type monoClock struct {
	at     time.Time
	atMono int64 // at, on CLOCK_MONOTONIC
}

// newMonoClock pairs time.Now with the kernel's clock read around it, the
// closest of a few tries (a read can be preempted between the two).
func newMonoClock() monoClock {
	const tries = 5
	var best monoClock
	bestGap := int64(-1)
	for range tries {
		var before, after unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
		now := time.Now()
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &after)
		if gap := after.Nano() - before.Nano(); bestGap < 0 || gap < bestGap {
			bestGap = gap
			best = monoClock{at: now, atMono: before.Nano() + gap/2}
		}
	}
	return best
}

func (m monoClock) ns(t time.Time) int64 { return m.atMono + int64(t.Sub(m.at)) }
