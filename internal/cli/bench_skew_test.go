//go:build bench

package cli

import (
	"testing"
	"time"

	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// testBlockFrames is the modelled speakers' block: 10 ms, the spacing of
// their logs (traceOf takes the block as an argument).
const (
	testBlockFrames = pipeRate / 100
	testBlockBytes  = 4 * testBlockFrames
)

// blocksFrom is a speaker's block log: n blocks of testBlockFrames, the
// first heard at t0, 10 ms apart, its local clock off real time by
// localOff.
func blocksFrom(t0 int64, n int, localOff time.Duration) []playlog.Line {
	lines := make([]playlog.Line, n)
	for k := range lines {
		tNs := t0 + int64(k)*10e6
		lines[k] = playlog.Line{TNs: tNs, Frames: testBlockFrames, LocalNs: tNs + int64(localOff), LateNs: 1000}
	}
	return lines
}

// modelSpeaker is a speaker whose stream begins at song position p0 and
// whose engine schedules song frame F to be heard at 1 s + F/rate +
// scheduleLate, its blocks leaving outputLate after they are due (heard
// minus the pipe latency): its block log and its reader's reads.
func modelSpeaker(p0 float64, scheduleLate, outputLate time.Duration, n int) ([]playlog.Line, []playlog.PCMRead) {
	lines := make([]playlog.Line, n)
	reads := make([]playlog.PCMRead, n)
	for k := range lines {
		pos := p0 + float64(k*testBlockFrames)
		heard := int64(1e9+pos*1e9/pipeRate) + int64(scheduleLate)
		lines[k] = playlog.Line{TNs: heard, Frames: testBlockFrames}
		reads[k] = playlog.PCMRead{AtNs: heard - int64(pipeBuffer) + int64(outputLate), Offset: int64(k) * testBlockBytes, Pos: pos, Frames: testBlockFrames}
	}
	return lines, reads
}

func TestTraceOfPairsEachReadWithItsBlock(t *testing.T) {
	lines := blocksFrom(1e9, 3, 0)
	reads := []playlog.PCMRead{
		{AtNs: 1e9 - int64(pipeBuffer) + 50e3, Offset: 0, Pos: 1000, Frames: 441},
		// A read that began 100 frames into block 2, between frames.
		{AtNs: 1e9 - int64(pipeBuffer) + 20e6 + 2_267_600, Offset: 2*testBlockBytes + 400, Pos: 1982.5, Frames: 341},
		{AtNs: 2e9, Offset: 3 * testBlockBytes, Pos: 2323, Frames: 441}, // not logged yet
	}
	tr := traceOf(reads, lines, pipeRate, testBlockFrames, int64(pipeBuffer))
	if len(tr.external) != 3 || len(tr.engine) != 2 || len(tr.outputLateNs) != 2 {
		t.Fatalf("%d external and %d engine blocks, want all 3 from outside, the 2 logged from the engine", len(tr.external), len(tr.engine))
	}
	if b := tr.external[0]; b.Frame != 1000 || b.TNs != 1e9+50e3 {
		t.Errorf("external %+v, want frame 1000 heard 50 µs after the log says", b)
	}
	if late := tr.outputLateNs[0]; late != 50e3 {
		t.Errorf("output late %d ns, want 50 µs", late)
	}
	// Frame 1982.5 was due 100 frames into block 2: 1e9+20ms+2.2676ms;
	// frame 1982 half a frame (11.338 µs) before.
	dueHeard := int64(1e9 + 20e6 + protocol.FramesToNs(100, pipeRate))
	half := int64(11338)
	if b := tr.engine[1]; b.Frame != 1982 || b.TNs != dueHeard-half {
		t.Errorf("engine %+v, want frame 1982 at %d", b, dueHeard-half)
	}
	if late := tr.outputLateNs[1]; late != reads[1].AtNs-(dueHeard-int64(pipeBuffer)) {
		t.Errorf("output late %d ns, want %d", late, reads[1].AtNs-(dueHeard-int64(pipeBuffer)))
	}
}

func TestFrameSkewsSeparateScheduleFromOutputTiming(t *testing.T) {
	// Speaker b's engine schedules every frame 20 µs after a's, and its
	// output leaves 30 µs later than a's on top: 50 µs apart from outside.
	// Their blocks begin at other frames, b's between frames.
	la, ra := modelSpeaker(0, 0, 40*time.Microsecond, 200)
	lb, rb := modelSpeaker(100.25, 20*time.Microsecond, 70*time.Microsecond, 200)
	traces := []speakerTrace{
		traceOf(ra, la, pipeRate, testBlockFrames, int64(pipeBuffer)),
		traceOf(rb, lb, pipeRate, testBlockFrames, int64(pipeBuffer)),
	}
	external, engine, output := frameSkews(traces, pipeRate, 1.1e9, 2.9e9)
	if len(external) < 150 {
		t.Fatalf("%d frames compared, want the ~180 in the window", len(external))
	}
	for i := range external {
		if abs64(external[i]-50e3) > 1e3 || abs64(engine[i]-20e3) > 1e3 || abs64(output[i]-30e3) > 1e3 {
			t.Fatalf("frame %d: skew %d ns from outside, %d engine, %d output; want 50, 20 and 30 µs", i, external[i], engine[i], output[i])
		}
	}
}

func TestFrameSkewsFromOutsideOnlyWithoutBlockLogs(t *testing.T) {
	// A speaker whose pipe output logs nothing (an older tutti): the skew
	// from outside is still measured, the engine's is not.
	la, ra := modelSpeaker(0, 0, 0, 200)
	_, rb := modelSpeaker(100.25, 0, 25*time.Microsecond, 200)
	traces := []speakerTrace{
		traceOf(ra, la, pipeRate, testBlockFrames, int64(pipeBuffer)),
		traceOf(rb, nil, pipeRate, testBlockFrames, int64(pipeBuffer)),
	}
	external, engine, output := frameSkews(traces, pipeRate, 1.1e9, 2.9e9)
	if len(external) < 150 || len(engine) != 0 || len(output) != 0 {
		t.Fatalf("%d, %d and %d frames compared, want ~180 from outside, none from the engines", len(external), len(engine), len(output))
	}
	for i, x := range external {
		if abs64(x-25e3) > 1e3 {
			t.Fatalf("frame %d: skew %d ns from outside, want 25 µs", i, x)
		}
	}
}

func TestClockAndSteeringErrors(t *testing.T) {
	// A speaker whose clock reads 5 minutes ahead; its status says the
	// shared clock is 5 minutes and 10 µs behind its own: its estimate is
	// 10 µs short, so it plays 10 µs late, all of it the clock's doing.
	const off = 5 * time.Minute
	lines, reads := modelSpeaker(0, 10*time.Microsecond, 0, 300)
	for k := range lines {
		lines[k].LocalNs = lines[k].TNs + int64(off)
	}
	tr := traceOf(reads, lines, pipeRate, testBlockFrames, int64(pipeBuffer))
	anchor := protocol.Anchor{AtNs: 1e9, Index: 0, PositionNs: 0, Playing: true}
	statuses := []statusSample{
		{atNs: 1.5e9, fields: map[string]any{"clock_offset_ns": float64(-int64(off) - 10e3)}},
		{atNs: 2.5e9, fields: map[string]any{"clock_offset_ns": float64(-int64(off) - 10e3)}},
	}
	clock := clockErrors(tr, statuses, 0, 1e9, 4e9)
	if len(clock) != 2 || clock[0].errNs != -10e3 || clock[1].errNs != -10e3 {
		t.Fatalf("clock errors %+v, want -10 µs at both statuses", clock)
	}
	schedule, steering := scheduleErrors(tr, anchor, 0, clock, pipeRate, 1.2e9, 3e9)
	if len(schedule) < 100 || len(schedule) != len(steering) {
		t.Fatalf("%d schedule and %d steering errors", len(schedule), len(steering))
	}
	for i := range schedule {
		// Instants are whole ns: frames to ns rounds.
		if abs64(schedule[i]-10e3) > 2 || abs64(steering[i]) > 2 {
			t.Fatalf("block %d: schedule %d ns late, steering %d; want 10 µs, all the clock's", i, schedule[i], steering[i])
		}
	}
	// Half of it the clock's: the steering's share shows.
	for i := range statuses {
		statuses[i].fields["clock_offset_ns"] = float64(-int64(off) - 5e3)
	}
	_, steering = scheduleErrors(tr, anchor, 0, clockErrors(tr, statuses, 0, 1e9, 4e9), pipeRate, 1.2e9, 3e9)
	if abs64(steering[0]-5e3) > 2 {
		t.Fatalf("steering %d ns, want 5 µs", steering[0])
	}
}
