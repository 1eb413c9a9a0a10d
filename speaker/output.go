package speaker

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
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

// blockSink receives each block a paced device hands over: prepare when
// it is filled, then block when it is due (only the work that must be on
// time happens then).
type blockSink interface {
	prepare(buf [][2]float64)
	block(buf [][2]float64, t blockTiming) error
	underrun(at time.Time) error
}

// blockTiming is when a paced device's block leaves and is heard.
type blockTiming struct {
	heardAt    time.Time     // when its first frame is heard, real time
	heardLocal time.Time     // the same instant on the speaker's clock, as given to Fill
	late       time.Duration // how long after its due instant the block was handed over
}

// pacedDevice consumes blocks in real time like a DAC with its own sample
// clock: block k leaves at t0 + k*block/(rate*(1+ppm/1e6)) and is heard
// latency after it was filled. Like a DAC's buffer, it holds the next block
// filled a block period before it is due, so that a block leaves on time
// however long the source takes to fill it; a block that left is heard
// buffer() later.
type pacedDevice struct {
	rate    int
	block   int
	latency time.Duration // from filling a block to hearing it; at least minBlocksLatency blocks
	ppm     float64       // the device oscillator's error: +100 runs 100 ppm fast
	clock   clock.Clock
	sink    blockSink
	log     *slog.Logger
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

func (d *pacedDevice) SampleRate() int { return d.rate }

func (d *pacedDevice) Latency() time.Duration { return d.latency }

// buffer is from a block leaving to its being heard: the latency less the
// block period it waits, filled, to leave.
func (d *pacedDevice) buffer() time.Duration {
	return d.latency - time.Duration(framesToNsRound(int64(d.block), d.rate))
}

// run paces on a goroutine of its own, whose thread the wake timer takes
// for good (the thread, with its real-time priority, ends with it).
func (d *pacedDevice) run(ctx context.Context, src Source) error {
	done := make(chan error, 1)
	go func() { done <- d.pace(ctx, src) }()
	return <-done
}

func (d *pacedDevice) pace(ctx context.Context, src Source) error {
	wake, err := newWakeTimer(ctx)
	if err != nil {
		return err
	}
	if wake.notRealtime != nil {
		d.log.Warn("output timing: no real-time scheduling, so other processes' work delays the blocks", "err", wake.notRealtime)
	}
	buf := make([][2]float64, d.block)
	t0 := time.Now()
	due := t0
	fill := func() blockTiming {
		t := blockTiming{heardAt: due.Add(d.buffer())}
		t.heardLocal = toLocal(d.clock, t.heardAt)
		src.Fill(buf, t.heardLocal)
		d.sink.prepare(buf)
		return t
	}
	next := fill()
	for k := int64(0); ; {
		if err := wake.sleepUntil(due); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if now := time.Now(); now.Sub(due) > d.buffer() {
			// The process stalled longer than the device buffer: the DAC ran
			// dry. Restart the sample clock now, as a real device would.
			if err := d.sink.underrun(now); err != nil {
				return err
			}
			t0, k, due = now, 0, now
			next = fill()
		}
		next.late = time.Since(due)
		if err := d.sink.block(buf, next); err != nil {
			return err
		}
		k++
		due = t0.Add(d.elapsed(k * int64(d.block)))
		next = fill()
	}
}

// VirtualOptions configure a VirtualOutput.
type VirtualOptions struct {
	Rate    int           // default 44100
	Block   int           // frames per block, default 441 (10 ms)
	Latency time.Duration // a block filled at t is heard at t+Latency (it leaves a block later); default 30ms, at least 2 blocks
	Log     io.Writer     // one JSON line per block; nil = no log
	PPM     float64       // error of the device's oscillator, parts per million (+ runs fast)
	Logger  *slog.Logger  // nil = slog.Default()
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
		sink: &logSink{w: opts.Log, rate: rate}, log: cmp.Or(opts.Logger, slog.Default())}}
}

func (v *VirtualOutput) Name() string                              { return "virtual" }
func (v *VirtualOutput) Run(ctx context.Context, src Source) error { return v.run(ctx, src) }

type logSink struct {
	w    io.Writer
	rate int
	line []byte
}

func (s *logSink) prepare([][2]float64) {}

func (s *logSink) block(buf [][2]float64, t blockTiming) error {
	return s.write(playlog.Line{TNs: t.heardAt.UnixNano(), Frames: len(buf), L: toS16(buf[0][0]), R: toS16(buf[0][1]),
		Sound: leadingSound(buf), LX: buf[0][0] * 32768, Rate: s.rate, LocalNs: t.heardLocal.UnixNano(), LateNs: int64(t.late)})
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
	W       io.Writer     // raw PCM s16le stereo interleaved at Rate
	Rate    int           // default 44100
	Block   int           // frames per block, default 441 (10 ms)
	Latency time.Duration // as VirtualOptions.Latency: a block is written a block period after it is filled
	Log     io.Writer     // the VirtualOutput's log of each block; nil = no log
	PPM     float64       // error of the crystal that paces the pipe, as VirtualOptions.PPM
	Logger  *slog.Logger  // nil = slog.Default()
}

// PipeOutput writes what would be heard as raw PCM, paced in real time like
// a VirtualOutput (like snapclient's file player): each block is written
// when it is due, so a reader sees the output's timing.
type PipeOutput struct {
	pacedDevice
}

func NewPipeOutput(opts PipeOptions) *PipeOutput {
	rate, block, latency := pacingDefaults(opts.Rate, opts.Block, opts.Latency)
	var sink blockSink = &pcmSink{w: opts.W}
	if opts.Log != nil {
		// PCM first: the log line must not delay the block.
		sink = teeSink{sink, &logSink{w: opts.Log, rate: rate}}
	}
	return &PipeOutput{pacedDevice{rate: rate, block: block, latency: latency, ppm: opts.PPM, clock: clock.Real{}, sink: sink,
		log: cmp.Or(opts.Logger, slog.Default())}}
}

func (p *PipeOutput) Name() string                              { return "pipe" }
func (p *PipeOutput) Run(ctx context.Context, src Source) error { return p.run(ctx, src) }

// teeSink hands each block to every sink in turn.
type teeSink []blockSink

func (t teeSink) prepare(buf [][2]float64) {
	for _, s := range t {
		s.prepare(buf)
	}
}

func (t teeSink) block(buf [][2]float64, timing blockTiming) error {
	for _, s := range t {
		if err := s.block(buf, timing); err != nil {
			return err
		}
	}
	return nil
}

func (t teeSink) underrun(at time.Time) error {
	for _, s := range t {
		if err := s.underrun(at); err != nil {
			return err
		}
	}
	return nil
}

type pcmSink struct {
	w   io.Writer
	pcm []byte
}

// prepare encodes the block, so that block only writes it.
func (s *pcmSink) prepare(buf [][2]float64) {
	s.pcm = s.pcm[:0]
	for _, f := range buf {
		s.pcm = binary.LittleEndian.AppendUint16(s.pcm, uint16(toS16(f[0])))
		s.pcm = binary.LittleEndian.AppendUint16(s.pcm, uint16(toS16(f[1])))
	}
}

func (s *pcmSink) block([][2]float64, blockTiming) error {
	_, err := s.w.Write(s.pcm)
	return err
}

// underrun writes nothing: a pipe has no way to say so, and the gap is
// already in the stream's timing.
func (s *pcmSink) underrun(time.Time) error { return nil }

// minBlocksLatency is the shortest latency of a paced device, in blocks:
// one block waits filled while the one before is in the buffer.
const minBlocksLatency = 2

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
	latency = max(latency, time.Duration(framesToNsRound(minBlocksLatency*int64(block), rate)))
	return rate, block, latency
}

// toS16 converts a sample to 16-bit PCM: round(x*32768), clamped.
func toS16(x float64) int16 {
	return int16(max(-32768, min(32767, math.Round(x*32768))))
}
