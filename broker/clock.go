package broker

import (
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/protocol"
)

// The broker can be the time master: it answers speakers' clock probes
// itself, on the goroutine of the speaker's connection. Its clock then is
// the shared clock, and it stays the same when controllers come and go (a
// standby taking over must not shift the timeline speakers play by), and a
// probe's round trip is one hop shorter than through a controller.

// answerClock returns the inline handler of tutti/speaker/+/clock/req.
// T2 is stamped first thing and T3 right before the answer goes out.
func answerClock(server *mqtt.Server, logger *slog.Logger) mqtt.InlineSubFn {
	return func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		t2 := time.Now().UnixNano()
		id, ok := protocol.SpeakerFromTopic(pk.TopicName)
		if !ok {
			return
		}
		req, err := protocol.Decode[protocol.ClockRequest](pk.Payload)
		if err != nil {
			logger.Debug("bad clock probe", "speaker", id, "err", err)
			return
		}
		resp := protocol.ClockResponse{V: protocol.Version, ID: req.ID, T1: req.T1, T2: t2}
		resp.T3 = time.Now().UnixNano()
		if err := server.Publish(protocol.ClockResponseTopic(id), protocol.Encode(resp), false, 0); err != nil {
			logger.Debug("clock answer not sent", "speaker", id, "err", err)
		}
	}
}

// clockSubscriptionID identifies the broker's own subscription to probes.
const clockSubscriptionID = 1
