package speaker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// replies collects the replies published below protocol.DefaultReplyTopic.
func replies(t *testing.T, c *testController) <-chan protocol.Reply {
	ch := make(chan protocol.Reply, 100)
	collect := func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		r, err := protocol.Decode[protocol.Reply](pk.Payload)
		if err != nil {
			t.Errorf("bad reply on %s: %q", pk.TopicName, pk.Payload)
			return
		}
		ch <- r
	}
	for i, filter := range []string{protocol.DefaultReplyTopic, protocol.DefaultReplyTopic + "/#"} {
		if err := c.broker.Subscribe(filter, 20+i, collect); err != nil {
			t.Fatal(err)
		}
	}
	return ch
}

// ask publishes a request on speaker id's command topic and returns the
// reply with req_id reqID.
func ask(t *testing.T, c *testController, got <-chan protocol.Reply, id, request, reqID string) protocol.Reply {
	t.Helper()
	if err := c.broker.Publish(protocol.SpeakerCommandTopic(id), []byte(request), false, 1); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-got:
			if r.ReqID == reqID {
				return r
			}
		case <-timeout:
			t.Fatalf("no reply to %s", request)
		}
	}
}

// runSpeaker runs a speaker with opts and returns a channel with Run's
// result; the speaker stops when the test ends.
func runSpeaker(t *testing.T, opts Options) (*Speaker, <-chan error) {
	sp, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		result <- sp.Run(ctx)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Errorf("speaker %s: Run did not return", opts.Name)
		}
	})
	return sp, result
}

// TestSpeakerCommands: identify, calibrate, status and restart over a real
// broker get the right replies, bad requests get errors, the calibration
// shows in the status and survives a restart (over Options.Calibration),
// and restart makes Run return ErrRestart after an offline status.
func TestSpeakerCommands(t *testing.T) {
	c := newTestController(t, nil)
	got := replies(t, c)
	cacheDir := t.TempDir()
	opts := Options{Name: "kitchen", BrokerURL: c.url, CacheDir: cacheDir, Calibration: 3 * time.Millisecond,
		Output: NewVirtualOutput(VirtualOptions{Latency: 80 * time.Millisecond}), Logger: testLogger(t)}
	_, result := runSpeaker(t, opts)
	waitForStatus(t, c, "kitchen", "online", 10*time.Second, func(st protocol.SpeakerStatus) bool { return st.Online })
	instance := c.status("kitchen").Instance

	r := ask(t, c, got, "kitchen", `{"cmd":"status","req_id":"s1","reply_to":"tutti/reply/me"}`, "s1")
	var st protocol.SpeakerStatus
	if !r.OK || r.Cmd != protocol.CmdStatus || json.Unmarshal(r.Result, &st) != nil || st.ID != "kitchen" ||
		st.CalibrationNs != int64(3*time.Millisecond) || st.LatencyNs != int64(83*time.Millisecond) {
		t.Errorf("status reply %+v (%s): want ok, the status with calibration 3ms and latency 80+3ms", r, r.Result)
	}
	if r := ask(t, c, got, "kitchen", `{"cmd":"identify","req_id":"i1","reply_to":"tutti/reply/me"}`, "i1"); !r.OK || r.Cmd != protocol.CmdIdentify {
		t.Errorf("identify reply %+v", r)
	}
	for _, bad := range []struct{ request, reqID, err string }{
		{`{"cmd":"calibrate","req_id":"b1"}`, "b1", "calibration_ms"},
		{`{"cmd":"calibrate","req_id":"b2","calibration_ms":500.5}`, "b2", "out of"},
		{`{"cmd":"calibrate","req_id":"b3","calibration_ms":"12"}`, "b3", "malformed"},
		{`{"cmd":"play","req_id":"b4"}`, "b4", "unknown command"},
		{`{"cmd":"identify","req_id":"b5","volume":3}`, "b5", "identify takes no volume"},
		{`{"cmd":"status","req_id":"b6","reply_to":"tutti/session/home/cmd"}`, "b6", "reply_to"},
		{`{"cmd":"status","req_id":"b7","reply_to":"x/+"}`, "b7", "reply_to"},
		{`{"cmd":`, "", "malformed"},
	} {
		r := ask(t, c, got, "kitchen", bad.request, bad.reqID)
		if r.OK || !strings.Contains(r.Error, bad.err) {
			t.Errorf("%s: reply %+v, want an error about %q", bad.request, r, bad.err)
		}
	}

	r = ask(t, c, got, "kitchen", `{"cmd":"calibrate","req_id":"c1","calibration_ms":12.5,"reply_to":"tutti/reply/me"}`, "c1")
	if !r.OK || json.Unmarshal(r.Result, &st) != nil || st.CalibrationNs != 12_500_000 {
		t.Errorf("calibrate reply %+v (%s): want ok with the status, calibration 12.5 ms", r, r.Result)
	}
	waitForStatus(t, c, "kitchen", "calibrated", 5*time.Second, func(st protocol.SpeakerStatus) bool {
		return st.CalibrationNs == 12_500_000
	})

	if r := ask(t, c, got, "kitchen", `{"cmd":"restart","req_id":"r1"}`, "r1"); !r.OK || r.Cmd != protocol.CmdRestart {
		t.Errorf("restart reply %+v", r)
	}
	select {
	case err := <-result:
		if !errors.Is(err, ErrRestart) {
			t.Fatalf("Run returned %v after a restart command, want ErrRestart", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a restart command")
	}
	// Run publishes its offline status before it returns; the watcher
	// hears it a moment later.
	waitForStatus(t, c, "kitchen", "offline after the restart", 5*time.Second, func(st protocol.SpeakerStatus) bool {
		return !st.Online && st.Instance == instance
	})

	// The new process: the saved calibration wins over the option.
	runSpeaker(t, opts)
	waitForStatus(t, c, "kitchen", "back online, still calibrated", 10*time.Second, func(st protocol.SpeakerStatus) bool {
		return st.Online && st.Instance != instance && st.CalibrationNs == 12_500_000
	})
}

// TestCalibrationFile: a saved calibration wins over Options.Calibration; a
// damaged file is ignored; an out of range option is refused.
func TestCalibrationFile(t *testing.T) {
	dir := t.TempDir()
	newSpeaker := func(calibration time.Duration) (*Speaker, error) {
		return New(Options{Name: "den", BrokerURL: "tcp://127.0.0.1:1", CacheDir: dir, Calibration: calibration,
			Output: NewVirtualOutput(VirtualOptions{}), Logger: testLogger(t)})
	}
	calibrationOf := func(sp *Speaker) time.Duration {
		if sp.eng.calibration != sp.calibration {
			t.Fatalf("engine calibration %v, speaker's %v", sp.eng.calibration, sp.calibration)
		}
		return sp.calibration
	}
	sp, err := newSpeaker(-7 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if got := calibrationOf(sp); got != -7*time.Millisecond {
		t.Errorf("calibration %v with no file, want the option's -7ms", got)
	}
	if err := saveCalibration(dir, 40*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if sp, err = newSpeaker(-7 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got := calibrationOf(sp); got != 40*time.Millisecond {
		t.Errorf("calibration %v with a saved 40ms, want 40ms", got)
	}
	checkNoTempFiles(t, dir)
	for _, damaged := range []string{"{", `{"calibration_ns":"x"}`, `{"calibration_ns":9000000000}`} {
		if err := os.WriteFile(filepath.Join(dir, calibrationFile), []byte(damaged), 0o644); err != nil {
			t.Fatal(err)
		}
		if sp, err = newSpeaker(2 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if got := calibrationOf(sp); got != 2*time.Millisecond {
			t.Errorf("calibration %v with file %q, want the option's 2ms", got, damaged)
		}
	}
	if _, err := newSpeaker(501 * time.Millisecond); err == nil {
		t.Error("calibration of 501ms accepted")
	}
}

// TestSpeakerChimesAnAnnouncement: an announcement published on the
// session's announce topic sounds at its shared instant (the speaker's
// local clock is minutes off); a deposed controller's, an unknown sound, a
// past one and garbage do not.
func TestSpeakerChimesAnAnnouncement(t *testing.T) {
	c := newTestController(t, nil)
	subs := &subscriptions{subs: map[string]int{}, unsubs: map[string]int{}}
	if err := c.broker.AddHook(subs, nil); err != nil {
		t.Fatal(err)
	}
	c.retain(protocol.LeaseTopic, protocol.Lease{V: 1, Term: 2, Holder: "c1", TTLMs: 2000})
	sp := startSpeaker(t, c, "kitchen", offsetClock(2*time.Minute))
	waitForStatus(t, c, "kitchen", "synchronised", 10*time.Second, func(st protocol.SpeakerStatus) bool {
		return st.State == protocol.Stopped
	})
	testwait.For(t, "the announce topic subscribed", 5*time.Second, func() bool {
		n, _ := subs.of(protocol.AnnounceTopic("home"))
		return n > 0
	})

	at := time.Now().Add(400 * time.Millisecond).UnixNano() // the shared clock is real time here
	later := at + int64(chimeLen) + int64(200*time.Millisecond)
	for _, a := range []protocol.Announcement{
		{V: 1, Term: 2, ID: "a1", AtNs: at, Text: "Dinner is \"ready\"", Sound: protocol.SoundChime},
		{V: 1, Term: 2, ID: "a1", AtNs: at, Sound: protocol.SoundChime},                     // a duplicate (QoS 1), perhaps handled first
		{V: 1, Term: 1, ID: "a2", AtNs: later, Sound: protocol.SoundChime},                  // deposed
		{V: 1, Term: 2, ID: "a3", AtNs: later, Sound: "siren"},                              // unknown sound
		{V: 1, Term: 2, ID: "a4", AtNs: at - int64(2*chimeLen), Sound: protocol.SoundChime}, // past
	} {
		if err := c.broker.Publish(protocol.AnnounceTopic("home"), protocol.Encode(a), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.broker.Publish(protocol.AnnounceTopic("home"), []byte(`{"v":1,"id":`), false, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.Unix(0, later+int64(chimeLen)+int64(300*time.Millisecond))))
	sp.stop()

	first := int64(-1)
	var block time.Duration // the device's, as its log says
	for line := range strings.Lines(sp.log.String()) {
		var b playlog.Line
		if err := json.Unmarshal([]byte(line), &b); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		if !b.Underrun {
			block = time.Duration(protocol.FramesToNs(int64(b.Frames), b.Rate))
		}
		if b.Sound == 0 || b.Underrun {
			continue
		}
		if first < 0 {
			first = b.TNs
		}
		if b.TNs < at-int64(time.Millisecond) || b.TNs > at+int64(chimeLen) {
			t.Errorf("sound at %v from the announced instant: only the chime from 0 to %v is due", time.Duration(b.TNs-at), chimeLen)
		}
	}
	// The chime's frame 0 is silent (it rises from zero): the first block
	// with sound at its start is the one after the instant, within a block
	// and the clock's error.
	if first < 0 || first < at-int64(time.Millisecond) || first > at+int64(block+2*time.Millisecond) {
		t.Errorf("first sound %v from the announced instant, want the chime from it on", time.Duration(first-at))
	}
}

// TestFenceAnnouncements: an announcement of a deposed term or one already
// heard is not played.
func TestFenceAnnouncements(t *testing.T) {
	var f fence
	f.lease(protocol.Lease{Term: 3})
	if err := f.announcement(2, "a"); err == nil || errors.Is(err, errDuplicateAnnouncement) {
		t.Errorf("announcement of term 2 under lease term 3: %v, want refused as deposed", err)
	}
	if err := f.announcement(3, "a"); err != nil {
		t.Fatalf("announcement of the lease's term: %v", err)
	}
	if err := f.announcement(3, "a"); !errors.Is(err, errDuplicateAnnouncement) {
		t.Errorf("the same id again: %v, want a duplicate", err)
	}
	for i := range rememberedAnnouncements {
		if err := f.announcement(4, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.announcement(4, "a"); err != nil {
		t.Errorf("an id forgotten long ago: %v", err)
	}
	if len(f.announced) != rememberedAnnouncements {
		t.Errorf("%d ids remembered, want %d", len(f.announced), rememberedAnnouncements)
	}
}
