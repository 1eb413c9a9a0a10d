package broker

import (
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// stallingHook holds up the first end of a session of one client id, at the
// moment its subscriptions are removed, until the test releases it.
type stallingHook struct {
	mqtt.HookBase
	clientID string
	held     atomic.Bool
	stalled  chan struct{} // closed when the end is held up
	release  chan struct{}
}

func (h *stallingHook) ID() string { return "stall-session-end" }

func (h *stallingHook) Provides(b byte) bool { return b == mqtt.OnUnsubscribed }

func (h *stallingHook) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) {
	// Not a sync.Once: a second end (the takeover's) must not wait on the first.
	if cl.ID != h.clientID || h.held.Swap(true) {
		return
	}
	close(h.stalled)
	<-h.release
}

// TestReconnectDuringSessionEnd reconnects a client under its client id
// while the broker is still ending its dead connection's clean session, as a
// speaker does the moment its network comes back. The end of the old
// session must not take the new one's registration or subscriptions with
// it: the speaker would stay connected and never hear anything again.
func TestReconnectDuringSessionEnd(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin, kitchen)})
	hook := &stallingHook{clientID: "speaker-s3", stalled: make(chan struct{}), release: make(chan struct{})}
	if err := b.server.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	old, kill := connectBreakable(t, b, admin, "speaker-s3")
	subscribe(t, old, "test/to-speaker")
	kill()
	select {
	case <-hook.stalled:
	case <-time.After(testWait):
		t.Fatal("the broker never ended the dead connection's session")
	}

	// The new connection may have to wait for the old session's end; it
	// gets its turn once that is released.
	type connected struct {
		got <-chan message
		err error
	}
	reconnected := make(chan connected, 1)
	go func() {
		c, err := connect(t, b, admin, "speaker-s3")
		if err != nil {
			reconnected <- connected{err: err}
			return
		}
		got := make(chan message, 10)
		tok := c.Subscribe("test/to-speaker", 1, func(_ paho.Client, m paho.Message) {
			got <- message{m.Topic(), string(m.Payload()), m.Retained()}
		})
		tok.WaitTimeout(testWait)
		reconnected <- connected{got, tok.Error()}
	}()
	var r connected
	select {
	case r = <-reconnected:
		close(hook.release)
	case <-time.After(500 * time.Millisecond):
		close(hook.release)
		r = <-reconnected
	}
	if r.err != nil {
		t.Fatalf("reconnect: %v", r.err)
	}
	other := mustConnect(t, b, admin, "remote")
	publish(t, other, "test/to-speaker", false, "hello")
	select {
	case m := <-r.got:
		if m.payload != "hello" {
			t.Errorf("got %q, want hello", m.payload)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the reconnected client hears nothing: the old session's end removed it")
	}
}
