package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/broker"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

// statusBar is how long a member's status may take while another member
// floods: the bar of a command's round trip (SPEC section 3: command to
// sound within 100 ms).
const statusBar = 100 * time.Millisecond

// floodConns is how many connections the flooding member opens.
const floodConns = 10

// TestFloodFromOneMember: alice floods status from ten connections, once
// paced just under the broker's limit for one user and once all at once.
// Her requests get through the broker at one user's rate, not ten; each one
// the controller receives is answered (or refused as rate limited); bob's
// status is answered within the bar throughout; and the lease, with a
// standby waiting, never changes hands.
func TestFloodFromOneMember(t *testing.T) {
	s := newSecureSystem(t)
	certDir := filepath.Join(s.dir, "certs")
	startController(t, "controller-b", "controller", "--broker", s.tlsURL(), "--ca", s.ca, "--name", "b",
		"--user", "controller", "--password-file", s.passwordFile("controller"), "--users", s.users,
		"--data", filepath.Join(s.dir, "controller-b"), "--http", "127.0.0.1:0", "--https", "--certs", certDir)

	leases := newLeaseWatch(t, s)
	testwait.For(t, "a lease holder", 20*time.Second, func() bool { return leases.holder() != "" })

	bob := newMember(t, s, "bob", "bob")
	testwait.For(t, "the controller to answer bob", 20*time.Second, func() bool {
		_, err := bob.ask("status", 2*time.Second)
		return err == nil
	})
	alice := make([]*member, floodConns)
	for i := range alice {
		alice[i] = newMember(t, s, "alice", fmt.Sprint("alice-", i))
	}
	holder, term, seen := leases.holder(), leases.term(), leases.count()

	// bob asks for status every 50 ms while alice floods.
	measure := func(flood func()) []time.Duration {
		stop := make(chan struct{})
		done := make(chan []time.Duration)
		go func() {
			var took []time.Duration
			for {
				select {
				case <-stop:
					done <- took
					return
				case <-time.After(50 * time.Millisecond):
				}
				d, err := bob.ask("status", 5*time.Second)
				if err != nil {
					t.Errorf("bob's status during the flood: %v", err)
				}
				took = append(took, d)
			}
		}()
		flood()
		close(stop)
		return <-done
	}
	checkBob := func(phase string, took []time.Duration) {
		t.Helper()
		slices.Sort(took)
		if len(took) < 10 {
			t.Fatalf("%s: bob asked only %d times", phase, len(took))
		}
		// Every one was answered (ask fails the test otherwise). The
		// slowest meet the scheduling hiccups of a shared, loaded 2-core
		// machine (a few hundred ms, flood or not); the typical one makes
		// the bar.
		if p := took[len(took)/2]; p > statusBar {
			t.Errorf("%s: bob's status p50 %v over %v (all: %v)", phase, p, statusBar, took)
		}
		t.Logf("%s: bob's status n=%d p50=%v p95=%v max=%v", phase, len(took), took[len(took)/2], took[len(took)*95/100], took[len(took)-1])
	}

	// Paced: 10 connections x 15/s, under the broker's limit for one user
	// and far over the controller's: every request is answered.
	const pacedRate, pacedFor = 15, 3 * time.Second
	took := measure(func() {
		var wg sync.WaitGroup
		for _, a := range alice {
			wg.Go(func() {
				tick := time.NewTicker(time.Second / pacedRate)
				defer tick.Stop()
				for range pacedRate * pacedFor / time.Second {
					<-tick.C
					a.send("status")
				}
			})
		}
		wg.Wait()
	})
	checkBob("paced flood", took)
	sent := floodConns * pacedRate * int(pacedFor/time.Second)
	testwait.For(t, "every paced request to be answered", 10*time.Second, func() bool { return answered(alice) == sent })
	ok, limited, other := tally(alice)
	t.Logf("paced flood: %d sent, %d answered, %d refused as rate limited", sent, ok, limited)
	if other != nil || limited == 0 || ok == 0 {
		t.Errorf("paced flood: %d answered, %d rate limited, other replies %v", ok, limited, other)
	}

	// All at once: 10 connections x 200. Through the broker go one user's
	// burst and rate, not ten times that.
	for _, a := range alice {
		a.reset()
	}
	const burst = 200
	var floodTime time.Duration
	took = measure(func() {
		start := time.Now()
		var wg sync.WaitGroup
		for _, a := range alice {
			wg.Go(func() {
				for range burst {
					a.send("status")
				}
			})
		}
		wg.Wait()
		floodTime = time.Since(start)
		time.Sleep(time.Second) // bob keeps asking while the controller works through it
	})
	checkBob("flood", took)
	// Wait for the replies to stop coming.
	last := -1
	for n := answered(alice); n != last; n = answered(alice) {
		last = n
		time.Sleep(500 * time.Millisecond)
	}
	ok, limited, other = tally(alice)
	through := ok + limited
	maxThrough := broker.DefaultPublishBurst + int(broker.DefaultPublishRate*(floodTime.Seconds()+0.5))
	t.Logf("flood: %d sent in %v, %d through the broker (at most %d): %d answered, %d refused as rate limited",
		floodConns*burst, floodTime, through, maxThrough, ok, limited)
	if other != nil || through == 0 || through > maxThrough {
		t.Errorf("flood: %d answered, %d rate limited (at most %d may pass the broker), other replies %v", ok, limited, maxThrough, other)
	}

	if changes := leases.changesSince(seen, holder, term); changes != nil || leases.count() == seen {
		t.Errorf("the lease of %s (term %d) changed hands, or was not renewed: %v", holder, term, changes)
	}
}

func connect(c paho.Client) error {
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("no answer from the broker")
	}
	return tok.Error()
}

// member is one connection of a member, with its own reply topic.
type member struct {
	t       *testing.T
	client  paho.Client
	user    string
	replyTo string
	mu      sync.Mutex
	replies map[string]protocol.Reply // by request id
	nextID  int
	arrived chan string // request ids, as replies arrive
}

func newMember(t *testing.T, s *secureSystem, user, clientID string) *member {
	t.Helper()
	m := &member{t: t, user: user, replyTo: protocol.DefaultReplyTopic + "/" + user + "/" + clientID,
		replies: map[string]protocol.Reply{}, arrived: make(chan string, 10000)}
	m.client = paho.NewClient(mqttclient.Options(s.brokerURL(), clientID, user, s.passwords[user]).SetAutoReconnect(false))
	if err := connect(m.client); err != nil {
		t.Fatalf("%s connects: %v", clientID, err)
	}
	t.Cleanup(func() { m.client.Disconnect(100) })
	err := mqttclient.Subscribe(m.client, map[string]byte{m.replyTo: 1}, func(_ paho.Client, msg paho.Message) {
		var r protocol.Reply
		if json.Unmarshal(msg.Payload(), &r) != nil {
			return
		}
		m.mu.Lock()
		m.replies[r.ReqID] = r
		m.mu.Unlock()
		select {
		case m.arrived <- r.ReqID:
		default:
		}
	}, 10*time.Second)
	if err != nil {
		t.Fatalf("%s subscribes: %v", clientID, err)
	}
	return m
}

// send publishes a request to home, signed, without waiting for anything;
// it returns the request id.
func (m *member) send(cmd string) string {
	m.mu.Lock()
	m.nextID++
	id := fmt.Sprintf("%s-%d", m.replyTo, m.nextID)
	m.mu.Unlock()
	payload := fmt.Sprintf(`{"v":1,"cmd":%q,"req_id":%q,"reply_to":%q}`, cmd, id, m.replyTo)
	m.client.Publish(protocol.UserTopic(protocol.SessionCommandTopic(protocol.DefaultSession), m.user), 0, false, payload)
	return id
}

// ask sends a request and waits for its reply, which must be OK.
func (m *member) ask(cmd string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	id := m.send(cmd)
	deadline := time.After(timeout)
	for {
		select {
		case got := <-m.arrived:
			if got != id {
				continue
			}
			m.mu.Lock()
			r := m.replies[id]
			m.mu.Unlock()
			if !r.OK {
				return time.Since(start), fmt.Errorf("%s refused: %s", cmd, r.Error)
			}
			return time.Since(start), nil
		case <-deadline:
			return timeout, fmt.Errorf("%s: no reply within %v", cmd, timeout)
		}
	}
}

func (m *member) reset() {
	m.mu.Lock()
	m.replies = map[string]protocol.Reply{}
	m.mu.Unlock()
}

// answered counts the replies to members' requests.
func answered(ms []*member) int {
	n := 0
	for _, m := range ms {
		m.mu.Lock()
		n += len(m.replies)
		m.mu.Unlock()
	}
	return n
}

// tally sorts the replies into answered, refused as rate limited, and any
// other (which a flood of status should not get).
func tally(ms []*member) (ok, limited int, other []string) {
	for _, m := range ms {
		m.mu.Lock()
		for _, r := range m.replies {
			switch {
			case r.OK:
				ok++
			case strings.HasPrefix(r.Error, "rate limited: "):
				limited++
			default:
				other = append(other, r.Error)
			}
		}
		m.mu.Unlock()
	}
	return ok, limited, other
}

// leaseWatch records every lease message, read as admin.
type leaseWatch struct {
	mu   sync.Mutex
	msgs []protocol.Lease
}

func newLeaseWatch(t *testing.T, s *secureSystem) *leaseWatch {
	t.Helper()
	w := &leaseWatch{}
	c := paho.NewClient(mqttclient.Options(s.brokerURL(), "lease-watch", "admin", s.passwords["admin"]).SetAutoReconnect(false))
	if err := connect(c); err != nil {
		t.Fatalf("lease watch connects: %v", err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	err := mqttclient.Subscribe(c, map[string]byte{protocol.LeaseTopic: 1}, func(_ paho.Client, msg paho.Message) {
		if l, err := protocol.Decode[protocol.Lease](msg.Payload()); err == nil {
			w.mu.Lock()
			w.msgs = append(w.msgs, l)
			w.mu.Unlock()
		}
	}, 10*time.Second)
	if err != nil {
		t.Fatalf("lease watch subscribes: %v", err)
	}
	return w
}

func (w *leaseWatch) last() protocol.Lease {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.msgs) == 0 {
		return protocol.Lease{}
	}
	return w.msgs[len(w.msgs)-1]
}

func (w *leaseWatch) holder() string { return w.last().Holder }
func (w *leaseWatch) term() uint64   { return w.last().Term }

func (w *leaseWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.msgs)
}

// changesSince lists the lease messages from the n-th on that name another
// holder or term.
func (w *leaseWatch) changesSince(n int, holder string, term uint64) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, l := range w.msgs[n:] {
		if l.Holder != holder || l.Term != term {
			out = append(out, fmt.Sprintf("term %d holder %s renewal %v", l.Term, l.Holder, l.Renewal))
		}
	}
	return out
}
