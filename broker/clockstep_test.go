package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
	"github.com/tutti-audio/tutti/speaker"
)

// steppedClock is a wall clock that reads real time plus a step the test
// sets, as NTP steps a hub's clock that booted without a battery clock.
// Its timers run at the real rate.
type steppedClock struct {
	clock.Real
	step atomic.Int64
}

func (c *steppedClock) Now() time.Time { return time.Now().Add(time.Duration(c.step.Load())) }

const stepTestRate = 44100

// TestWallClockStepMovesNoSpeaker: the hub's wall clock steps by minutes,
// forward and back, while two real speakers play a timecoded song by the
// broker's clock; neither skips or repeats a frame (the virtual outputs'
// logs show no break beyond 1 ms), and both stay on the timeline the
// retained anchor set. The broker publishes its clock base anew after each
// step (no client may publish one), and a broker started again on the same
// store, its wall clock still stepped, continues the shared clock instead
// of taking the wall clock's.
func TestWallClockStepMovesNoSpeaker(t *testing.T) {
	wall := &steppedClock{}
	dataDir := t.TempDir()
	b, stop, log := startBroker(t, Options{AllowAnonymous: true, AnswerClock: true, Clock: wall, DataDir: dataDir})

	var song bytes.Buffer
	const seconds = 9
	if err := audiogen.WriteWAV(&song, stepTestRate, seconds*stepTestRate, audiogen.Timecode); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(song.Bytes())
	sha := hex.EncodeToString(sum[:])
	songs := httptest.NewServer(http.StripPrefix("/songs/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != sha {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(song.Bytes()))
	})))
	t.Cleanup(songs.Close)

	remote, err := connect(t, b, testUser{}, "remote")
	if err != nil {
		t.Fatal(err)
	}
	retain := func(topic string, msg any) {
		t.Helper()
		if tok := remote.Publish(topic, 1, true, protocol.Encode(msg)); !tok.WaitTimeout(testWait) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	retain(protocol.ControllerStatusTopic, protocol.ControllerStatus{V: 1, Online: true, Instance: "c1", SongsURL: songs.URL + "/songs/"})
	retain(protocol.PlaylistTopic("home"), protocol.Playlist{V: 1, Session: "home", Version: 1,
		Entries: []protocol.Entry{{ID: "a", Song: sha, Frames: seconds * stepTestRate, SampleRate: stepTestRate}}})
	// The broker's clock started at the (unstepped) wall clock: the shared
	// clock is real time here, as the virtual outputs' logs are.
	startAt := time.Now().Add(1500 * time.Millisecond).UnixNano()
	retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 1, State: protocol.Playing,
		Volume: 100, PlaylistVersion: 1, Anchor: protocol.Anchor{AtNs: startAt, Entry: "a", Playing: true}})

	names := []string{"kitchen", "hall"}
	logs := map[string]*syncBuffer{}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); wg.Wait() }()
	for _, name := range names {
		logs[name] = new(syncBuffer)
		sp, err := speaker.New(speaker.Options{Name: name, BrokerURL: "tcp://" + b.Addr(), CacheDir: t.TempDir(),
			// A device buffer that rides out the stalls of a busy machine.
			Output: speaker.NewVirtualOutput(speaker.VirtualOptions{Log: logs[name], Latency: 80 * time.Millisecond}),
			Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).With("speaker", name)})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := sp.Run(ctx); err != nil {
				t.Errorf("speaker %s: %v", name, err)
			}
		})
	}

	at := func(d time.Duration) { time.Sleep(time.Until(time.Unix(0, startAt).Add(d))) }
	at(2500 * time.Millisecond)
	wall.step.Store(int64(5 * time.Minute)) // NTP corrects a clock that booted 5 minutes late
	at(4500 * time.Millisecond)
	wall.step.Store(int64(-3 * time.Minute)) // and an admin sets it 8 minutes back
	at(7 * time.Second)
	cancel()
	wg.Wait()

	// Every speaker played from 0.5 s to 6.5 s without a break, each frame
	// when the anchor says: the steps moved nothing.
	from, to := startAt+int64(500*time.Millisecond), startAt+int64(6500*time.Millisecond)
	for _, name := range names {
		text := logs[name].String()
		blocks, err := playlog.Read(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		gap, gapAt := playlog.Gap(blocks, stepTestRate, from, to)
		underruns, err := playlog.Underruns(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		stalled := false
		for _, u := range underruns {
			stalled = stalled || u >= gapAt-int64(100*time.Millisecond) && u <= gapAt+gap+int64(100*time.Millisecond)
		}
		switch {
		case gap > int64(time.Millisecond) && stalled:
			t.Logf("%s: break of %v at %v, where its process stalled (its device underran): not counted", name, time.Duration(gap), time.Duration(gapAt-startAt))
		case gap > int64(time.Millisecond):
			t.Errorf("%s: sound broke for %v at %v after the start", name, time.Duration(gap), time.Duration(gapAt-startAt))
		}
		heard := 0 // frames
		for _, blk := range blocks {
			if blk.TNs < from || blk.TNs > to {
				continue
			}
			heard += blk.Frames
			want := protocol.NsToFrames(blk.TNs-startAt, stepTestRate)
			if off := time.Duration((blk.Frame - want) * int64(time.Second) / stepTestRate); off > 2*time.Millisecond || off < -2*time.Millisecond {
				t.Errorf("%s: at %v heard frame %d, %v off the timeline", name, time.Duration(blk.TNs-startAt), blk.Frame, off)
				break
			}
		}
		if heard < 5*stepTestRate { // of the 6 s
			t.Errorf("%s: only %v heard between 0.5 s and 6.5 s", name, time.Duration(heard)*time.Second/stepTestRate)
		}
		t.Logf("%s: %v heard, worst break %v", name, time.Duration(heard)*time.Second/stepTestRate, time.Duration(gap))
	}
	if n := strings.Count(log.String(), "the wall clock stepped"); n != 2 {
		t.Errorf("the broker logged %d wall clock steps, want 2:\n%s", n, log.String())
	}

	// A client cannot set the base (an admin here: demo mode).
	forged := protocol.ClockBase{V: 1, SharedNs: 0, WallNs: time.Now().UnixNano()}
	if tok := remote.Publish(protocol.ClockBaseTopic, 1, true, protocol.Encode(forged)); !tok.WaitTimeout(testWait) || tok.Error() != nil {
		t.Fatalf("publish the forged base: %v", tok.Error())
	}
	// Nor through a last will: the connection is refused.
	if _, err := connect(t, b, testUser{}, "will", func(o *paho.ClientOptions) {
		o.SetWill(protocol.ClockBaseTopic, string(protocol.Encode(forged)), 1, true)
	}); err == nil {
		t.Error("a client with a last will on the clock base was let in")
	}
	// The base retained last says the shared clock runs 3 minutes ahead of
	// the wall clock; a broker started again on the store continues it.
	base, err := protocol.Decode[protocol.ClockBase](retainedOn(t, b, protocol.ClockBaseTopic))
	if err != nil {
		t.Fatal(err)
	}
	if ahead := time.Duration(base.SharedNs - base.WallNs); ahead < 3*time.Minute-wallStepTolerance || ahead > 3*time.Minute+wallStepTolerance {
		t.Errorf("retained clock base %+v: shared runs %v ahead of wall, want 3m", base, ahead)
	}
	stop()
	again, _, _ := startBroker(t, Options{AllowAnonymous: true, AnswerClock: true, Clock: wall, DataDir: dataDir})
	sent := time.Now().UnixNano()
	answer := probeClock(t, again)
	if d := time.Duration(answer.T2 - sent); d < 0 || d > time.Second {
		t.Errorf("the restarted broker's clock answered %v from real time, want the shared clock continued (real time here)", d)
	}
}

// retainedOn returns the payload b retains on topic, read by a new client.
func retainedOn(t *testing.T, b *Broker, topic string) []byte {
	t.Helper()
	got := make(chan []byte, 1)
	c, err := connect(t, b, testUser{}, "reader-"+strings.ReplaceAll(topic, "/", "-"))
	if err != nil {
		t.Fatal(err)
	}
	if tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	}); !tok.WaitTimeout(testWait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	select {
	case p := <-got:
		return p
	case <-time.After(testWait):
		t.Fatalf("nothing retained on %s", topic)
		return nil
	}
}

// probeClock sends one clock probe to b as speaker "probe" and returns the
// answer.
func probeClock(t *testing.T, b *Broker) protocol.ClockResponse {
	t.Helper()
	c, err := connect(t, b, testUser{}, "probe")
	if err != nil {
		t.Fatal(err)
	}
	answers := make(chan protocol.ClockResponse, 1)
	if tok := c.Subscribe(protocol.ClockResponseTopic("probe"), 0, func(_ paho.Client, m paho.Message) {
		if r, err := protocol.Decode[protocol.ClockResponse](m.Payload()); err == nil {
			answers <- r
		}
	}); !tok.WaitTimeout(testWait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	c.Publish(protocol.ClockRequestTopic("probe"), 0, false, protocol.Encode(protocol.ClockRequest{V: 1, ID: 1, T1: time.Now().UnixNano()}))
	select {
	case r := <-answers:
		return r
	case <-time.After(testWait):
		t.Fatal("no answer to the clock probe")
		return protocol.ClockResponse{}
	}
}
