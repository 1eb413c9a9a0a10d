package speaker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gopxl/beep/v2"
	beepspeaker "github.com/gopxl/beep/v2/speaker"
)

// ALSAOptions configure an ALSAOutput.
type ALSAOptions struct {
	Rate        int           // default 44100
	Buffer      time.Duration // beep/oto buffer, default 100ms
	Calibration time.Duration // added to the estimated latency (per-speaker latency calibration)
}

// ALSAOutput plays through the sound card with beep's speaker package (oto
// over ALSA). beep keeps one global device, so a process has at most one.
// beep does not expose the device delay: heard instants are estimated as
// now + Buffer + Calibration.
type ALSAOutput struct {
	rate        int
	buffer      time.Duration
	calibration time.Duration
	clock       Clock
}

func NewALSAOutput(opts ALSAOptions) *ALSAOutput {
	o := &ALSAOutput{rate: opts.Rate, buffer: opts.Buffer, calibration: opts.Calibration, clock: realClock{}}
	if o.rate <= 0 {
		o.rate = 44100
	}
	if o.buffer <= 0 {
		o.buffer = 100 * time.Millisecond
	}
	return o
}

func (o *ALSAOutput) Name() string           { return "alsa" }
func (o *ALSAOutput) SampleRate() int        { return o.rate }
func (o *ALSAOutput) Latency() time.Duration { return o.buffer + o.calibration }
func (o *ALSAOutput) useLocalClock(c Clock)  { o.clock = c }

// stallTimeout is how long playback may make no progress before Run gives
// up: without a usable sound card beep initialises fine and never pulls.
const stallTimeout = 2 * time.Second

// Run plays until ctx is done. It fails when the device cannot be opened or
// stops pulling samples.
func (o *ALSAOutput) Run(ctx context.Context, src Source) error {
	sr := beep.SampleRate(o.rate)
	if err := beepspeaker.Init(sr, sr.N(o.buffer)); err != nil {
		return fmt.Errorf("alsa output: %w", err)
	}
	// Init returns nil without a sound card; suspending reveals the error.
	if err := beepspeaker.Suspend(); err != nil {
		return fmt.Errorf("alsa output: %w", err)
	}
	if err := beepspeaker.Resume(); err != nil {
		return fmt.Errorf("alsa output: %w", err)
	}
	var pulled atomic.Int64
	beepspeaker.Play(beep.StreamerFunc(func(samples [][2]float64) (int, bool) {
		heardAt := time.Now().Add(o.buffer + o.calibration)
		src.Fill(samples, toLocal(o.clock, heardAt))
		pulled.Add(int64(len(samples)))
		return len(samples), true // never short: beep's mixer drops a short streamer for good
	}))
	defer beepspeaker.Clear()

	ticker := time.NewTicker(stallTimeout)
	defer ticker.Stop()
	last := int64(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		n := pulled.Load()
		if n == last {
			return errors.New("alsa output: the device pulls no audio (no sound card, or it is stuck)")
		}
		last = n
	}
}
