package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// TestNewSpeakerCannotPickItsSession: outside demo mode, a speaker seen for
// the first time that asks for a session it has no right to (den, granted
// to alice only) is assigned to the default session instead, and the
// controller logs why; a member without join rights on den cannot move it
// there, alice can. A speaker that den's join list names gets den at once.
// Alice's commands are answered all along.
func TestNewSpeakerCannotPickItsSession(t *testing.T) {
	s := newSecureSystem(t)
	s.waitController()
	s.mustTutti("admin", "create", "den", "The den")
	s.mustTutti("admin", "grant", "den", "alice", "alice,s2", "alice")

	assignment := func(id string) (protocol.Assignment, bool) {
		a, err := protocol.Decode[protocol.Assignment]([]byte(s.received("admin", protocol.AssignTopic(id))))
		return a, err == nil
	}
	for _, id := range []string{"s1", "s2"} {
		s.startSpeaker(id, "--broker", s.tlsURL(), "--ca", s.ca, "--password-file", s.passwordFile(id), "--session", "den")
	}
	testwait.For(t, "s1 and s2 to be assigned", 20*time.Second, func() bool {
		_, ok1 := assignment("s1")
		_, ok2 := assignment("s2")
		return ok1 && ok2
	})
	if a, _ := assignment("s1"); a.Session != protocol.DefaultSession {
		t.Errorf("s1 asked for den and was assigned %+v, want the default session %s", a, protocol.DefaultSession)
	}
	if a, _ := assignment("s2"); a.Session != "den" {
		t.Errorf("s2, named in den's join list, was assigned %+v, want den", a)
	}
	log, err := os.ReadFile(s.controller.log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "new speaker not given the session it asked for") || !strings.Contains(string(log), "join list does not name speaker s1") {
		t.Errorf("the controller did not log why s1 is not in den:\n%s", log)
	}
	if strings.Contains(string(log), "join list does not name speaker s2") {
		t.Errorf("the controller refused s2 den:\n%s", log)
	}

	// Bob may not move s1 into den; alice may, and her status is answered.
	if out, err := s.tutti("bob", "join", "--session", "den", "s1"); err == nil {
		t.Errorf("bob moved s1 into den: %s", out)
	}
	if a, _ := assignment("s1"); a.Session != protocol.DefaultSession {
		t.Errorf("s1 after bob's join: %+v", a)
	}
	s.mustTutti("alice", "status", "--session", "den")
	s.mustTutti("alice", "join", "--session", "den", "s1")
	if a, _ := assignment("s1"); a.Session != "den" {
		t.Errorf("s1 after alice's join: %+v, want den", a)
	}
}
