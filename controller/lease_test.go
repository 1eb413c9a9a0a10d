package controller

import (
	"testing"
	"time"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/protocol"
)

// leaseNet delivers every published Lease to every controller in the same
// order, as a broker does on one topic.
type leaseNet struct {
	t      *testing.T
	now    time.Time
	nodes  []*lease
	queued []protocol.Lease
}

func newLeaseNet(t *testing.T, names ...string) *leaseNet {
	n := &leaseNet{t: t, now: time.Unix(1000, 0)}
	for _, name := range names {
		n.nodes = append(n.nodes, newLease(name, time.Second, 0, n.now))
	}
	return n
}

// act carries out what node i was told to do.
func (n *leaseNet) act(i int, a leaseAction) {
	switch a {
	case sendClaim:
		n.queued = append(n.queued, n.nodes[i].message(false, "", "", ""))
	case sendRenew, takeOver:
		n.queued = append(n.queued, n.nodes[i].message(true, "", "", ""))
	}
}

// deliver hands every queued message to every node but the dead ones.
func (n *leaseNet) deliver(dead map[int]bool) {
	for len(n.queued) > 0 {
		m := n.queued[0]
		n.queued = n.queued[1:]
		for i, l := range n.nodes {
			if !dead[i] {
				n.act(i, l.observe(m, n.now))
			}
		}
	}
}

// run advances time in steps, ticking and delivering, for d.
func (n *leaseNet) run(d time.Duration, dead map[int]bool) {
	step := time.Second / leaseRenewals / 2
	for end := n.now.Add(d); n.now.Before(end); n.now = n.now.Add(step) {
		for i, l := range n.nodes {
			if !dead[i] {
				n.act(i, l.tick(n.now, false))
			}
		}
		n.deliver(dead)
	}
}

func (n *leaseNet) leaders(dead map[int]bool) []int {
	var out []int
	for i, l := range n.nodes {
		if l.leading() && !dead[i] {
			out = append(out, i)
		}
	}
	return out
}

func TestLeaseOneLeaderAndTakeover(t *testing.T) {
	n := newLeaseNet(t, "a", "b", "c")
	n.run(2*time.Second, nil)
	leaders := n.leaders(nil)
	if len(leaders) != 1 {
		t.Fatalf("leaders after start: %v", leaders)
	}
	first := leaders[0]
	term := n.nodes[first].term
	n.run(5*time.Second, nil) // renewals keep it
	if l := n.leaders(nil); len(l) != 1 || l[0] != first || n.nodes[first].term != term {
		t.Fatalf("leadership moved without a failure: %v term %d", l, n.nodes[first].term)
	}

	dead := map[int]bool{first: true}
	killedAt := n.now
	for n.now.Sub(killedAt) < 3*time.Second && len(n.leaders(dead)) == 0 {
		n.run(time.Second/leaseRenewals/2, dead)
	}
	took := n.now.Sub(killedAt)
	l := n.leaders(dead)
	if len(l) != 1 || took > time.Second+time.Second/leaseRenewals+50*time.Millisecond {
		t.Fatalf("after the holder died: leaders %v after %v", l, took)
	}
	if n.nodes[l[0]].term != term+1 {
		t.Errorf("new term %d, want %d", n.nodes[l[0]].term, term+1)
	}
}

func TestLeaseWillTakesOverAtOnce(t *testing.T) {
	n := newLeaseNet(t, "a", "b")
	n.run(2*time.Second, nil)
	first := n.leaders(nil)[0]
	other := 1 - first
	dead := map[int]bool{first: true}
	n.act(other, n.nodes[other].holderGone(n.nodes[first].me, n.now))
	n.deliver(dead)
	if !n.nodes[other].leading() {
		t.Fatal("the standby did not take over on the holder's last will")
	}
}

func TestLeaseConcurrentClaimsFirstDeliveredWins(t *testing.T) {
	n := newLeaseNet(t, "a", "b")
	// Both claim term 1 before either claim is delivered.
	n.act(0, n.nodes[0].tick(n.now, true))
	n.act(1, n.nodes[1].tick(n.now, true))
	n.deliver(nil) // a's claim first
	if !n.nodes[0].leading() || n.nodes[1].leading() {
		t.Fatalf("a leading %v, b leading %v; want only a", n.nodes[0].leading(), n.nodes[1].leading())
	}
	// A late joiner that sees b's losing claim retained, then a's renewals,
	// follows a.
	late := newLease("c", time.Second, 0, n.now)
	late.observe(n.nodes[1].message(false, "", "", ""), n.now)
	late.observe(n.nodes[0].message(true, "", "", ""), n.now)
	if late.holder != "a" {
		t.Errorf("late joiner thinks %q holds the lease", late.holder)
	}
}

func TestLeaseDeposedHolderStepsDown(t *testing.T) {
	n := newLeaseNet(t, "a", "b")
	n.run(2*time.Second, nil)
	first := n.leaders(nil)[0]
	other := 1 - first
	// Cut the holder off: its renewals reach nobody, not even itself.
	cut := map[int]bool{first: true}
	var gotStepDown bool
	for range 20 {
		n.now = n.now.Add(100 * time.Millisecond)
		if n.nodes[first].tick(n.now, false) == stepDown {
			gotStepDown = true
		}
		n.act(other, n.nodes[other].tick(n.now, false))
		n.deliver(cut)
	}
	if !gotStepDown || n.nodes[first].leading() {
		t.Fatal("a holder cut off for longer than the TTL did not step down")
	}
	if !n.nodes[other].leading() {
		t.Fatal("the standby did not take over")
	}
	// Healed: the old holder reconnects, gets the retained lease, and
	// stays a standby.
	n.nodes[first].reconnected(n.now)
	n.nodes[first].observe(n.nodes[other].message(true, "", "", ""), n.now)
	n.run(2*time.Second, nil)
	if l := n.leaders(nil); len(l) != 1 || l[0] != other {
		t.Fatalf("after healing: leaders %v", l)
	}
	if n.nodes[first].observe(protocol.Lease{V: 1, Term: 1, Holder: n.nodes[first].me, Renewal: true}, n.now) != noAction {
		t.Error("a stale renewal changed something")
	}
}

// TestLeaseCutOffHolderStopsFirst: a holder disconnected from the broker
// ticks only lapse (it can neither renew nor claim); it stops acting within
// one TTL of its last renewal coming back, and before the standby claims.
func TestLeaseCutOffHolderStopsFirst(t *testing.T) {
	n := newLeaseNet(t, "a", "b")
	n.run(2*time.Second, nil)
	first := n.leaders(nil)[0]
	other := 1 - first
	holder := n.nodes[first]
	lastHeard := holder.heard
	cut := map[int]bool{first: true}
	var steppedDown, claimed time.Time
	step := leaseTick(time.Second)
	for end := n.now.Add(3 * time.Second); n.now.Before(end); n.now = n.now.Add(step) {
		switch a := holder.lapse(n.now); {
		case a == stepDown && steppedDown.IsZero():
			steppedDown = n.now
		case a != noAction:
			t.Fatalf("a disconnected holder was told to %v", a)
		}
		a := n.nodes[other].tick(n.now, false)
		if a == sendClaim && claimed.IsZero() {
			claimed = n.now
		}
		n.act(other, a)
		n.deliver(cut)
	}
	if steppedDown.IsZero() || holder.leading() {
		t.Fatal("a disconnected holder kept the lease")
	}
	if d := steppedDown.Sub(lastHeard); d > time.Second {
		t.Errorf("stopped %v after its last renewal came back, over the TTL", d)
	}
	if claimed.IsZero() || !n.nodes[other].leading() {
		t.Fatal("the standby did not take over")
	}
	if !steppedDown.Before(claimed) {
		t.Errorf("the holder stopped at %v, the standby claimed at %v: both acted at once", steppedDown.Sub(lastHeard), claimed.Sub(lastHeard))
	}
	// A disconnected standby never claims.
	if a := holder.lapse(n.now.Add(time.Hour)); a != noAction {
		t.Errorf("a disconnected standby was told to %v", a)
	}
	// Reconnected, it waits for the retained lease before claiming.
	holder.reconnected(n.now)
	if a := holder.tick(n.now.Add(step), false); a != noAction {
		t.Errorf("right after reconnecting: %v", a)
	}
	if holder.heldByOther(n.now) {
		t.Error("heldByOther before hearing of the new holder")
	}
	holder.observe(n.nodes[other].message(true, "", "", ""), n.now)
	if !holder.heldByOther(n.now) || holder.heldByOther(n.now.Add(2*time.Second)) {
		t.Error("heldByOther: want true while the holder's renewals are fresh, false after a TTL without")
	}
}

// TestLeaseRetainedClaimOfOursIsNoProof: a claim of ours sent while we were
// cut off can arrive late and replace, on a plain broker, the retained claim
// of the controller that took over. Seen at resubscribe, it does not make us
// the holder; the holder's renewals do make it the holder for us.
func TestLeaseRetainedClaimOfOursIsNoProof(t *testing.T) {
	now := time.Unix(1000, 0)
	a := newLease("a", time.Second, 1, now)
	lateClaim := protocol.Lease{V: 1, Term: 2, Holder: "a"}
	if got := a.observeRetained(lateClaim, now); got != noAction || a.leading() {
		t.Fatalf("our own retained claim: %v, leading %v", got, a.leading())
	}
	if a.observe(protocol.Lease{V: 1, Term: 2, Holder: "b", Renewal: true}, now) != noAction || a.holder != "b" || !a.heldByOther(now) {
		t.Fatalf("the real holder's renewal: holder %q", a.holder)
	}
	// With no renewals for a TTL, we claim the next term.
	a = newLease("a", time.Second, 1, now)
	a.observeRetained(lateClaim, now)
	if got := a.tick(now.Add(1100*time.Millisecond), false); got != sendClaim || a.message(false, "", "", "").Term != 3 {
		t.Fatalf("no renewals after our retained claim: %v, claim of term %d", got, a.message(false, "", "", "").Term)
	}
	// Someone else's retained claim is taken as usual.
	b := newLease("b", time.Second, 1, now)
	if b.observeRetained(lateClaim, now); b.holder != "a" || b.term != 2 {
		t.Fatalf("another's retained claim: holder %q term %d", b.holder, b.term)
	}
}

// TestLeaseHold: what the other goroutines see. The session loop sets the
// hold; a renewal of ours that comes back extends it at once, a newer term
// ends it at once, a retained message never extends it. The hold ends on
// the local clock exactly when it says.
func TestLeaseHold(t *testing.T) {
	local := clock.NewManual(time.Unix(1000, 0))
	t0 := local.Now()
	h := newLeaseHold("a", time.Second, local)
	extend := time.Second - leaseTick(time.Second)
	renewal := protocol.Lease{V: 1, Term: 3, Holder: "a", Renewal: true}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	until := func() time.Duration { h.mu.Lock(); defer h.mu.Unlock(); return h.until }

	h.heard(renewal, false, at(0))
	if until() != 0 {
		t.Fatal("a renewal held a lease the session loop never set")
	}
	h.set(3, at(extend))
	h.heard(renewal, false, at(500*time.Millisecond))
	if until() != 500*time.Millisecond+extend {
		t.Fatalf("held until %v after a renewal came back at 500 ms", until())
	}
	local.Advance(500*time.Millisecond + extend - time.Nanosecond)
	if !h.held() {
		t.Fatal("the hold ended before its end")
	}
	local.Advance(time.Nanosecond)
	if h.held() {
		t.Fatal("the hold outlived its end")
	}
	h.set(3, at(extend)) // the loop, behind the handler, knows an older renewal
	if until() != 500*time.Millisecond+extend {
		t.Fatalf("the loop's older view shortened the hold to %v", until())
	}
	h.heard(renewal, true, at(900*time.Millisecond))
	h.heard(protocol.Lease{V: 1, Term: 3, Holder: "b", Renewal: true}, false, at(900*time.Millisecond))
	if until() != 500*time.Millisecond+extend {
		t.Fatalf("a retained renewal or another's extended the hold to %v", until())
	}
	h.heard(protocol.Lease{V: 1, Term: 4, Holder: "b"}, false, at(time.Second))
	if until() != 0 {
		t.Fatal("a newer term did not end the hold")
	}
	h.set(4, time.Time{})
	if until() != 0 {
		t.Fatal("set with no lease held")
	}
}
