package speaker

import (
	"testing"
	"time"
)

// TestFillAllocatesNothing: once a song plays, a block costs the engine, the
// player and its resampler no allocation (no garbage for the collector to
// chase, 100 times a second). The WAV decoder makes none either; the
// compressed formats' decoders still make a few per frame of their own
// (mewkiz/flac, jfreymuth/vorbis, and go-mp3's bit reservoir).
func TestFillAllocatesNothing(t *testing.T) {
	f, _ := songFixture(t, "wav", writeTimecode(t, t.TempDir(), testRate, 60*testRate, 0))
	buf := make([][2]float64, 441)
	k := 0
	fill := func() {
		shared := f.t0 + framesToNsRound(int64(k*441), testRate)
		f.eng.Fill(buf, time.Unix(0, shared-int64(fixtureOffset)))
		k++
	}
	for range 100 { // the player opens, the resampler settles
		fill()
	}
	if allocs := testing.AllocsPerRun(500, fill); allocs != 0 {
		t.Errorf("%.2f allocations per block", allocs)
	}
	if got := heard(buf); got[440] != int64(k*441-1) {
		t.Errorf("the last block ends with frame %d, want %d", got[440], k*441-1)
	}
}
