package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/tutti-audio/tutti/clock"
)

// ALSAOptions configure an ALSAOutput. The latency of the hardware beyond
// what ALSA reports is the Speaker's Options.Calibration, as for every
// kind of output.
type ALSAOptions struct {
	Device string        // ALSA PCM name, default "default" (e.g. "hw:0", "plughw:1,0", "pulse")
	Rate   int           // default 44100; a device (or its plug layer) that cannot play it is refused
	Buffer time.Duration // device buffer, default 60ms
	Period time.Duration // one write, default defaultALSAPeriod
	Logger *slog.Logger  // nil = slog.Default()
}

// ALSAOutput plays through an ALSA PCM, one period per write, and measures
// before each write how far ahead of the DAC the write pointer is (the PCM
// delay), so that every period is filled for the instant it will be heard.
type ALSAOutput struct {
	device string
	rate   int
	buffer time.Duration
	period time.Duration
	log    *slog.Logger
	clock  clock.Clock
}

func NewALSAOutput(opts ALSAOptions) *ALSAOutput {
	o := &ALSAOutput{device: opts.Device, rate: opts.Rate, buffer: opts.Buffer, period: opts.Period,
		log: opts.Logger, clock: clock.Real{}}
	if o.device == "" {
		o.device = "default"
	}
	if o.rate <= 0 {
		o.rate = 44100
	}
	if o.buffer <= 0 {
		o.buffer = 60 * time.Millisecond
	}
	if o.period <= 0 {
		o.period = defaultALSAPeriod
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	return o
}

func (o *ALSAOutput) Name() string    { return "alsa" }
func (o *ALSAOutput) SampleRate() int { return o.rate }

// Latency is nominal (the buffer); the instants given to Fill are measured
// from the PCM delay every period.
func (o *ALSAOutput) Latency() time.Duration      { return o.buffer }
func (o *ALSAOutput) useLocalClock(c clock.Clock) { o.clock = c }

// defaultALSAPeriod is one write to the device: every period wakes the
// speaker, measures the PCM delay and renders a block. 20 ms is a third of
// the default buffer, so two periods stay queued while one is written; it
// wakes the speaker half as often as 10 ms did. The lead a command needs
// depends on the buffer, not the period, and each period is rendered for
// the instant its first frame is heard, so neither sync nor command
// latency changes.
const defaultALSAPeriod = 20 * time.Millisecond

// stallTimeout is how long writes may make no progress before Run gives up
// (a device that accepts the configuration but never plays).
const stallTimeout = 2 * time.Second

// waitSlice bounds each wait for room in the buffer, so that Run notices
// its context and stalls promptly.
const waitSlice = 100 * time.Millisecond

// Run plays until ctx is done. It fails when the device cannot be opened or
// configured, or when it stops taking audio for stallTimeout.
func (o *ALSAOutput) Run(ctx context.Context, src Source) error {
	p, err := openPCM(o.device, o.rate, o.buffer, o.period)
	if err != nil {
		return fmt.Errorf("alsa output %q: %w", o.device, err)
	}
	defer p.close()
	o.log.Info("alsa output open", "device", o.device, "rate", o.rate,
		"buffer_frames", p.bufferFrames, "period_frames", p.periodFrames)

	thread, err := startALSAThread(ctx, p, waitSlice)
	if err != nil {
		return fmt.Errorf("alsa output %q: %w", o.device, err)
	}
	defer thread.stop()

	buf := make([][2]float64, p.periodFrames)
	filled := 0 // frames of the slot filled, for the next cycle to write
	progress := time.Now()
	underrun := false // inside an underrun episode, which is logged once
	for ctx.Err() == nil {
		if time.Since(progress) > stallTimeout {
			return fmt.Errorf("alsa output %q: the device took no audio for %v (stuck or unusable)", o.device, stallTimeout)
		}
		wrote, r, err := thread.cycle(filled)
		filled = 0
		if wrote {
			progress = time.Now()
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			if wrote {
				underrun = false
			}
			if r.ready {
				filled = o.fillPeriod(thread.slot(), src, buf, r)
			}
		case !isXrun(err):
			return fmt.Errorf("alsa output %q: %w", o.device, err)
		default:
			if !underrun {
				o.log.Warn("alsa output underrun, recovering", "device", o.device, "err", err)
				underrun = true
			}
			if err := p.recover(err); err != nil {
				return fmt.Errorf("alsa output %q: recovering from underrun: %w", o.device, err)
			}
		}
	}
	return nil
}

// fillPeriod fills the period for the instant its first frame will be
// heard, as the delay measured with room for it says, into samples, and
// returns its frames. After an underrun no period is filled until room is
// measured again: it would be heard at another instant.
func (o *ALSAOutput) fillPeriod(samples []int16, src Source, buf [][2]float64, r room) int {
	heardAt := r.delayAt.Add(time.Duration(framesToNsRound(r.delay, o.rate)))
	src.Fill(buf, toLocal(o.clock, heardAt))
	for i, f := range buf {
		samples[2*i], samples[2*i+1] = toS16(f[0]), toS16(f[1])
	}
	return len(buf)
}

// alsaError is a negative errno returned by alsa-lib, with the step that
// failed.
type alsaError struct {
	op   string
	code int // negative errno
}

func (e *alsaError) Error() string { return e.op + ": " + alsaStrerror(e.code) }

func (e *alsaError) Unwrap() error { return syscall.Errno(-e.code) }

// isXrun reports an underrun (EPIPE) or a suspended device (ESTRPIPE):
// both are recovered by re-preparing the PCM.
func isXrun(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ESTRPIPE)
}
