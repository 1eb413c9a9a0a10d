package broker

import (
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/protocol"
)

// Size limits of what the broker takes, for everyone. mochi's topic tree
// walks a topic from its start once per level (topics.go isolateParticle),
// so a topic thousands of levels deep costs the square of that in CPU and
// memory when it is retained or matched against subscriptions, and again at
// every start when the store is loaded. The limits are checked before the
// tree sees a topic: publishes in limitsHook.OnPublish (the first hook),
// subscription filters in authHook.OnACLCheck, last wills at CONNECT
// (authHook.OnConnectAuthenticate), stored messages in openStore.

// checkMessage checks a publish or last will: its topic's size
// (protocol.CheckTopicSize), its payload's (protocol.MaxPayload, the
// documented limit; packets stay limited by Options.MaxPacketSize), and, if
// retained, that a topic below tutti/ is one the protocol defines as retained
// (protocol.Retained). An empty retained payload only clears a topic: it is
// always allowed.
func checkMessage(topic string, payload []byte, retain bool) error {
	if err := protocol.CheckTopicSize(topic); err != nil {
		return err
	}
	if len(payload) > protocol.MaxPayload {
		return fmt.Errorf("payload of %d bytes exceeds %d", len(payload), protocol.MaxPayload)
	}
	if retain && len(payload) > 0 && inTutti(topic) && !protocol.Retained(topic) {
		return fmt.Errorf("%s is not a retained topic of tutti's", topic)
	}
	return nil
}

// limitsHook drops every publish that checkMessage refuses, with
// CodeSuccessIgnore (acknowledged, neither retained nor delivered), and logs
// it at most once a second per user. It is the first hook, so no other
// sees such a publish.
type limitsHook struct {
	mqtt.HookBase
	refusals *refusalLog
}

func (h *limitsHook) ID() string { return "tutti-limits" }

func (h *limitsHook) Provides(b byte) bool { return b == mqtt.OnPublish }

func (h *limitsHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if err := checkMessage(pk.TopicName, pk.Payload, pk.FixedHeader.Retain); err != nil {
		h.refusals.add(cl, "mqtt publish refused: over a limit", err)
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

// logTopicLength is the most of a topic a log line quotes.
const logTopicLength = 200

// logTopic returns topic, cut to logTopicLength bytes for a log line.
func logTopic(topic string) string {
	if len(topic) <= logTopicLength {
		return topic
	}
	return topic[:logTopicLength] + "..."
}
