package broker

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/protocol"
)

// TestBrokerAnswersClockProbes: with AnswerClock, a speaker's probe over
// MQTT is answered by the broker, on the speaker's own response topic, with
// the broker's clock between the probe's sending and its answer's arrival.
func TestBrokerAnswersClockProbes(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, kitchen), AnswerClock: true})
	c, err := connect(t, b, kitchen, "kitchen")
	if err != nil {
		t.Fatal(err)
	}
	answers := make(chan protocol.ClockResponse, 1)
	tok := c.Subscribe(protocol.ClockResponseTopic(kitchen.name), 0, func(_ paho.Client, m paho.Message) {
		if r, err := protocol.Decode[protocol.ClockResponse](m.Payload()); err == nil {
			answers <- r
		}
	})
	if !tok.WaitTimeout(testWait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t1 := time.Now().UnixNano()
	c.Publish(protocol.ClockRequestTopic(kitchen.name), 0, false, protocol.Encode(protocol.ClockRequest{V: 1, ID: 7, T1: t1}))
	select {
	case r := <-answers:
		t4 := time.Now().UnixNano()
		if r.ID != 7 || r.T1 != t1 || r.T2 < t1 || r.T3 < r.T2 || r.T3 > t4 {
			t.Errorf("answer %+v for a probe sent at %d and answered by %d", r, t1, t4)
		}
		t.Logf("round trip %v, broker time %v", time.Duration(t4-t1), time.Duration(r.T3-r.T2))
	case <-time.After(testWait):
		t.Fatal("no answer to the clock probe")
	}
}
