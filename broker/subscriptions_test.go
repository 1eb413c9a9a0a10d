package broker

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/protocol"
)

// subscribeMany subscribes c to filters in SUBSCRIBE packets of batch
// filters each and returns how many the broker granted. A refusal must be
// 0x80, the one failure code of MQTT 3.1.1.
func subscribeMany(t *testing.T, c paho.Client, filters []string, batch int) (granted int) {
	t.Helper()
	none := func(paho.Client, paho.Message) {}
	for len(filters) > 0 {
		n := min(batch, len(filters))
		want := make(map[string]byte, n)
		for _, f := range filters[:n] {
			want[f] = 1
		}
		filters = filters[n:]
		tok := c.SubscribeMultiple(want, none)
		if !tok.WaitTimeout(testWait) {
			t.Fatal("no SUBACK")
		}
		if err := tok.Error(); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		for f, code := range tok.(*paho.SubscribeToken).Result() {
			switch code {
			case 0, 1:
				granted++
			case 0x80:
			default:
				t.Fatalf("subscribe %s: SUBACK %#x", f, code)
			}
		}
	}
	return granted
}

// numbered returns n filters made of format and a number.
func numbered(format string, n int) []string {
	filters := make([]string, n)
	for i := range filters {
		filters[i] = fmt.Sprintf(format, i)
	}
	return filters
}

// The attack: a member subscribes to 10,000 distinct filters, in SUBSCRIBE
// packets of 100 and then in one packet of 5,000. The broker grants
// MaxSubscriptions of them and refuses the rest in the SUBACK, keeping the
// connection; the heap stays flat, the refusals are logged about once a
// second, and another user's round trips go on meanwhile. The attacker may
// still renew a filter it holds, and subscribe anew once it unsubscribed.
func TestSubscriptionsCapped(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, admin, bob)})
	attacker := mustConnect(t, b, bob, "bob")
	heapBefore := heapInUse()
	stopProbe := probeOthers(t, b, admin)

	start := time.Now()
	filters := numbered("bob/filter/%d/+/#", 10000)
	granted := subscribeMany(t, attacker, filters[:5000], 100)
	granted += subscribeMany(t, attacker, filters[5000:], 5000)
	took := time.Since(start)
	stopProbe()
	heapAfter := heapInUse()

	if granted != MaxSubscriptions {
		t.Errorf("granted %d of %d filters, want %d", granted, len(filters), MaxSubscriptions)
	}
	if held := b.server.Topics.Subscribers("bob/filter/1/x/y").Subscriptions; len(held) != 1 {
		t.Errorf("the topic tree has %d subscribers of bob/filter/1/x/y, want the attacker", len(held))
	}
	if n := int(b.server.Info.Subscriptions); n > MaxSubscriptions+1 { // the probe's own
		t.Errorf("the broker counts %d subscriptions", n)
	}
	t.Logf("10,000 filters subscribed in %v: %d granted; heap in use %d KB before, %d KB after", took, granted, heapBefore>>10, heapAfter>>10)
	if heapAfter > heapBefore+8<<20 {
		t.Errorf("heap grew from %d KB to %d KB", heapBefore>>10, heapAfter>>10)
	}
	lines := strings.Count(log.String(), "over the subscription cap")
	if limit := int(took/refusalLogInterval) + 1; lines == 0 || lines > limit {
		t.Errorf("%d refusal lines in %v, want 1 to %d", lines, took, limit)
	}

	// The connection still works: a held filter is renewed and delivers.
	if !attacker.IsConnectionOpen() {
		t.Fatal("the attacker was disconnected")
	}
	held := "bob/filter/0/+/#"
	if code := trySubscribe(t, attacker, held, func(paho.Client, paho.Message) {}); code != 1 {
		t.Errorf("renewing a held filter: SUBACK %#x, want 1", code)
	}
	got := subscribe(t, attacker, held) // renewed again, with a handler that records
	publish(t, attacker, "bob/filter/0/x/y", false, "still here")
	if m := receive(t, got); m.payload != "still here" {
		t.Errorf("got %+v", m)
	}
	// A new filter only once one is given up.
	if code := trySubscribe(t, attacker, "bob/new", func(paho.Client, paho.Message) {}); code != 0x80 {
		t.Errorf("a new filter at the cap: SUBACK %#x, want 0x80", code)
	}
	if tok := attacker.Unsubscribe(held); !tok.WaitTimeout(testWait) || tok.Error() != nil {
		t.Fatalf("unsubscribe: %v", tok.Error())
	}
	subscribe(t, attacker, "bob/new")
}

// A member subscribing to thousands of filters it may not read is refused
// each of them, and the refusals are logged about once a second, not once
// per filter.
func TestForbiddenSubscriptionsLoggedOncePerSecond(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, admin, bob)})
	c := mustConnect(t, b, bob, "bob")
	start := time.Now()
	if granted := subscribeMany(t, c, numbered(protocol.UserReplyTopic("eve")+"/%d", 2000), 100); granted != 0 {
		t.Errorf("granted %d of another user's reply topics", granted)
	}
	took := time.Since(start)
	lines := strings.Count(log.String(), "mqtt subscription refused")
	if limit := int(took/refusalLogInterval) + 1; lines == 0 || lines > limit {
		t.Errorf("%d refusal lines in %v, want 1 to %d", lines, took, limit)
	}
}

// The attack: a member keeps sessions that are not clean under six client
// ids, each subscribing to MaxSubscriptions filters and disconnecting: the
// broker keeps such a session's filters. Together they are granted
// MaxUserSubscriptions, then the member's connections get no new filter,
// while another user still subscribes and its round trips go on. A clean
// connection under one of the ids ends that session and frees its share;
// one that is not clean takes a session's filters over without counting
// them twice.
func TestUserSubscriptionsCapped(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin, bob)})
	stopProbe := probeOthers(t, b, admin)
	kept := func(o *paho.ClientOptions) { o.SetCleanSession(false) }
	const sessions = 6
	granted := 0
	for i := range sessions {
		c, err := connect(t, b, bob, fmt.Sprint("bob-kept-", i), kept)
		if err != nil {
			t.Fatal(err)
		}
		granted += subscribeMany(t, c, numbered(fmt.Sprintf("bob/%d/%%d", i), MaxSubscriptions), MaxSubscriptions)
		c.Disconnect(250)
	}
	if granted != MaxUserSubscriptions {
		t.Errorf("%d sessions of %d filters: granted %d, want %d", sessions, MaxSubscriptions, granted, MaxUserSubscriptions)
	}
	if n := int(b.server.Info.Subscriptions); n > MaxUserSubscriptions+1 { // the probe's own
		t.Errorf("the broker counts %d subscriptions", n)
	}
	online := mustConnect(t, b, bob, "bob-online")
	none := func(paho.Client, paho.Message) {}
	if code := trySubscribe(t, online, "bob/online", none); code != 0x80 {
		t.Errorf("a new filter of a user at the cap: SUBACK %#x, want 0x80", code)
	}
	subscribe(t, mustConnect(t, b, admin, "alice-2"), "alice/new")
	stopProbe()

	mustConnect(t, b, bob, "bob-kept-0") // clean: the kept session ends
	// A kept session taken over by a connection that is not clean either
	// passes its filters on: they count once.
	if _, err := connect(t, b, bob, "bob-kept-1", kept); err != nil {
		t.Fatal(err)
	}
	if granted := subscribeMany(t, online, numbered("bob/online/%d", MaxSubscriptions+1), MaxSubscriptions+1); granted != MaxSubscriptions {
		t.Errorf("once a kept session ended: granted %d new filters, want %d", granted, MaxSubscriptions)
	}
}

// Eight connections of one member subscribe to MaxSubscriptions filters
// each at the same moment: the member is granted MaxUserSubscriptions
// together, not more.
func TestUserSubscriptionsCappedConcurrently(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, bob)})
	const conns = 8
	clients := make([]paho.Client, conns)
	for i := range clients {
		clients[i] = mustConnect(t, b, bob, fmt.Sprint("bob-", i))
	}
	granted := make([]int, conns)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			granted[i] = subscribeMany(t, c, numbered(fmt.Sprintf("bob/%d/%%d", i), MaxSubscriptions), MaxSubscriptions)
		})
	}
	wg.Wait()
	total := 0
	for _, n := range granted {
		total += n
	}
	if total != MaxUserSubscriptions {
		t.Errorf("granted %d filters to %d connections (%v), want %d", total, conns, granted, MaxUserSubscriptions)
	}
}
