package broker

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/internal/testwait"
)

// stallingDelivery holds up the delivery of the retained message "a" on
// one topic after its first subscriber, until the test releases it, and
// reports when the message "b" reaches the broker and when it is retained.
type stallingDelivery struct {
	mqtt.HookBase
	topic     string
	mu        sync.Mutex
	delivered int
	stalled   chan struct{} // closed when "a" is held up
	release   chan struct{}
	arrivedB  chan struct{} // closed when "b" reaches the broker
	retainedB chan struct{} // closed when "b" is retained
}

func (h *stallingDelivery) ID() string { return "stall-delivery" }

func (h *stallingDelivery) Provides(b byte) bool {
	return b == mqtt.OnQosPublish || b == mqtt.OnPublish || b == mqtt.OnRetainMessage
}

func (h *stallingDelivery) OnQosPublish(_ *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || pk.TopicName != h.topic || string(pk.Payload) != "a" {
		return
	}
	h.mu.Lock()
	h.delivered++
	second := h.delivered == 2
	h.mu.Unlock()
	if !second {
		return
	}
	close(h.stalled)
	select {
	case <-h.release:
	case <-time.After(testWait):
	}
}

func (h *stallingDelivery) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.TopicName == h.topic && string(pk.Payload) == "b" {
		close(h.arrivedB)
	}
	return pk, nil
}

func (h *stallingDelivery) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, _ int64) {
	if pk.TopicName == h.topic && string(pk.Payload) == "b" {
		close(h.retainedB)
	}
}

// arrivals records the payloads one subscriber receives, in order.
type arrivals struct {
	mu       sync.Mutex
	payloads []string
}

func (a *arrivals) subscribe(t *testing.T, c paho.Client, topic string) {
	t.Helper()
	code := trySubscribe(t, c, topic, func(_ paho.Client, m paho.Message) {
		a.mu.Lock()
		a.payloads = append(a.payloads, string(m.Payload()))
		a.mu.Unlock()
	})
	if code > 2 {
		t.Fatalf("subscribe %s: refused with code %#x", topic, code)
	}
}

func (a *arrivals) got() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.payloads)
}

// TestRetainedPublishesKeepOneOrder: two clients publish retained messages
// to one topic at the same moment, as a client forging a Home Assistant
// config and the bridge restoring it do. Every subscriber must see them in
// the order the broker retained them: the broker used to deliver each
// message to its subscribers one by one, so the second message, slipping in
// while the first was being delivered, reached some subscribers before the
// first one. Home Assistant then kept the forged config while the retained
// one, and the bridge, had the restored one. Retained publishes to other
// topics are not held up meanwhile.
func TestRetainedPublishesKeepOneOrder(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin)})
	const topic = "test/config"
	hook := &stallingDelivery{topic: topic, stalled: make(chan struct{}), release: make(chan struct{}),
		arrivedB: make(chan struct{}), retainedB: make(chan struct{})}
	if err := b.server.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	release := sync.OnceFunc(func() { close(hook.release) })
	t.Cleanup(release) // before the broker stops, should the test end early
	var subscribers [2]arrivals
	for i := range subscribers {
		subscribers[i].subscribe(t, mustConnect(t, b, admin, fmt.Sprintf("subscriber-%d", i+1)), topic)
	}
	publisherA := mustConnect(t, b, admin, "publisher-a")
	publisherB := mustConnect(t, b, admin, "publisher-b")

	doneA := publisherA.Publish(topic, 1, true, "a")
	select {
	case <-hook.stalled:
	case <-time.After(testWait):
		t.Fatal(`"a" was never delivered to the second subscriber`)
	}
	publish(t, publisherB, "test/other", true, "unrelated")
	doneB := publisherB.Publish(topic, 1, true, "b")
	select {
	case <-hook.arrivedB:
	case <-time.After(testWait):
		t.Fatal(`"b" never reached the broker`)
	}
	// "b" must wait for "a"'s delivery to end. Should it be retained
	// meanwhile, let it reach both subscribers before "a" goes on, so that
	// the test shows what a slow delivery of "a" leads to.
	const retainWait = 200 * time.Millisecond
	select {
	case <-hook.retainedB:
		testwait.For(t, `"b" at both subscribers`, testWait, func() bool {
			return slices.Contains(subscribers[0].got(), "b") && slices.Contains(subscribers[1].got(), "b")
		})
	case <-time.After(retainWait):
	}
	release()

	for _, tok := range []paho.Token{doneA, doneB} {
		if !tok.WaitTimeout(testWait) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	for i := range subscribers {
		testwait.For(t, "both messages at both subscribers", testWait, func() bool { return len(subscribers[i].got()) == 2 })
	}
	if first, second := subscribers[0].got(), subscribers[1].got(); !slices.Equal(first, []string{"a", "b"}) || !slices.Equal(second, first) {
		t.Errorf("the subscribers saw %q and %q; both should see [a b], the order \"b\" was retained in", first, second)
	}
	latecomer := subscribe(t, mustConnect(t, b, admin, "latecomer"), topic)
	if m := receive(t, latecomer); m.payload != "b" || !m.retained {
		t.Errorf("retained: %+v, want b", m)
	}
}
