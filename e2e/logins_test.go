package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// refusedSub tries to connect with mosquitto_sub as user with client id
// and reports whether the broker refused the connection.
func (s *secureSystem) refusedSub(user, clientID string) bool {
	out, _ := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", s.brokerPort, "-u", user, "-P", s.passwords[user],
		"-i", clientID, "-t", "probe", "-C", "1", "-W", "2").CombinedOutput()
	return strings.Contains(strings.ToLower(string(out)), "refused")
}

// speakerStatus is a speaker's retained status, as admin reads it.
func (s *secureSystem) speakerStatus(id string) protocol.SpeakerStatus {
	var st protocol.SpeakerStatus
	json.Unmarshal([]byte(s.received("admin", protocol.SpeakerStatusTopic(id))), &st)
	return st
}

// TestLoginAttacks runs tutti outside demo mode and tries what a member
// and a device on the LAN could do with logins: squat a speaker's client
// id, leave a lease claim as a last will, guess passwords from many
// processes at once; and an admin changes a speaker's password while it is
// connected. The other users' commands are answered throughout.
func TestLoginAttacks(t *testing.T) {
	s := newSecureSystem(t)
	s.startSecureSpeaker("s1")
	s.waitController()

	// Alice takes s2's client id before s2 starts, and while it runs.
	if !s.refusedSub("alice", "s2") {
		t.Error("alice connected with speaker s2's client id")
	}
	s.startSecureSpeaker("s2")
	testwait.For(t, "s2 online", 20*time.Second, func() bool { return s.speakerStatus("s2").Online })
	before := s.speakerStatus("s2")
	if !s.refusedSub("alice", "s2") {
		t.Error("alice took speaker s2's client id over")
	}
	if after := s.speakerStatus("s2"); !after.Online || after.Instance != before.Instance {
		t.Errorf("s2 after alice's try: %+v, before %+v", after, before)
	}

	// An admin's last will claiming the lease at term 1000.
	will := `{"v":1,"term":1000,"holder":"evil","ttl_ms":60000}`
	if err := s.tryPub("admin", "--will-topic", protocol.LeaseTopic, "--will-payload", will, "--will-retain", "-t", "probe", "-n"); err == nil {
		t.Error("an admin connected with a last will on the lease topic")
	}
	var lease protocol.Lease
	json.Unmarshal([]byte(s.received("alice", protocol.LeaseTopic)), &lease)
	if lease.Term == 0 || lease.Term >= 1000 {
		t.Errorf("lease after the admin's will: %+v", lease)
	}

	// 16 processes guess the admin's password, 5 times each, from another
	// address; alice's commands are answered meanwhile.
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for i := range 16 {
		wg.Go(func() {
			for j := range 5 {
				err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", s.brokerPort, "-A", "127.0.0.2",
					"-u", "admin", "-P", fmt.Sprintf("guess-%d-%d", i, j), "-t", "probe", "-n").Run()
				if err == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			}
		})
	}
	start := time.Now()
	s.mustTutti("alice", "status")
	t.Logf("alice's status during the guessing: %v", time.Since(start))
	wg.Wait()
	if accepted > 0 {
		t.Errorf("%d guesses accepted", accepted)
	}

	// s1's password changes while it is connected: the broker ends its
	// connection (its last will says offline) and refuses the old password.
	cmd := exec.Command(tuttiBin, "user", "passwd", "--users", s.users, "s1")
	cmd.Stdin = strings.NewReader("pw-s1-new\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user passwd: %v %s", err, out)
	}
	testwait.For(t, "s1's connection to end", 10*time.Second, func() bool { return !s.speakerStatus("s1").Online })
	// s1 retries with its old password from the same address as everyone
	// here (loopback): stop it before its failures hold that address up.
	s.speakers["s1"].stop(syscall.SIGTERM)
	if err := s.tryPub("s1"); err == nil {
		t.Error("s1's old password still logs in")
	}
	s.passwords["s1"] = "pw-s1-new"
	if err := s.tryPub("s1"); err != nil {
		t.Errorf("s1's new password: %v", err)
	}
	if !s.speakerStatus("s2").Online {
		t.Error("s2 went offline")
	}
	s.mustTutti("alice", "status")

	brokerLog, err := os.ReadFile(s.broker.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`client id belongs to user \"s2\"`, "last will to a topic the user may not publish: " + protocol.LeaseTopic,
		"refused unchecked", "password changed or the user was removed"} {
		if !strings.Contains(string(brokerLog), want) {
			t.Errorf("broker log lacks %q", want)
		}
	}
}
