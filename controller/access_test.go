package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

func TestAskerRights(t *testing.T) {
	kitchen := protocol.ACL{See: []string{"alice", "bob"}, Join: []string{"bob"}, Control: []string{"bob"}}
	for _, tc := range []struct {
		user, role string
		open       bool
		refused    string // askerOf's error, "" if accepted
		see, join  bool
		control    bool
	}{
		{user: "", open: false, refused: "anonymous requests are refused"},
		{user: "", open: true, see: true, join: true, control: true},
		{user: "sp1", role: roleSpeaker, refused: "sp1 is a speaker"},
		{user: "sp1", role: roleSpeaker, open: true, refused: "sp1 is a speaker"},
		{user: "mallory", role: "", refused: "mallory is not a known user"},
		{user: "root", role: roleAdmin, see: true, join: true, control: true},
		{user: "ctl", role: roleController, see: true, join: true, control: true},
		{user: "alice", role: roleMember, see: true},
		{user: "bob", role: roleMember, see: true, join: true, control: true},
		{user: "carol", role: roleMember},
	} {
		who, err := askerOf(tc.user, tc.role, tc.open)
		if tc.refused != "" {
			if err == nil || !strings.Contains(err.Error(), tc.refused) {
				t.Errorf("%q (%s, open %v): %v, want refused with %q", tc.user, tc.role, tc.open, err, tc.refused)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q (%s): refused: %v", tc.user, tc.role, err)
			continue
		}
		for r, want := range map[right]bool{rightSee: tc.see, rightJoin: tc.join, rightControl: tc.control} {
			err := who.may(r, "kitchen", kitchen)
			if (err == nil) != want {
				t.Errorf("%q may %d on kitchen: %v, want allowed %v", tc.user, r, err, want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), tc.user+" may not ") {
				t.Errorf("refusal %q does not name the user and the right", err)
			}
		}
		if err := who.may(rightControl, "home", protocol.Everyone); err != nil {
			t.Errorf("%q may not control a session open to everyone: %v", tc.user, err)
		}
		if err := who.mayAdminister(protocol.CmdCreate); (err == nil) != (tc.role == roleAdmin || tc.role == roleController || tc.open) {
			t.Errorf("%q create: %v", tc.user, err)
		}
	}
	alice, _ := askerOf("alice", roleMember, false)
	if err := alice.may(rightControl, "kitchen", kitchen); err == nil || err.Error() != "alice may not control session kitchen" {
		t.Errorf("refusal: %v", err)
	}
	for cmd, want := range map[string]right{
		protocol.CmdStatus: rightSee, protocol.CmdJoin: rightJoin, protocol.CmdLeave: rightJoin,
		protocol.CmdPlay: rightControl, protocol.CmdVolume: rightControl, protocol.CmdEnqueue: rightControl,
	} {
		if got := rightFor(cmd); got != want {
			t.Errorf("%s needs right %d, want %d", cmd, got, want)
		}
	}
}

func TestCheckACLAndTitle(t *testing.T) {
	acl, err := checkACL(protocol.ACL{See: []string{"*", "alice", "alice"}, Control: nil})
	if err != nil || len(acl.See) != 2 || acl.Join == nil || acl.Control == nil || len(acl.Control) != 0 {
		t.Fatalf("checkACL: %+v, %v", acl, err)
	}
	for _, bad := range []protocol.ACL{
		{See: []string{"Alice"}}, {Join: []string{"a/b"}}, {Control: []string{"#"}}, {See: []string{""}},
		{See: make([]string, maxACLEntries+1)},
	} {
		if _, err := checkACL(bad); err == nil {
			t.Errorf("checkACL(%+v) accepted", bad)
		}
	}
	for title, ok := range map[string]bool{
		"": true, "Living room": true, "Küche ♫": true, "a\nb": false, "\xff": false, strings.Repeat("x", maxTitle+1): false,
	} {
		if err := checkTitle(title); (err == nil) != ok {
			t.Errorf("checkTitle(%q): %v", title, err)
		}
	}
}

func TestRateLimiter(t *testing.T) {
	l := newRateLimiter(20, 40)
	t0 := time.Unix(1000, 0)
	for i := range 40 {
		if _, ok := l.take("alice", t0); !ok {
			t.Fatalf("command %d of a burst refused", i)
		}
	}
	if wait, ok := l.take("alice", t0); ok || wait != 50*time.Millisecond {
		t.Fatalf("over the burst: allowed %v, wait %v", ok, wait)
	}
	if _, ok := l.take("bob", t0); !ok {
		t.Fatal("another key is limited too")
	}
	// 20 per second: one more every 50 ms.
	if _, ok := l.take("alice", t0.Add(49*time.Millisecond)); ok {
		t.Fatal("refilled too early")
	}
	if _, ok := l.take("alice", t0.Add(51*time.Millisecond)); !ok {
		t.Fatal("not refilled after 50 ms")
	}
	// A clock stepping back refills nothing and breaks nothing.
	if _, ok := l.take("alice", t0); ok {
		t.Fatal("refilled by a clock step back")
	}
	l.giveBack("alice")
	if _, ok := l.take("alice", t0); !ok {
		t.Fatal("a token given back cannot be taken")
	}
	// Idle keys are forgotten when there are many.
	for i := range maxBuckets {
		l.take(strings.Repeat("u", 1+i%50)+string(rune('a'+i/50)), t0.Add(time.Hour))
	}
	if len(l.buckets) > maxBuckets {
		t.Fatalf("%d buckets kept", len(l.buckets))
	}
}

// TestCommandLimiter: one user's commands are limited per topic and over
// all topics; commanding every session at once passes.
func TestCommandLimiter(t *testing.T) {
	l := newCommandLimiter()
	t0 := time.Unix(1000, 0)
	home := protocol.SessionCommandTopic("home")
	for i := range topicCommandBurst {
		if err := l.allow("alice", home, t0); err != nil {
			t.Fatalf("command %d of a burst to one session: %v", i, err)
		}
	}
	if err := l.allow("alice", home, t0); err == nil || !strings.HasPrefix(err.Error(), "rate limited: ") {
		t.Fatalf("over the burst to one session: %v", err)
	}
	if err := l.allow("bob", home, t0); err != nil {
		t.Fatalf("another user is limited too: %v", err)
	}
	// Every one of many sessions at once, with the session already flooded
	// counted in the user's bucket.
	sessions := userCommandBurst - topicCommandBurst
	for i := range sessions {
		if err := l.allow("alice", protocol.SessionCommandTopic(fmt.Sprintf("zone%d", i)), t0); err != nil {
			t.Fatalf("command to session %d of %d at once: %v", i, sessions, err)
		}
	}
	err := l.allow("alice", protocol.SessionCommandTopic("another"), t0)
	if err == nil || !strings.Contains(err.Error(), "in all") {
		t.Fatalf("over the user's burst: %v", err)
	}
	// That refusal cost the session's bucket nothing.
	another := "alice " + protocol.SessionCommandTopic("another")
	if b := l.perTopic.buckets[another]; b.tokens != topicCommandBurst {
		t.Fatalf("the session's bucket holds %g tokens after a refusal, want %d", b.tokens, topicCommandBurst)
	}
}

func TestFetchTokens(t *testing.T) {
	var tokens fetchTokens
	if tokens.valid("") {
		t.Fatal("no token yet, yet the empty one is valid")
	}
	tokens.set("t0")
	tokens.set("t0") // a renewal with the same token keeps the previous one
	tokens.set("t1")
	if !tokens.valid("t0") || !tokens.valid("t1") || tokens.valid("") || tokens.valid("t2") || tokens.get() != "t1" {
		t.Fatal("current and previous token")
	}
	tokens.set("t2")
	if tokens.valid("t0") || !tokens.valid("t1") || !tokens.valid("t2") {
		t.Fatal("after two rotations the first token is still valid")
	}
}
