package broker

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// newFakeClock is a broker clock that moves only when the test moves it.
func newFakeClock() *clock.Manual {
	return clock.NewManual(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
}

// leaseTTL is the TTL of every claim in these tests; only the fake clock
// moves past it.
const leaseTTL = 3 * time.Second

func leaseMsg(term uint64, holder string) string {
	return string(protocol.Encode(protocol.Lease{V: protocol.Version, Term: term, Holder: holder, TTLMs: leaseTTL.Milliseconds()}))
}

func stateMsg(term uint64) string {
	return string(protocol.Encode(protocol.SessionState{V: protocol.Version, Session: "home", Term: term, State: protocol.Playing}))
}

func playlistMsg(term uint64) string {
	return string(protocol.Encode(protocol.Playlist{V: protocol.Version, Session: "home", Term: term}))
}

// markerTopic is outside tutti/, so the arbiter lets every marker through.
const markerTopic = "test/marker"

// observe subscribes a new admin client to everything.
func observe(t *testing.T, b *Broker) <-chan message {
	t.Helper()
	return subscribe(t, mustConnect(t, b, admin, "observer"), "#")
}

// delivered publishes a marker from from and returns the payloads the
// observer saw before it: the broker handles one client's publishes in
// order, so whatever from published before and was delivered is there.
func delivered(t *testing.T, from paho.Client, seen <-chan message) []string {
	t.Helper()
	publish(t, from, markerTopic, false, "marker")
	var got []string
	for {
		m := receive(t, seen)
		if m.topic == markerTopic && m.payload == "marker" {
			return got
		}
		got = append(got, m.payload)
	}
}

func checkDelivered(t *testing.T, from paho.Client, seen <-chan message, want ...string) {
	t.Helper()
	if got := delivered(t, from, seen); !slices.Equal(got, want) {
		t.Errorf("delivered %q, want %q", got, want)
	}
}

// retainedLease returns the payload retained on the lease topic, "" if none.
func retainedLease(b *Broker) string {
	pk, ok := b.server.Topics.Retained.Get(protocol.LeaseTopic)
	if !ok {
		return ""
	}
	return string(pk.Payload)
}

// waitForLog polls the broker's log for want.
func waitForLog(t *testing.T, log *syncBuffer, want string) {
	t.Helper()
	if !testwait.Until(testWait, func() bool { return strings.Contains(log.String(), want) }) {
		t.Fatalf("%q never logged:\n%s", want, log.String())
	}
}

func TestConcurrentClaimsOfOneTerm(t *testing.T) {
	clock := newFakeClock()
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin, ctl), Clock: clock})
	seen := observe(t, b)
	controllers := []paho.Client{mustConnect(t, b, ctl, "ctl-a"), mustConnect(t, b, ctl, "ctl-b")}
	wins := map[string]int{}
	for term := uint64(1); term <= 10; term++ {
		claims := []string{leaseMsg(term, "a"), leaseMsg(term, "b")}
		start := make(chan struct{})
		errs := make(chan error, len(controllers))
		for i, c := range controllers {
			go func() {
				<-start
				tok := c.Publish(protocol.LeaseTopic, 1, true, claims[i])
				if !tok.WaitTimeout(testWait) {
					errs <- fmt.Errorf("claim %d: no PUBACK", i)
					return
				}
				errs <- tok.Error()
			}()
		}
		close(start)
		for range controllers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		for _, c := range controllers {
			got = append(got, delivered(t, c, seen)...)
		}
		if len(got) != 1 {
			t.Fatalf("term %d: delivered %q, want exactly one claim", term, got)
		}
		if retained := retainedLease(b); retained != got[0] {
			t.Fatalf("term %d: retained %q, delivered %q", term, retained, got[0])
		}
		winner, err := protocol.Decode[protocol.Lease]([]byte(got[0]))
		if err != nil {
			t.Fatal(err)
		}
		wins[winner.Holder]++
		clock.Advance(leaseTTL) // the winner does not renew: the next term is open to both
	}
	t.Logf("winners: %v", wins)
}

func TestLiveLeaseAndRenewals(t *testing.T) {
	clock := newFakeClock()
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, admin, ctl), Clock: clock})
	seen := observe(t, b)
	a := mustConnect(t, b, ctl, "ctl-a")
	other := mustConnect(t, b, ctl, "ctl-b")

	publish(t, a, protocol.LeaseTopic, true, leaseMsg(1, "a"))
	checkDelivered(t, a, seen, leaseMsg(1, "a"))

	// Another holder cannot claim while a's lease is live, nor renew it.
	publish(t, other, protocol.LeaseTopic, true, leaseMsg(2, "b"))
	publish(t, other, protocol.LeaseTopic, false, leaseMsg(1, "b"))
	checkDelivered(t, other, seen)

	// a's renewals keep the lease past its first TTL.
	for range 3 {
		clock.Advance(leaseTTL * 2 / 3)
		publish(t, a, protocol.LeaseTopic, false, leaseMsg(1, "a"))
		checkDelivered(t, a, seen, leaseMsg(1, "a"))
	}
	publish(t, other, protocol.LeaseTopic, true, leaseMsg(2, "b"))
	checkDelivered(t, other, seen)

	// Once a has not renewed for a TTL, another may claim the next term.
	clock.Advance(leaseTTL - time.Millisecond)
	publish(t, other, protocol.LeaseTopic, true, leaseMsg(2, "b"))
	checkDelivered(t, other, seen)
	clock.Advance(time.Millisecond)
	publish(t, other, protocol.LeaseTopic, true, leaseMsg(2, "b"))
	checkDelivered(t, other, seen, leaseMsg(2, "b"))

	// The deposed holder can neither renew nor claim a lower or equal term.
	publish(t, a, protocol.LeaseTopic, false, leaseMsg(1, "a"))
	publish(t, a, protocol.LeaseTopic, true, leaseMsg(2, "a"))
	checkDelivered(t, a, seen)
	// A holder may claim a higher term over its own live lease.
	publish(t, other, protocol.LeaseTopic, true, leaseMsg(3, "b"))
	checkDelivered(t, other, seen, leaseMsg(3, "b"))
	if got := retainedLease(b); got != leaseMsg(3, "b") {
		t.Errorf("retained %q", got)
	}
	if !strings.Contains(log.String(), "lease claim refused") {
		t.Errorf("refusals not logged:\n%s", log.String())
	}
}

// connectBreakable connects a client whose TCP connection the test can
// close abruptly, as when its process is killed: no DISCONNECT packet.
func connectBreakable(t *testing.T, b *Broker, u testUser, clientID string) (paho.Client, func()) {
	t.Helper()
	conns := make(chan net.Conn, 1)
	c, err := connect(t, b, u, clientID, func(o *paho.ClientOptions) {
		o.SetCustomOpenConnectionFn(func(uri *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			conn, err := net.Dial("tcp", uri.Host)
			if err == nil {
				conns <- conn
			}
			return conn, err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	conn := <-conns
	return c, func() { conn.Close() }
}

func TestHolderDisconnectFreesLease(t *testing.T) {
	clock := newFakeClock() // never advanced: no lease here expires
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, admin, ctl), Clock: clock})
	seen := observe(t, b)
	a, kill := connectBreakable(t, b, ctl, "ctl-a")
	other := mustConnect(t, b, ctl, "ctl-b")

	publish(t, a, protocol.LeaseTopic, true, leaseMsg(1, "a"))
	publish(t, other, protocol.LeaseTopic, true, leaseMsg(2, "b"))
	checkDelivered(t, other, seen, leaseMsg(1, "a"))

	kill()
	waitForLog(t, log, "lease released")
	publish(t, other, protocol.LeaseTopic, true, leaseMsg(2, "b"))
	checkDelivered(t, other, seen, leaseMsg(2, "b"))

	// A holder that reconnects under its client id (a takeover: the old
	// connection's end is reported whenever it comes) keeps its lease by
	// renewing.
	reconnected := mustConnect(t, b, ctl, "ctl-b")
	publish(t, reconnected, protocol.LeaseTopic, false, leaseMsg(2, "b"))
	checkDelivered(t, reconnected, seen, leaseMsg(2, "b"))
	c := mustConnect(t, b, ctl, "ctl-c")
	publish(t, c, protocol.LeaseTopic, true, leaseMsg(3, "c"))
	checkDelivered(t, c, seen)
}

func TestStaleTermFenced(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, admin, ctl), Clock: newFakeClock()})
	seen := observe(t, b)
	c := mustConnect(t, b, ctl, "ctl-old")
	state, playlist := protocol.SessionStateTopic("home"), protocol.PlaylistTopic("home")

	// Without a lease, anything passes, as on any broker.
	publish(t, c, state, true, stateMsg(0))
	publish(t, c, state, false, "not json")
	checkDelivered(t, c, seen, stateMsg(0), "not json")

	publish(t, c, protocol.LeaseTopic, true, leaseMsg(2, "new"))
	publish(t, c, state, true, stateMsg(1))
	publish(t, c, playlist, true, playlistMsg(1))
	publish(t, c, state, true, stateMsg(0))
	publish(t, c, state, true, `{"v":1}`)
	publish(t, c, state, true, "not json")
	publish(t, c, playlist, true, `{"v":1,"term":"2"}`)
	publish(t, c, state, true, stateMsg(2))
	publish(t, c, playlist, true, playlistMsg(2))
	publish(t, c, state, true, stateMsg(3))
	publish(t, c, protocol.PlaylistTopic("kitchen"), true, "") // clears a retained message
	checkDelivered(t, c, seen, leaseMsg(2, "new"), stateMsg(2), playlistMsg(2), stateMsg(3), "")

	if pk, _ := b.server.Topics.Retained.Get(state); string(pk.Payload) != stateMsg(3) {
		t.Errorf("retained state %q", pk.Payload)
	}
	if !strings.Contains(log.String(), "stale term") || !strings.Contains(log.String(), "client=ctl-old") {
		t.Errorf("fenced publish not logged with its client:\n%s", log.String())
	}
}

func TestLeaseSurvivesRestart(t *testing.T) {
	opts := Options{UsersFile: writeUsers(t, admin, ctl), DataDir: t.TempDir(), Clock: newFakeClock()}
	b, stop, _ := startBroker(t, opts)
	a := mustConnect(t, b, ctl, "ctl-a")
	publish(t, a, protocol.LeaseTopic, true, leaseMsg(3, "a"))
	publish(t, a, protocol.LeaseTopic, false, leaseMsg(3, "a")) // a renewal leaves the claim retained
	a.Disconnect(0)
	stop()

	clock := newFakeClock()
	opts.Clock = clock
	b, _, log := startBroker(t, opts)
	if !strings.Contains(log.String(), "lease restored") {
		t.Errorf("restored lease not logged:\n%s", log.String())
	}
	seen := observe(t, b)
	if m := receive(t, seen); m != (message{protocol.LeaseTopic, leaseMsg(3, "a"), true}) {
		t.Fatalf("retained after restart: %+v", m)
	}
	other := mustConnect(t, b, ctl, "ctl-b")
	publish(t, other, protocol.LeaseTopic, true, leaseMsg(3, "b"))
	publish(t, other, protocol.LeaseTopic, true, leaseMsg(1, "b"))
	publish(t, other, protocol.SessionStateTopic("home"), true, stateMsg(2))
	// The restored lease runs for a TTL from the start, though its holder
	// has not connected yet.
	publish(t, other, protocol.LeaseTopic, true, leaseMsg(4, "b"))
	checkDelivered(t, other, seen)

	// Its holder renews from a new connection; then lets it expire.
	a = mustConnect(t, b, ctl, "ctl-a")
	clock.Advance(leaseTTL - time.Millisecond)
	publish(t, a, protocol.LeaseTopic, false, leaseMsg(3, "a"))
	checkDelivered(t, a, seen, leaseMsg(3, "a"))
	clock.Advance(leaseTTL - time.Millisecond)
	publish(t, other, protocol.LeaseTopic, true, leaseMsg(4, "b"))
	checkDelivered(t, other, seen)
	clock.Advance(time.Millisecond)
	// A claim published without retain is retained all the same, so the
	// store always holds the current term.
	publish(t, other, protocol.LeaseTopic, false, leaseMsg(4, "b"))
	checkDelivered(t, other, seen, leaseMsg(4, "b"))
	if got := retainedLease(b); got != leaseMsg(4, "b") {
		t.Errorf("retained %q", got)
	}
}

func TestBadLeasePayloadsDropped(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, admin, ctl), Clock: newFakeClock()})
	seen := observe(t, b)
	c := mustConnect(t, b, ctl, "ctl")
	publish(t, c, protocol.LeaseTopic, true, leaseMsg(1, "a"))
	for _, bad := range []string{
		"", " ", "{", "null", "[]", `"lease"`, strings.Repeat("x", 64<<10),
		`{"v":2,"term":2,"holder":"b","ttl_ms":1000}`,
		`{"v":1,"term":2,"holder":"b"}`,
		`{"v":1,"term":2,"holder":"b","ttl_ms":-1}`,
		`{"v":1,"term":2,"holder":"b","ttl_ms":9223372036854775807}`,
		`{"v":1,"term":0,"holder":"b","ttl_ms":1000}`,
		`{"v":1,"term":-2,"holder":"b","ttl_ms":1000}`,
		`{"v":1,"term":"2","holder":"b","ttl_ms":1000}`,
		`{"v":1,"term":2,"holder":"","ttl_ms":1000}`,
		`{"v":1,"term":2,"holder":7,"ttl_ms":1000}`,
	} {
		publish(t, c, protocol.LeaseTopic, true, bad)
	}
	checkDelivered(t, c, seen, leaseMsg(1, "a"))
	if got := retainedLease(b); got != leaseMsg(1, "a") {
		t.Errorf("retained %q", got)
	}
	if !strings.Contains(log.String(), "lease message dropped") {
		t.Errorf("bad payloads not logged:\n%s", log.String())
	}
	// The lease still works.
	publish(t, c, protocol.LeaseTopic, false, leaseMsg(1, "a"))
	publish(t, c, protocol.LeaseTopic, true, leaseMsg(2, "a"))
	checkDelivered(t, c, seen, leaseMsg(1, "a"), leaseMsg(2, "a"))
}

func TestNoLeaseArbiter(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin, ctl), NoLeaseArbiter: true})
	seen := observe(t, b)
	c := mustConnect(t, b, ctl, "ctl")
	publish(t, c, protocol.LeaseTopic, true, leaseMsg(2, "a"))
	publish(t, c, protocol.LeaseTopic, true, leaseMsg(2, "b"))
	publish(t, c, protocol.SessionStateTopic("home"), true, stateMsg(1))
	publish(t, c, protocol.LeaseTopic, true, "{")
	checkDelivered(t, c, seen, leaseMsg(2, "a"), leaseMsg(2, "b"), stateMsg(1), "{")
}

// FuzzLeaseArbiter feeds arbitrary payloads to the arbiter's topics: it
// must never panic, and a dropped message must leave the lease as it was.
func FuzzLeaseArbiter(f *testing.F) {
	for _, s := range []string{leaseMsg(1, "a"), leaseMsg(2, "b"), stateMsg(1), "", "{", `{"v":1,"term":1e30}`, `{"term":null}`} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, payload string, topic uint8) {
		a := newLeaseArbiter(newFakeClock(), slog.New(slog.DiscardHandler), []byte(payload))
		topics := []string{protocol.LeaseTopic, protocol.SessionStateTopic("home"), protocol.PlaylistTopic("home")}
		cl := &mqtt.Client{ID: "fuzz"}
		for _, p := range []string{leaseMsg(5, "x"), payload} {
			before := currentLease(a)
			_, err := a.OnPublish(cl, packets.Packet{TopicName: topics[int(topic)%len(topics)], Payload: []byte(p)})
			if after := currentLease(a); err != nil && after != before {
				t.Errorf("dropped %q changed the lease from %+v to %+v", p, before, after)
			}
		}
	})
}

// currentLease returns a copy of the arbiter's lease; the zero value if none.
func currentLease(a *leaseArbiter) heldLease {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lease == nil {
		return heldLease{}
	}
	return *a.lease
}

// TestOnlyControllersClaim: an admin's lease claim is dropped, and no one
// may leave a last will on the lease topic (a will skips the arbiter): an
// admin's will of term 1000 was once retained when it died, and the
// controllers then counted terms from 1000.
func TestOnlyControllersClaim(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin, ctl), Clock: newFakeClock()})
	seen := observe(t, b)
	adminC := mustConnect(t, b, admin, "alice-laptop")
	publish(t, adminC, protocol.LeaseTopic, true, leaseMsg(1000, "admin"))
	checkDelivered(t, adminC, seen)
	if got := retainedLease(b); got != "" {
		t.Errorf("retained lease %s after an admin's claim", got)
	}

	willOnLease := func(o *paho.ClientOptions) { o.SetWill(protocol.LeaseTopic, leaseMsg(1000, "admin"), 1, true) }
	if _, err := connect(t, b, admin, "alice-will", willOnLease); err == nil {
		t.Error("an admin connected with a last will on the lease topic")
	}
	if _, err := connect(t, b, ctl, "ctl-will", willOnLease); err == nil {
		t.Error("a controller connected with a last will on the lease topic")
	}

	c := mustConnect(t, b, ctl, "ctl-a")
	publish(t, c, protocol.LeaseTopic, false, leaseMsg(1, "a"))
	checkDelivered(t, c, seen, leaseMsg(1, "a"))
	if got := retainedLease(b); got != leaseMsg(1, "a") {
		t.Errorf("retained lease %s, want the controller's term 1", got)
	}
}
