package speaker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"time"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/playlog"
)

// Source is what an output pulls from: fill buf with the frames that will be
// heard starting at local-clock instant heardAt (frame i at heardAt + i/rate).
type Source interface {
	Fill(buf [][2]float64, heardAt time.Time)
}

// Output is an audio device.
type Output interface {
	Name() string
	SampleRate() int
	Latency() time.Duration                    // from taking a block to hearing it (reported in status)
	Run(ctx context.Context, src Source) error // pulls from src in real time until ctx is done
}

// localClockUser is implemented by outputs that pace themselves on real
// time: New hands them the speaker's Clock so that the instants they give
// Fill are on the local clock.
type localClockUser interface {
	useLocalClock(clock.Clock)
}

// toLocal converts a real-time instant to the local clock.
func toLocal(local clock.Clock, real time.Time) time.Time {
	switch c := local.(type) {
	case clock.Real:
		return real
	case *FaultClock:
		return c.at(real)
	}
	return local.Now().Add(time.Until(real))
}

// blockSink receives each block a paced device takes, with the real-time
// instant its first frame is heard.
type blockSink interface {
	block(buf [][2]float64, heardAt time.Time) error
	underrun(at time.Time) error
}

// pacedDevice consumes blocks in real time like a DAC with its own sample
// clock: block k is taken at t0 + k*block/(rate*(1+ppm/1e6)) and heard
// Latency later.
type pacedDevice struct {
	rate    int
	block   int
	latency time.Duration
	ppm     float64 // the device oscillator's error: +100 runs 100 ppm fast
	clock   clock.Clock
	sink    blockSink
}

// elapsed is the real time the device takes to play frames.
func (d *pacedDevice) elapsed(frames int64) time.Duration {
	ns := framesToNsRound(frames, d.rate)
	if d.ppm == 0 {
		return time.Duration(ns)
	}
	return time.Duration(math.Round(float64(ns) / (1 + d.ppm/1e6)))
}

func (d *pacedDevice) useLocalClock(c clock.Clock) { d.clock = c }

func (d *pacedDevice) run(ctx context.Context, src Source) error {
	buf := make([][2]float64, d.block)
	timer := time.NewTimer(0)
	defer timer.Stop()
	t0 := time.Now()
	for k := int64(0); ; k++ {
		due := t0.Add(d.elapsed(k * int64(d.block)))
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if now := time.Now(); now.Sub(due) > d.latency {
			// The process stalled longer than the device buffer: the DAC ran
			// dry. Restart the sample clock now, as a real device would.
			if err := d.sink.underrun(now); err != nil {
				return err
			}
			t0, k, due = now, 0, now
		}
		heardAt := due.Add(d.latency)
		src.Fill(buf, toLocal(d.clock, heardAt))
		if err := d.sink.block(buf, heardAt); err != nil {
			return err
		}
	}
}

// VirtualOptions configure a VirtualOutput.
type VirtualOptions struct {
	Rate    int           // default 44100
	Block   int           // frames per block, default 441 (10 ms)
	Latency time.Duration // device buffer: a block taken at t is heard at t+Latency; default 30ms
	Log     io.Writer     // one JSON line per block; nil = no log
	PPM     float64       // error of the device's oscillator, parts per million (+ runs fast)
}

// VirtualOutput is a sound card without sound: it consumes blocks in real
// time and logs what would be heard when, one playlog.Line per block:
// {"t_ns":<heard, real clock, Unix ns>,"frames":<n>,"l":<int16>,"r":<int16>,"n_sound":<n>}
// with the first frame's samples and the number of leading frames that are
// not silence, and {"underrun":true,"t_ns":...} when the process fell behind
// by more than Latency.
type VirtualOutput struct {
	pacedDevice
}

func NewVirtualOutput(opts VirtualOptions) *VirtualOutput {
	rate, block, latency := pacingDefaults(opts.Rate, opts.Block, opts.Latency)
	return &VirtualOutput{pacedDevice{rate: rate, block: block, latency: latency, ppm: opts.PPM, clock: clock.Real{},
		sink: &logSink{w: opts.Log, rate: rate}}}
}

func (v *VirtualOutput) Name() string                              { return "virtual" }
func (v *VirtualOutput) SampleRate() int                           { return v.rate }
func (v *VirtualOutput) Latency() time.Duration                    { return v.latency }
func (v *VirtualOutput) Run(ctx context.Context, src Source) error { return v.run(ctx, src) }

type logSink struct {
	w    io.Writer
	rate int
	line []byte
}

func (s *logSink) block(buf [][2]float64, heardAt time.Time) error {
	return s.write(playlog.Line{TNs: heardAt.UnixNano(), Frames: len(buf), L: toS16(buf[0][0]), R: toS16(buf[0][1]),
		Sound: leadingSound(buf), LX: buf[0][0] * 32768, Rate: s.rate})
}

// leadingSound counts the frames before the first silent one (both channels
// exactly zero), so a log shows to the frame where a pause began.
func leadingSound(buf [][2]float64) int {
	for i, f := range buf {
		if f[0] == 0 && f[1] == 0 {
			return i
		}
	}
	return len(buf)
}

func (s *logSink) underrun(at time.Time) error {
	return s.write(playlog.Line{TNs: at.UnixNano(), Underrun: true})
}

func (s *logSink) write(rec playlog.Line) error {
	if s.w == nil {
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	s.line = append(append(s.line[:0], b...), '\n')
	_, err = s.w.Write(s.line)
	return err
}

// PipeOptions configure a PipeOutput.
type PipeOptions struct {
	W       io.Writer // raw PCM s16le stereo interleaved at Rate
	Rate    int       // default 44100
	Block   int       // frames per block, default 441 (10 ms)
	Latency time.Duration
}

// PipeOutput writes what would be heard as raw PCM, paced in real time like
// a VirtualOutput (like snapclient's file player).
type PipeOutput struct {
	pacedDevice
}

func NewPipeOutput(opts PipeOptions) *PipeOutput {
	rate, block, latency := pacingDefaults(opts.Rate, opts.Block, opts.Latency)
	return &PipeOutput{pacedDevice{rate: rate, block: block, latency: latency, clock: clock.Real{},
		sink: &pcmSink{w: opts.W}}}
}

func (p *PipeOutput) Name() string                              { return "pipe" }
func (p *PipeOutput) SampleRate() int                           { return p.rate }
func (p *PipeOutput) Latency() time.Duration                    { return p.latency }
func (p *PipeOutput) Run(ctx context.Context, src Source) error { return p.run(ctx, src) }

type pcmSink struct {
	w   io.Writer
	pcm []byte
}

func (s *pcmSink) block(buf [][2]float64, _ time.Time) error {
	s.pcm = s.pcm[:0]
	for _, f := range buf {
		s.pcm = binary.LittleEndian.AppendUint16(s.pcm, uint16(toS16(f[0])))
		s.pcm = binary.LittleEndian.AppendUint16(s.pcm, uint16(toS16(f[1])))
	}
	_, err := s.w.Write(s.pcm)
	return err
}

// underrun writes nothing: a pipe has no way to say so, and the gap is
// already in the stream's timing.
func (s *pcmSink) underrun(time.Time) error { return nil }

func pacingDefaults(rate, block int, latency time.Duration) (int, int, time.Duration) {
	if rate <= 0 {
		rate = 44100
	}
	if block <= 0 {
		block = rate / 100
	}
	if latency <= 0 {
		latency = 30 * time.Millisecond
	}
	return rate, block, latency
}

// toS16 converts a sample to 16-bit PCM: round(x*32768), clamped.
func toS16(x float64) int16 {
	return int16(max(-32768, min(32767, math.Round(x*32768))))
}
