package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// watcher is a mosquitto_sub of one user on several filters (-v: each line
// is the topic, a space, the payload), running until the test ends.
type watcher struct {
	mu    sync.Mutex
	lines []string
}

// watch subscribes user to filters (those the broker refuses stay silent)
// and waits until the subscription works: a probe user publishes below e2e/
// (which every watcher reads) comes back.
func (s *secureSystem) watch(user string, filters ...string) *watcher {
	s.t.Helper()
	w := &watcher{}
	probe := "e2e/probe/" + user
	args := []string{"-u", user, "-P", s.passwords[user], "-v", "-t", "e2e/#"}
	for _, f := range filters {
		args = append(args, "-t", f)
	}
	mosquittoSub(s.t, s.brokerPort, probe, func(line []byte) {
		w.mu.Lock()
		w.lines = append(w.lines, string(line))
		w.mu.Unlock()
	}, args...)
	testwait.For(s.t, user+"'s mosquitto_sub to subscribe", 10*time.Second, func() bool {
		s.tryPub(user, "-t", probe, "-m", "probe")
		time.Sleep(100 * time.Millisecond)
		return w.has(func(line string) bool { return strings.HasPrefix(line, probe+" ") })
	})
	return w
}

// has reports whether some line received so far satisfies match.
func (w *watcher) has(match func(line string) bool) bool {
	return len(w.matching(match)) > 0
}

// matching returns the lines received so far that satisfy match.
func (w *watcher) matching(match func(line string) bool) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, l := range w.lines {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

// TestMembersReadOnlyWhatTheyMaySee runs a secure hub with sessions home
// (everyone) and den (alice only, created with its ACL). Bob, a member,
// subscribes to everything he can think of before den exists (his
// wildcards over every session and speaker are still allowed then);
// alice and the admin use den,
// the Home Assistant bridge mirrors it, a speaker forges replies and bob
// writes Home Assistant's discovery topics. Bob receives nothing of den,
// none of the others' requests or replies, and his forgeries go nowhere;
// his own commands and the admin's speaker command are answered.
func TestMembersReadOnlyWhatTheyMaySee(t *testing.T) {
	s := newSecureSystem(t)
	s.startSecureSpeaker("s1")
	s.startSecureSpeaker("s2")
	pathA, shaA := timecodeSong(t, "a.wav", 30, 0)
	pathB, shaB := timecodeSong(t, "b.wav", 30, songBFirst)
	s.waitController()
	s.mustTutti("alice", "load", "--quiet", pathA, pathB)
	s.mustTutti("alice", "enqueue", shaA)
	s.mustTutti("alice", "play")

	// Bob subscribes to everything he can think of, den not existing yet.
	// His wildcards over the sessions and speakers are allowed while every
	// session is open to him; they stop delivering den, created with its
	// ACL, at once, and s2 once it plays den.
	bob := s.watch("bob", "#", "tutti/#", "tutti/reply/#", protocol.HomeAssistantPrefix+"/#", "tutti/session/+/state",
		"tutti/session/+/#", "tutti/ha/#", "tutti/speaker/#", "tutti/ha/speaker/#", "tutti/sessions/#", "tutti/library/#",
		"tutti/session/home/#", "tutti/controller/#", protocol.UserReplyTopic("bob")+"/#")
	admin := s.watch("admin", "#")

	// Den, for alice only from its first state on.
	s.mustTutti("admin", "create", "den", "The den", "alice", "alice", "alice")
	if out := s.mustTutti("bob", "sessions"); strings.Contains(out, "den") {
		t.Fatalf("bob's list has den: %s", out)
	}
	bridge := start(t, "homeassistant", tuttiBin, "homeassistant", "--broker", s.tlsURL(), "--ca", s.ca,
		"--user", "bridge", "--password-file", s.passwordFile("bridge"))
	testwait.For(t, "the bridge's state of s2", 20*time.Second, func() bool {
		return bob.has(func(l string) bool { return strings.HasPrefix(l, "tutti/ha/speaker/s2/state ") })
	})

	// The admin lists the sessions with their ACLs; alice plays den and
	// moves s2 there.
	if out := s.mustTutti("admin", "sessions"); !strings.Contains(out, "den") {
		t.Fatalf("the admin's list has no den: %s", out)
	}
	s.mustTutti("alice", "enqueue", "--session", "den", shaB)
	s.mustTutti("alice", "play", "--session", "den")
	s.mustTutti("alice", "join", "--session", "den", "s2")
	if out := s.mustTutti("alice", "status", "--session", "den"); !strings.Contains(out, "s2") {
		t.Errorf("den's status names no s2: %s", out)
	}
	s.mustTutti("bob", "status")
	testwait.For(t, "the bridge's state of den and s2's status in den", 20*time.Second, func() bool {
		return admin.has(func(l string) bool { return strings.HasPrefix(l, "tutti/ha/session/den/state ") }) &&
			admin.has(func(l string) bool {
				return strings.HasPrefix(l, protocol.SpeakerStatusTopic("s2")+" ") && strings.Contains(l, `"session":"den"`)
			})
	})

	// s1 answers bob's and alice's requests unasked: dropped.
	forged := `{"v":1,"ok":true,"cmd":"pause","req_id":"forged","result":{"acked":3,"speakers":3}}`
	for _, topic := range []string{protocol.UserReplyTopic("bob") + "/cli-1", protocol.UserReplyTopic("alice"), protocol.DefaultReplyTopic} {
		if err := s.tryPub("s1", "-t", topic, "-m", forged); err != nil {
			t.Fatal(err)
		}
	}
	// The admin asks s1 to identify itself: its reply arrives.
	identify := fmt.Sprintf(`{"cmd":"identify","req_id":"id-1","reply_to":%q}`, protocol.UserReplyTopic("admin")+"/e2e")
	if err := s.tryPub("admin", "-t", protocol.SpeakerCommandTopic("s1"), "-m", identify); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "s1's reply to the admin's identify", 10*time.Second, func() bool {
		return admin.has(func(l string) bool {
			return strings.HasPrefix(l, protocol.UserReplyTopic("admin")+"/e2e ") && strings.Contains(l, `"req_id":"id-1"`) && strings.Contains(l, `"ok":true`)
		})
	})

	// Bob rewrites a discovery config and announces Home Assistant: dropped.
	// Home Assistant's own announcement passes.
	config := protocol.HomeAssistantPrefix + "/device/tutti_session_home/config"
	s.tryPub("bob", "-t", config, "-r", "-m", `{"name":"forged by bob"}`)
	s.tryPub("bob", "-t", protocol.HomeAssistantStatus(protocol.HomeAssistantPrefix), "-m", "online from bob")
	s.tryPub("ha", "-t", protocol.HomeAssistantStatus(protocol.HomeAssistantPrefix), "-m", "online from ha")

	// Markers: what came before each is delivered before it (s1 may publish
	// none; its forgeries were dropped before their PUBACK).
	for _, user := range []string{"admin", "alice", "bob", "ha"} {
		marker := "e2e/done/" + user
		s.tryPub(user, "-t", marker, "-m", "done")
		for _, w := range []*watcher{bob, admin} {
			testwait.For(t, "the marker of "+user, 10*time.Second, func() bool {
				return w.has(func(l string) bool { return strings.HasPrefix(l, marker+" ") })
			})
		}
	}

	// What bob must not have: anything of den, another's request or reply,
	// the speaker's forgery.
	denMention := regexp.MustCompile(`/den/|"den"|_den\b|The den`)
	otherRequest := regexp.MustCompile(`^tutti/(session/[^/ ]+|sessions|library)/cmd(/[^ ]*)? `)
	for _, l := range bob.matching(func(string) bool { return true }) {
		topic, _, _ := strings.Cut(l, " ")
		switch {
		case denMention.MatchString(l):
			t.Errorf("bob received something of den: %.300s", l)
		case strings.HasPrefix(topic, protocol.DefaultReplyTopic) && !strings.HasPrefix(topic, protocol.UserReplyTopic("bob")+"/"):
			t.Errorf("bob received another's reply: %.300s", l)
		case otherRequest.MatchString(l) && !strings.HasSuffix(topic, "/cmd/bob"):
			t.Errorf("bob received another's request: %.300s", l)
		case strings.Contains(l, "forged"):
			t.Errorf("bob received a forgery: %.300s", l)
		case strings.HasPrefix(topic, protocol.HomeAssistantPrefix+"/"):
			t.Errorf("bob received a Home Assistant discovery topic: %.300s", l)
		}
	}
	// What he must have: his own reply, home's state, s1's and (before it
	// joined den) s2's status.
	for what, prefix := range map[string]string{
		"his own reply": protocol.UserReplyTopic("bob") + "/cli-",
		"home's state":  protocol.SessionStateTopic("home") + " ",
		"s1's status":   protocol.SpeakerStatusTopic("s1") + " ",
		"s2's status":   protocol.SpeakerStatusTopic("s2") + " ",
	} {
		if !bob.has(func(l string) bool { return strings.HasPrefix(l, prefix) }) {
			t.Errorf("bob did not receive %s", what)
		}
	}
	// The others' replies, requests and den's topics did flow meanwhile.
	for what, re := range map[string]*regexp.Regexp{
		"alice's reply about den":        regexp.MustCompile(`^tutti/reply/alice/cli-\S+ .*den`),
		"the admin's session list":       regexp.MustCompile(`^tutti/reply/admin/cli-\S+ .*"den"`),
		"alice's signed request":         regexp.MustCompile(`^tutti/session/den/cmd/alice `),
		"the bridge's den config":        regexp.MustCompile(`^homeassistant/device/tutti_session_den/config `),
		"Home Assistant's birth message": regexp.MustCompile(`^homeassistant/status online from ha$`),
		"den's state":                    regexp.MustCompile(`^tutti/session/den/state `),
	} {
		if !admin.has(re.MatchString) {
			t.Errorf("the admin did not see %s", what)
		}
	}
	// The admin saw none of the forgeries either: the broker dropped them.
	for _, l := range admin.matching(func(l string) bool {
		return strings.Contains(l, "forged") || strings.Contains(l, "online from bob")
	}) {
		t.Errorf("a forgery got through: %.300s", l)
	}
	if got := s.received("ha", config); strings.Contains(got, "forged") || got == "" {
		t.Errorf("Home Assistant reads %s: %.200s", config, got)
	}
	bridge.stop(syscall.SIGTERM)
}
