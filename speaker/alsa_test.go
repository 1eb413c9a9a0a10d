package speaker

import (
	"context"
	"testing"
	"time"
)

type silence struct{}

func (silence) Fill(buf [][2]float64, _ time.Time) { clear(buf) }

// On a machine without a sound card the ALSA output must fail, not hang.
// Where a card exists, it must play until cancelled.
func TestALSAOutputFailsLoudlyOrPlays(t *testing.T) {
	out := NewALSAOutput(ALSAOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err := out.Run(ctx, silence{})
	switch {
	case err != nil:
		t.Logf("no usable sound card, as expected here: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	case ctx.Err() == nil:
		t.Fatal("Run returned nil before its context was done")
	}
}
