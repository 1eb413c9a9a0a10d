package homeassistant

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/tutti-audio/tutti/internal/testbroker"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// logBuffer collects the bridge's log lines for the test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

// commandRig runs a bridge signing as user "ha" next to tutti's retained
// state of testSpeaker and testSession, and records what reaches the
// controller's command topics.
type commandRig struct {
	t          *testing.T
	server     *mochi.Server
	controller *recorder
	logs       *logBuffer
}

const haUser = "ha"

func startCommandRig(t *testing.T) *commandRig {
	t.Helper()
	server, url := testbroker.Start(t, nil)
	retainTestWorld(t, server)
	partyInfo := protocol.SessionInfo{V: 1, Session: "party", Title: "Party", ACL: protocol.Everyone, Term: 3}
	retain(t, server, protocol.SessionInfoTopic("party"), partyInfo)

	rig := &commandRig{
		t:          t,
		server:     server,
		controller: record(t, url, protocol.SessionCommandFilter+"/#", protocol.SpeakerCommandTopic("kitchen"), haRoot+"/#"),
		logs:       &logBuffer{},
	}
	runBridge(t, Options{
		BrokerURL:  url,
		Username:   haUser,
		ClientID:   "ha-test",
		Logger:     slog.New(slog.NewTextHandler(rig.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		BirthDelay: func() time.Duration { return 50 * time.Millisecond },
	})
	// The states follow the retained messages, which arrive after the
	// subscriptions (command topics included) were made.
	testwait.For(t, "the bridge to know the speaker and both sessions", waitTimeout, func() bool {
		p, _, _ := rig.controller.last(stateTopic(kindSpeaker, "kitchen"))
		h, _, _ := rig.controller.last(stateTopic(kindSession, "home"))
		_, party, _ := rig.controller.last(stateTopic(kindSession, "party"))
		var s speakerState
		var home sessionState
		return party >= 0 && json.Unmarshal(p, &s) == nil && s.Session == "home" &&
			json.Unmarshal(h, &home) == nil && home.Entry != noOption
	})
	return rig
}

// send publishes what Home Assistant would on the command topic of one entity.
func (r *commandRig) send(kind, id, component, payload string) {
	r.t.Helper()
	if err := r.server.Publish(commandTopic(kind, id, component), []byte(payload), false, 1); err != nil {
		r.t.Fatal(err)
	}
}

// expect sends a command and checks the next request on session's signed
// command topic.
func (r *commandRig) expect(kind, id, component, payload, session string, want protocol.Request) {
	r.t.Helper()
	r.expectOn(protocol.UserTopic(protocol.SessionCommandTopic(session), haUser), protocol.SessionCommands, kind, id, component, payload, want)
}

// expectOn sends a command and checks the next request on topic.
func (r *commandRig) expectOn(topic string, commands []string, kind, id, component, payload string, want protocol.Request) {
	r.t.Helper()
	_, _, before := r.controller.last(topic)
	r.send(kind, id, component, payload)
	testwait.For(r.t, "a request on "+topic, waitTimeout, func() bool { _, _, n := r.controller.last(topic); return n > before })
	p, _, n := r.controller.last(topic)
	if n != before+1 {
		r.t.Errorf("%s %q: %d requests, want 1", component, payload, n-before)
	}
	got, err := protocol.DecodeRequest(p, commands)
	if err == nil {
		err = protocol.CheckFields(got)
	}
	if err != nil {
		r.t.Fatalf("%s %q: %v", component, payload, err)
	}
	if got.ReplyTo != protocol.UserReplyTopic(haUser)+"/ha-test" || !strings.HasPrefix(got.ReqID, "ha-test-") {
		r.t.Errorf("%s %q: reply_to %q, req_id %q", component, payload, got.ReplyTo, got.ReqID)
	}
	got.ReplyTo, got.ReqID = "", ""
	if !reflect.DeepEqual(got, want) {
		r.t.Errorf("%s %q: got %s, want %s", component, payload, protocol.Encode(got), protocol.Encode(want))
	}
}

func intp(i int) *int { return &i }

func TestSessionCommands(t *testing.T) {
	r := startCommandRig(t)
	for _, cmd := range []string{protocol.CmdPlay, protocol.CmdPause, protocol.CmdNext, protocol.CmdPrevious} {
		r.expect(kindSession, "home", cmd, "PRESS", "home", protocol.Request{Cmd: cmd})
	}
	r.expect(kindSession, "home", "volume", "35", "home", protocol.Request{Cmd: protocol.CmdVolume, Volume: intp(35)})
	r.expect(kindSession, "home", "volume", "42.0", "home", protocol.Request{Cmd: protocol.CmdVolume, Volume: intp(42)})
	r.expect(kindSession, "home", "playlist", "2. bbbbbbbbbbbb", "home", protocol.Request{Cmd: protocol.CmdPlay, Index: intp(1)})
	r.expect(kindSession, "home", "playlist", "1. Blue in Green – Miles Davis", "home", protocol.Request{Cmd: protocol.CmdPlay, Index: intp(0)})

	// Muting remembers the volume the session had (60); unmuting restores it.
	r.expect(kindSession, "home", "mute", "ON", "home", protocol.Request{Cmd: protocol.CmdVolume, Volume: intp(0)})
	r.expect(kindSession, "home", "mute", "OFF", "home", protocol.Request{Cmd: protocol.CmdVolume, Volume: intp(60)})
	// With nothing remembered, unmuting sets a middle volume.
	r.expect(kindSession, "home", "mute", "OFF", "home", protocol.Request{Cmd: protocol.CmdVolume, Volume: intp(unmuteVolume)})
	// Home Assistant's notify entity sends the message as it is.
	r.expect(kindSession, "home", "announce", "Dinner is ready", "home", protocol.Request{Cmd: protocol.CmdAnnounce, Text: "Dinner is ready"})
}

func TestSpeakerCommands(t *testing.T) {
	r := startCommandRig(t)
	r.expect(kindSpeaker, "kitchen", "volume", "25", "home",
		protocol.Request{Cmd: protocol.CmdVolume, Speaker: "kitchen", Volume: intp(25)})
	// The speaker's own volume (80, from its assignment) comes back on unmute.
	r.expect(kindSpeaker, "kitchen", "mute", "ON", "home",
		protocol.Request{Cmd: protocol.CmdVolume, Speaker: "kitchen", Volume: intp(0)})
	r.expect(kindSpeaker, "kitchen", "mute", "OFF", "home",
		protocol.Request{Cmd: protocol.CmdVolume, Speaker: "kitchen", Volume: intp(80)})
	r.expect(kindSpeaker, "kitchen", "session", "party", "party",
		protocol.Request{Cmd: protocol.CmdJoin, Speaker: "kitchen"})
	r.expect(kindSpeaker, "kitchen", "session", NoSession, "home",
		protocol.Request{Cmd: protocol.CmdLeave, Speaker: "kitchen"})
	// The speaker's own requests go to it, unsigned: only admins and
	// controllers may publish there.
	own := protocol.SpeakerCommandTopic("kitchen")
	r.expectOn(own, protocol.SpeakerCommands, kindSpeaker, "kitchen", protocol.CmdIdentify, "PRESS", protocol.Request{Cmd: protocol.CmdIdentify})
	r.expectOn(own, protocol.SpeakerCommands, kindSpeaker, "kitchen", protocol.CmdRestart, "PRESS", protocol.Request{Cmd: protocol.CmdRestart})
	calibration := -12.5
	r.expectOn(own, protocol.SpeakerCommands, kindSpeaker, "kitchen", "calibration", "-12.5", protocol.Request{Cmd: protocol.CmdCalibrate, CalibrationMs: &calibration})
}

func TestBadCommandsPublishNothing(t *testing.T) {
	r := startCommandRig(t)
	home := protocol.UserTopic(protocol.SessionCommandTopic("home"), haUser)
	_, _, before := r.controller.last(home)
	for _, c := range []struct{ kind, id, component, payload string }{
		{kindSession, "home", "volume", "loud"},
		{kindSession, "home", "volume", "101"},
		{kindSession, "home", "volume", "-1"},
		{kindSession, "home", "volume", "NaN"},
		{kindSession, "home", "mute", "maybe"},
		{kindSession, "home", "playlist", "3. nothing"},
		{kindSession, "home", "playlist", "(empty)"},
		{kindSession, "home", "shuffle", "ON"},
		{kindSession, "nowhere", "play", "PRESS"},
		{kindSpeaker, "kitchen", "session", "nowhere"},
		{kindSpeaker, "kitchen", "volume", ""},
		{kindSpeaker, "hall", "volume", "10"},
		{kindController, "x", "volume", "10"},
		{kindSpeaker, "kitchen", "latency", "20"}, // a sensor: no command topic
		{kindSpeaker, "kitchen", "calibration", "soon"},
		{kindSpeaker, "kitchen", "calibration", "501"},
		{kindSpeaker, "hall", "identify", "PRESS"},
		{kindSession, "home", "announce", strings.Repeat("a", protocol.MaxAnnouncementText+1)},
	} {
		r.send(c.kind, c.id, c.component, c.payload)
	}
	// The bridge handles commands in order: if the bad ones published
	// anything, it came before this request.
	r.expect(kindSession, "home", "pause", "PRESS", "home", protocol.Request{Cmd: protocol.CmdPause})
	if _, _, n := r.controller.last(home); n != before+1 {
		t.Errorf("%d requests to the home session, want only the pause", n-before)
	}
	if _, _, n := r.controller.last(protocol.UserTopic(protocol.SessionCommandTopic("party"), haUser)); n != 0 {
		t.Errorf("%d requests to the party session", n)
	}
	if _, _, n := r.controller.last(protocol.SpeakerCommandTopic("kitchen")); n != 0 {
		t.Errorf("%d requests to the kitchen speaker", n)
	}
	for _, want := range []string{"volume \\\"loud\\\" is not a number", "outside 0-100", "unknown session \\\"nowhere\\\"", "within ±500", "longer than 1000"} {
		if !r.logs.contains(want) {
			t.Errorf("no log line with %q", want)
		}
	}
}

func TestRefusedReplyIsLogged(t *testing.T) {
	r := startCommandRig(t)
	reply := protocol.Reply{V: 1, OK: false, Cmd: protocol.CmdPlay, ReqID: "ha-test-1", Error: "user ha may not control session home"}
	if err := r.server.Publish(protocol.UserReplyTopic(haUser)+"/ha-test", protocol.Encode(reply), false, 1); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the refusal to be logged", waitTimeout, func() bool {
		return r.logs.contains("level=WARN") && r.logs.contains("may not control session home")
	})
}

func TestUnsignedWithoutUsername(t *testing.T) {
	server, url := testbroker.Start(t, nil)
	info, _, _ := testSession()
	retain(t, server, protocol.SessionInfoTopic("home"), info)
	controller := record(t, url, protocol.SessionCommandFilter+"/#", haRoot+"/#")
	runBridge(t, Options{BrokerURL: url, Logger: slog.New(slog.DiscardHandler)})
	testwait.For(t, "the session's state", waitTimeout, func() bool { _, at, _ := controller.last(stateTopic(kindSession, "home")); return at >= 0 })
	if err := server.Publish(commandTopic(kindSession, "home", protocol.CmdNext), []byte("PRESS"), false, 1); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "an unsigned request", waitTimeout, func() bool {
		p, _, _ := controller.last(protocol.SessionCommandTopic("home"))
		req, err := protocol.DecodeRequest(p, protocol.SessionCommands)
		return err == nil && req.Cmd == protocol.CmdNext
	})
}

func TestNewRejectsBadClientIDAndUser(t *testing.T) {
	if _, err := New(Options{BrokerURL: "tcp://127.0.0.1:1", ClientID: "a/b"}); err == nil {
		t.Error("client id with a slash accepted")
	}
	if _, err := New(Options{BrokerURL: "tcp://127.0.0.1:1", Username: "Bad User"}); err == nil {
		t.Error("user name that cannot sign a topic accepted")
	}
}
