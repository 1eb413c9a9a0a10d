package speaker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// wakeTimer wakes a goroutine at an instant to within the machine's wake-up
// latency (tens of µs), where a Go timer wakes up to ~1 ms late: the Go
// runtime waits for its timers in epoll with a millisecond timeout. The
// kernel's timerfd is a high-resolution timer, and its readiness wakes the
// runtime's poller at once. A paced output's writes are its timing, seen
// from outside, so they use it. It costs one file descriptor and no thread.
type wakeTimer struct {
	ctx  context.Context
	fd   int
	file *os.File // the fd, registered with the runtime's poller
	buf  [8]byte  // expiration count a read returns
	stop func() bool
}

// newWakeTimer makes a timer whose sleeps end early once ctx is done.
func newWakeTimer(ctx context.Context) (*wakeTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	// A non-blocking fd: os.NewFile registers it with the poller, so a read
	// parks the goroutine rather than a thread.
	w := &wakeTimer{ctx: ctx, fd: fd, file: os.NewFile(uintptr(fd), "timerfd")}
	w.stop = context.AfterFunc(ctx, func() { w.file.SetReadDeadline(time.Now()) })
	return w, nil
}

func (w *wakeTimer) close() error {
	w.stop()
	return w.file.Close()
}

// sleepUntil returns at due (an instant of time.Now's monotonic clock), or
// with the context's error once it is done.
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
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(now.Nano() + int64(remaining))}
	if err := unix.TimerfdSettime(w.fd, unix.TFD_TIMER_ABSTIME, &spec, nil); err != nil {
		return fmt.Errorf("timerfd: %w", err)
	}
	_, err := w.file.Read(w.buf[:])
	if errors.Is(err, os.ErrDeadlineExceeded) && w.ctx.Err() != nil {
		return w.ctx.Err()
	}
	return err
}
