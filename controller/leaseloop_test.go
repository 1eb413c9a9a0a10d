package controller

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/protocol"
)

// These tests run the session loop in a synctest bubble, on its fake clock:
// the broker is played by the test, which hands the loop the messages a
// broker would deliver (through paho's handlers) and reads what the loop
// does from what it shares with other goroutines and from its log. Nothing
// is published: the client never connects.

// delivered is an MQTT message as paho hands it to a handler.
type delivered struct {
	topic    string
	payload  []byte
	retained bool
}

func (m delivered) Duplicate() bool   { return false }
func (m delivered) Qos() byte         { return 1 }
func (m delivered) Retained() bool    { return m.retained }
func (m delivered) Topic() string     { return m.topic }
func (m delivered) MessageID() uint16 { return 0 }
func (m delivered) Payload() []byte   { return m.payload }
func (m delivered) Ack()              {}

// loopLog records the controller's log lines with the (fake) instant they
// were written at.
type loopLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *loopLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *loopLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// loopController is a controller whose session loop runs in the calling
// bubble, subscribed as far as it knows, with a client that never connects.
func loopController(t *testing.T, opts Options) (*Controller, *loopLog) {
	t.Helper()
	log := &loopLog{}
	opts.Open, opts.DataDir = true, t.TempDir()
	opts.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.listener.Close(); c.store.Close() })
	c.client = paho.NewClient(paho.NewClientOptions()) // never connected: nothing is published
	c.subscribed.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.sessionLoop(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return c, log
}

// deliverLease hands the loop a Lease as the broker delivers it.
func deliverLease(c *Controller, m protocol.Lease) {
	c.queueEvent(nil, delivered{topic: protocol.LeaseTopic, payload: protocol.Encode(m)})
}

// TestStandbyClaimsWhenTheHolderFallsSilent: a standby hearing the holder's
// renewals never claims, however long; once they stop it claims the next
// term on the first tick past one TTL of silence, not before, and takes over
// when its claim comes back.
func TestStandbyClaimsWhenTheHolderFallsSilent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = DefaultLeaseTTL
		c, log := loopController(t, Options{LeaseTTL: ttl})
		renewal := protocol.Lease{V: 1, Term: 1, Holder: "a", Renewal: true, TTLMs: ttl.Milliseconds()}
		time.Sleep(10 * time.Millisecond) // off the ticks, so nothing arrives at a tick's instant
		var last time.Time
		for range 3 * leaseRenewals { // three TTLs of renewals
			deliverLease(c, renewal)
			last = time.Now()
			time.Sleep(ttl / leaseRenewals)
			synctest.Wait()
			if strings.Contains(log.String(), "claiming") || !c.otherHolder.Load() || c.holding() {
				t.Fatalf("while the holder renews: other holder %v, holding %v:\n%s", c.otherHolder.Load(), c.holding(), log)
			}
		}

		// The holder falls silent.
		time.Sleep(time.Until(last.Add(ttl)))
		synctest.Wait()
		if strings.Contains(log.String(), "claiming") {
			t.Fatalf("claimed before a TTL of %v after the last renewal:\n%s", ttl, log)
		}
		time.Sleep(leaseTick(ttl))
		synctest.Wait()
		if !strings.Contains(log.String(), `msg="claiming the lease" term=1`) {
			t.Fatalf("no claim (of the term after 1) a tick past the TTL of silence:\n%s", log)
		}
		if c.holding() {
			t.Fatal("holding on a claim that has not come back")
		}

		deliverLease(c, protocol.Lease{V: 1, Term: 2, Holder: c.instance, TTLMs: ttl.Milliseconds()})
		synctest.Wait()
		if !c.holding() || !strings.Contains(log.String(), `msg="holding the lease" term=2`) {
			t.Fatalf("the claim came back, and holding %v:\n%s", c.holding(), log)
		}
	})
}

// TestQuorumDeadlineOnTheLocalClock: a command three speakers never
// acknowledge is answered "no quorum" at its deadline on the controller's
// clock: on the first lease tick at or after stateQuorumTimeout, not
// before. The holder's renewals come back meanwhile, as from a broker.
func TestQuorumDeadlineOnTheLocalClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = DefaultLeaseTTL
		c, log := loopController(t, Options{LeaseTTL: ttl})
		c.mu.Lock()
		for _, id := range []string{"k1", "k2", "k3"} {
			c.speakers[id] = protocol.SpeakerStatus{V: 1, ID: id, Online: true}
			c.assignments[id] = protocol.Assignment{V: 1, Speaker: id, Session: "home", Volume: 100}
		}
		c.mu.Unlock()
		// Become the holder: the lease of term 1 is ours, and our renewals
		// come back while the test runs.
		synctest.Wait()
		deliverLease(c, protocol.Lease{V: 1, Term: 1, Holder: c.instance, TTLMs: ttl.Milliseconds()})
		synctest.Wait()
		if !c.holding() {
			t.Fatal("not holding the lease after our claim came back")
		}
		ctx, stopRenewals := context.WithCancel(context.Background())
		defer stopRenewals()
		go func() {
			for ctx.Err() == nil {
				deliverLease(c, protocol.Lease{V: 1, Term: 1, Holder: c.instance, Renewal: true, TTLMs: ttl.Milliseconds()})
				select {
				case <-ctx.Done():
				case <-time.After(ttl / leaseRenewals):
				}
			}
		}()

		time.Sleep(7 * time.Millisecond) // off the ticks
		sent := time.Now()
		c.queue(c.sessionRequests)(nil, delivered{topic: protocol.SessionCommandTopic("home"), payload: []byte(`{"cmd":"volume","volume":50,"req_id":"v1"}`)})
		for time.Since(sent) < stateQuorumTimeout {
			time.Sleep(time.Millisecond)
			synctest.Wait()
			if strings.Contains(log.String(), "no quorum") {
				t.Fatalf("answered %v after the command, before its deadline of %v:\n%s", time.Since(sent), stateQuorumTimeout, log)
			}
		}
		time.Sleep(leaseTick(ttl))
		synctest.Wait()
		if !strings.Contains(log.String(), "no quorum: 0 of 3") || !strings.Contains(log.String(), "k1, k2, k3") {
			t.Fatalf("no \"no quorum\" reply a tick past the deadline:\n%s", log)
		}
		if !c.holding() {
			t.Error("lost the lease meanwhile")
		}
	})
}
