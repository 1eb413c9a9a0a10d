package homeassistant

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/internal/testbroker"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

const waitTimeout = 20 * time.Second

// recorder is Home Assistant's side: it records every message under the
// discovery prefix and the bridge's topics, in arrival order.
type recorder struct {
	mu   sync.Mutex
	msgs []paho.Message
}

func record(t *testing.T, url string, filters ...string) *recorder {
	t.Helper()
	r := &recorder{}
	client := paho.NewClient(mqttclient.Options(url, "recorder", "", "").SetOrderMatters(true))
	if tok := client.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("recorder connect: %v", tok.Error())
	}
	t.Cleanup(func() { client.Disconnect(0) })
	for _, f := range filters {
		handler := func(_ paho.Client, m paho.Message) {
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			r.mu.Unlock()
		}
		if err := mqttclient.Subscribe(client, map[string]byte{f: 1}, handler, waitTimeout); err != nil {
			t.Fatalf("recorder subscribe %s: %v", f, err)
		}
	}
	return r
}

// last returns the latest payload on topic, its position and how many
// messages arrived there.
func (r *recorder) last(topic string) (payload []byte, at, count int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at = -1
	for i, m := range r.msgs {
		if m.Topic() == topic {
			payload, at, count = m.Payload(), i, count+1
		}
	}
	return payload, at, count
}

// retainTestWorld retains tutti's state of testController, testSpeaker and
// testSession, as a controller and a speaker would have.
func retainTestWorld(t *testing.T, server publisher) {
	t.Helper()
	status, assign := testSpeaker()
	info, st, pl := testSession()
	retain(t, server, protocol.ControllerStatusTopic, testController())
	retain(t, server, protocol.SpeakerStatusTopic("kitchen"), status)
	retain(t, server, protocol.AssignTopic("kitchen"), assign)
	retain(t, server, protocol.SessionInfoTopic("home"), info)
	retain(t, server, protocol.SessionStateTopic("home"), st)
	retain(t, server, protocol.PlaylistTopic("home"), pl)
}

// runBridge runs a bridge made with opts until the test ends; stop ends it
// earlier and returns what Run returned.
func runBridge(t *testing.T, opts Options) (stop func() error) {
	t.Helper()
	bridge, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bridge.Run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return stop
}

// publisher is a broker a test publishes to: the embedded one
// (*mochi.Server) or a paho client of another (pahoPublisher).
type publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// pahoPublisher publishes through an MQTT client, for brokers not in the
// test's process.
type pahoPublisher struct{ client paho.Client }

func newPahoPublisher(t *testing.T, url string) pahoPublisher {
	t.Helper()
	client := paho.NewClient(mqttclient.Options(url, "publisher", "", "").SetOrderMatters(true))
	if tok := client.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { client.Disconnect(0) })
	return pahoPublisher{client}
}

func (p pahoPublisher) Publish(topic string, payload []byte, retain bool, qos byte) error {
	tok := p.client.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(waitTimeout) {
		return fmt.Errorf("publish %s: timed out", topic)
	}
	return tok.Error()
}

func retain(t *testing.T, server publisher, topic string, msg any) {
	t.Helper()
	var payload []byte
	if msg != nil {
		payload = protocol.Encode(msg)
	}
	if err := server.Publish(topic, payload, true, 1); err != nil {
		t.Fatal(err)
	}
}

func TestBridgeLifecycle(t *testing.T) {
	server, url := testbroker.Start(t, nil)
	bridgeLifecycle(t, server, url)
}

// TestBridgeWithMosquitto runs the same life against a real Mosquitto, the
// broker most Home Assistant installations run.
func TestBridgeWithMosquitto(t *testing.T) {
	url := startMosquitto(t)
	bridgeLifecycle(t, newPahoPublisher(t, url), url)
}

// startMosquitto runs the mosquitto binary on a free loopback port, as
// anonymous as Home Assistant's add-on is by default, and returns its URL.
func startMosquitto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mosquitto is not installed: %v", err)
		}
		t.Skip("mosquitto is not installed (apt-get install mosquitto)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", port), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("mosquitto:\n%s", out.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if !testwait.Until(waitTimeout, func() bool {
		var c net.Conn
		if c, err = net.Dial("tcp", addr); err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("mosquitto does not listen on %s: %v", addr, err)
	}
	return "tcp://" + addr
}

func bridgeLifecycle(t *testing.T, server publisher, url string) {
	const prefix = "hatest"
	controllerTopic := discoveryTopic(prefix, "tutti_controller")
	speakerTopic := discoveryTopic(prefix, "tutti_speaker_kitchen")
	sessionTopic := discoveryTopic(prefix, "tutti_session_home")

	// tutti's retained state exists before the bridge starts.
	retainTestWorld(t, server)
	status, _ := testSpeaker()
	info, _, pl := testSession()
	// An earlier run left the config of a speaker since removed; another
	// application has its own config there.
	goneTopic := discoveryTopic(prefix, "tutti_speaker_gone")
	otherTopic := discoveryTopic(prefix, "other_thing")
	retain(t, server, goneTopic, Discovery{Device: Device{Name: "gone"}})
	retain(t, server, otherTopic, map[string]string{"name": "other"})

	ha := record(t, url, prefix+"/#", haRoot+"/#")
	stop := runBridge(t, Options{
		BrokerURL:   url,
		Prefix:      prefix,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		BirthDelay:  func() time.Duration { return 50 * time.Millisecond },
		SettleDelay: 200 * time.Millisecond,
	})

	// The leftover is cleared once tutti's state has arrived; the other
	// application's config stays.
	testwait.For(t, "the leftover config to be cleared", waitTimeout, func() bool {
		p, _, n := ha.last(goneTopic)
		return n > 1 && len(p) == 0
	})
	if p, _, n := ha.last(otherTopic); n != 1 || len(p) == 0 {
		t.Errorf("another application's config touched: %d messages, last %q", n, p)
	}
	// The cover art of the current song, served by the controller.
	testwait.For(t, "the cover art URL", waitTimeout, func() bool {
		p, _, _ := ha.last(coverTopic("home"))
		return string(p) == "http://hub.local:8080/art/"+pl.Entries[0].Song
	})

	// Every device appears, valid, with its state after its config.
	for _, c := range []struct{ topic, state string }{
		{controllerTopic, stateTopic(kindController, "")},
		{speakerTopic, stateTopic(kindSpeaker, "kitchen")},
		{sessionTopic, stateTopic(kindSession, "home")},
	} {
		testwait.For(t, c.state, waitTimeout, func() bool { _, at, _ := ha.last(c.state); return at >= 0 })
		config, configAt, _ := ha.last(c.topic)
		state, stateAt, _ := ha.last(c.state)
		if configAt < 0 || configAt > stateAt {
			t.Errorf("%s: config at %d, state at %d", c.topic, configAt, stateAt)
		}
		if err := validateDiscovery(prefix, c.topic, config, state); err != nil {
			t.Errorf("%s: %v", c.topic, err)
		}
	}
	testwait.For(t, "the bridge to say it is online", waitTimeout, func() bool {
		p, _, _ := ha.last(BridgeStatusTopic)
		return string(p) == "online"
	})

	// Configs may have been published more than once while the retained
	// messages arrived; once all are in, only changes publish.
	testwait.For(t, "the speaker's assignment", waitTimeout, func() bool {
		p, _, _ := ha.last(stateTopic(kindSpeaker, "kitchen"))
		var s speakerState
		return json.Unmarshal(p, &s) == nil && s.Session == "home"
	})
	_, _, speakerConfigs := ha.last(speakerTopic)
	_, _, controllerConfigs := ha.last(controllerTopic)

	// A rename re-publishes the session's config only, with the new name.
	info.Title = "Kitchen party"
	info.Term++
	retain(t, server, protocol.SessionInfoTopic("home"), info)
	testwait.For(t, "the renamed session", waitTimeout, func() bool {
		p, _, _ := ha.last(sessionTopic)
		var d Discovery
		return json.Unmarshal(p, &d) == nil && d.Device.Name == "tutti Kitchen party"
	})
	if _, _, n := ha.last(speakerTopic); n != speakerConfigs {
		t.Errorf("speaker config published again (%d times); it did not change", n)
	}
	if _, _, n := ha.last(controllerTopic); n != controllerConfigs {
		t.Errorf("controller config published again (%d times); it did not change", n)
	}

	// Bad input is logged and ignored; the bridge goes on.
	if err := server.Publish(protocol.SpeakerStatusTopic("kitchen"), []byte("{not json"), false, 1); err != nil {
		t.Fatal(err)
	}
	if err := server.Publish(protocol.SpeakerStatusTopic("hall"), protocol.Encode(status), false, 1); err != nil { // id "kitchen" on hall's topic
		t.Fatal(err)
	}

	// A speaker going offline changes its state, not its config.
	status.Online = false
	retain(t, server, protocol.SpeakerStatusTopic("kitchen"), status)
	testwait.For(t, "the speaker to go offline", waitTimeout, func() bool {
		p, _, _ := ha.last(stateTopic(kindSpeaker, "kitchen"))
		var s speakerState
		return json.Unmarshal(p, &s) == nil && s.Connection == off
	})
	if _, _, n := ha.last(speakerTopic); n != speakerConfigs {
		t.Errorf("speaker config published again (%d times) when only its state changed", n)
	}
	if _, _, n := ha.last(discoveryTopic(prefix, "tutti_speaker_hall")); n != 0 {
		t.Error("a device was made from a mismatched status")
	}

	// Another client rewrites the session's config (another name, Pause
	// pointed at the speaker's restart), deletes the speaker's and makes up
	// a tutti device: the bridge puts its own bytes back and clears the
	// made-up one; another application's config stays.
	tamperWithConfigs(t, server, ha, prefix)
	if p, _, n := ha.last(otherTopic); n != 1 || len(p) == 0 {
		t.Errorf("another application's config touched: %d messages, last %q", n, p)
	}

	// Home Assistant restarts: after the delay, every config again, then
	// every state.
	_, before, _ := ha.last(controllerTopic)
	if err := server.Publish(prefix+"/status", []byte("online"), false, 1); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "configs again after the birth message", waitTimeout, func() bool {
		_, c, _ := ha.last(controllerTopic)
		_, s, _ := ha.last(sessionTopic)
		_, p, _ := ha.last(speakerTopic)
		_, st, _ := ha.last(stateTopic(kindSession, "home"))
		return c > before && s > before && p > before && st > max(c, s, p)
	})

	// A deleted session is cleared with an empty retained payload.
	retain(t, server, protocol.SessionInfoTopic("home"), nil)
	retain(t, server, protocol.SessionStateTopic("home"), nil)
	retain(t, server, protocol.PlaylistTopic("home"), nil)
	testwait.For(t, "the session to be removed", waitTimeout, func() bool {
		p, _, n := ha.last(sessionTopic)
		s, _, _ := ha.last(stateTopic(kindSession, "home"))
		c, _, _ := ha.last(coverTopic("home"))
		return n > 1 && len(p) == 0 && len(s) == 0 && len(c) == 0
	})
	// Configs go first: Home Assistant removes the entities before their
	// state vanishes, which their templates could not read.
	clearedInOrder(t, ha, sessionTopic, stateTopic(kindSession, "home"), coverTopic("home"))

	// A forgotten speaker likewise.
	retain(t, server, protocol.SpeakerStatusTopic("kitchen"), nil)
	retain(t, server, protocol.AssignTopic("kitchen"), nil)
	testwait.For(t, "the speaker to be removed", waitTimeout, func() bool {
		p, _, n := ha.last(speakerTopic)
		s, _, _ := ha.last(stateTopic(kindSpeaker, "kitchen"))
		return n > 1 && len(p) == 0 && len(s) == 0
	})
	clearedInOrder(t, ha, speakerTopic, stateTopic(kindSpeaker, "kitchen"))

	// Stopping marks the bridge offline.
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	testwait.For(t, "the bridge to say it is offline", waitTimeout, func() bool {
		p, _, _ := ha.last(BridgeStatusTopic)
		return string(p) == "offline"
	})
}

// clearedInOrder checks that config was cleared before each of states.
func clearedInOrder(t *testing.T, ha *recorder, config string, states ...string) {
	t.Helper()
	_, configAt, _ := ha.last(config)
	for _, st := range states {
		if _, at, _ := ha.last(st); at < configAt {
			t.Errorf("%s cleared (at %d) before %s (at %d)", st, at, config, configAt)
		}
	}
}

// tamperWithConfigs rewrites the bridge's configs through server, as a
// client the broker lets write there would, and waits for the bridge to
// restore them.
func tamperWithConfigs(t *testing.T, server publisher, ha *recorder, prefix string) {
	t.Helper()
	sessionTopic := discoveryTopic(prefix, "tutti_session_home")
	speakerTopic := discoveryTopic(prefix, "tutti_speaker_kitchen")
	ghostTopic := discoveryTopic(prefix, "tutti_speaker_ghost")
	session, _, sessionCount := ha.last(sessionTopic)
	speaker, _, speakerCount := ha.last(speakerTopic)

	var forged map[string]any
	if err := json.Unmarshal(session, &forged); err != nil {
		t.Fatal(err)
	}
	forged["device"].(map[string]any)["name"] = "pwned"
	component(forged, protocol.CmdPause)["command_topic"] = commandTopic(kindSpeaker, "kitchen", protocol.CmdRestart)
	retain(t, server, sessionTopic, forged)
	if err := server.Publish(speakerTopic, nil, true, 1); err != nil {
		t.Fatal(err)
	}
	retain(t, server, ghostTopic, Discovery{Device: Device{Name: "ghost", Identifiers: []string{"tutti_speaker_ghost"}}})

	testwait.For(t, "the session's and the speaker's configs restored, the made-up one cleared", waitTimeout, func() bool {
		s, _, ns := ha.last(sessionTopic)
		p, _, np := ha.last(speakerTopic)
		g, _, ng := ha.last(ghostTopic)
		return ns >= sessionCount+2 && bytes.Equal(s, session) &&
			np >= speakerCount+2 && bytes.Equal(p, speaker) &&
			ng >= 2 && len(g) == 0
	})
}

func TestNewRejectsBadPrefix(t *testing.T) {
	for _, prefix := range []string{"ha/#", "+", "/ha", "ha/"} {
		if _, err := New(Options{BrokerURL: "tcp://127.0.0.1:1", Prefix: prefix}); err == nil {
			t.Errorf("prefix %q accepted", prefix)
		}
	}
}
