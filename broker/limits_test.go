package broker

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/protocol"
)

// othersBound is how long another user's QoS 1 round trip (publish, and
// the message delivered back) may take while an attack runs.
const othersBound = 2 * time.Second

// probeOthers runs QoS 1 round trips of user u through b, one after the
// other, until the returned stop is called; a round trip that fails or
// takes longer than othersBound fails the test. stop reports how many ran
// and the slowest.
func probeOthers(t *testing.T, b *Broker, u testUser) (stop func()) {
	t.Helper()
	c := mustConnect(t, b, u, "probe-"+u.name)
	got := subscribe(t, c, "probe/"+u.name)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var n int
	var slowest time.Duration
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			start := time.Now()
			payload := fmt.Sprint(i)
			if tok := c.Publish("probe/"+u.name, 1, false, payload); !tok.WaitTimeout(othersBound) || tok.Error() != nil {
				t.Errorf("round trip %d: publish not acknowledged within %v: %v", i, othersBound, tok.Error())
				return
			}
			select {
			case m := <-got:
				if m.payload != payload {
					t.Errorf("round trip %d: got %q", i, m.payload)
					return
				}
			case <-time.After(othersBound - time.Since(start)):
				t.Errorf("round trip %d: not delivered within %v", i, othersBound)
				return
			}
			n++
			slowest = max(slowest, time.Since(start))
		}
	})
	return sync.OnceFunc(func() {
		close(done)
		wg.Wait()
		if n == 0 {
			t.Error("no round trip of another user completed")
		}
		t.Logf("%s's round trips during the attack: %d, slowest %v", u.name, n, slowest)
	})
}

// heapInUse returns the bytes of heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// deepTopic is a topic levels deep.
func deepTopic(prefix string, levels int) string {
	return prefix + strings.Repeat("/a", levels-1)
}

// timedStart starts a broker on opts and returns how long New and Run took
// to serve a client's first round trip.
func timedStart(t *testing.T, opts Options, u testUser) (*Broker, func(), *syncBuffer, time.Duration) {
	t.Helper()
	start := time.Now()
	b, stop, log := startBroker(t, opts)
	c := mustConnect(t, b, u, "first-"+u.name)
	got := subscribe(t, c, "first/"+u.name)
	publish(t, c, "first/"+u.name, false, "hello")
	receive(t, got)
	return b, stop, log, time.Since(start)
}

// The attack: 500 retained publishes to topics 20,000 levels deep (and one of
// 60,000 bytes, one of 100 short levels), subscriptions and a last will as deep. Each is refused
// before mochi's topic tree sees it: acknowledged and dropped, SUBACK 0x80,
// CONNECT refused; nothing is retained, the heap does not grow, the next
// start is quick, and another user's round trips go on meanwhile.
func TestDeepAndLongTopicsRefused(t *testing.T) {
	opts := Options{UsersFile: writeUsers(t, admin, bob), DataDir: t.TempDir()}
	b, stop, log := startBroker(t, opts)
	attacker := mustConnect(t, b, bob, "bob")
	heapBefore := heapInUse()
	stopProbe := probeOthers(t, b, admin)

	start := time.Now()
	const publishes, levels = 500, 20000
	for i := range publishes {
		publish(t, attacker, deepTopic(fmt.Sprint("deep", i), levels), true, "poison")
	}
	publish(t, attacker, strings.Repeat("L", 60000), true, "poison")
	publish(t, attacker, deepTopic("short", 100), true, "poison") // 200 bytes, 100 levels
	publish(t, attacker, deepTopic("live", levels), false, "poison")
	publishTook := time.Since(start)
	none := func(paho.Client, paho.Message) { t.Error("message delivered on a refused filter") }
	for _, filter := range []string{deepTopic("deep0", levels), deepTopic("+", levels) + "/#", strings.Repeat("F", 60000)} {
		if code := trySubscribe(t, attacker, filter, none); code != 0x80 {
			t.Errorf("subscription to a filter %d bytes long: SUBACK %#x, want 0x80", len(filter), code)
		}
	}
	willTo := func(o *paho.ClientOptions) { o.SetWill(deepTopic("will", levels), "gone", 1, true) }
	if _, err := connect(t, b, bob, "bob-will", willTo); err == nil {
		t.Error("connected with a last will 20,000 levels deep")
	}
	stopProbe()
	heapAfter := heapInUse()

	if got := retainedTopics(b); len(got) != 0 {
		t.Errorf("retained %d topics", len(got))
	}
	if !strings.Contains(log.String(), "mqtt publish refused: over a limit") || !strings.Contains(log.String(), "bytes exceeds 1024") {
		t.Errorf("refusals not logged:\n%.2000s", log.String())
	}
	if len(log.String()) > 64<<10 {
		t.Errorf("log of %d bytes: topics quoted in full", len(log.String()))
	}
	t.Logf("%d retained publishes %d levels deep, one 60,000 bytes long, one 100 levels, one live: acknowledged in %v; heap in use %d MB before, %d MB after",
		publishes, levels, publishTook, heapBefore>>20, heapAfter>>20)
	if heapAfter > heapBefore+32<<20 {
		t.Errorf("heap grew from %d MB to %d MB", heapBefore>>20, heapAfter>>20)
	}
	// The attacker's connection still works, within the limits.
	got := subscribe(t, attacker, deepTopic("ok", protocol.MaxTopicLevels))
	publish(t, attacker, deepTopic("ok", protocol.MaxTopicLevels), true, "fine")
	if m := receive(t, got); m.payload != "fine" {
		t.Errorf("got %+v", m)
	}

	stop()
	_, _, _, took := timedStart(t, opts, admin)
	t.Logf("restart to the first round trip: %v", took)
}

func TestPayloadLimit(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, admin, bob)})
	observer := mustConnect(t, b, admin, "observer")
	seen := subscribe(t, observer, "#")
	c := mustConnect(t, b, bob, "bob")
	publish(t, c, "bob/big", true, strings.Repeat("x", 900<<10))
	publish(t, c, "bob/big", false, strings.Repeat("x", protocol.MaxPayload+1))
	publish(t, c, "bob/max", true, strings.Repeat("x", protocol.MaxPayload))
	if m := receive(t, seen); m.topic != "bob/max" || len(m.payload) != protocol.MaxPayload {
		t.Errorf("got %d bytes on %s, want the largest allowed payload on bob/max", len(m.payload), m.topic)
	}
	if got := retainedTopics(b); len(got) != 1 || got[0] != "bob/max" {
		t.Errorf("retained %q", got)
	}
	if !strings.Contains(log.String(), "exceeds 262144") {
		t.Errorf("refusal not logged:\n%s", log.String())
	}
}

// Below tutti/ only the protocol's retained topics are retained, by whoever
// the ACL lets publish there; an empty payload clears any topic.
func TestOnlyProtocolTopicsRetainedUnderTutti(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin, kitchen, ctl)})
	controller := mustConnect(t, b, ctl, "ctl")
	speaker := mustConnect(t, b, kitchen, "kitchen")
	publish(t, controller, protocol.SessionStateTopic("home"), true, "state")
	publish(t, controller, protocol.SessionCommandTopic("home"), true, "a retained command")
	publish(t, controller, protocol.DefaultReplyTopic+"/x", true, "a retained reply")
	publish(t, controller, "tutti/made/up", true, "x")
	publish(t, speaker, protocol.SpeakerStatusTopic("kitchen"), true, "status")
	publish(t, speaker, protocol.AckTopic("kitchen"), true, "ack")
	want := []string{protocol.SessionStateTopic("home"), protocol.SpeakerStatusTopic("kitchen")}
	if got := retainedTopics(b); !slices.Equal(got, want) {
		t.Errorf("retained %q, want %q", got, want)
	}

	// A retained command from before the limits is cleared with an empty
	// payload, which mochi accepts on any topic.
	b.server.Topics.RetainMessage(retainedPacket(protocol.SessionCommandTopic("home"), "old"))
	publish(t, controller, protocol.SessionCommandTopic("home"), true, "")
	if got := retainedTopics(b); !slices.Equal(got, want) {
		t.Errorf("after clearing: retained %q, want %q", got, want)
	}
	// And a last will retained on a topic that is not is refused.
	willTo := func(o *paho.ClientOptions) { o.SetWill(protocol.DefaultReplyTopic, "gone", 1, true) }
	if _, err := connect(t, b, ctl, "ctl-2", willTo); err == nil {
		t.Error("connected with a last will retained on the reply topic")
	}
}

// retainedPacket is a retained publish of payload to topic.
func retainedPacket(topic, payload string) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: topic, Payload: []byte(payload)}
}
