package speaker

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
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

// blockTiming is when a paced device's block leaves and is heard.
type blockTiming struct {
	due        time.Time     // when it leaves, real time
	heardAt    time.Time     // when its first frame is heard, real time
	heardLocal time.Time     // the same instant on the speaker's clock, as given to Fill
	late       time.Duration // from its due instant to the start of its write
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
	pcm     io.Writer // where the blocks go as PCM; nil: nowhere (the virtual output)
	blocks  *blockLog // each block, once it left
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

// run fills the blocks, which a paced thread hands over when due; the
// thread and everything else it starts end before it returns.
func (d *pacedDevice) run(ctx context.Context, src Source) (err error) {
	fd, release := -1, func() error { return nil }
	if d.pcm != nil {
		if fd, release, err = outputFd(d.pcm, 4*d.block); err != nil {
			return err
		}
	}
	defer func() { err = errors.Join(err, release()) }()
	thread, err := startPacedThread(ctx, fd, 4*d.block)
	if err != nil {
		return err
	}
	defer thread.stop()
	if thread.notRealtime != nil {
		d.log.Warn("output timing: no real-time scheduling, so other processes' work delays the blocks", "err", thread.notRealtime)
	}
	err = d.pace(ctx, src, thread)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// pace fills each block when the one before has left, and logs the one
// that left first, so that neither delays a block's leaving.
func (d *pacedDevice) pace(ctx context.Context, src Source, thread *pacedThread) error {
	buf := make([][2]float64, d.block)
	margin := newWakeMargin()
	t0 := time.Now()
	due := t0
	fill := func() blockTiming {
		t := blockTiming{due: due, heardAt: due.Add(d.buffer())}
		t.heardLocal = toLocal(d.clock, t.heardAt)
		src.Fill(buf, t.heardLocal)
		return t
	}
	for k := int64(0); ; {
		next := fill()
		if now := time.Now(); now.Sub(due) > d.buffer() {
			// The process stalled longer than the device buffer: the DAC ran
			// dry. Restart the sample clock now, as a real device would.
			if err := d.blocks.underrun(now); err != nil {
				return err
			}
			t0, k, due = now, 0, now
			next = fill()
		}
		n := 0
		if d.pcm != nil {
			n = len(appendPCM(thread.slot()[:0], buf))
		}
		nextDue := t0.Add(d.elapsed((k + 1) * int64(d.block)))
		if err := thread.hand(due, nextDue, margin.ahead, n); err != nil {
			return err
		}
		left, err := thread.waitLeft()
		if err != nil {
			return err
		}
		if left.err != nil {
			return left.err
		}
		if left.wokeLate >= 0 {
			margin.wokeLate(left.wokeLate)
		}
		next.late = left.late
		if err := d.blocks.block(buf, next); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		k++
		due = nextDue
	}
}

// VirtualOptions configure a VirtualOutput.
type VirtualOptions struct {
	Rate    int           // default 44100
	Block   int           // frames per block, default DefaultBlock(Rate) (20 ms)
	Latency time.Duration // a block filled at t is heard at t+Latency (it leaves a block later); default and least 2 blocks
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
		blocks: &blockLog{w: opts.Log, rate: rate}, log: cmp.Or(opts.Logger, slog.Default())}}
}

func (v *VirtualOutput) Name() string                              { return "virtual" }
func (v *VirtualOutput) Run(ctx context.Context, src Source) error { return v.run(ctx, src) }

// blockLog writes a paced device's log, one playlog.Line per block; with
// no writer, nothing.
type blockLog struct {
	w    io.Writer
	rate int
	line []byte
}

func (s *blockLog) block(buf [][2]float64, t blockTiming) error {
	if s.w == nil {
		return nil
	}
	return s.write(playlog.Line{TNs: t.heardAt.UnixNano(), Frames: len(buf), L: toS16(buf[0][0]), R: toS16(buf[0][1]),
		Sound: leadingSound(buf), Tail: trailingSound(buf), LX: buf[0][0] * 32768, Rate: s.rate, LocalNs: t.heardLocal.UnixNano(), LateNs: int64(t.late)})
}

// leadingSound counts the frames before the first silent one (both channels
// exactly zero), so a log shows to the frame where a pause began.
func leadingSound(buf [][2]float64) int {
	for i, f := range buf {
		if isSilence(f) {
			return i
		}
	}
	return len(buf)
}

// trailingSound counts the frames after the last silent one, so a log
// shows to the frame where sound began (a fade-in begins at silence).
func trailingSound(buf [][2]float64) int {
	for i := len(buf) - 1; i >= 0; i-- {
		if isSilence(buf[i]) {
			return len(buf) - 1 - i
		}
	}
	return len(buf)
}

func isSilence(f [2]float64) bool { return f[0] == 0 && f[1] == 0 }

func (s *blockLog) underrun(at time.Time) error {
	return s.write(playlog.Line{TNs: at.UnixNano(), Underrun: true})
}

func (s *blockLog) write(rec playlog.Line) error {
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
	Block   int           // frames per block, default DefaultBlock(Rate) (20 ms)
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
	return &PipeOutput{pacedDevice{rate: rate, block: block, latency: latency, ppm: opts.PPM, clock: clock.Real{}, pcm: opts.W,
		blocks: &blockLog{w: opts.Log, rate: rate}, log: cmp.Or(opts.Logger, slog.Default())}}
}

func (p *PipeOutput) Name() string                              { return "pipe" }
func (p *PipeOutput) Run(ctx context.Context, src Source) error { return p.run(ctx, src) }

// appendPCM appends buf as s16le stereo interleaved. A pipe has no way to
// say the device ran dry: the gap is in the stream's timing.
func appendPCM(pcm []byte, buf [][2]float64) []byte {
	for _, f := range buf {
		pcm = binary.LittleEndian.AppendUint16(pcm, uint16(toS16(f[0])))
		pcm = binary.LittleEndian.AppendUint16(pcm, uint16(toS16(f[1])))
	}
	return pcm
}

// minBlocksLatency is the shortest latency of a paced device, in blocks:
// one block waits filled while the one before is in the buffer.
const minBlocksLatency = 2

// blocksPerSecond sets a paced device's default block: 20 ms. Every block
// wakes the output thread (and the Go side that fills the next one) and
// waits its last stretch awake to leave on time, so the cost of pacing
// goes with the blocks a second; 20 ms blocks cost a FLAC speaker about a
// quarter less CPU than 10 ms ones (`tutti-bench bench cost`), for a
// latency of 40 ms instead of 30 (two blocks), which the controller's
// lead follows. Each block is filled for the instant it is heard, so sync
// does not depend on it.
const blocksPerSecond = 50

// DefaultBlock is a paced device's block at rate, in frames, when its
// options set none.
func DefaultBlock(rate int) int { return rate / blocksPerSecond }

func pacingDefaults(rate, block int, latency time.Duration) (int, int, time.Duration) {
	if rate <= 0 {
		rate = 44100
	}
	if block <= 0 {
		block = DefaultBlock(rate)
	}
	latency = max(latency, time.Duration(framesToNsRound(minBlocksLatency*int64(block), rate)))
	return rate, block, latency
}

// toS16 converts a sample to 16-bit PCM: round(x*32768), clamped.
func toS16(x float64) int16 {
	return int16(max(-32768, min(32767, math.Round(x*32768))))
}
