package speaker

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// timedWriter records when each write arrives and how many bytes it held,
// as a reader at the other end of a pipe would.
type timedWriter struct {
	mu     sync.Mutex
	writes []timedWrite
}

type timedWrite struct {
	at    time.Time
	bytes int
}

func (w *timedWriter) Write(p []byte) (int, error) {
	at := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, timedWrite{at, len(p)})
	return len(p), nil
}

// playPipe runs a PipeOutput with crystal error ppm until it has written
// blocks blocks, and returns the writes.
func playPipe(t *testing.T, ppm float64, blocks int) ([]timedWrite, *PipeOutput) {
	t.Helper()
	w := &timedWriter{}
	// A long buffer: a stall of the loaded machine must not count as an
	// underrun, which would restart the schedule.
	out := NewPipeOutput(PipeOptions{W: w, PPM: ppm, Latency: time.Second})
	src := &fillRecorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- out.Run(ctx, src) }()
	deadline := time.Now().Add(30 * time.Second)
	for src.count() <= blocks && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling; pacing is what is under test
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.writes) < blocks {
		t.Fatalf("%d blocks written in 30 s, want %d", len(w.writes), blocks)
	}
	for i, wr := range w.writes {
		if wr.bytes != 4*out.block {
			t.Fatalf("write %d of %d bytes, want one block of %d frames", i, wr.bytes, out.block)
		}
	}
	return w.writes[:blocks], out
}

// lateness returns how much later than its slot each write arrived, the
// slots being period apart from the first write's: on a busy machine a
// write can be late, never early, so the earliest ones show the schedule.
func lateness(writes []timedWrite, period float64) []time.Duration {
	late := make([]time.Duration, len(writes))
	for k, wr := range writes {
		late[k] = wr.at.Sub(writes[0].at) - time.Duration(float64(k)*period)
	}
	return late
}

func TestPipeOutputPacedByItsCrystal(t *testing.T) {
	// Exaggerated errors so that the rate shows above a loaded machine's
	// scheduling noise within a second: 5 % is 50 ms per second.
	const blocks = 100
	for _, ppm := range []float64{0, 50_000, -50_000} {
		writes, out := playPipe(t, ppm, blocks)
		period := float64(out.block) / (float64(out.rate) * (1 + ppm/1e6)) * 1e9 // ns per block
		late := lateness(writes, period)
		// The schedule is the earliest writes of each half: if the rate
		// were wrong, the second half's would be off the first's by
		// 25 ms or more.
		first, second := slices.Min(late[:blocks/2]), slices.Min(late[blocks/2:])
		if d := second - first; d < -2*time.Millisecond || d > 2*time.Millisecond {
			t.Errorf("ppm %+g: the second half of %d blocks is %v off a %.0f ns block period", ppm, blocks, d, period)
		}
	}
}

func TestPacedLatencyHoldsABlockWaitingAndOneInTheBuffer(t *testing.T) {
	for _, c := range []struct{ asked, want time.Duration }{
		{0, 40 * time.Millisecond}, {60 * time.Millisecond, 60 * time.Millisecond}, {5 * time.Millisecond, 40 * time.Millisecond},
	} {
		out := NewPipeOutput(PipeOptions{W: &timedWriter{}, Latency: c.asked})
		if out.Latency() != c.want || out.buffer() != c.want-20*time.Millisecond {
			t.Errorf("latency %v asked: %v, buffer %v; want %v and a block less", c.asked, out.Latency(), out.buffer(), c.want)
		}
	}
}

func TestWakeMarginWakesAheadByItsRecentWakeUps(t *testing.T) {
	w := newWakeMargin()
	// feed gives a window of wake-ups: slow of them late by slowBy, the
	// rest by usual.
	feed := func(usual time.Duration, slow int, slowBy time.Duration) {
		for i := range wakeWindow {
			if i%(wakeWindow/max(slow, 1)) == 0 && slow > 0 {
				w.wokeLate(slowBy)
				slow--
				continue
			}
			w.wokeLate(usual)
		}
	}
	// 2 % of wake-ups 150 µs late: ahead by 150 µs, so that they too leave
	// on time.
	feed(30*time.Microsecond, wakeWindow/50, 150*time.Microsecond)
	if w.ahead != 150*time.Microsecond {
		t.Errorf("2 %% of wake-ups 150 µs late: ahead by %v, want 150µs", w.ahead)
	}
	// Under 1 % of wake-ups 5 ms late: ahead by the rest's.
	feed(40*time.Microsecond, 2, 5*time.Millisecond)
	if w.ahead != 40*time.Microsecond {
		t.Errorf("2 of %d wake-ups 5 ms late: ahead by %v, want 40µs", wakeWindow, w.ahead)
	}
	feed(time.Microsecond, 0, 0)
	if w.ahead != aheadMin {
		t.Errorf("prompt wake-ups: ahead by %v, want the least, %v", w.ahead, aheadMin)
	}
	feed(5*time.Millisecond, 0, 0)
	if w.ahead != aheadMax {
		t.Errorf("a loaded machine: ahead by %v, want at most %v", w.ahead, aheadMax)
	}
}
