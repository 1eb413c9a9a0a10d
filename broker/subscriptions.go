package broker

import (
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// MaxSubscriptions caps the filters one connection may hold: every filter
// is a node of mochi's topic tree and an entry of the client's state, so
// without a cap one client grows the broker's memory without bound. tutti's
// own clients hold few: a controller 16 to 18, the Home Assistant bridge
// 10, a speaker 9 or 10, the CLI 1; a member's app might hold a few dozen.
// 256 leaves a wide margin for them and for a household's other MQTT
// devices; with the connection cap it bounds every client's filters
// together (DefaultMaxConnections times this, each at most
// protocol.MaxTopicLength bytes).
const MaxSubscriptions = 256

// refusedFilter replaces a filter over the cap in the SUBSCRIBE that the
// other hooks and mochi's processSubscribe see: mochi answers an empty
// filter, invalid in MQTT [MQTT-4.7.3-1], with a failure code (0x80 for
// 3.1.1 clients, 0x8F for MQTT 5) in the SUBACK, so the client is told and
// stays connected, and the filter never reaches the topic tree.
const refusedFilter = ""

// subscriptionCap refuses the filters of a SUBSCRIBE that would take a
// client over MaxSubscriptions, and logs that at most once a second per
// user. A filter the client already holds only replaces its subscription
// and is always accepted. Filters another hook refuses later (the ACL)
// still count against the cap within their SUBSCRIBE: the cap errs on the
// side of refusing.
type subscriptionCap struct {
	mqtt.HookBase
	refusals *refusalLog
}

func (h *subscriptionCap) ID() string { return "tutti-subscription-cap" }

func (h *subscriptionCap) Provides(b byte) bool { return b == mqtt.OnSubscribe }

// OnSubscribe runs on the client's own goroutine, the only one that adds to
// its subscriptions, so the count it reads holds until mochi has added the
// filters it leaves.
func (h *subscriptionCap) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	held := cl.State.Subscriptions.Len()
	adding := make(map[string]bool) // new filters of this packet, counted once
	var filters []packets.Subscription
	var firstRefused string
	for i, sub := range pk.Filters {
		_, holds := cl.State.Subscriptions.Get(sub.Filter)
		if holds || adding[sub.Filter] {
			continue
		}
		if held+len(adding) < MaxSubscriptions {
			adding[sub.Filter] = true
			continue
		}
		if filters == nil { // the packet's filters are mochi's: copied before the first change
			filters = append([]packets.Subscription(nil), pk.Filters...)
			firstRefused = sub.Filter
		}
		filters[i].Filter = refusedFilter
	}
	if filters != nil {
		h.refusals.add(cl, "mqtt subscription refused: over the subscription cap",
			fmt.Errorf("holds %d filters, the most allowed is %d; refused %.40q and every new filter after it", held+len(adding), MaxSubscriptions, firstRefused))
		pk.Filters = filters
	}
	return pk
}
