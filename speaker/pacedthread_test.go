package speaker

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tutti-audio/tutti/internal/testwait"
)

// stampedReader reads a SOCK_SEQPACKET socket whose every packet the
// kernel stamps with the instant it was written, as tutti bench sync's
// reader does: the reader's own wake-ups do not enter the instants.
type stampedReader struct{ fd int }

func newStampedPipe(t *testing.T) (*os.File, stampedReader) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(fds[1], unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		t.Fatal(err)
	}
	w := os.NewFile(uintptr(fds[0]), "pcm")
	t.Cleanup(func() { w.Close(); unix.Close(fds[1]) })
	return w, stampedReader{fds[1]}
}

// read returns the next packet's size and the instant it was written.
func (r stampedReader) read(buf, oob []byte) (int, time.Time, error) {
	n, oobn, _, _, err := unix.Recvmsg(r.fd, buf, oob, 0)
	if err != nil {
		return 0, time.Time{}, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return 0, time.Time{}, err
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
			sec, nsec := int64(binary.NativeEndian.Uint64(m.Data)), int64(binary.NativeEndian.Uint64(m.Data[8:]))
			return n, time.Unix(sec, nsec), nil
		}
	}
	return 0, time.Time{}, errors.New("packet without a time stamp")
}

// outputThreads counts the process's threads named as the paced thread.
func outputThreads(t *testing.T) int {
	t.Helper()
	comms, err := filepath.Glob("/proc/self/task/*/comm")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range comms {
		if b, err := os.ReadFile(c); err == nil && strings.TrimSpace(string(b)) == "tutti-output" {
			n++
		}
	}
	return n
}

func TestPipeOutputWritesLeaveAtTheirDueInstants(t *testing.T) {
	w, r := newStampedPipe(t)
	var log lockedBuffer
	out := NewPipeOutput(PipeOptions{W: w, Log: &log, Latency: time.Second}) // long: a stall of the loaded machine is no underrun
	before := outputThreads(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- out.Run(ctx, &fillRecorder{}) }()

	const blocks = 300
	buf, oob := make([]byte, 64<<10), make([]byte, 256)
	written := make([]time.Time, 0, blocks)
	for len(written) < blocks {
		n, at, err := r.read(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		if n != 4*out.block {
			t.Fatalf("packet %d of %d bytes, want one block of %d frames", len(written), n, out.block)
		}
		written = append(written, at)
	}
	if got := outputThreads(t); got != before+1 {
		t.Errorf("%d output threads while playing, want %d", got, before+1)
	}
	// A block is logged once the thread says it left, a moment after the
	// reader has it.
	testwait.For(t, "the blocks read to be logged", 10*time.Second, func() bool {
		return strings.Count(log.String(), "\n") >= blocks
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The thread is joined before Run returns.
	if got := outputThreads(t); got != before {
		t.Errorf("%d output threads after Run returned, want %d", got, before)
	}

	lines := parseLog(t, log.String())
	late := make([]time.Duration, 0, blocks)
	for k, at := range written {
		if k >= len(lines) || lines[k].Underrun {
			t.Fatalf("block %d: log line %d missing or an underrun", k, k)
		}
		due := time.Unix(0, lines[k].TNs).Add(-out.buffer())
		late = append(late, at.Sub(due))
		if time.Duration(lines[k].LateNs) > at.Sub(due)+5*time.Microsecond {
			t.Errorf("block %d: logged %v late, but written %v after its instant", k, time.Duration(lines[k].LateNs), at.Sub(due))
		}
	}
	slices.Sort(late)
	// A write is one system call after its instant: µs on an idle machine.
	// Generous for a loaded one, yet below a Go timer's ~0.5 ms (and the
	// Go scheduler's ms when a goroutine holds the only P).
	if late[0] < -5*time.Microsecond {
		t.Errorf("a block was written %v before its instant", -late[0])
	}
	if p50, p90 := late[blocks/2], late[blocks*9/10]; p50 > 100*time.Microsecond || p90 > 300*time.Microsecond {
		t.Errorf("writes late by %v at the median, %v at p90; want within 100 and 300 µs", p50, p90)
	}
	t.Logf("writes late p50 %v p90 %v p99 %v max %v", late[blocks/2], late[blocks*9/10], late[blocks*99/100], late[blocks-1])
}

func TestPipeOutputEndsOnAWriteError(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := os.NewFile(uintptr(fds[0]), "pcm")
	defer w.Close()
	out := NewPipeOutput(PipeOptions{W: w})
	src := &fillRecorder{}
	done := make(chan error, 1)
	go func() { done <- out.Run(context.Background(), src) }()
	testwait.Until(10*time.Second, func() bool { return src.count() >= 3 })
	unix.Close(fds[1]) // the reader goes away: the next write fails
	select {
	case err := <-done:
		if !errors.Is(err, unix.EPIPE) && !errors.Is(err, unix.ECONNRESET) {
			t.Fatalf("Run returned %v, want a broken pipe", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10 s after its reader went away")
	}
	if n := outputThreads(t); n != 0 {
		t.Errorf("%d output threads after Run returned", n)
	}
}

func TestPacedOutputHandsBlocksOverWithoutCallingIntoC(t *testing.T) {
	w, r := newStampedPipe(t)
	out := NewPipeOutput(PipeOptions{W: w, Latency: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- out.Run(ctx, &fillRecorder{}) }()
	buf, oob := make([]byte, 64<<10), make([]byte, 256)
	read := func(blocks int) {
		for range blocks {
			if _, _, err := r.read(buf, oob); err != nil {
				t.Fatal(err)
			}
		}
	}
	read(10) // started
	const blocks = 200
	before := runtime.NumCgoCall()
	read(blocks)
	calls := runtime.NumCgoCall() - before
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A block handed over on time is plain memory; a call wakes the thread
	// only when Go filled a block too late for it, which a loaded machine
	// may do now and then.
	if calls > blocks/10 {
		t.Errorf("%d calls into C over %d blocks, want at most %d", calls, blocks, blocks/10)
	}
	t.Logf("%d calls into C over %d blocks", calls, blocks)
}
