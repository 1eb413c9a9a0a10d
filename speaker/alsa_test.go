package speaker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/internal/cpuwait"
	"github.com/tutti-audio/tutti/internal/testwait"
)

type silence struct{}

func (silence) Fill(buf [][2]float64, _ time.Time) { clear(buf) }

// A device that does not exist fails Run at once with an error naming it.
func TestALSAOutputNonexistentDevice(t *testing.T) {
	for _, device := range []string{"hw:99,0", "no-such-pcm"} {
		out := NewALSAOutput(ALSAOptions{Device: device, Logger: alsaLogger(t)})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := out.Run(ctx, silence{})
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut {
			t.Fatalf("%s: Run = %v (timed out %v), want an open error", device, err, timedOut)
		}
		if !strings.Contains(err.Error(), device) || !strings.Contains(err.Error(), "open") {
			t.Errorf("%s: error %q does not say what failed", device, err)
		}
		t.Logf("%s: %v", device, err)
	}
}

// timecodeSource plays a timecode song from frame 0 and records, for every
// period the output asks for, the instant it said the period is heard.
// With stall set, it blocks once in period stallAt, like a process that
// falls behind.
type timecodeSource struct {
	next    int64
	periods []heardPeriod
	stallAt int
	stall   time.Duration
}

type heardPeriod struct {
	first    int64     // the period's first frame
	heardAt  time.Time // what the output said
	filledAt time.Time // when it asked, just before the write
}

func (s *timecodeSource) Fill(buf [][2]float64, heardAt time.Time) {
	s.periods = append(s.periods, heardPeriod{first: s.next, heardAt: heardAt, filledAt: time.Now()})
	if s.stall > 0 && len(s.periods) == s.stallAt {
		time.Sleep(s.stall) // the process falls behind: the device runs dry
	}
	for i := range buf {
		f := audiogen.Timecode(s.next)
		buf[i] = [2]float64{float64(f.L) / 32768, float64(f.R) / 32768}
		s.next++
	}
}

const (
	pulseRate   = 44100
	pulseBuffer = 60 * time.Millisecond
	pulsePeriod = 10 * time.Millisecond
)

// playToPulse plays src for d into a private PulseAudio null sink (a real
// ALSA PCM through the pulse plugin, paced in real time) and returns what
// the sink's monitor recorded, the log lines of the output, and when the
// machine held back this process or PulseAudio (the device: the pulse
// plugin's thread here, the server there, neither of them real-time).
func playToPulse(t *testing.T, src Source, d time.Duration) (pcm []byte, logged string, held []cpuwait.Span) {
	server, pulsePid := startPulseAudio(t, "spk1")
	t.Setenv("PULSE_SERVER", server)
	t.Setenv("HOME", t.TempDir()) // the pulse client looks for a cookie there
	recording := recordSink(t, server, "spk1.monitor")
	var log strings.Builder
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(&log, testLogWriter{t}), nil))
	out := NewALSAOutput(ALSAOptions{Device: "pulse:spk1", Rate: pulseRate, Buffer: pulseBuffer, Period: pulsePeriod, Logger: logger})
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	watch := cpuwait.Start([]int{os.Getpid(), pulsePid, recording.cmd.Process.Pid}, heldEvery, heldWait)
	defer watch.Stop()
	if err := out.Run(ctx, src); err != nil {
		t.Fatalf("Run: %v", err)
	}
	spans, _, err := watch.Stop()
	if err != nil {
		t.Fatal(err)
	}
	return recording.stop(), log.String(), slices.Concat(spans...)
}

// How the machine's holding back the processes is sampled. Waits of a
// few ms are common on a loaded machine and leave heardAt within a
// fraction of a millisecond of the recording (its delay is measured every
// period); those of two periods and more went with underruns, and with a
// device that told a delay tens of ms off while its stream started again.
const (
	heldEvery = pulsePeriod / 2
	heldWait  = 2 * pulsePeriod
)

// heardSong is where each frame of a timecode song was found in a
// recording.
type heardSong struct {
	at      []int64 // at[n]: the recording frame that holds song frame n, -1 if not heard
	heard   int64   // song frames heard
	first   int64   // the first song frame heard
	gaps    int     // silences between two song frames
	skipped int64   // song frames never heard after the first one heard
}

// readTimecodes finds the frames of a song of songFrames frames in pcm. The
// song must come in order, never backwards; skips fail the test unless
// allowed.
func readTimecodes(t *testing.T, pcm []byte, songFrames int64, allowSkips bool) heardSong {
	t.Helper()
	h := heardSong{at: make([]int64, songFrames), first: -1}
	for i := range h.at {
		h.at[i] = -1
	}
	last := int64(-1)
	silent := false
	for i := int64(0); 4*i+4 <= int64(len(pcm)); i++ {
		f := audiogen.Frame{L: int16(binary.LittleEndian.Uint16(pcm[4*i:])), R: int16(binary.LittleEndian.Uint16(pcm[4*i+2:]))}
		n, ok := audiogen.ReadTimecode(f)
		if !ok {
			silent = true
			continue
		}
		if n >= songFrames {
			t.Fatalf("recording frame %d holds song frame %d, beyond the %d played", i, n, songFrames)
		}
		switch {
		case last < 0:
			h.first = n
		case n <= last || n > last+1 && !allowSkips:
			t.Fatalf("song frame %d heard after frame %d", n, last)
		}
		if last >= 0 {
			h.skipped += n - last - 1
			if silent {
				h.gaps++
			}
		}
		h.at[n] = i
		last, silent = n, false
		h.heard++
	}
	t.Logf("recorded %d frames: %d of the song (%.2f s) from frame %d; %d gaps in the middle, %d frames skipped",
		len(pcm)/4, h.heard, float64(h.heard)/pulseRate, h.first, h.gaps, h.skipped)
	if h.first < 0 || h.first > int64(pulseRate*pulseBuffer/time.Second) {
		t.Fatalf("the song was first heard at frame %d: more than a buffer lost at the start", h.first)
	}
	return h
}

// offsets returns, for each period whose first frame was recorded, heardAt
// minus the instant the recording reached that frame (less an arbitrary
// constant: when the recording started is unknown). Where heardAt is
// right, it is the same for every period.
func offsets(ps []heardPeriod, h heardSong) []float64 {
	var res []float64
	for _, p := range ps {
		if at := h.at[p.first]; at >= 0 {
			recorded := time.Duration(framesToNsRound(at, pulseRate))
			res = append(res, p.heardAt.Sub(ps[0].heardAt).Seconds()-recorded.Seconds())
		}
	}
	return res
}

// jitter is the spread of offsets around their median: p50, p99, max.
func jitter(offs []float64) (p50, p99, worst float64) {
	mid := quantile(offs, 0.5)
	dev := make([]float64, len(offs))
	for i, r := range offs {
		dev[i] = math.Abs(r - mid)
	}
	return quantile(dev, 0.5), quantile(dev, 0.99), quantile(dev, 1)
}

// The song arrives whole and in order, and every heardAt measured from the
// PCM delay matches the instant the sink played that frame to well under a
// millisecond.
func TestALSAOutputThroughPulseAudio(t *testing.T) {
	src := &timecodeSource{}
	pcm, _, _ := playToPulse(t, src, 3*time.Second)
	h := readTimecodes(t, pcm, src.next, false)
	if h.heard < pulseRate { // 3 s of playing: at least 1 s must have arrived
		t.Fatalf("only %d frames of the song were heard", h.heard)
	}
	if h.gaps > 3 {
		t.Errorf("%d gaps in the middle of the song: the output fell behind", h.gaps)
	}

	// Skip the first periods: the first is measured before the stream
	// starts, and the buffer fills during the next ones.
	ps := src.periods
	if len(ps) < 100 {
		t.Fatalf("only %d periods were filled", len(ps))
	}
	ps = ps[10:]
	offs := offsets(ps, h)
	p50, p99, worst := jitter(offs)
	leads := make([]float64, len(ps)) // heardAt - filledAt, seconds
	for i, p := range ps {
		leads[i] = p.heardAt.Sub(p.filledAt).Seconds()
	}
	leadP1, leadP50, leadP99 := quantile(leads, 0.01), quantile(leads, 0.5), quantile(leads, 0.99)
	t.Logf("%d periods of %d frames, %d recorded; heardAt against the recorded instant: p50 %.3f ms, p99 %.3f ms, max %.3f ms off",
		len(ps), ps[1].first-ps[0].first, len(offs), p50*1e3, p99*1e3, worst*1e3)
	t.Logf("heardAt - write time (measured latency): p1 %.1f ms, p50 %.1f ms, p99 %.1f ms (buffer %v)",
		leadP1*1e3, leadP50*1e3, leadP99*1e3, pulseBuffer)
	if len(offs) < len(ps)/2 {
		t.Fatalf("only %d of %d periods were recorded", len(offs), len(ps))
	}
	// Typically 0.2-0.4 ms; the recording's own timing moves by a few ms
	// when the machine is loaded (2.2 ms p50 seen under a full test run).
	if p99 > 0.005 {
		t.Errorf("heardAt is %.3f ms (p99) off the recorded instants", p99*1e3)
	}
	if leadP1 < 0 || leadP50 < 0.5*pulseBuffer.Seconds() || leadP50 > pulseBuffer.Seconds()+0.1 {
		t.Errorf("heardAt is %.1f ms (p50) after the write, want roughly the %v buffer", leadP50*1e3, pulseBuffer)
	}
}

// When the process falls behind, the device runs dry: the output logs the
// underrun once, playback goes on, and heardAt, measured again, still
// matches the instant each frame is played (frames are skipped: a source
// fills for the instant it is given, so the song keeps its time).
//
// A loaded machine holds processes back too: this one, so that the device
// runs dry (the fills show it, a period asked for more than a buffer after
// the one before: an underrun episode of its own, logged once), or
// PulseAudio, the device here, which then runs dry or tells a wrong delay
// with no fault of the output's. The periods the machine may have
// disturbed so, and those that refill the buffer after any underrun, are
// not measured.
func TestALSAOutputRecoversFromAnUnderrun(t *testing.T) {
	const stallAt = 100
	const played = 3 * time.Second
	src := &timecodeSource{stallAt: stallAt, stall: 300 * time.Millisecond}
	pcm, logged, held := playToPulse(t, src, played)
	h := readTimecodes(t, pcm, src.next, true)
	ps := src.periods
	// Periods filled to the end (less half a second for a stall there):
	// their number depends on how often the machine stalled the process.
	if len(ps) <= stallAt || ps[len(ps)-1].filledAt.Sub(ps[0].filledAt) < played-500*time.Millisecond {
		t.Fatalf("%d periods filled: playback did not go on after the underrun", len(ps))
	}
	if h.gaps == 0 {
		t.Errorf("no silence in the recording after a %v stall", src.stall)
	}
	stalls := stalledFills(ps)
	for _, k := range stalls {
		if k != stallAt {
			t.Logf("the machine held the process back %v before period %d", ps[k].filledAt.Sub(ps[k-1].filledAt).Round(time.Millisecond), k)
		}
	}
	checkUnderrunsLogged(t, logged, ps, stalls, held, stallAt)
	before := offsets(settled(ps, stalls, held, 10, stallAt), h)
	after := offsets(append([]heardPeriod{ps[10]}, settled(ps, stalls, held, stallAt, len(ps))...), h)[1:]
	t.Logf("%d periods before the stall and %d after measured; the machine held this process, PulseAudio or the recorder back in %d stretches",
		len(before), len(after), len(held))
	if len(before) < 20 || len(after) < 50 {
		t.Fatalf("too few periods measured: the machine held the processes back through most of the test")
	}
	shift := quantile(after, 0.5) - quantile(before, 0.5)
	_, p99, _ := jitter(after)
	t.Logf("after a %v stall: heardAt against the recorded instant moved by %.3f ms; p99 %.3f ms off after the underrun",
		src.stall, shift*1e3, p99*1e3)
	if math.Abs(shift) > 0.002 || p99 > 0.002 {
		t.Errorf("heardAt does not match the recording after the underrun")
	}
}

// refillPeriods is how many periods after an underrun are not measured:
// the device's buffer fills again during them.
const refillPeriods = 10

// stalledFills returns the periods asked for more than a buffer after the
// one before: the device ran dry before them.
func stalledFills(ps []heardPeriod) []int {
	var stalls []int
	for k := 1; k < len(ps); k++ {
		if ps[k].filledAt.Sub(ps[k-1].filledAt) > pulseBuffer {
			stalls = append(stalls, k)
		}
	}
	return stalls
}

// settled returns the periods in [from, to) that are neither within
// refillPeriods after a stall nor queued or played while the machine held
// a process back.
func settled(ps []heardPeriod, stalls []int, held []cpuwait.Span, from, to int) []heardPeriod {
	var kept []heardPeriod
	for k := from; k < to; k++ {
		refilling := false
		for _, s := range stalls {
			refilling = refilling || k >= s && k < s+refillPeriods
		}
		p := ps[k]
		if !refilling && !cpuwait.Held(held, p.filledAt.Add(-pulseBuffer).UnixNano(), p.heardAt.Add(pulsePeriod).UnixNano()) {
			kept = append(kept, p)
		}
	}
	return kept
}

// checkUnderrunsLogged checks that each underrun was logged once: every
// underrun line follows a stall of the fills (within the buffer after the
// fills went on) or comes while the machine held a process back, and the
// test's own stall, before period stallAt, has exactly one.
func checkUnderrunsLogged(t *testing.T, logged string, ps []heardPeriod, stalls []int, held []cpuwait.Span, stallAt int) {
	t.Helper()
	// The log's times are to the millisecond.
	const slack = time.Millisecond
	perStall := map[int]int{}
	for _, line := range strings.Split(logged, "\n") {
		if !strings.Contains(line, "underrun") {
			continue
		}
		at, err := logTime(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		stall := -1
		for _, k := range stalls {
			if !at.Before(ps[k-1].filledAt.Add(-slack)) && !at.After(ps[k].filledAt.Add(pulseBuffer+slack)) {
				stall = k
			}
		}
		switch {
		case stall >= 0:
			perStall[stall]++
		case cpuwait.Held(held, at.Add(-pulseBuffer-slack).UnixNano(), at.Add(slack).UnixNano()):
			t.Logf("an underrun while the machine held this process, PulseAudio or the recorder back: %s", line)
		default:
			t.Errorf("an underrun logged with no stall before it: %s", line)
		}
	}
	for _, k := range stalls {
		if n := perStall[k]; n > 1 || k == stallAt && n != 1 {
			t.Errorf("%d underrun log lines for the stall before period %d, want 1", n, k)
		}
	}
}

// logTime is the time of a line of slog's text handler.
func logTime(line string) (time.Time, error) {
	field, _, _ := strings.Cut(line, " ")
	v, ok := strings.CutPrefix(field, "time=")
	if !ok {
		return time.Time{}, errors.New("no time")
	}
	return time.Parse(time.RFC3339Nano, v)
}

// A device that stops taking audio makes Run fail after stallTimeout, not
// hang: a suspended PulseAudio sink holds the stream still.
func TestALSAOutputFailsWhenTheDeviceStalls(t *testing.T) {
	server, _ := startPulseAudio(t, "spk1")
	t.Setenv("PULSE_SERVER", server)
	t.Setenv("HOME", t.TempDir())
	if out, err := exec.Command("pactl", "-s", server, "suspend-sink", "spk1", "1").CombinedOutput(); err != nil {
		t.Fatalf("pactl suspend-sink: %v: %s", err, out)
	}
	out := NewALSAOutput(ALSAOptions{Device: "pulse:spk1", Logger: alsaLogger(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := out.Run(ctx, silence{})
	took := time.Since(start)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run = %v after %v, want a stall error", err, took)
	}
	if took < stallTimeout || took > stallTimeout+5*time.Second {
		t.Errorf("Run failed after %v, want about %v", took, stallTimeout)
	}
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
}

func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(math.Round(q*float64(len(s)-1)))]
}

// startPulseAudio runs a private PulseAudio server with one null sink and
// returns its address (for PULSE_SERVER) and process id. It skips the test when PulseAudio
// is not installed (Debian: pulseaudio pulseaudio-utils libasound2-plugins).
func startPulseAudio(t *testing.T, sink string) (server string, pid int) {
	t.Helper()
	for _, tool := range []string{"pulseaudio", "pactl", "parec"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing := fmt.Sprintf("%s is not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins): %v", tool, err)
			if os.Getenv("CI") != "" {
				t.Fatal(missing) // CI installs it: a skip there would hide a broken setup
			}
			t.Skip(missing)
		}
	}
	// A short path: a unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "pa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--log-target=stderr",
		"--load=module-null-sink sink_name="+sink+" rate=44100 format=s16le channels=2",
		"--load=module-native-protocol-unix auth-anonymous=1")
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir, "HOME="+home)
	var log strings.Builder
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pulseaudio: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	server = "unix:" + filepath.Join(dir, "pulse", "native")
	// Polling a process we cannot wait on otherwise.
	if !testwait.Until(15*time.Second, func() bool {
		var out []byte
		out, err = exec.Command("pactl", "-s", server, "list", "short", "sinks").Output()
		if err == nil && strings.Contains(string(out), sink) {
			return true
		}
		select {
		case err := <-exited:
			t.Fatalf("pulseaudio exited: %v\n%s", err, log.String())
		default:
		}
		return false
	}) {
		t.Fatalf("pulseaudio did not come up: %v\n%s", err, log.String())
	}
	return server, cmd.Process.Pid
}

type recording struct {
	t    *testing.T
	cmd  *exec.Cmd
	path string
}

// recordSink records a PulseAudio source as raw s16le stereo 44.1 kHz, and
// returns once the recording is flowing.
func recordSink(t *testing.T, server, source string) *recording {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rec.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("parec", "-s", server, "-d", source, "--raw", "--format=s16le", "--rate=44100",
		"--channels=2", "--latency-msec=10")
	cmd.Stdout = f
	var log strings.Builder
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start parec: %v", err)
	}
	r := &recording{t: t, cmd: cmd, path: path}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// Polling a file another process writes.
	if !testwait.Until(10*time.Second, func() bool { st, err := os.Stat(path); return err == nil && st.Size() > 0 }) {
		t.Fatalf("parec records nothing: %s", log.String())
	}
	return r
}

// stop ends the recording and returns what was recorded.
func (r *recording) stop() []byte {
	r.t.Helper()
	r.cmd.Process.Signal(syscall.SIGINT)
	if err := r.cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			r.t.Fatalf("parec: %v", err)
		}
	}
	b, err := os.ReadFile(r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func alsaLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// A rate the device cannot play is refused when Run opens it, not played
// at another speed.
func TestALSAOutputRefusesAnUnplayableRate(t *testing.T) {
	server, _ := startPulseAudio(t, "spk1")
	t.Setenv("PULSE_SERVER", server)
	t.Setenv("HOME", t.TempDir())
	out := NewALSAOutput(ALSAOptions{Device: "pulse:spk1", Rate: 1_000_000, Logger: alsaLogger(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := out.Run(ctx, silence{})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run = %v, want the rate refused", err)
	}
	if !strings.Contains(err.Error(), "set rate 1000000 Hz") {
		t.Errorf("error %q does not name the rate", err)
	}
	t.Log(err)
}

// NativeRate reads what the device plays without resampling, even through
// a plug layer, and names a device that cannot be opened.
func TestALSANativeRate(t *testing.T) {
	server, _ := startPulseAudio(t, "spk1")
	t.Setenv("PULSE_SERVER", server)
	t.Setenv("HOME", t.TempDir())
	rate, err := NativeRate("pulse:spk1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(nativeRates, rate) {
		t.Errorf("native rate %d is none of %v", rate, nativeRates)
	}
	t.Logf("pulse:spk1 plays %d Hz natively", rate)
	if _, err := NativeRate("hw:99,0"); err == nil || !strings.Contains(err.Error(), "hw:99,0") {
		t.Errorf("a missing device: %v", err)
	}
}

// cgoCounter is a Source of silence that counts the process's calls into C
// between its first and last fill.
type cgoCounter struct {
	fills       int
	first, last int64
}

func (c *cgoCounter) Fill(buf [][2]float64, _ time.Time) {
	clear(buf)
	n := runtime.NumCgoCall()
	if c.fills == 0 {
		c.first = n
	}
	c.last = n
	c.fills++
}

// A period costs the Go side no call into C: the device thread writes,
// waits and measures. Calls into C come with an underrun's recovery only.
func TestALSAOutputFillsWithoutCallingIntoC(t *testing.T) {
	src := &cgoCounter{}
	playToPulse(t, src, 2*time.Second)
	if src.fills < 50 {
		t.Fatalf("only %d periods were filled", src.fills)
	}
	calls := src.last - src.first
	if calls > int64(src.fills/10) {
		t.Errorf("%d calls into C over %d periods, want at most %d", calls, src.fills, src.fills/10)
	}
	t.Logf("%d calls into C over %d periods", calls, src.fills)
}
