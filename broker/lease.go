package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/protocol"
)

// Controllers elect the one in charge through claims on protocol.LeaseTopic,
// and their own rule (the first claim of a term delivered wins) is safe with
// any broker. The embedded broker does better: leaseArbiter decides every
// claim atomically, so a losing claim is never delivered nor retained, frees
// the lease the moment its holder's connection drops (a kill -9 of the
// holder costs no TTL), and fences off state and playlists that a deposed
// controller still publishes.

// heldLease is the lease the arbiter last granted or renewed.
type heldLease struct {
	term    uint64
	holder  string // the holder's instance id, from the payload
	expires time.Time
	// client is the connection that published the claim or the last
	// renewal; nil for a lease read from the store until its holder renews.
	client *mqtt.Client
	// released is set when client disconnects: a higher term may then be
	// claimed at once.
	released bool
}

// leaseArbiter is the mochi hook that arbitrates lease claims and fences
// session state and playlists by term. mochi calls OnPublish on each
// client's own goroutine, and OnDisconnect on the departing client's, so
// the lease is guarded by mu.
type leaseArbiter struct {
	mqtt.HookBase
	clock  clock.Clock
	logger *slog.Logger

	mu    sync.Mutex
	lease *heldLease // nil until a first claim is granted
}

// newLeaseArbiter returns an arbiter that starts from restored, the lease
// message retained before a restart (nil if none). Its expiry counts from
// now: the holder has one TTL to renew.
func newLeaseArbiter(clk clock.Clock, logger *slog.Logger, restored []byte) *leaseArbiter {
	clock := clock.Or(clk)
	a := &leaseArbiter{clock: clock, logger: logger}
	if restored == nil {
		return a
	}
	l, err := decodeLease(restored)
	if err != nil {
		logger.Warn("stored lease ignored", "err", err)
		return a
	}
	a.lease = &heldLease{term: l.Term, holder: l.Holder, expires: clock.Now().Add(ttl(l))}
	logger.Info("lease restored from the store", "term", l.Term, "holder", l.Holder)
	return a
}

func (a *leaseArbiter) ID() string { return "tutti-lease" }

func (a *leaseArbiter) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnWill || b == mqtt.OnDisconnect
}

// OnPublish drops, with CodeSuccessIgnore like authHook, every lease message
// that is neither the holder's renewal nor a claim that may take the lease,
// and every state, playlist, session info or assignment stamped with a term
// older than the lease's.
func (a *leaseArbiter) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch {
	case pk.TopicName == protocol.LeaseTopic:
		return a.arbitrate(cl, pk)
	case filterCovers(protocol.SessionStateFilter, pk.TopicName), filterCovers(protocol.PlaylistFilter, pk.TopicName),
		// Session infos and assignments set what the ACL allows: a deposed
		// controller must not widen it.
		filterCovers(protocol.SessionInfoFilter, pk.TopicName), filterCovers(protocol.AssignFilter, pk.TopicName):
		return a.fence(cl, pk)
	}
	return pk, nil
}

func (a *leaseArbiter) arbitrate(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	l, err := decodeLease(pk.Payload)
	if err != nil {
		a.logger.Warn("lease message dropped", "client", cl.ID, "err", err)
		return pk, packets.CodeSuccessIgnore
	}
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.lease
	if cur != nil && l.Term == cur.term && l.Holder == cur.holder {
		// A renewal, also from a new connection of the holder (it
		// reconnected, or this broker restarted), as long as nobody claimed
		// a higher term meanwhile.
		cur.expires, cur.client, cur.released = now.Add(ttl(l)), cl, false
		return pk, nil
	}
	if reason := refusal(cur, l, now); reason != "" {
		a.logger.Info("lease claim refused", "client", cl.ID, "holder", l.Holder, "term", l.Term, "reason", reason)
		return pk, packets.CodeSuccessIgnore
	}
	// mochi retains and delivers the claim after this returns, outside mu.
	// A later claim of another holder cannot overtake it there: that needs
	// this lease to expire (a TTL) or its connection to end, which mochi
	// reports from the goroutine running this publish, once it is done.
	a.lease = &heldLease{term: l.Term, holder: l.Holder, expires: now.Add(ttl(l)), client: cl}
	a.logger.Info("lease granted", "client", cl.ID, "holder", l.Holder, "term", l.Term, "ttl_ms", l.TTLMs)
	// Retained whatever the claimant asked, so that the store always holds
	// the current term and a restarted broker does not go back.
	pk.FixedHeader.Retain = true
	return pk, nil
}

// refusal says why claim l may not take the lease from cur at now, or ""
// if it may. Renewals are handled before.
func refusal(cur *heldLease, l protocol.Lease, now time.Time) string {
	switch {
	case cur == nil:
		return ""
	case l.Term <= cur.term:
		return fmt.Sprintf("term not above the current term %d", cur.term)
	case l.Holder == cur.holder, cur.released, !now.Before(cur.expires):
		return ""
	}
	return fmt.Sprintf("term %d is held by %s for another %v", cur.term, cur.holder, cur.expires.Sub(now).Round(time.Millisecond))
}

// OnWill releases the lease before the holder's last will goes out: the
// will is what tells standbys to claim, and mochi sends it before calling
// OnDisconnect, so a claim must not find the lease still held.
func (a *leaseArbiter) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	a.release(cl, "its holder's connection died")
	return will, nil
}

// OnDisconnect releases the lease when its holder's connection goes, be it
// a clean disconnect or a dead TCP connection. A takeover of the holder's
// client id is a different *mqtt.Client, so a reconnected holder that has
// renewed already keeps its lease.
func (a *leaseArbiter) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	a.release(cl, fmt.Sprintf("its holder disconnected (%v)", err))
}

func (a *leaseArbiter) release(cl *mqtt.Client, why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lease == nil || a.lease.client != cl || a.lease.released {
		return
	}
	a.lease.released = true
	a.logger.Info("lease released: "+why, "client", cl.ID, "holder", a.lease.holder, "term", a.lease.term)
}

// fence drops a state, playlist, session info or assignment stamped with a
// term lower than the lease's. An empty payload (clearing the retained
// message) passes; one without a term counts as term 0.
func (a *leaseArbiter) fence(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if len(pk.Payload) == 0 {
		return pk, nil
	}
	a.mu.Lock()
	var current uint64
	if a.lease != nil {
		current = a.lease.term
	}
	a.mu.Unlock()
	if current == 0 {
		return pk, nil
	}
	var stamp struct {
		Term uint64 `json:"term"`
	}
	if err := json.Unmarshal(pk.Payload, &stamp); err != nil {
		a.logger.Warn("publish dropped: no readable term while a lease is held", "client", cl.ID, "topic", pk.TopicName, "lease_term", current, "err", err)
		return pk, packets.CodeSuccessIgnore
	}
	if stamp.Term < current {
		a.logger.Warn("publish dropped: stale term", "client", cl.ID, "topic", pk.TopicName, "term", stamp.Term, "lease_term", current)
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}

// decodeLease parses a lease payload and checks what arbitration relies on.
func decodeLease(b []byte) (protocol.Lease, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return protocol.Lease{}, errors.New("empty lease payload")
	}
	l, err := protocol.Decode[protocol.Lease](b)
	switch {
	case err != nil:
		return l, err
	case l.Term == 0:
		return l, errors.New("lease without a term")
	case l.Holder == "":
		return l, errors.New("lease without a holder")
	case l.TTLMs <= 0 || l.TTLMs > maxLeaseTTLMs:
		return l, fmt.Errorf("lease with ttl_ms %d, want 1 to %d", l.TTLMs, maxLeaseTTLMs)
	}
	return l, nil
}

// maxLeaseTTLMs bounds a lease's TTL: a controller renews within seconds,
// and a larger value would overflow the expiry.
const maxLeaseTTLMs = int64(time.Hour / time.Millisecond)

func ttl(l protocol.Lease) time.Duration { return time.Duration(l.TTLMs) * time.Millisecond }
