package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

// fakeSpeakers are speakers reduced to what the controller sees of them:
// retained statuses, and acks of the states and songs they are sent.
type fakeSpeakers struct {
	t      *testing.T
	client paho.Client
	mu     sync.Mutex
	acking map[string]bool
}

func newFakeSpeakers(t *testing.T, broker string, ids ...string) *fakeSpeakers {
	t.Helper()
	return newFakeSpeakersIn(t, broker, protocol.DefaultSession, ids...)
}

// newFakeSpeakersIn starts fake speakers whose statuses ask for session.
func newFakeSpeakersIn(t *testing.T, broker, session string, ids ...string) *fakeSpeakers {
	t.Helper()
	f := &fakeSpeakers{t: t, acking: map[string]bool{}}
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("fake-speakers-%d", time.Now().UnixNano())).
		SetProtocolVersion(4).SetAutoReconnect(false)
	f.client = paho.NewClient(opts)
	if tok := f.client.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { f.client.Disconnect(100) })
	for _, id := range ids {
		f.acking[id] = true
		st := protocol.SpeakerStatus{V: 1, ID: id, Online: true, Instance: "i-" + id, Session: session, Volume: 100}
		if tok := f.client.Publish(protocol.SpeakerStatusTopic(id), 1, true, protocol.Encode(st)); !tok.WaitTimeout(waitTimeout) {
			t.Fatal("speaker status not sent")
		}
	}
	ack := func(a protocol.Ack) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for id, on := range f.acking {
			if on {
				f.client.Publish(protocol.AckTopic(id), 1, false, protocol.Encode(a))
			}
		}
	}
	sub := func(filter string, h paho.MessageHandler) {
		if err := mqttclient.Subscribe(f.client, map[string]byte{filter: 1}, h, waitTimeout); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	sub(protocol.SessionStateFilter, func(_ paho.Client, m paho.Message) {
		if st, err := protocol.Decode[protocol.SessionState](m.Payload()); err == nil {
			ack(protocol.Ack{V: 1, Session: st.Session, Term: st.Term, Seq: st.Seq})
		}
	})
	sub(protocol.LibrarySongFilter, func(_ paho.Client, m paho.Message) {
		if song, err := protocol.Decode[protocol.Song](m.Payload()); err == nil && !m.Retained() {
			ack(protocol.Ack{V: 1, Song: song.SHA256})
		}
	})
	return f
}

// setAcking turns a speaker's acks on or off (a dead or partitioned speaker).
func (f *fakeSpeakers) setAcking(id string, on bool) {
	f.mu.Lock()
	f.acking[id] = on
	f.mu.Unlock()
}

func TestQuorumOfSpeakers(t *testing.T) {
	broker := startBroker(t)
	c, _ := startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir()})
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic)
	speakers := newFakeSpeakers(t, broker, "k1", "k2", "k3")
	testwait.For(t, "the speakers to be known", waitTimeout, func() bool { return len(c.speakersOf("home")) == 3 })

	// A load is answered once a majority of the nodes (the controller and
	// the speakers) hold the song: 3 of 4.
	wav := makeWAV(8000, 8000, 3)
	song := upload(t, c, wav, "one")
	reply := tc.request(protocol.LibraryCommandTopic, protocol.DefaultReplyTopic, "l1", `{"cmd":"load","song":"`+song.SHA256+`","req_id":"l1"}`)
	var loaded loadResult
	if !reply.OK || json.Unmarshal(reply.Result, &loaded) != nil || loaded.Holders < 3 || loaded.Nodes != 4 || loaded.SHA256 != song.SHA256 {
		t.Fatalf("load: %+v %+v", reply, loaded)
	}

	res := tc.cmd("e1", `{"cmd":"enqueue","song":"`+song.SHA256+`","req_id":"e1"}`)
	if res.Acked < 2 || res.Speakers != 3 {
		t.Fatalf("enqueue acked by %d of %d", res.Acked, res.Speakers)
	}

	// One of three down (f = 1): the quorum holds.
	speakers.setAcking("k3", false)
	res = tc.cmd("p1", `{"cmd":"play","req_id":"p1"}`)
	if res.Acked != 2 || res.Speakers != 3 {
		t.Fatalf("play with one speaker down acked by %d of %d", res.Acked, res.Speakers)
	}

	// Two of three down: the reply says the quorum was missed, and who.
	speakers.setAcking("k2", false)
	start := time.Now()
	reply = tc.request(protocol.SessionCommandTopic("home"), protocol.DefaultReplyTopic, "p2", `{"cmd":"pause","req_id":"p2"}`)
	if reply.OK || !strings.Contains(reply.Error, "no quorum: 1 of 3") || !strings.Contains(reply.Error, "k2, k3") {
		t.Fatalf("pause without quorum: %+v", reply)
	}
	if waited := time.Since(start); waited < stateQuorumTimeout-100*time.Millisecond {
		t.Errorf("the shortfall was reported after %v, before the deadline", waited)
	}
	// The state changed anyway: the speakers that hear it pause.
	var st protocol.SessionState
	if json.Unmarshal(retained(t, broker, protocol.SessionStateTopic("home")), &st); st.State != protocol.Paused {
		t.Errorf("state after an unconfirmed pause: %s", st.State)
	}
}

func TestFailoverToStandby(t *testing.T) {
	broker := startBroker(t) // a plain broker: no lease arbitration, as with Mosquitto
	ttl := 600 * time.Millisecond
	optsA := Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "a", LeaseTTL: ttl}
	a, stopA := startController(t, optsA)
	optsB := Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "b", LeaseTTL: ttl}
	b, _ := runController(t, optsB)
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic, protocol.SessionStateTopic("home"), protocol.LeaseTopic)
	newFakeSpeakers(t, broker, "f1")
	first := assignmentIs(t, broker, "f1", "home")

	songs := []protocol.Song{upload(t, a, makeWAV(8000*30, 8000, 1), "one"), upload(t, a, makeWAV(8000*30, 8000, 2), "two")}
	for i, s := range songs {
		id := fmt.Sprint("e", i)
		tc.request(protocol.LibraryCommandTopic, protocol.DefaultReplyTopic, "l"+id, `{"cmd":"load","song":"`+s.SHA256+`","req_id":"l`+id+`"}`)
		tc.cmd(id, `{"cmd":"enqueue","song":"`+s.SHA256+`","req_id":"`+id+`"}`)
	}
	played := tc.cmd("p", `{"cmd":"play","req_id":"p"}`)
	if b.holding() {
		t.Fatal("two controllers lead")
	}

	// The standby mirrors the song files (it serves them) before A goes.
	for _, s := range songs {
		testwait.For(t, "the standby to mirror "+s.Title, waitTimeout, func() bool {
			resp, _ := do(t, http.MethodGet, b.SongsURL()+s.SHA256, nil, "Authorization", "Bearer "+a.tokens.get())
			return resp.StatusCode == http.StatusOK
		})
	}
	testwait.For(t, "the standby to mirror the state", waitTimeout, func() bool {
		st := openTestStore(t, optsB.DataDir)
		defer st.Close()
		all, err := st.sessions()
		return err == nil && all["home"].State.Seq == played.State.Seq
	})

	stopA() // its offline status tells B at once
	took := time.Now()
	testwait.For(t, "the standby to take over", waitTimeout, b.holding)
	if d := time.Since(took); d > 2*time.Second {
		t.Errorf("takeover took %v", d)
	}
	var st protocol.SessionState
	tc.next(protocol.SessionStateTopic("home"), func(p []byte) bool {
		return json.Unmarshal(p, &st) == nil && st.Term > played.State.Term
	})
	want := played.State
	want.Term, want.Seq = st.Term, st.Seq
	if st != want || st.Seq < played.State.Seq {
		t.Fatalf("state under the new term %+v\nwant %+v", st, want)
	}

	// B keeps the speakers' assignments, under its term.
	testwait.For(t, "the assignment under the new term", waitTimeout, func() bool {
		var a protocol.Assignment
		return json.Unmarshal(retained(t, broker, protocol.AssignTopic("f1")), &a) == nil &&
			a.Term == st.Term && a.Term > first.Term && a.Session == "home"
	})

	// B answers now, and continues the entry ids.
	res := tc.cmd("e3", `{"cmd":"enqueue","song":"`+songs[0].SHA256+`","req_id":"e3"}`)
	if res.Entry != "e3" || res.State.Term != st.Term {
		t.Fatalf("enqueue on the new holder: %+v", res)
	}

	// A comes back (same store, new process): it stays a standby, and B's
	// state stays the one retained.
	leases := newTestClient(t, broker, protocol.LeaseTopic)
	a2, _ := runController(t, optsA)
	holderStays(t, leases, "b", 3*leaseRenewals)
	if a2.holding() || !b.holding() {
		t.Fatalf("after A returned: A leads %v, B leads %v", a2.holding(), b.holding())
	}

	// A stale state published by a deposed holder is put right by B.
	stale := played.State
	tc.mqtt.Publish(protocol.SessionStateTopic("home"), 1, true, protocol.Encode(stale)).WaitTimeout(waitTimeout)
	testwait.For(t, "the holder to put its state back", waitTimeout, func() bool {
		var got protocol.SessionState
		return json.Unmarshal(retained(t, broker, protocol.SessionStateTopic("home")), &got) == nil && got.Term == res.State.Term
	})
}

// TestCommandBehindClaimObeyed: a client that saw a standby's claim go by
// and sends a command at once reaches that controller after the claim, on
// the one broker connection. The command must be obeyed by the new holder,
// not dropped as if it had come to a standby. Every round queues the claim
// and the command before the session loop looks.
func TestCommandBehindClaimObeyed(t *testing.T) {
	for round := range 20 {
		c, err := New(Options{Open: true, DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		c.client = paho.NewClient(paho.NewClientOptions()) // never connected: nothing is published
		claim := protocol.Lease{V: protocol.Version, Term: 1, Holder: c.instance, TTLMs: DefaultLeaseTTL.Milliseconds()}
		c.lease.role, c.lease.claimTerm, c.lease.claimedAt = claiming, claim.Term, time.Now()
		volume := 30 + round
		req := fmt.Sprintf(`{"v":1,"cmd":"volume","volume":%d,"req_id":"r%d"}`, volume, round)
		c.sessionEvents.push(inbound{topic: protocol.LeaseTopic, payload: protocol.Encode(claim)})
		c.sessionRequests.push(inbound{topic: protocol.SessionCommandTopic(protocol.DefaultSession), payload: []byte(req)})

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.sessionLoop(ctx) }()
		if !testwait.Until(5*time.Second, func() bool {
			all, err := c.store.sessions()
			if err != nil {
				t.Fatal(err)
			}
			return all[protocol.DefaultSession].State.Volume == volume
		}) {
			t.Fatalf("round %d: the command queued behind our claim was not obeyed (leading %v)", round, c.holding())
		}
		cancel()
		<-done
		c.store.Close()
		c.listener.Close()
	}
}

// TestRequestsWhileNotLeading: a controller that does not hold the lease
// leaves requests to the holder it hears renewing, and answers them with an
// error to retry once nobody holds the lease (here: the holder's last will
// came), rather than dropping them unanswered.
func TestRequestsWhileNotLeading(t *testing.T) {
	broker := startBroker(t)
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic)
	c, err := New(Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.listener.Close()
	defer c.store.Close()
	c.client = paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetProtocolVersion(4))
	if tok := c.client.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.client.Disconnect(100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.sessionLoop(ctx) }()
	defer func() { cancel(); <-done }()

	home := protocol.SessionCommandTopic(protocol.DefaultSession)
	request := func(id string) inbound {
		return inbound{topic: home, payload: []byte(`{"v":1,"cmd":"status","req_id":"` + id + `"}`)}
	}
	queued := func() int {
		c.sessionRequests.mu.Lock()
		defer c.sessionRequests.mu.Unlock()
		return len(c.sessionRequests.items)
	}
	other := protocol.Lease{V: protocol.Version, Term: 1, Holder: "other", Renewal: true, TTLMs: DefaultLeaseTTL.Milliseconds()}
	c.sessionEvents.push(inbound{topic: protocol.LeaseTopic, payload: protocol.Encode(other)})
	c.sessionRequests.push(request("to-the-holder"))
	testwait.For(t, "the request to be handled", waitTimeout, func() bool { return queued() == 0 })

	will := protocol.ControllerStatus{V: protocol.Version, Online: false, Instance: "other"}
	c.sessionEvents.push(inbound{topic: protocol.ControllerStatusTopic, payload: protocol.Encode(will)})
	c.sessionRequests.push(request("nobody-holds"))
	var r protocol.Reply
	tc.next(protocol.DefaultReplyTopic, func(b []byte) bool { return json.Unmarshal(b, &r) == nil })
	// Replies go out in the order the requests are handled: a reply to the
	// first would have come first.
	if r.ReqID != "nobody-holds" || r.OK || r.Error != ErrNoHolder.Error() {
		t.Fatalf("first reply: %+v; want only the second request answered, with %q", r, ErrNoHolder)
	}
}

// holderStays reads the lease topic (leases subscribes to it alone) until
// the controller named holder has renewed the lease renewals times, and
// fails on a lease of any other under a higher term in between: a
// controller that came back had that many renewal intervals to take the
// lease, and did not. (A message of another under an older or the same
// term, such as a claim a cut-off client sends again on reconnecting,
// loses to the holder's and takes nothing.)
func holderStays(t *testing.T, leases *testClient, holder string, renewals int) {
	t.Helper()
	// The holder's term is known from its renewals; a message of another
	// may come first (a claim held back in a cut-off connection can reach
	// the broker before our subscription's retained lease reaches us).
	var term uint64
	var others []protocol.Lease
	for seen := 0; seen < renewals; {
		var l protocol.Lease
		leases.next(protocol.LeaseTopic, func(b []byte) bool { return json.Unmarshal(b, &l) == nil })
		if l.Name != holder {
			others = append(others, l)
			continue
		}
		term = max(term, l.Term)
		if l.Renewal {
			seen++
		}
	}
	for _, l := range others {
		if l.Term > term {
			t.Fatalf("%q published a lease of term %d while %q held it (term %d): %+v", l.Name, l.Term, holder, term, l)
		}
	}
}
