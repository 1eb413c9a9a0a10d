package speaker

/*
#include "paced_thread.h"
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

// pacedThread is the native thread (paced_thread.c) that hands a paced
// output's blocks over at their due instants. Go fills and encodes each
// block a period ahead and hands it over; the thread sleeps in the kernel
// to shortly before the instant, waits the rest awake and writes the
// block. Being outside the Go scheduler, it need not win back a P from
// the goroutines that hold it (with GOMAXPROCS=1, any running goroutine),
// nor wait for a garbage collection, to write on time.
//
// A block on time costs the Go side no system call and no call into C:
// the block and the counters are in memory shared with the thread, and Go
// waits for the thread's eventfd through the runtime's poller without
// reading it. A system call or cgo call after the process was idle would
// also wake the runtime's monitor thread (sysmon), which then polls every
// 20 µs while the block is filled.
type pacedThread struct {
	p      *C.tutti_paced
	shared *C.tutti_paced_shared
	block  []byte          // the shared slot's bytes
	notify syscall.RawConn // the eventfd the thread signals after each block left
	file   *os.File        // notify's file
	// notRealtime says why the thread did not get real-time scheduling (it
	// needs CAP_SYS_NICE or an RLIMIT_RTPRIO); without it the timing holds
	// on an idle machine only.
	notRealtime   error
	mono          monoClock
	handed        uint64 // blocks handed over
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
	file := os.NewFile(uintptr(efd), "output-timing")
	notify, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("output timing: eventfd: %w", err)
	}
	var notRT, cerr C.int
	p := C.tutti_paced_start(C.int(fd), C.int(efd), C.size_t(maxBytes), &notRT, &cerr)
	if p == nil {
		file.Close()
		return nil, fmt.Errorf("output timing: starting the thread: %w", syscall.Errno(cerr))
	}
	shared := C.tutti_paced_shared_of(p)
	t := &pacedThread{p: p, shared: shared, block: unsafe.Slice((*byte)(unsafe.Pointer(shared.slot.block)), maxBytes),
		notify: notify, file: file, mono: newMonoClock()}
	if notRT != 0 {
		t.notRealtime = syscall.Errno(notRT)
	}
	t.stopOnContext = context.AfterFunc(ctx, func() { file.SetReadDeadline(time.Now()) })
	return t, nil
}

// counter is one of the shared counters, accessed atomically.
func counter(c *C.uint64_t) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(c)) }

// slot is where the next block to hand over is encoded: the shared
// memory, which the thread no longer reads once the block before has left.
func (t *pacedThread) slot() []byte { return t.block }

// hand gives the thread the next block, its first n bytes of slot(), due
// at due, to wake ahead of; nextDue is when the block after it is expected
// due, for the thread to sleep towards. The block before must have left.
func (t *pacedThread) hand(due, nextDue time.Time, ahead time.Duration, n int) error {
	if counter(&t.shared.left).Load() != t.handed {
		return fmt.Errorf("output timing: handing a block over: %w", syscall.EBUSY)
	}
	if n > len(t.block) {
		return fmt.Errorf("output timing: handing a block over: %d bytes: %w", n, syscall.EINVAL)
	}
	s := &t.shared.slot
	s.due_ns, s.next_due_ns, s.ahead_ns, s.len = C.int64_t(t.mono.ns(due)), C.int64_t(t.mono.ns(nextDue)), C.int64_t(ahead), C.size_t(n)
	t.handed++
	counter(&t.shared.handed).Store(t.handed)
	if counter(&t.shared.waiting).Load() != 0 {
		C.tutti_paced_wake(t.p)
	}
	return nil
}

// waitLeft waits until the block handed over left, or the context is done.
func (t *pacedThread) waitLeft() (leftBlock, error) {
	left := func(uintptr) bool { return counter(&t.shared.left).Load() == t.handed }
	if err := t.notify.Read(left); err != nil {
		return leftBlock{}, err
	}
	l := t.shared.left_block
	b := leftBlock{late: time.Duration(l.left_ns - l.due_ns), wokeLate: time.Duration(l.woke_late_ns)}
	if l.err != 0 {
		b.err = fmt.Errorf("output: %w", syscall.Errno(l.err))
	}
	return b, nil
}

// stop ends the thread and waits for it.
func (t *pacedThread) stop() {
	t.stopOnContext()
	C.tutti_paced_stop(t.p)
	t.file.Close()
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
