package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/internal/testbroker"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

const waitTimeout = 20 * time.Second

// startBroker runs a broker on a free loopback port until the test ends.
func startBroker(t *testing.T) string {
	t.Helper()
	_, url := testbroker.Start(t, nil)
	return url
}

// startController runs a controller until stop is called or the test ends,
// and waits until it holds the lease.
func startController(t *testing.T, opts Options) (c *Controller, stop func()) {
	t.Helper()
	c, stop = runController(t, opts)
	testwait.For(t, "the controller to hold the lease", waitTimeout, c.holding)
	return c, stop
}

// runController runs a controller until stop is called or the test ends.
func runController(t *testing.T, opts Options) (c *Controller, stop func()) {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Run did not return")
		}
	}
	t.Cleanup(stop)
	return c, stop
}

// testClient is a paho client that collects the messages of its subscriptions.
type testClient struct {
	t        *testing.T
	mqtt     paho.Client
	msgs     chan paho.Message
	overflow atomic.Bool // a message found msgs full
}

func newTestClient(t *testing.T, broker string, filters ...string) *testClient {
	t.Helper()
	return newUserClient(t, broker, "", "", filters...)
}

// newUserClient is newTestClient logged in as user with password ("" for
// none).
func newUserClient(t *testing.T, broker, user, password string, filters ...string) *testClient {
	t.Helper()
	tc := &testClient{t: t, msgs: make(chan paho.Message, 1000)}
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("test-%d", time.Now().UnixNano())).
		SetUsername(user).SetPassword(password).
		SetProtocolVersion(4).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	tc.mqtt = paho.NewClient(opts)
	if tok := tc.mqtt.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { tc.mqtt.Disconnect(100) })
	// The handler never blocks: a blocked handler would stop paho reading
	// from the broker, and the broker's writes to it, for good.
	collect := func(_ paho.Client, m paho.Message) {
		select {
		case tc.msgs <- m:
		default:
			tc.overflow.Store(true)
		}
	}
	for _, f := range filters {
		if err := mqttclient.Subscribe(tc.mqtt, map[string]byte{f: 1}, collect, waitTimeout); err != nil {
			t.Fatalf("subscribe %s: %v", f, err)
		}
	}
	return tc
}

func (tc *testClient) publish(topic string, payload []byte) {
	tc.t.Helper()
	if tok := tc.mqtt.Publish(topic, 1, false, payload); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		tc.t.Fatalf("publish: %v", tok.Error())
	}
}

// next waits for a message on topic that satisfies ok.
func (tc *testClient) next(topic string, ok func([]byte) bool) []byte {
	tc.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case m := <-tc.msgs:
			if m.Topic() == topic && ok(m.Payload()) {
				return m.Payload()
			}
		case <-deadline:
			if tc.overflow.Load() {
				tc.t.Fatalf("no matching message on %s; more than %d messages were left unread, and some lost", topic, cap(tc.msgs))
			}
			tc.t.Fatalf("no matching message on %s", topic)
		}
	}
}

// nextAny waits for the next message.
func (tc *testClient) nextAny() paho.Message {
	tc.t.Helper()
	select {
	case m := <-tc.msgs:
		return m
	case <-time.After(waitTimeout):
		tc.t.Fatal("no message")
		return nil
	}
}

// request sends a raw request and returns the reply carrying reqID.
func (tc *testClient) request(topic, replyTopic, reqID, payload string) protocol.Reply {
	tc.t.Helper()
	tc.publish(topic, []byte(payload))
	var reply protocol.Reply
	tc.next(replyTopic, func(b []byte) bool {
		reply = protocol.Reply{}
		return json.Unmarshal(b, &reply) == nil && reply.ReqID == reqID
	})
	return reply
}

// cmd sends a session command to home that must succeed, returning its result.
func (tc *testClient) cmd(reqID, payload string) commandResult {
	tc.t.Helper()
	reply := tc.request(protocol.SessionCommandTopic("home"), protocol.DefaultReplyTopic, reqID, payload)
	if !reply.OK || reply.V != 1 {
		tc.t.Fatalf("%s: %+v", payload, reply)
	}
	var res commandResult
	if err := json.Unmarshal(reply.Result, &res); err != nil {
		tc.t.Fatal(err)
	}
	return res
}

// retained reads the retained message of topic with a fresh client.
func retained(t *testing.T, broker, topic string) []byte {
	t.Helper()
	return newTestClient(t, broker, topic).next(topic, func([]byte) bool { return true })
}

// upload puts a song into c's library, with its fetch token.
func upload(t *testing.T, c *Controller, wav []byte, name string) protocol.Song {
	t.Helper()
	resp, body := do(t, http.MethodPut, c.SongsURL()+hashOf(wav)+"?name="+name, wav, "Authorization", "Bearer "+c.tokens.get())
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	var song protocol.Song
	if err := json.Unmarshal(body, &song); err != nil {
		t.Fatal(err)
	}
	return song
}

// offsetClock is a local clock minutes away from this machine's; its
// timers run at the real rate.
type offsetClock struct {
	clock.Real
	offset time.Duration
}

func (c offsetClock) Now() time.Time { return time.Now().Add(c.offset) }

func TestControllerOverMQTT(t *testing.T) {
	broker := startBroker(t)
	dataDir, importDir := t.TempDir(), t.TempDir()
	shared := offsetClock{offset: 3 * time.Minute}
	opts := Options{Open: true, BrokerURL: broker, DataDir: dataDir, ImportDir: importDir, Sessions: []string{"home", "kitchen"}, Clock: shared}
	c, stop := startController(t, opts)
	tc := newTestClient(t, broker, "tutti/reply", "tutti/reply/#", "tutti/session/+/state", "tutti/session/+/playlist",
		protocol.ControllerStatusTopic, protocol.ClockResponseTopic("sp1"))

	var status protocol.ControllerStatus
	tc.next(protocol.ControllerStatusTopic, func(b []byte) bool {
		return json.Unmarshal(b, &status) == nil && status.Online
	})
	if status.SongsURL != c.SongsURL() || status.Instance == "" || !strings.HasPrefix(c.SongsURL(), "http://127.0.0.1:") {
		t.Fatalf("status %+v, songs URL %s", status, c.SongsURL())
	}
	var state protocol.SessionState
	if err := json.Unmarshal(retained(t, broker, protocol.SessionStateTopic("kitchen")), &state); err != nil ||
		state.State != protocol.Stopped || state.Anchor.Index != -1 {
		t.Fatalf("initial state %+v, %v", state, err)
	}

	long := upload(t, c, makeWAV(8000*60, 8000, 5), "long.wav")
	if err := os.WriteFile(filepath.Join(importDir, "short.wav"), makeWAV(2400, 8000, 6), 0o644); err != nil {
		t.Fatal(err)
	}
	libTopic := protocol.LibraryCommandTopic
	reply := tc.request(libTopic, "tutti/reply/me", "l1", `{"cmd":"load","path":"short.wav","req_id":"l1","reply_to":"tutti/reply/me"}`)
	var short protocol.Song
	if !reply.OK || json.Unmarshal(reply.Result, &short) != nil || short.Frames != 2400 || short.Title != "short" {
		t.Fatalf("load path: %+v", reply)
	}
	reply = tc.request(libTopic, "tutti/reply", "l2", `{"cmd":"load","path":"../etc/passwd","req_id":"l2"}`)
	if reply.OK || !strings.Contains(reply.Error, "load") {
		t.Fatalf("load outside the import dir: %+v", reply)
	}
	reply = tc.request(libTopic, "tutti/reply", "l3", `{"cmd":"search","query":"LONG","req_id":"l3"}`)
	var found protocol.SearchResult
	if !reply.OK || json.Unmarshal(reply.Result, &found) != nil || found.Total != 1 || len(found.Songs) != 1 || found.Songs[0].SHA256 != long.SHA256 {
		t.Fatalf("search: %+v", reply)
	}
	reply = tc.request(libTopic, "tutti/reply", "l4", `{"cmd":"lookup","song":"tutti:song:`+short.SHA256+`","req_id":"l4"}`)
	if !reply.OK || !strings.Contains(string(reply.Result), short.SHA256) {
		t.Fatalf("lookup: %+v", reply)
	}
	reply = tc.request(libTopic, "tutti/reply", "l5", `{"cmd":"play","req_id":"l5"}`)
	if reply.OK || reply.Cmd != "play" {
		t.Fatalf("session command on the library topic: %+v", reply)
	}

	home := protocol.SessionCommandTopic("home")
	unknownSHA := strings.Repeat("ab", 32)
	for _, tc2 := range []struct{ payload, reqID, cmd, errPart string }{
		{`not json at all`, "", "", "malformed"},
		{`{"cmd":"dance","req_id":"b1"}`, "b1", "dance", "unknown command"},
		{`{"cmd":"volume","volume":"loud","req_id":"b2"}`, "b2", "volume", "malformed"},
		{`{"cmd":"enqueue","song":"` + unknownSHA + `","req_id":"b3"}`, "b3", "enqueue", "PUT " + c.SongsURL() + unknownSHA},
		{`{"cmd":"play","req_id":"b4"}`, "b4", "play", "empty"},
		{`{"cmd":"pause","position":3,"req_id":"b5"}`, "b5", "pause", "takes no position"},
		{`{"cmd":"status","req_id":"b6","reply_to":"tutti/session/home/state"}`, "b6", "status", "refused"},
		{`{"cmd":"status","req_id":"b7","reply_to":"x/+"}`, "b7", "status", "refused"},
	} {
		reply := tc.request(home, protocol.DefaultReplyTopic, tc2.reqID, tc2.payload)
		if reply.OK || reply.Cmd != tc2.cmd || !strings.Contains(reply.Error, tc2.errPart) {
			t.Errorf("%s: %+v, want error with %q", tc2.payload, reply, tc2.errPart)
		}
	}
	reply = tc.request("tutti/session/nowhere/cmd", protocol.DefaultReplyTopic, "b8", `{"cmd":"status","req_id":"b8"}`)
	if reply.OK || !strings.Contains(reply.Error, "unknown session") {
		t.Fatalf("unknown session: %+v", reply)
	}

	res := tc.cmd("c1", `{"cmd":"enqueue","song":"`+long.SHA256+`","req_id":"c1"}`)
	if res.Entry == "" || res.State.PlaylistVersion != 1 || res.State.Anchor.Entry != res.Entry {
		t.Fatalf("enqueue: %+v", res)
	}
	tc.cmd("c2", `{"cmd":"enqueue","song":"tutti:song:`+short.SHA256+`","req_id":"c2"}`)
	before := shared.Now().UnixNano()
	play := tc.cmd("c3", `{"cmd":"play","req_id":"c3"}`)
	if play.AtNs < before+int64(150*time.Millisecond) || play.AtNs > shared.Now().UnixNano()+int64(time.Second) ||
		play.State.State != protocol.Playing {
		t.Fatalf("play: %+v", play)
	}
	pause := tc.cmd("c4", `{"cmd":"pause","req_id":"c4"}`)
	a := pause.State.Anchor
	if pause.State.State != protocol.Paused || a.Index != 0 || a.PositionNs != pause.AtNs-play.AtNs {
		t.Fatalf("pause: %+v after play at %d", pause, play.AtNs)
	}
	vol := tc.cmd("c5", `{"cmd":"volume","volume":40,"req_id":"c5"}`)
	if vol.State.Volume != 40 || vol.AtNs != 0 {
		t.Fatalf("volume: %+v", vol)
	}

	// A speaker's status shows in the session's status.
	newFakeSpeakers(t, broker, "sp1") // from now on, commands wait for its acks
	var st statusResult
	asked := 0
	testwait.For(t, "the speaker to show in status", waitTimeout, func() bool {
		id := fmt.Sprint("s", asked)
		asked++
		reply := tc.request(home, protocol.DefaultReplyTopic, id, `{"cmd":"status","req_id":"`+id+`"}`)
		if !reply.OK || json.Unmarshal(reply.Result, &st) != nil {
			t.Fatalf("status: %+v", reply)
		}
		return len(st.Speakers) > 0
	})
	if st.State != vol.State || len(st.Playlist.Entries) != 2 || st.Speakers[0].ID != "sp1" {
		t.Fatalf("status: %+v", st)
	}

	// The retained state and playlist are the latest.
	var retainedState protocol.SessionState
	var retainedList protocol.Playlist
	json.Unmarshal(retained(t, broker, protocol.SessionStateTopic("home")), &retainedState)
	json.Unmarshal(retained(t, broker, protocol.PlaylistTopic("home")), &retainedList)
	if retainedState != vol.State || retainedList.Version != 2 || len(retainedList.Entries) != 2 ||
		retainedList.Entries[1].Frames != 2400 || retainedList.Entries[1].SampleRate != 8000 {
		t.Fatalf("retained state %+v\nplaylist %+v", retainedState, retainedList)
	}

	// Clock probe.
	tc.publish(protocol.ClockRequestTopic("sp1"), protocol.Encode(protocol.ClockRequest{V: 1, ID: 7, T1: 12345}))
	var clock protocol.ClockResponse
	tc.next(protocol.ClockResponseTopic("sp1"), func(b []byte) bool { return json.Unmarshal(b, &clock) == nil })
	if d := time.Duration(clock.T2 - shared.Now().UnixNano()); clock.ID != 7 || clock.T1 != 12345 ||
		d > 0 || d < -waitTimeout || clock.T3 < clock.T2 || clock.V != 1 {
		t.Fatalf("clock response %+v", clock)
	}

	// Auto-advance: the short song (0.3 s) ends and the session stops.
	played := tc.cmd("c6", `{"cmd":"play","index":1,"req_id":"c6"}`)
	end := played.AtNs + protocol.FramesToNs(2400, 8000)
	var stopped protocol.SessionState
	tc.next(protocol.SessionStateTopic("home"), func(b []byte) bool {
		return json.Unmarshal(b, &stopped) == nil && stopped.Seq > played.State.Seq
	})
	if stopped.State != protocol.Stopped || stopped.Anchor.AtNs != end || stopped.Anchor.Index != 0 || stopped.Seq != played.State.Seq+1 {
		t.Fatalf("after the last song: %+v, want stopped at %d", stopped, end)
	}

	// Restart on the same data directory with a fresh broker: everything is back.
	stop()
	json.Unmarshal(retained(t, broker, protocol.ControllerStatusTopic), &status)
	if status.Online || status.Instance == "" {
		t.Fatalf("status after stop: %+v", status)
	}
	broker2 := startBroker(t)
	opts.BrokerURL = broker2
	c2, _ := startController(t, opts)
	var restored protocol.SessionState
	var restoredList protocol.Playlist
	json.Unmarshal(retained(t, broker2, protocol.PlaylistTopic("home")), &restoredList)
	json.Unmarshal(retained(t, broker2, protocol.SessionStateTopic("home")), &restored)
	// A new broker knows no lease: the controller claims the next term and
	// publishes everything under it, unchanged otherwise.
	if restored.Term != stopped.Term+1 || restoredList.Term != restored.Term {
		t.Fatalf("terms after restart: state %d, playlist %d, want %d", restored.Term, restoredList.Term, stopped.Term+1)
	}
	restored.Term, restoredList.Term = stopped.Term, retainedList.Term
	if restored != stopped {
		t.Fatalf("restored state %+v\nwant %+v", restored, stopped)
	}
	if fmt.Sprint(restoredList) != fmt.Sprint(retainedList) {
		t.Fatalf("restored playlist %+v\nwant %+v", restoredList, retainedList)
	}
	resp, body := do(t, http.MethodGet, c2.SongsURL()+short.SHA256, nil, "Range", "bytes=0-3", "Authorization", "Bearer "+c2.tokens.get())
	if resp.StatusCode != http.StatusPartialContent || string(body) != "RIFF" {
		t.Fatalf("song after restart: %d %q", resp.StatusCode, body)
	}
}

func TestCommandsKeepTheirOrder(t *testing.T) {
	broker := startBroker(t)
	c, _ := startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir()})
	if c.lib.maxSize != DefaultMaxSongSize {
		t.Errorf("default upload limit %d", c.lib.maxSize)
	}
	songs := []protocol.Song{
		upload(t, c, makeWAV(800, 8000, 7), "a.wav"),
		upload(t, c, makeWAV(800, 8000, 8), "b.wav"),
	}
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic)
	var want []string
	for i := range 30 { // sent without waiting for replies
		sha := songs[i%3%2].SHA256
		want = append(want, sha)
		tc.publish(protocol.SessionCommandTopic("home"), []byte(`{"cmd":"enqueue","song":"`+sha+`"}`))
	}
	reply := tc.request(protocol.SessionCommandTopic("home"), protocol.DefaultReplyTopic, "st", `{"cmd":"status","req_id":"st"}`)
	var st statusResult
	if err := json.Unmarshal(reply.Result, &st); err != nil || len(st.Playlist.Entries) != len(want) {
		t.Fatalf("status: %+v", reply)
	}
	for i, e := range st.Playlist.Entries {
		if e.Song != want[i] {
			t.Fatalf("entry %d is %s, want %s", i, e.Song, want[i])
		}
	}
}

func TestRunStopsWithoutBroker(t *testing.T) {
	c, stop := runController(t, Options{BrokerURL: "tcp://127.0.0.1:1", DataDir: t.TempDir(), MaxSongSize: 12345})
	if c.lib.maxSize != 12345 {
		t.Errorf("upload limit %d, want Options.MaxSongSize", c.lib.maxSize)
	}
	// The song server works while the broker is away.
	if resp, body := do(t, http.MethodGet, strings.TrimSuffix(c.SongsURL(), "songs/")+"healthz", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	stop() // fails the test if Run does not return
}
