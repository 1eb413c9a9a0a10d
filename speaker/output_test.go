package speaker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/playlog"
)

// lockedBuffer is a log writer the test reads while the output writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fillRecorder is a Source that writes a ramp and records each call.
type fillRecorder struct {
	mu    sync.Mutex
	calls []fillCall
}

type fillCall struct{ at, heardAt time.Time }

func (r *fillRecorder) Fill(buf [][2]float64, heardAt time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fillCall{at: time.Now(), heardAt: heardAt})
	for i := range buf {
		buf[i] = [2]float64{0.25, -1.5} // -1.5 clamps
	}
}

func (r *fillRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func offsetClock(d time.Duration) clock.Clock { return NewFaultClock(d, 0) }

func parseLog(t *testing.T, s string) []playlog.Line {
	t.Helper()
	var recs []playlog.Line
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var rec playlog.Line
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		recs = append(recs, rec)
	}
	return recs
}

func TestVirtualOutputPacingAndLog(t *testing.T) {
	var log lockedBuffer
	out := NewVirtualOutput(VirtualOptions{Log: &log, Latency: 40 * time.Millisecond})
	const clockOffset = 3 * time.Minute
	out.useLocalClock(offsetClock(clockOffset))
	src := &fillRecorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- out.Run(ctx, src) }()
	testwait.Until(10*time.Second, func() bool { return src.count() >= 40 }) // polling; pacing is what is under test
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	recs := parseLog(t, log.String())
	src.mu.Lock()
	calls := src.calls
	src.mu.Unlock()
	var blocks []playlog.Line
	underruns := 0
	for _, r := range recs {
		if r.Underrun {
			t.Logf("underrun at %d (noisy machine)", r.TNs)
			underruns++
			continue
		}
		blocks = append(blocks, r)
	}
	// The device holds the next block filled before the last one left;
	// after an underrun it fills that block again, for its new instant.
	if len(blocks)+1+underruns != len(calls) || len(blocks) < 39-underruns {
		t.Fatalf("%d blocks logged, %d underruns, %d fills, want a fill more than blocks and underruns", len(blocks), underruns, len(calls))
	}
	fillOf := map[int64]fillCall{} // by the local heard instant Fill was given
	for _, c := range calls {
		fillOf[c.heardAt.UnixNano()] = c
	}

	late := 0
	for i, b := range blocks {
		if b.Frames != out.block || b.L != 8192 || b.R != -32768 {
			t.Fatalf("block %d: %+v, want %d frames, l 8192, r -32768", i, b, out.block)
		}
		// Fill gets the heard instant on the local clock, as logged.
		call, ok := fillOf[b.LocalNs]
		if !ok {
			t.Fatalf("block %d: no Fill was given its logged local instant %d", i, b.LocalNs)
		}
		local := call.heardAt.UnixNano() - int64(clockOffset)
		if d := time.Duration(local - b.TNs); d < -5*time.Millisecond || d > 5*time.Millisecond {
			t.Errorf("block %d: Fill heard instant %v off the logged one", i, d)
		}
		if b.LateNs < 0 {
			t.Errorf("block %d left %v before it was due", i, time.Duration(-b.LateNs))
		}
		// Filled Latency before it is heard; the goroutine may wake late on
		// a busy machine, but never early.
		d := time.Unix(0, b.TNs).Sub(call.at)
		if d > out.Latency()+time.Millisecond {
			t.Errorf("block %d filled %v before it is heard, too early (Latency %v)", i, d, out.Latency())
		}
		if d < out.Latency()-15*time.Millisecond {
			late++
		}
	}
	if late > len(blocks)/5 {
		t.Errorf("%d of %d blocks taken more than 15 ms late", late, len(blocks))
	}
	// The device's sample clock: a block period (20 ms) between blocks,
	// exactly, between underruns.
	for i := 1; i < len(recs); i++ {
		if recs[i].Underrun || recs[i-1].Underrun {
			continue
		}
		if d := recs[i].TNs - recs[i-1].TNs; d < 19_999_000 || d > 20_001_000 {
			t.Errorf("blocks %d and %d are %d ns apart, want 20 ms", i-1, i, d)
		}
	}
}

func TestPipeOutputWritesPCM(t *testing.T) {
	var pcm lockedBuffer
	out := NewPipeOutput(PipeOptions{W: &pcm, Block: 100})
	src := &fillRecorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- out.Run(ctx, src) }()
	testwait.Until(10*time.Second, func() bool { return src.count() >= 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b := []byte(pcm.String())
	if len(b) == 0 || len(b)%400 != 0 {
		t.Fatalf("%d bytes of PCM, want whole blocks of 400", len(b))
	}
	if !bytes.Equal(b[:4], []byte{0x00, 0x20, 0x00, 0x80}) {
		t.Fatalf("first frame % x, want 00 20 00 80 (0.25, -1 clamped)", b[:4])
	}
}
