package speaker

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// wakeTimer wakes the paced output at an instant to within the machine's
// wake-up latency (tens of µs), where a Go timer wakes up to ~1 ms late:
// the Go runtime waits for its timers in epoll with a millisecond timeout.
// The output's goroutine gets a thread of its own, which sleeps in the
// kernel to the instant (clock_nanosleep, absolute, with no timer slack)
// and asks for real-time scheduling, as audio threads do, so that other
// processes' work does not delay the wake-up.
type wakeTimer struct {
	ctx context.Context
	// notRealtime says why the thread did not get real-time scheduling (it
	// needs CAP_SYS_NICE or an RLIMIT_RTPRIO); without it the timing holds
	// on an idle machine only.
	notRealtime error
	spin        time.Duration             // how long before an instant the thread wakes
	woke        [spinWindow]time.Duration // recent wake-up latencies
	wakes       int
}

// rtPriority is the output thread's SCHED_FIFO priority: low among
// real-time threads (1-99), above every ordinary process.
const rtPriority = 10

// newWakeTimer binds the calling goroutine to its thread for good (the
// thread ends with the goroutine, never returning to the pool with
// real-time priority) and sets that thread up. The calling goroutine must
// be one that ends when its pacing does. Sleeps end early once ctx is done.
func newWakeTimer(ctx context.Context) (*wakeTimer, error) {
	runtime.LockOSThread()
	// Timer slack lets the kernel wake a thread up to 50 µs late to merge
	// wake-ups; this thread's wake-ups are its output's timing.
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0); err != nil {
		return nil, err
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: rtPriority}
	return &wakeTimer{ctx: ctx, notRealtime: unix.SchedSetAttr(0, &attr, 0), spin: spinMax}, nil
}

// sleepUntil returns at due (an instant of time.Now's monotonic clock), or
// with the context's error once it is done (checked before the sleep,
// which lasts at most a block).
func (w *wakeTimer) sleepUntil(due time.Time) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	// time.Now's monotonic clock is CLOCK_MONOTONIC: the due instant there
	// is the kernel's now plus what remains, read back to back.
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		return err
	}
	remaining := time.Until(due)
	if remaining <= 0 {
		return nil
	}
	if remaining > w.spin {
		wakeAt := due.Add(-w.spin)
		at := unix.NsecToTimespec(now.Nano() + int64(remaining-w.spin))
		for {
			err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &at, nil)
			if err == nil {
				break
			}
			if !errors.Is(err, unix.EINTR) {
				return err
			}
		}
		w.wokeLate(time.Since(wakeAt))
	}
	for time.Now().Before(due) {
		// The last stretch, awake.
	}
	return nil
}

// The last stretch before an instant is waited awake: a wake-up is late by
// the machine's wake-up latency, which varies by tens of µs (a real-time
// thread: ~20-60 µs, p1-p50, on a virtual machine; ~10-20 µs on a Pi).
// The thread wakes ahead by the 90th percentile of its last spinWindow
// wake-up latencies, so that most blocks leave within a µs of their instant
// while a machine that wakes its threads promptly spends little awake.
const (
	spinWindow = 64
	spinMin    = 10 * time.Microsecond
	// spinMax bounds the cost of waiting awake: 2 % of a core at 100
	// blocks a second, on a machine too loaded to wake threads on time.
	spinMax = 200 * time.Microsecond
)

// wokeLate records a wake-up latency, and every spinWindow wake-ups sets
// how far ahead to wake from them.
func (w *wakeTimer) wokeLate(latency time.Duration) {
	w.woke[w.wakes%spinWindow] = latency
	w.wakes++
	if w.wakes%spinWindow != 0 {
		return
	}
	recent := w.woke // a copy, sorted
	slices.Sort(recent[:])
	w.spin = min(spinMax, max(spinMin, recent[spinWindow*9/10]))
}
