package broker

import (
	"fmt"
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Retained quota of each user outside tutti/ (below tutti/ only the
// protocol's own topics are retained, see checkMessage). The broker keeps
// every retained message in memory and in its store, and sends them to each
// new subscriber: without a quota one member could fill the hub's memory
// and disk and slow every start. A household that also uses the hub as Home
// Assistant's broker fits comfortably: a Zigbee bridge with 300 devices
// retains about 3000 discovery configs and states of 0.3-2 KB (under 6
// MiB); tutti's own bridge retains one config of 1-10 KB per device
// (controller, sessions, speakers). The count bounds the topic tree's
// nodes (at most protocol.MaxTopicLevels each), the bytes (topic and payload) the
// memory and disk.
const (
	RetainedQuotaMessages = 4000
	RetainedQuotaBytes    = 16 << 20
)

// retainedQuota enforces the quota. The owner of a retained message is the
// user who published it last (another user's publish to the topic moves
// it to their account); an empty payload clears the topic and frees its
// share. Controllers, the broker's own client and anonymous demo clients
// have no quota: a controller retains what its users ask for (the Home
// Assistant bridge of a hub runs as the controller), and a demo is open by
// design. The store records the owner (retainedStore), so the accounts are
// rebuilt at start.
//
// A publish is checked in OnPublish and counted in OnRetainMessage, once
// retained: publishes of one user on several connections at the same
// moment may pass the check together, so an account can exceed the quota
// by the few messages then in flight.
type retainedQuota struct {
	mqtt.HookBase
	users    *userDirectory
	refusals *refusalLog
	logger   *slog.Logger

	mu       sync.Mutex
	topics   map[string]retainedShare // the topics that count, by topic
	accounts map[string]*account      // by user
}

// retainedShare is what one retained topic counts in its owner's account.
type retainedShare struct {
	owner string
	bytes int
}

type account struct{ messages, bytes int }

// newRetainedQuota accounts the stored retained messages, whose Client
// field names their owner.
func newRetainedQuota(stored []storage.Message, users *userDirectory, refusals *refusalLog, logger *slog.Logger) *retainedQuota {
	q := &retainedQuota{users: users, refusals: refusals, logger: logger,
		topics: map[string]retainedShare{}, accounts: map[string]*account{}}
	for _, m := range stored {
		q.retained(m.Client, m.TopicName, retainedSize(m.TopicName, m.Payload))
	}
	return q
}

func (q *retainedQuota) ID() string { return "tutti-retained-quota" }

func (q *retainedQuota) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnRetainMessage || b == mqtt.OnRetainedExpired || b == mqtt.OnWill
}

// retainedOwner names the owner of what cl retains: its user, "" for the
// broker's own client and anonymous ones.
func retainedOwner(cl *mqtt.Client) string {
	if cl.Net.Inline {
		return ""
	}
	return string(cl.Properties.Username)
}

// counted reports whether owner's retained messages on topic count.
func (q *retainedQuota) counted(owner, topic string) bool {
	if owner == "" || inTutti(topic) {
		return false
	}
	u, ok := q.users.lookup(owner)
	return !ok || u.Role != RoleController
}

// check returns why owner may not retain size more bytes on topic, or nil.
func (q *retainedQuota) check(owner, topic string, size int) error {
	if !q.counted(owner, topic) {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	a := account{}
	if acc, ok := q.accounts[owner]; ok {
		a = *acc
	}
	if share, ok := q.topics[topic]; ok && share.owner == owner {
		a.messages--
		a.bytes -= share.bytes
	}
	if a.messages+1 > RetainedQuotaMessages || a.bytes+size > RetainedQuotaBytes {
		return fmt.Errorf("retained quota of %d messages and %d bytes reached (%d messages, %d bytes retained)",
			RetainedQuotaMessages, RetainedQuotaBytes, a.messages, a.bytes)
	}
	return nil
}

// retained records that owner retained size bytes on topic (0: cleared it).
func (q *retainedQuota) retained(owner, topic string, size int) {
	counted := size > 0 && q.counted(owner, topic)
	q.mu.Lock()
	defer q.mu.Unlock()
	if share, ok := q.topics[topic]; ok {
		acc := q.accounts[share.owner]
		acc.messages--
		acc.bytes -= share.bytes
		if acc.messages == 0 {
			delete(q.accounts, share.owner)
		}
		delete(q.topics, topic)
	}
	if !counted {
		return
	}
	acc, ok := q.accounts[owner]
	if !ok {
		acc = new(account)
		q.accounts[owner] = acc
	}
	acc.messages++
	acc.bytes += size
	q.topics[topic] = retainedShare{owner: owner, bytes: size}
}

// usage returns owner's account.
func (q *retainedQuota) usage(owner string) account {
	q.mu.Lock()
	defer q.mu.Unlock()
	if acc, ok := q.accounts[owner]; ok {
		return *acc
	}
	return account{}
}

// retainedSize is what a retained message counts: topic and payload.
func retainedSize(topic string, payload []byte) int {
	if len(payload) == 0 {
		return 0
	}
	return len(topic) + len(payload)
}

// OnPublish drops a retained publish beyond its user's quota, with
// CodeSuccessIgnore (acknowledged, neither retained nor delivered).
func (q *retainedQuota) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !pk.FixedHeader.Retain || len(pk.Payload) == 0 {
		return pk, nil
	}
	if err := q.check(retainedOwner(cl), pk.TopicName, retainedSize(pk.TopicName, pk.Payload)); err != nil {
		q.refusals.add(cl, "mqtt retained publish refused", err)
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

func (q *retainedQuota) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	q.retained(retainedOwner(cl), pk.TopicName, retainedSize(pk.TopicName, pk.Payload))
}

func (q *retainedQuota) OnRetainedExpired(topic string) {
	q.retained("", topic, 0)
}

// OnWill publishes a last will beyond its user's quota without retaining
// it: mochi gives a hook no way to drop a will.
func (q *retainedQuota) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if !will.Retain || len(will.Payload) == 0 {
		return will, nil
	}
	if err := q.check(retainedOwner(cl), will.TopicName, retainedSize(will.TopicName, will.Payload)); err != nil {
		q.logger.Warn("last will not retained", "user", retainedOwner(cl), "client", cl.ID, "error", err)
		will.Retain = false
	}
	return will, nil
}
