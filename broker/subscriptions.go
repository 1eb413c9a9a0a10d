package broker

import (
	"bytes"
	"fmt"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Caps on subscriptions: every filter is a node of mochi's topic tree and
// an entry of its client's state, so without a cap a client grows the
// broker's memory without bound. tutti's own clients hold few: a
// controller 16 to 18, the Home Assistant bridge 10, a speaker 9 or 10, the
// CLI 1; a member's app might hold a few dozen.
const (
	// MaxSubscriptions caps the filters of one client: a wide margin for
	// tutti's clients and a household's other MQTT devices.
	MaxSubscriptions = 256
	// MaxUserSubscriptions caps the filters of all the sessions of one user
	// together, online or kept for a later connection (a client that is not
	// clean keeps its subscriptions when it disconnects, under any number of
	// client ids): four clients at the cap, for a member's phone, laptop and
	// CLI, or a controller and its standbys. Anonymous demo clients have no
	// user and only the cap per client.
	MaxUserSubscriptions = 4 * MaxSubscriptions
)

// refusedFilter replaces a filter over a cap in the SUBSCRIBE that the
// other hooks and mochi's processSubscribe see: mochi answers an empty
// filter, invalid in MQTT [MQTT-4.7.3-1], with a failure code (0x80 for
// 3.1.1 clients, 0x8F for MQTT 5) in the SUBACK, so the client is told and
// stays connected, and the filter never reaches the topic tree.
const refusedFilter = ""

// subscriptionCap refuses the filters of a SUBSCRIBE that would take a
// client over MaxSubscriptions or its user over MaxUserSubscriptions, and
// logs that at most once a second per user. A filter the client already
// holds only replaces its subscription and is always accepted. Filters
// another hook refuses later (the ACL) still count against the caps within
// their SUBSCRIBE: the caps err on the side of refusing.
type subscriptionCap struct {
	mqtt.HookBase
	refusals *refusalLog

	mu sync.Mutex
	// sessions are each user's clients that may hold subscriptions, online
	// or not, by client id: a client that takes an id over replaces its
	// predecessor (and inherits its subscriptions, or mochi drops them).
	// They are registered before mochi adds them to its clients, so none
	// can subscribe uncounted.
	sessions map[string]map[string]*mqtt.Client
	// reserved is what a client will hold once mochi has added the new
	// filters OnSubscribe let through, from then until OnSubscribed, by
	// which time mochi has: the user's other clients count that meanwhile.
	reserved map[*mqtt.Client]int
}

func newSubscriptionCap(refusals *refusalLog) *subscriptionCap {
	return &subscriptionCap{refusals: refusals, sessions: map[string]map[string]*mqtt.Client{}, reserved: map[*mqtt.Client]int{}}
}

func (h *subscriptionCap) ID() string { return "tutti-subscription-cap" }

func (h *subscriptionCap) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablish,
		mqtt.OnSubscribe,
		mqtt.OnSubscribed,
		mqtt.OnDisconnect,
		mqtt.OnClientExpired,
	}, []byte{b})
}

func (h *subscriptionCap) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	user := string(cl.Properties.Username)
	if user == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[user] == nil {
		h.sessions[user] = map[string]*mqtt.Client{}
	}
	h.sessions[user][cl.ID] = cl
}

// OnDisconnect forgets a clean session, which ends with its connection; a
// session that is not clean is forgotten when it expires or another takes
// its id over.
func (h *subscriptionCap) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire {
		h.forget(cl)
	}
}

func (h *subscriptionCap) OnClientExpired(cl *mqtt.Client) { h.forget(cl) }

func (h *subscriptionCap) forget(cl *mqtt.Client) {
	user := string(cl.Properties.Username)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[user][cl.ID] == cl {
		delete(h.sessions[user], cl.ID)
	}
	if len(h.sessions[user]) == 0 {
		delete(h.sessions, user)
	}
}

// userHeld counts the subscriptions of user's sessions, reserved ones
// included. h.mu is held.
func (h *subscriptionCap) userHeld(user string) int {
	n := 0
	for _, cl := range h.sessions[user] {
		n += max(cl.State.Subscriptions.Len(), h.reserved[cl])
	}
	return n
}

// OnSubscribe runs on the client's own goroutine, the only one that adds to
// its subscriptions, so the count it reads holds until mochi has added the
// filters it leaves.
func (h *subscriptionCap) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	user := string(cl.Properties.Username)
	held := cl.State.Subscriptions.Len()
	adding := make(map[string]bool) // new filters of this packet, counted once
	var filters []packets.Subscription
	var firstRefused string
	h.mu.Lock()
	room := MaxSubscriptions - held
	if user != "" {
		room = min(room, MaxUserSubscriptions-h.userHeld(user))
	}
	for i, sub := range pk.Filters {
		_, holds := cl.State.Subscriptions.Get(sub.Filter)
		if holds || adding[sub.Filter] {
			continue
		}
		if len(adding) < room {
			adding[sub.Filter] = true
			continue
		}
		if filters == nil { // the packet's filters are mochi's: copied before the first change
			filters = append([]packets.Subscription(nil), pk.Filters...)
			firstRefused = sub.Filter
		}
		filters[i].Filter = refusedFilter
	}
	if user != "" && len(adding) > 0 {
		h.reserved[cl] = held + len(adding)
	}
	h.mu.Unlock()
	if filters != nil {
		h.refusals.add(cl, "mqtt subscription refused: over the subscription cap",
			fmt.Errorf("the client holds %d filters (at most %d, its user's clients %d together); refused %.40q and every new filter after it",
				held+len(adding), MaxSubscriptions, MaxUserSubscriptions, firstRefused))
		pk.Filters = filters
	}
	return pk
}

// OnSubscribed: mochi has added the filters OnSubscribe granted.
func (h *subscriptionCap) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.reserved, cl)
}
