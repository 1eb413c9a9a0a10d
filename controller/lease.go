package controller

import (
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// This file holds the lease rules as a state machine over local monotonic
// time: which controller is in charge, and when to claim, renew or step
// down. Nothing here publishes or reads a clock; the session loop feeds it
// events and carries out the action it returns.

// DefaultLeaseTTL is how long a lease lives without renewal. The holder
// renews every TTL/leaseRenewals; a standby claims when it expires, or at
// once when the holder's last will says it is gone.
const DefaultLeaseTTL = 1500 * time.Millisecond

// leaseRenewals is how many renewals a holder sends per TTL, so a few lost
// or late ones do not cost it the lease.
const leaseRenewals = 6

// leaseTick is how often the session loop ticks the lease: twice per
// renewal interval.
func leaseTick(ttl time.Duration) time.Duration { return ttl / leaseRenewals / 2 }

type leaseRole int

const (
	standby  leaseRole = iota
	claiming           // our claim of term+1 is published, not yet delivered back
	leading
)

func (r leaseRole) String() string {
	return [...]string{"standby", "claiming", "leading"}[r]
}

// leaseAction is what the caller must do after an event.
type leaseAction int

const (
	noAction  leaseAction = iota
	sendClaim             // publish claim() retained
	sendRenew             // publish renewal() not retained
	takeOver              // we hold the lease now: publish all state under term
	stepDown              // we lost the lease: stop acting as the holder
)

// lease is one controller's view of the lease.
type lease struct {
	me  string // our instance
	ttl time.Duration

	role      leaseRole
	term      uint64    // highest term delivered by the broker
	holder    string    // holder of term; "" when unknown or released
	claimTerm uint64    // term+1 when we claimed it, while claiming
	heard     time.Time // last claim or renewal of term by its holder
	claimedAt time.Time // when role became claiming
	renewedAt time.Time // our last renewal sent, while leading
}

func newLease(me string, ttl time.Duration, minTerm uint64, now time.Time) *lease {
	// A fresh controller claims only after two renewal intervals without
	// hearing of a holder: the retained lease arrives right after it
	// subscribes, and a live holder renews within one interval.
	return &lease{me: me, ttl: ttl, term: minTerm, heard: now.Add(-ttl + 2*ttl/leaseRenewals)}
}

// observe handles a Lease message as delivered by the broker. All
// subscribers see the messages of one topic in the same order, so "the first
// message of a term names its holder" gives everyone the same answer; only
// the holder renews, so a renewal names the holder too.
func (l *lease) observe(m protocol.Lease, now time.Time) leaseAction {
	switch {
	case m.Term < l.term:
		return noAction // from a deposed holder
	case m.Term > l.term || l.holder == "":
		l.term, l.holder = m.Term, m.Holder
	case m.Holder != l.holder:
		if !m.Renewal || l.role != standby {
			return noAction // a later claim of a term already taken: it lost
		}
		// We joined after a losing claim was retained; the winner renews.
		l.holder = m.Holder
	}
	l.heard = now
	if l.holder == l.me {
		if l.role != leading {
			// Our claim, delivered (perhaps after we gave up on it): the
			// lease is ours, as every other controller now believes.
			l.role, l.renewedAt = leading, now
			return takeOver
		}
		return noAction
	}
	if l.role != standby {
		l.role = standby
		return stepDown
	}
	return noAction
}

// observeRetained handles the Lease the broker kept, delivered as we
// subscribe. It is the last one published, not the first of its term: a
// claim or renewal of ours there may have been sent while we were cut off,
// arrived late and replaced the claim of the controller that took over (a
// plain broker keeps whatever came last). So it does not make us the holder;
// the real holder's renewals, or a TTL without any, tell.
func (l *lease) observeRetained(m protocol.Lease, now time.Time) leaseAction {
	if m.Holder != l.me || l.role == leading || m.Term < l.term {
		return l.observe(m, now)
	}
	l.role, l.term, l.holder, l.heard = standby, m.Term, "", now
	return noAction
}

// holderGone handles the last will of a controller: if it is the holder, its
// lease is over now rather than at expiry.
func (l *lease) holderGone(instance string, now time.Time) leaseAction {
	if instance != l.holder || instance == l.me {
		return noAction
	}
	l.holder = ""
	return l.tick(now, true)
}

// tick is called every leaseTick while we are subscribed to the lease: it
// renews, claims or steps down as time requires. expired forces a claim by a
// standby.
func (l *lease) tick(now time.Time, expired bool) leaseAction {
	switch l.role {
	case leading:
		if a := l.lapse(now); a != noAction {
			return a
		}
		if now.Sub(l.renewedAt) >= l.ttl/leaseRenewals {
			l.renewedAt = now
			return sendRenew
		}
	case claiming:
		// Our claim comes back within a round trip, unless an arbitrating
		// broker dropped it because the lease was still held. A live
		// holder's renewals would have made us a standby by now; without
		// them, claim again after one renewal interval.
		if now.Sub(l.claimedAt) > l.ttl/3 {
			l.role = standby
			l.heard = now.Add(-l.ttl + l.ttl/leaseRenewals)
		}
	case standby:
		if expired || now.Sub(l.heard) > l.ttl {
			// The term we claim counts from the terms others hold, never
			// from our own refused claims: a controller that was cut off
			// and claimed in vain meanwhile does not come back with a
			// higher term to depose the holder that took over.
			l.role, l.claimedAt, l.claimTerm = claiming, now, l.term+1
			l.heard = now
			return sendClaim
		}
	}
	return noAction
}

// lapse ends our lease when our renewals have not come back for one tick
// short of a TTL: we are cut off from the broker (or cannot hear it), and a
// standby, which heard our last renewal when we did and ticks as often, may
// claim once the TTL is over; by then we have stopped acting. The caller
// calls it every tick, connected or not: the lease runs out on our own
// monotonic clock.
func (l *lease) lapse(now time.Time) leaseAction {
	if l.role == leading && !now.Before(l.heldUntil()) {
		l.role = standby
		return stepDown
	}
	return noAction
}

// reconnected is called once we are subscribed again after a disconnect:
// like a fresh controller, a standby waits two renewal intervals for the
// retained lease before it claims, rather than claim a term the holder
// that took over while we were away already holds.
func (l *lease) reconnected(now time.Time) {
	if l.role == standby {
		l.heard = later(l.heard, now.Add(-l.ttl+2*l.ttl/leaseRenewals))
	}
}

// heldByOther says another controller holds the lease, as far as we heard
// within its TTL: it answers the requests we do not.
func (l *lease) heldByOther(now time.Time) bool {
	return l.holder != "" && l.holder != l.me && now.Sub(l.heard) <= l.ttl
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// message is the Lease we publish for our term: a claim, or a renewal.
func (l *lease) message(renewal bool, name, songsURL, fetchToken string) protocol.Lease {
	term := l.term
	if !renewal {
		term = l.claimTerm
	}
	return protocol.Lease{V: protocol.Version, Term: term, Holder: l.me, Renewal: renewal, Name: name,
		TTLMs: l.ttl.Milliseconds(), SongsURL: songsURL, FetchToken: fetchToken}
}

func (l *lease) leading() bool { return l.role == leading }

// heldUntil is when our lease runs out unless a renewal comes back (lapse);
// zero when we do not hold it.
func (l *lease) heldUntil() time.Time {
	if l.role != leading {
		return time.Time{}
	}
	return l.heard.Add(l.ttl - leaseTick(l.ttl))
}
