package controller

import (
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

// simEpoch is where the simulated tests begin, in true time (Unix ns).
const simEpoch int64 = 1767225600e9 // 2026-01-01

// simClock is a local clock as a function of true time (ns): an offset from
// it at simEpoch, and a rate error.
type simClock struct {
	offset time.Duration
	ppm    float64
}

func (c simClock) at(trueNs int64) int64 {
	return trueNs + int64(c.offset) + int64(float64(trueNs-simEpoch)*c.ppm*1e-6)
}

// simNode is one controller's clock: its local clock and its follower.
type simNode struct {
	local simClock
	f     *timeFollower
}

func newSimNode(t *testing.T, name string, local simClock) simNode {
	log := slog.New(slog.NewTextHandler(t.Output(), nil)).With("node", name)
	return simNode{local: local, f: newTimeFollower(name, log, clocksync.LocalNs(local.at(simEpoch)))}
}

// freezeAt makes the node the time master at a true instant; its wall
// clock is its local clock here.
func (n simNode) freezeAt(trueNs int64) {
	n.f.freeze(n.local.at(trueNs), clocksync.LocalNs(n.local.at(trueNs)))
}

// sharedAt is the node's shared clock at a true instant.
func (n simNode) sharedAt(trueNs int64) int64 {
	return int64(n.f.shared(clocksync.LocalNs(n.local.at(trueNs))))
}

// exchange runs one probe of follower to master starting at the true
// instant trueNs, over a link of the given one-way delays, and returns the
// error of answered.
func exchange(t *testing.T, follower, master simNode, trueNs int64, up, down time.Duration) error {
	t.Helper()
	req, ok := follower.f.probe(clocksync.LocalNs(follower.local.at(trueNs)))
	if !ok {
		t.Fatal("a follower sent no probe")
	}
	received := trueNs + int64(up)
	answered := received + int64(20*time.Microsecond)
	resp := protocol.ClockResponse{V: 1, ID: req.ID, T1: req.T1, T2: master.sharedAt(received), T3: master.sharedAt(answered)}
	return follower.f.answered(protocol.Encode(resp), clocksync.LocalNs(follower.local.at(answered+int64(down))))
}

// follow probes every interval from the true instant start for span, over a
// loopback-like link with some jitter; it returns the true instant after.
func follow(t *testing.T, rng *rand.Rand, follower, master simNode, start int64, span, interval time.Duration) int64 {
	t.Helper()
	jitter := func() time.Duration {
		return 100*time.Microsecond + time.Duration(rng.Int64N(int64(300*time.Microsecond)))
	}
	at := start
	for ; at < start+int64(span); at += int64(interval) {
		if err := exchange(t, follower, master, at, jitter(), jitter()); err != nil {
			t.Fatal(err)
		}
	}
	return at
}

// offBy is how far a's shared clock is from b's at a true instant.
func offBy(a, b simNode, trueNs int64) time.Duration {
	return time.Duration(a.sharedAt(trueNs) - b.sharedAt(trueNs))
}

// TestTimeFollowerKeepsTheTimelineThroughTakeovers: controllers whose local
// clocks are seconds apart hand the time master's role over twice, and the
// shared clock stays the first master's throughout.
func TestTimeFollowerKeepsTheTimelineThroughTakeovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	start := simEpoch
	a := newSimNode(t, "a", simClock{offset: 3 * time.Second, ppm: 0})
	b := newSimNode(t, "b", simClock{offset: -2 * time.Second, ppm: 40})

	// A holds the lease first; nobody answered it, so its local clock is
	// the shared clock.
	a.freezeAt(start)
	if _, ok := a.f.probe(0); ok {
		t.Fatal("the time master probes")
	}
	if got := a.sharedAt(start); got != a.local.at(start) {
		t.Fatalf("first master's shared clock %d, want its local %d", got, a.local.at(start))
	}

	// B follows, but not before the estimate is good: until then it keeps
	// its local clock.
	now := start
	for range followSamples - 1 {
		if err := exchange(t, b, a, now, 200*time.Microsecond, 200*time.Microsecond); err != nil {
			t.Fatal(err)
		}
		now += int64(200 * time.Millisecond)
	}
	if b.f.isSynced() || b.sharedAt(now) != b.local.at(now) {
		t.Fatalf("B follows after %d answers", followSamples-1)
	}
	now = follow(t, rng, b, a, now, 10*time.Second, 200*time.Millisecond)
	if !b.f.isSynced() {
		t.Fatal("B is not synced after 10 s of clean probes")
	}
	if d := offBy(b, a, now); d.Abs() > 200*time.Microsecond {
		t.Fatalf("B follows A's clock off by %v", d)
	}

	// A goes; B takes over and freezes its model: it probes no more, a
	// late answer moves nothing, and a minute on it still keeps A's time
	// (its own local clock runs 40 ppm fast).
	b.freezeAt(now)
	if _, ok := b.f.probe(clocksync.LocalNs(b.local.at(now))); ok {
		t.Fatal("B probes as the time master")
	}
	before := b.sharedAt(now)
	late := protocol.ClockResponse{V: 1, ID: 1, T1: 1, T2: 1e18, T3: 1e18}
	if err := b.f.answered(protocol.Encode(late), clocksync.LocalNs(b.local.at(now))); err != nil || b.sharedAt(now) != before {
		t.Fatalf("a late answer changed the frozen clock (err %v)", err)
	}
	now += int64(time.Minute)
	if d := offBy(b, a, now); d.Abs() > 500*time.Microsecond {
		t.Fatalf("a minute after the takeover, B is %v off A's timeline", d)
	}

	// A comes back as a standby and follows B: it lands on the timeline
	// it kept itself.
	a.f.follow(clocksync.LocalNs(a.local.at(now)))
	if a.sharedAt(now) != a.local.at(now) {
		t.Fatal("A's clock moved before B answered")
	}
	now = follow(t, rng, a, b, now, 5*time.Second, 200*time.Millisecond)
	if !a.f.isSynced() {
		t.Fatal("A does not follow B")
	}
	if d := time.Duration(a.sharedAt(now) - a.local.at(now)); d.Abs() > time.Millisecond {
		t.Fatalf("A follows B %v off the timeline A kept", d)
	}

	// A takes the lease back: B steps down and follows A again. B's frozen
	// clock stays in use until its estimate of A's is good, and then lands
	// where it was.
	a.freezeAt(now)
	b.f.follow(clocksync.LocalNs(b.local.at(now)))
	frozen := b.f.model
	for range followSamples - 1 {
		if err := exchange(t, b, a, now, 300*time.Microsecond, 300*time.Microsecond); err != nil {
			t.Fatal(err)
		}
		now += int64(200 * time.Millisecond)
	}
	if b.f.isSynced() || b.f.model != frozen {
		t.Fatal("B changed its clock on a few answers")
	}
	now = follow(t, rng, b, a, now, 5*time.Second, 200*time.Millisecond)
	if d := offBy(b, a, now); !b.f.isSynced() || d.Abs() > 500*time.Microsecond {
		t.Fatalf("B follows A again %v off (synced %v)", d, b.f.isSynced())
	}
	if d := time.Duration(a.sharedAt(now) - a.local.at(now)); d.Abs() > time.Millisecond {
		t.Fatalf("A's clock %v off the first timeline", d)
	}
}

func TestTimeFollowerRejectsBadAnswers(t *testing.T) {
	n := newSimNode(t, "n", simClock{})
	req, _ := n.f.probe(1000)
	for name, payload := range map[string][]byte{
		"malformed":     []byte("{"),
		"unknown probe": protocol.Encode(protocol.ClockResponse{V: 1, ID: req.ID + 1, T1: 1000, T2: 1500, T3: 1600}),
		"probe 0":       protocol.Encode(protocol.ClockResponse{V: 1, ID: 0, T1: 1000, T2: 1500, T3: 1600}),
		"negative rtt":  protocol.Encode(protocol.ClockResponse{V: 1, ID: req.ID, T1: 1000, T2: 1500, T3: 9000}),
	} {
		if err := n.f.answered(payload, 2000); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for range followStaleProbes + 1 {
		n.f.probe(1000)
	}
	if err := n.f.answered(protocol.Encode(protocol.ClockResponse{V: 1, ID: req.ID, T1: 1000, T2: 1500, T3: 1600}), 2000); err == nil {
		t.Error("an answer to a long gone probe was accepted")
	}
	if n.f.isSynced() || n.f.shared(5000) != 5000 {
		t.Fatal("bad answers moved the clock")
	}
}

// TestTimeFollowerSettlesOnASlowNetwork: when no answer gets within the
// error bound, the best estimate replaces the local clock after
// followPatience.
func TestTimeFollowerSettlesOnASlowNetwork(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	master := newSimNode(t, "m", simClock{offset: time.Hour})
	master.freezeAt(simEpoch)
	n := newSimNode(t, "n", simClock{})
	start := simEpoch
	slow := func() time.Duration { return 5*time.Millisecond + time.Duration(rng.Int64N(int64(2*time.Millisecond))) }
	now := start
	for ; now < start+int64(followPatience)-int64(500*time.Millisecond); now += int64(200 * time.Millisecond) {
		if err := exchange(t, n, master, now, slow(), slow()); err != nil {
			t.Fatal(err)
		}
	}
	if n.f.isSynced() {
		t.Fatal("synced on 5 ms links before the patience ran out")
	}
	for ; now < start+int64(followPatience)+int64(500*time.Millisecond); now += int64(200 * time.Millisecond) {
		if err := exchange(t, n, master, now, slow(), slow()); err != nil {
			t.Fatal(err)
		}
	}
	if !n.f.isSynced() {
		t.Fatal("never settled")
	}
	if d := offBy(n, master, now); d.Abs() > 8*time.Millisecond {
		t.Fatalf("settled %v off the master", d)
	}
}

// TestTakeoverKeepsTheSharedClock runs two controllers whose local clocks
// are 5 s apart: the standby follows the holder's clock, and once it has
// taken over it answers probes and schedules on the old holder's timeline.
func TestTakeoverKeepsTheSharedClock(t *testing.T) {
	broker := startBroker(t)
	ttl := 600 * time.Millisecond
	clockA := offsetClock{offset: 3 * time.Second}
	a, stopA := startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "a", LeaseTTL: ttl, Clock: clockA})
	optsB := Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "b", LeaseTTL: ttl, Clock: offsetClock{offset: -2 * time.Second}}
	b, _ := runController(t, optsB)
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic, protocol.ClockResponseTopic("sp1"))

	checkClockAnswers(t, tc, clockA)
	testwait.For(t, "B to follow A's clock", waitTimeout, b.sharedClock.isSynced)

	song := upload(t, a, makeWAV(8000*30, 8000, 1), "one")
	tc.cmd("e", `{"cmd":"enqueue","song":"`+song.SHA256+`","req_id":"e"}`)
	played := tc.cmd("p", `{"cmd":"play","req_id":"p"}`)
	testwait.For(t, "the standby to mirror the song", waitTimeout, func() bool { return b.lib.holds(song.SHA256) })
	testwait.For(t, "the standby to mirror the state", waitTimeout, func() bool {
		st := openTestStore(t, optsB.DataDir)
		defer st.Close()
		all, err := st.sessions()
		return err == nil && all["home"].State.Seq == played.State.Seq
	})

	stopA()
	testwait.For(t, "B to take over", waitTimeout, b.holding)
	checkClockAnswers(t, tc, clockA)

	// B schedules on A's timeline: the pause lands a lead time after the
	// request, and the anchor's position is the time played since A's
	// play instant.
	before := clockA.Now().UnixNano()
	paused := tc.cmd("s", `{"cmd":"pause","req_id":"s"}`)
	after := clockA.Now().UnixNano()
	anchor := paused.State.Anchor
	if paused.AtNs < before || paused.AtNs > after+int64(2*time.Second) || anchor.PositionNs != paused.AtNs-played.AtNs {
		t.Fatalf("pause at %d (A's clock read %d before, %d after), anchor %+v, play at %d", paused.AtNs, before, after, anchor, played.AtNs)
	}
}

// checkClockAnswers probes the time master as speaker sp1 and fails unless
// its answers agree with want within a few ms. Of several probes, the one
// with the shortest round trip counts.
func checkClockAnswers(t *testing.T, tc *testClient, want offsetClock) {
	t.Helper()
	best := clocksync.Sample{RTT: time.Hour}
	for id := uint64(1); id <= 10; id++ {
		t1 := time.Now().UnixNano()
		tc.publish(protocol.ClockRequestTopic("sp1"), protocol.Encode(protocol.ClockRequest{V: 1, ID: id, T1: t1}))
		var resp protocol.ClockResponse
		tc.next(protocol.ClockResponseTopic("sp1"), func(b []byte) bool {
			return json.Unmarshal(b, &resp) == nil && resp.ID == id
		})
		s, err := clocksync.NewSample(t1, resp.T2, resp.T3, time.Now().UnixNano())
		if err != nil {
			t.Fatal(err)
		}
		if s.RTT < best.RTT {
			best = s
		}
	}
	if d := best.Offset - want.offset; d.Abs() > best.RTT/2+3*time.Millisecond {
		t.Fatalf("the time master's clock is %v off the expected timeline (round trip %v)", d, best.RTT)
	}
}

// TestClockFromBrokerFollowsTheBroker: with ClockFromBroker, a controller on
// a clock 2 s off schedules on the time master's clock (here a client that
// answers probes as tutti's broker does, on real time).
func TestClockFromBrokerFollowsTheBroker(t *testing.T) {
	broker := startBroker(t)
	master := newTestClient(t, broker)
	answer := func(client paho.Client, m paho.Message) {
		t2 := time.Now().UnixNano()
		id, ok := protocol.SpeakerFromTopic(m.Topic())
		req, err := protocol.Decode[protocol.ClockRequest](m.Payload())
		if !ok || err != nil {
			return
		}
		resp := protocol.ClockResponse{V: 1, ID: req.ID, T1: req.T1, T2: t2, T3: time.Now().UnixNano()}
		client.Publish(protocol.ClockResponseTopic(id), 0, false, protocol.Encode(resp))
	}
	if err := mqttclient.Subscribe(master.mqtt, map[string]byte{protocol.ClockRequestFilter: 0}, answer, waitTimeout); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	c, _ := startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), ClockFromBroker: true, Clock: offsetClock{offset: -2 * time.Second}})
	testwait.For(t, "the controller to follow the broker's clock", waitTimeout, c.sharedClock.isSynced)

	tc := newTestClient(t, broker, protocol.DefaultReplyTopic)
	song := upload(t, c, makeWAV(8000*5, 8000, 2), "two")
	tc.cmd("e", `{"cmd":"enqueue","song":"`+song.SHA256+`","req_id":"e"}`)
	before := time.Now().UnixNano()
	played := tc.cmd("p", `{"cmd":"play","req_id":"p"}`)
	after := time.Now().UnixNano()
	if played.AtNs < before || played.AtNs > after+int64(2*time.Second) {
		t.Fatalf("play at %d, real time was %d before and %d after", played.AtNs, before, after)
	}
}
