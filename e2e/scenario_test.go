package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

const rate = 44100

// skewBar is this stage's bar for how far apart speakers may play.
const skewBar = 5 * time.Millisecond

// songBFirst numbers song B's frames apart from song A's.
const songBFirst = 5_000_000

// system is the processes of one test: a broker, a controller, speakers.
type system struct {
	t          *testing.T
	dir        string
	brokerPort string // "" until the broker listens
	broker     *proc
	controller *proc
	speakers   map[string]*proc
	logs       map[string]string
}

func (s *system) brokerURL() string { return "tcp://127.0.0.1:" + s.brokerPort }

// startTuttiBroker runs tutti's embedded broker in demo mode (anonymous);
// extra flags go last. It listens on a port of its own choosing, and when
// restarted on the same one, which its clients are configured with.
func (s *system) startTuttiBroker(extra ...string) {
	listen := "127.0.0.1:" + cmp.Or(s.brokerPort, "0")
	args := append([]string{"broker", "--demo", "--listen", listen, "--data", filepath.Join(s.dir, "broker")}, extra...)
	s.broker = start(s.t, "broker", tuttiBin, args...)
	s.brokerPort = portOf(s.t, s.broker.logged(s.t, brokerListening, "addr"))
}

// brokerListening is the message with which tutti's broker logs its
// addresses: addr, and tls_addr with --tls-listen.
const brokerListening = "mqtt broker listening"

// mosquittoAttempts bounds startMosquitto's tries: a port taken between
// being found free and Mosquitto binding it is rare.
const mosquittoAttempts = 5

// startMosquitto runs the real Mosquitto broker instead. Mosquitto cannot
// listen on port 0 and say which port it got, so it is given one that was
// free a moment ago; it says it is running once it holds it, and should
// another process have taken it meanwhile, it exits and is started on
// another.
func (s *system) startMosquitto() {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	conf := filepath.Join(s.dir, "mosquitto.conf")
	for range mosquittoAttempts {
		port := unboundPort(s.t)
		// set_tcp_nodelay: without it Mosquitto holds small packets back
		// (Nagle) and clock probes sent 20 ms apart take 20 ms round trips.
		os.WriteFile(conf, []byte(fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n", port)), 0o644)
		p := start(s.t, "mosquitto", bin, "-c", conf)
		running := func() bool {
			log, _ := os.ReadFile(p.log)
			return strings.Contains(string(log), " running\n")
		}
		testwait.Until(10*time.Second, func() bool { return p.exited() || running() })
		if !p.exited() && running() {
			s.broker, s.brokerPort = p, port
			return
		}
		s.t.Logf("mosquitto did not come up on port %s; trying another", port)
		p.stop(syscall.SIGKILL)
	}
	s.t.Fatalf("mosquitto did not come up in %d attempts", mosquittoAttempts)
}

// unboundPort returns a loopback port that was free a moment ago: only for
// Mosquitto, the one child that cannot tell which port it got.
func unboundPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func (s *system) startController() {
	s.controller = s.startNamedController("controller")
}

// startNamedController runs one of several controllers, each with its own
// data directory and song server (on a port of its own choosing, which a
// restart changes); extra flags go last.
func (s *system) startNamedController(name string, extra ...string) *proc {
	args := append([]string{"controller", "--broker", s.brokerURL(), "--name", name,
		"--data", filepath.Join(s.dir, name), "--http", "127.0.0.1:0", "--lead", "150ms", "--open"}, extra...)
	return startController(s.t, name, args...)
}

// startController runs tutti with args (a controller) and waits until its
// song server listens.
func startController(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := start(t, name, tuttiBin, args...)
	p.songsURL = p.logged(t, controllerListening, "url")
	return p
}

// controllerListening is the message with which the controller logs its
// song server's url.
const controllerListening = "controller serving songs"

// startSpeaker runs a speaker on a virtual output that logs what it plays;
// extra flags go last.
func (s *system) startSpeaker(name string, extra ...string) {
	log := filepath.Join(s.dir, name+".blocks")
	s.logs[name] = log
	args := append([]string{"speaker", "--name", name, "--broker", s.brokerURL(),
		"--output", "virtual", "--virtual-log", log, "--cache", filepath.Join(s.dir, name)}, extra...)
	s.speakers[name] = start(s.t, name, tuttiBin, args...)
}

func newSystem(t *testing.T) *system {
	return &system{t: t, dir: t.TempDir(), speakers: map[string]*proc{}, logs: map[string]string{}}
}

// load runs `tutti load` on files, as a person would.
func (s *system) load(files ...string) {
	args := append([]string{"load", "--quiet", "--broker", s.brokerURL()}, files...)
	var out []byte
	var err error
	testwait.For(s.t, "tutti load to succeed", 20*time.Second, func() bool {
		out, err = exec.Command(tuttiBin, args...).CombinedOutput()
		return err == nil
	})
	s.t.Logf("tutti load: %s", out)
}

// cli runs a tutti client command against s's broker and returns its
// output; it must succeed.
func (s *system) cli(args ...string) string {
	s.t.Helper()
	out, err := s.tryCLI(args...)
	if err != nil {
		s.t.Fatalf("tutti %v: %v\n%s", args, err, out)
	}
	return out
}

// tryCLI runs a tutti client command against s's broker (flags right
// after the command: Go's flag parsing stops at the first argument).
func (s *system) tryCLI(args ...string) (string, error) {
	full := append([]string{args[0], "--broker", s.brokerURL(), "--timeout", "5s"}, args[1:]...)
	out, err := exec.Command(tuttiBin, full...).CombinedOutput()
	return string(out), err
}

// waitCached waits until each of speakers has songs in its cache.
func (s *system) waitCached(speakers []string, songs ...string) {
	s.t.Helper()
	testwait.For(s.t, fmt.Sprintf("%v to cache %d songs", speakers, len(songs)), 30*time.Second, func() bool {
		for _, name := range speakers {
			for _, sha := range songs {
				if !cached(s, name, sha) {
					return false
				}
			}
		}
		return true
	})
}

func (s *system) blocks(name string) []playlog.Block {
	f, err := os.Open(s.logs[name])
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	b, err := playlog.Read(f)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// checkGap fails the test if speaker name's sound broke for more than 1 ms
// between fromNs and toNs, unless its device logged an underrun there: then
// the machine stalled the process (a loaded test machine), which is logged.
func (s *system) checkGap(name string, fromNs, toNs int64, during string) {
	s.t.Helper()
	gap, at := playlog.Gap(s.blocks(name), rate, fromNs, toNs)
	if gap <= int64(time.Millisecond) {
		s.t.Logf("%s: worst audio gap %s: %.3f ms", name, during, float64(gap)/1e6)
		return
	}
	f, err := os.Open(s.logs[name])
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	underruns, err := playlog.Underruns(f)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, u := range underruns {
		if u >= at-int64(100*time.Millisecond) && u <= at+gap+int64(100*time.Millisecond) {
			s.t.Logf("%s: audio gap of %.3f ms %s: the speaker's process stalled (its device underran), not counted",
				name, float64(gap)/1e6, during)
			return
		}
	}
	s.t.Errorf("%s: audio gap of %.3f ms %s, %.3f s into the window; its device log there:\n%s", name, float64(gap)/1e6, during,
		float64(at-fromNs)/1e9, s.logAround(name, at-int64(20*time.Millisecond), at+gap+int64(20*time.Millisecond)))
}

// logAround returns the lines of speaker name's device log between two instants.
func (s *system) logAround(name string, fromNs, toNs int64) string {
	b, err := os.ReadFile(s.logs[name])
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		var l playlog.Line
		if json.Unmarshal([]byte(line), &l) == nil && l.TNs >= fromNs && l.TNs <= toNs {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// stateOf decodes the session state a scheduled command's reply carries.
func stateOf(t *testing.T, rep protocol.Reply) protocol.SessionState {
	t.Helper()
	if !rep.OK {
		t.Fatalf("%s refused: %s", rep.Cmd, rep.Error)
	}
	var res struct {
		AtNs  int64                 `json:"at_ns"`
		State protocol.SessionState `json:"state"`
	}
	if err := json.Unmarshal(rep.Result, &res); err != nil || res.State.V != protocol.Version {
		t.Fatalf("%s: result %s: %v", rep.Cmd, rep.Result, err)
	}
	return res.State
}

func TestEndToEndEmbeddedBroker(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker()
	playScenario(t, s)
	restartKeepsState(t, s)
}

func TestEndToEndMosquitto(t *testing.T) {
	s := newSystem(t)
	s.startMosquitto()
	playScenario(t, s)
}

// playScenario loads two timecode songs, plays them on three speakers (one
// joining mid-song) through pause, seek, play and next, and checks from the
// virtual devices what was heard when.
func playScenario(t *testing.T, s *system) {
	s.startController()
	s.startSpeaker("s1")
	s.startSpeaker("s2")
	pathA, shaA := timecodeSong(t, "a.wav", 40, 0)
	pathB, shaB := timecodeSong(t, "b.wav", 20, songBFirst)
	s.load(pathA, pathB)
	r := newRemote(t, s.brokerPort)
	r.enqueue(shaA, protocol.SongURI(shaB))
	// Let the speakers sync their clocks and fetch the songs.
	s.waitCached([]string{"s1", "s2"}, shaA)

	play := stateOf(t, r.cmd(`"cmd":"play"`))
	time.Sleep(2 * time.Second)
	s.startSpeaker("s3") // joins mid-song
	time.Sleep(4 * time.Second)
	pause := stateOf(t, r.cmd(`"cmd":"pause"`))
	time.Sleep(time.Second)
	seek := stateOf(t, r.cmd(`"cmd":"seek","position":"0:20"`))
	resume := stateOf(t, r.cmd(`"cmd":"play"`))
	time.Sleep(3 * time.Second)
	next := stateOf(t, r.cmd(`"cmd":"next"`))
	time.Sleep(3 * time.Second)
	end := stateOf(t, r.cmd(`"cmd":"pause"`))
	time.Sleep(500 * time.Millisecond)
	for _, p := range s.speakers {
		p.stop(syscall.SIGTERM)
	}

	names := []string{"s1", "s2", "s3"}
	blocks := map[string][]playlog.Block{}
	for _, n := range names {
		blocks[n] = s.blocks(n)
		if len(blocks[n]) == 0 {
			t.Fatalf("%s heard nothing", n)
		}
	}
	timelines := func(except string) []*playlog.Timeline {
		var tl []*playlog.Timeline
		for _, n := range names {
			if n != except {
				tl = append(tl, playlog.NewTimeline(blocks[n], rate))
			}
		}
		return tl
	}
	margin := int64(300 * time.Millisecond)

	// The paused state is exact: the position the pause anchor names.
	if play.State != protocol.Playing || pause.State != protocol.Paused || seek.State != protocol.Paused || resume.State != protocol.Playing {
		t.Fatalf("states: play %s, pause %s, seek %s, play %s", play.State, pause.State, seek.State, resume.State)
	}

	// 1. The three speakers play the same frames at the same instants, in
	// each stretch of playing: after the late joiner came in, after the
	// resume at the seek position, and after next.
	for _, w := range []struct {
		what     string
		from, to int64
	}{
		{"first song, all three", blocks["s3"][0].TNs + margin, pause.Anchor.AtNs - margin},
		{"after seek and play", resume.Anchor.AtNs + margin, next.Anchor.AtNs - margin},
		{"after next", next.Anchor.AtNs + margin, end.Anchor.AtNs - margin},
	} {
		stats := playlog.Summarize(playlog.Spread(blocks["s1"], timelines("s1"), w.from, w.to))
		t.Logf("skew %s: %s", w.what, stats)
		if heard := compared(blocks["s1"], stats.N); heard < time.Second {
			t.Errorf("%s: only %d blocks (%v) heard by all three", w.what, stats.N, heard)
		}
		if stats.P99Ms > float64(skewBar)/1e6 {
			t.Errorf("%s: skew p99 %.3f ms above %v", w.what, stats.P99Ms, skewBar)
		}
	}

	// 2. The late joiner came in mid-song, where the others were.
	first := blocks["s3"][0]
	if first.Frame < rate {
		t.Errorf("s3 started at frame %d, not mid-song", first.Frame)
	}
	if at, ok := playlog.NewTimeline(blocks["s1"], rate).HeardAt(first.Frame, first.TNs); !ok || abs(at-first.TNs) > int64(skewBar) {
		t.Errorf("s3 joined %.3f ms off s1 (heard by s1: %v)", float64(first.TNs-at)/1e6, ok)
	}

	// 3. Pause stops every speaker at the same sample: the pause position.
	wantFrame := protocol.NsToFrames(pause.Anchor.PositionNs, rate)
	for _, n := range names {
		frame, at, ok := playlog.LastSound(blocks[n], rate, pause.Anchor.AtNs+int64(50*time.Millisecond))
		if !ok {
			t.Fatalf("%s: no sound before the pause", n)
		}
		// Steering the speed plays between frames: the last one heard reads
		// one frame either way of the exact stop, beside its own rounding.
		if d := frame - (wantFrame - 1); d < -2 || d > 2 {
			t.Errorf("%s stopped at frame %d, the pause position is frame %d", n, frame, wantFrame)
		}
		if d := at - pause.Anchor.AtNs; abs(d) > int64(skewBar) {
			t.Errorf("%s stopped %.3f ms from the pause instant", n, float64(d)/1e6)
		}
	}

	// 4. Seek then play resumes at 0:20; next starts song B at its start.
	for _, c := range []struct {
		what      string
		at        int64
		wantFrame int64
	}{
		{"resume after seek to 0:20", resume.Anchor.AtNs, 20 * rate},
		{"next", next.Anchor.AtNs, songBFirst},
	} {
		for _, n := range names {
			b := firstSoundAfter(blocks[n], c.at+int64(time.Millisecond))
			if d := b.Frame - c.wantFrame; d < 0 || d > rate/25 {
				t.Errorf("%s: %s: first frame %d, want %d", n, c.what, b.Frame, c.wantFrame)
			}
			if d := b.TNs - c.at - protocol.FramesToNs(b.Frame-c.wantFrame, rate); abs(d) > int64(skewBar) {
				t.Errorf("%s: %s: heard %.3f ms off schedule", n, c.what, float64(d)/1e6)
			}
		}
	}
}

// firstSoundAfter returns the first block of sound heard at or after tNs.
// compared is how much sound n of the blocks a skew statistic compared
// hold, at the device's block, as the log says.
func compared(blocks []playlog.Block, n int) time.Duration {
	if len(blocks) == 0 {
		return 0
	}
	return time.Duration(protocol.FramesToNs(int64(n*blocks[0].Frames), rate))
}

func firstSoundAfter(blocks []playlog.Block, tNs int64) playlog.Block {
	for _, b := range blocks {
		if b.TNs >= tNs {
			return b
		}
	}
	return playlog.Block{}
}

func cached(s *system, speaker, sha string) bool {
	_, err := os.Stat(filepath.Join(s.dir, speaker, "songs", sha))
	return err == nil
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// restartKeepsState kills the broker and the controller (-9) and restarts
// them: library, playlist and session state must all come back.
func restartKeepsState(t *testing.T, s *system) {
	r := newRemote(t, s.brokerPort)
	before := r.cmd(`"cmd":"status"`)
	wantPlaylist := r.retained(protocol.PlaylistTopic(protocol.DefaultSession))
	s.controller.stop(syscall.SIGKILL)
	s.broker.stop(syscall.SIGKILL)

	// The broker alone restores the retained state from disk.
	s.startTuttiBroker()
	r = newRemote(t, s.brokerPort)
	if got := r.retained(protocol.PlaylistTopic(protocol.DefaultSession)); string(got) != string(wantPlaylist) {
		t.Errorf("retained playlist after broker restart:\n got %s\nwant %s", got, wantPlaylist)
	}
	restarted := time.Now()
	s.startController()
	var after protocol.Reply
	testwait.For(t, "the restarted controller to answer", 30*time.Second, func() bool {
		var ok bool
		after, ok = r.requestWithin(protocol.SessionCommandTopic(protocol.DefaultSession), `"cmd":"status"`, time.Second)
		return ok && after.OK
	})
	t.Logf("controller answered %v after its restart", time.Since(restarted))
	var b, a struct {
		State    protocol.SessionState `json:"state"`
		Playlist protocol.Playlist     `json:"playlist"`
	}
	json.Unmarshal(before.Result, &b)
	json.Unmarshal(after.Result, &a)
	// The restarted controller claims the next term and restamps everything.
	if a.State.Term <= b.State.Term || a.Playlist.Term != a.State.Term {
		t.Errorf("terms after restart: state %d, playlist %d; before %d", a.State.Term, a.Playlist.Term, b.State.Term)
	}
	a.State.Term, a.Playlist.Term = b.State.Term, b.Playlist.Term
	if b.State != a.State {
		t.Errorf("state after restart:\n got %+v\nwant %+v", a.State, b.State)
	}
	if fmt.Sprint(b.Playlist) != fmt.Sprint(a.Playlist) || len(a.Playlist.Entries) != 2 {
		t.Errorf("playlist after restart:\n got %+v\nwant %+v", a.Playlist, b.Playlist)
	}
	lookup := r.request(protocol.LibraryCommandTopic, fmt.Sprintf(`"cmd":"lookup","song":%q`, a.Playlist.Entries[0].Song))
	if !lookup.OK || !strings.Contains(string(lookup.Result), a.Playlist.Entries[0].Song) {
		t.Errorf("library after restart: %+v", lookup)
	}
}
