package broker

import (
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"golang.org/x/crypto/bcrypt"
)

// clientFrom is a client connecting from remote, as logins sees it.
func clientFrom(remote string) *mqtt.Client {
	return &mqtt.Client{Net: mqtt.ClientConnection{Remote: remote}}
}

func TestLoginThrottle(t *testing.T) {
	clock := newFakeClock()
	users, err := newUserDirectory(writeUsers(t, bob), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	log := new(syncBuffer)
	l := newLogins(users, clock, slog.New(slog.NewTextHandler(log, nil)))
	guesser, other := clientFrom("192.168.1.66:40000"), clientFrom("192.168.1.20:40000")
	throttled := func(reason string) bool { return reason == loginThrottled }

	for i := range loginFreeFailures {
		if reason := l.verify(guesser, bob.name, []byte(fmt.Sprint("guess", i))); reason != "wrong password" {
			t.Fatalf("guess %d: %q, want wrong password", i, reason)
		}
	}
	// Now the source waits, whatever it sends: the right password too, or
	// another port of the same address.
	if reason := l.verify(guesser, bob.name, []byte(bob.password)); !throttled(reason) {
		t.Errorf("right password from the throttled source: %q, want throttled", reason)
	}
	if reason := l.verify(clientFrom("192.168.1.66:40001"), "mallory", []byte("x")); !throttled(reason) {
		t.Errorf("another port of the throttled source: %q, want throttled", reason)
	}
	// Refusals without a check are logged once a second at most.
	for range 100 {
		l.verify(guesser, bob.name, []byte("guess"))
	}
	if n := strings.Count(log.String(), "refused unchecked"); n != 1 {
		t.Errorf("%d log lines for 102 refusals within a second, want 1:\n%s", n, log.String())
	}
	// Another address is not locked out.
	if reason := l.verify(other, bob.name, []byte(bob.password)); reason != "" {
		t.Errorf("bob from another address: %q", reason)
	}

	// Each further failure doubles the wait, up to loginBackoffMax.
	wait := loginBackoffBase
	for range 10 {
		clock.Advance(wait - time.Millisecond)
		if reason := l.verify(guesser, bob.name, []byte("guess")); !throttled(reason) {
			t.Fatalf("a millisecond before the end of a %v wait: %q", wait, reason)
		}
		clock.Advance(time.Millisecond)
		if reason := l.verify(guesser, bob.name, []byte("guess")); reason != "wrong password" {
			t.Fatalf("after a %v wait: %q, want the password checked", wait, reason)
		}
		wait = min(2*wait, loginBackoffMax)
	}
	if wait != loginBackoffMax {
		t.Errorf("wait after 15 failures %v, want the cap %v", wait, loginBackoffMax)
	}
	// A success does not clear the failures, so an account of one's own
	// does not reset the count between guesses.
	clock.Advance(wait)
	if reason := l.verify(guesser, bob.name, []byte(bob.password)); reason != "" {
		t.Fatalf("right password after the wait: %q", reason)
	}
	if reason := l.verify(guesser, bob.name, []byte("guess")); reason != "wrong password" {
		t.Fatalf("guess after the wait: %q, want the password checked", reason)
	}
	if reason := l.verify(guesser, bob.name, []byte("guess")); !throttled(reason) {
		t.Errorf("second guess after a success: %q, want throttled (a success cleared the failures)", reason)
	}
	// Failures are forgotten loginFailureMemory after the last one.
	clock.Advance(loginFailureMemory)
	for i := range loginFreeFailures {
		if reason := l.verify(guesser, "mallory", []byte("x")); reason != "unknown user" {
			t.Fatalf("after the failures were forgotten, try %d: %q", i, reason)
		}
	}
}

// TestLoginSourcesBounded: the failures of at most maxLoginSources sources
// are remembered; forgotten ones make room.
func TestLoginSourcesBounded(t *testing.T) {
	clock := newFakeClock()
	users, err := newUserDirectory("", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	l := newLogins(users, clock, slog.New(slog.DiscardHandler))
	for i := range maxLoginSources + 10 {
		l.failed(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255))
	}
	if n := len(l.failures); n != maxLoginSources {
		t.Errorf("%d sources remembered, want %d", n, maxLoginSources)
	}
	clock.Advance(loginFailureMemory)
	l.failed("192.168.1.66")
	if n := len(l.failures); n != 1 {
		t.Errorf("%d sources remembered after the others were forgotten, want 1", n)
	}
}

// connectFrom is connect from the local address from.
func connectFrom(t *testing.T, b *Broker, from *net.TCPAddr, u testUser, clientID string) (paho.Client, error) {
	t.Helper()
	return connect(t, b, u, clientID, func(o *paho.ClientOptions) {
		o.SetDialer(&net.Dialer{LocalAddr: from, Timeout: testWait})
	})
}

// TestPasswordGuessingThrottled: 16 connections guess a password at once,
// again and again, from one address, with real bcrypt costs. Only
// loginFreeFailures of the guesses get a bcrypt check; meanwhile another
// user logs in from another address and a message round-trips, waiting
// for at most one of the guesses' checks.
func TestPasswordGuessingThrottled(t *testing.T) {
	// The fake clock never moves: the source never gets out of its wait.
	b, _, log := startBroker(t, Options{UsersFile: writeUsersAtCost(t, bcrypt.DefaultCost, admin, bob), Clock: newFakeClock()})
	// What one check costs on this machine now.
	calibration := time.Now()
	if _, err := connectFrom(t, b, &net.TCPAddr{IP: net.IPv4(127, 0, 1, 1)}, testUser{name: bob.name, password: "typo"}, "bob-typo"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	check := time.Since(calibration)

	const threads, rounds = 16, 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for i := range threads {
		wg.Go(func() {
			for j := range rounds {
				guess := testUser{name: admin.name, password: fmt.Sprintf("guess-%d-%d", i, j)}
				if _, err := connectFrom(t, b, attacker, guess, fmt.Sprintf("guess-%d-%d", i, j)); err == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			}
		})
	}
	start := time.Now()
	member, err := connect(t, b, bob, "bob-phone")
	if err != nil {
		t.Fatalf("bob during the guessing: %v", err)
	}
	got := subscribe(t, member, "bob/echo")
	publish(t, member, "bob/echo", false, "hi")
	receive(t, got)
	took := time.Since(start)
	t.Logf("bob's login and round trip during the guessing: %v (one check: %v)", took, check)
	// One guess being checked, then bob's own login; not five guesses.
	if took > 4*check {
		t.Errorf("bob's login and round trip took %v during the guessing, one check %v", took, check)
	}
	wg.Wait()

	if accepted > 0 {
		t.Fatalf("%d guesses accepted", accepted)
	}
	// All refused, all but loginFreeFailures without a check, and those
	// logged in one line (the clock does not move).
	checked := strings.Count(log.String(), "reason=\"wrong password\"") - 1 // the calibration
	if checked != loginFreeFailures {
		t.Errorf("%d of %d guesses checked, want %d", checked, threads*rounds, loginFreeFailures)
	}
	if n := strings.Count(log.String(), "refused unchecked"); n != 1 || !strings.Contains(log.String(), "source=127.0.0.2") {
		t.Errorf("%d log lines of unchecked refusals, want 1 naming 127.0.0.2:\n%s", n, log.String())
	}
	// The admin itself, from its own address, still logs in.
	mustConnect(t, b, admin, "alice-laptop")
}

// TestUnknownUserRefusedAsSlowly: an unknown user's refusal takes about
// as long as a known user's wrong password, so its time does not tell
// which users exist. Each try comes from its own address, so that none
// is throttled.
func TestUnknownUserRefusedAsSlowly(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsersAtCost(t, bcrypt.DefaultCost, admin, bob)})
	refusal := func(u testUser, try int) time.Duration {
		from := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(try))}
		start := time.Now()
		if _, err := connectFrom(t, b, from, u, fmt.Sprint("try-", try)); err == nil {
			t.Fatalf("%s logged in with a wrong password", u.name)
		}
		return time.Since(start)
	}
	// The first unknown user makes the broker hash its dummy password.
	refusal(testUser{name: "nobody", password: "x"}, 0)
	var known, unknown []time.Duration
	for i := 1; i <= 7; i++ {
		known = append(known, refusal(testUser{name: admin.name, password: "wrong"}, 2*i))
		unknown = append(unknown, refusal(testUser{name: fmt.Sprint("nobody", i), password: "wrong"}, 2*i+1))
	}
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	k, u := median(known), median(unknown)
	t.Logf("median refusal: known user %v, unknown user %v", k, u)
	// Without the dummy comparison an unknown user is refused in well
	// under a millisecond, against tens for a bcrypt check.
	if u < k/3 || u > 3*k {
		t.Errorf("unknown users are refused in %v, known users' wrong passwords in %v", u, k)
	}
}
