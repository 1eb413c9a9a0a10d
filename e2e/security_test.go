package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/certs"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// secureSystem is a system outside demo mode: a users file, passwords,
// MQTT over TLS for the speakers and the controller, songs over HTTPS.
type secureSystem struct {
	*system
	users     string            // the users file
	passwords map[string]string // by user name
	tlsPort   string            // where the broker listens for MQTT over TLS
	ca        string
}

func newSecureSystem(t *testing.T) *secureSystem {
	s := &secureSystem{system: newSystem(t), passwords: map[string]string{}}
	s.users = filepath.Join(s.dir, "users.toml")
	for _, u := range []struct{ name, role string }{
		{"admin", "admin"}, {"controller", "controller"}, {"alice", "member"}, {"bob", "member"}, {"s1", "speaker"}, {"s2", "speaker"},
		{"ha", "homeassistant"}, {"bridge", "admin"},
	} {
		pw := "pw-" + u.name + "-" + randomWord()
		s.passwords[u.name] = pw
		cmd := exec.Command(tuttiBin, "user", "add", "--users", s.users, "--role", u.role, u.name)
		cmd.Stdin = strings.NewReader(pw + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("user add %s: %v %s", u.name, err, out)
		}
		if err := os.WriteFile(s.passwordFile(u.name), []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	certDir := filepath.Join(s.dir, "certs")
	s.ca = certs.FilesIn(certDir).CA
	s.broker = start(t, "broker", tuttiBin, "broker", "--users", s.users, "--listen", "127.0.0.1:0",
		"--tls-listen", "127.0.0.1:0", "--certs", certDir, "--data", filepath.Join(s.dir, "broker"))
	s.brokerPort = portOf(t, s.broker.logged(t, brokerListening, "addr"))
	s.tlsPort = portOf(t, s.broker.logged(t, brokerListening, "tls_addr"))
	s.controller = startController(t, "controller", "controller", "--broker", s.tlsURL(), "--ca", s.ca,
		"--user", "controller", "--password-file", s.passwordFile("controller"), "--users", s.users,
		"--data", filepath.Join(s.dir, "controller"), "--http", "127.0.0.1:0", "--https", "--certs", certDir, "--lead", "150ms")
	return s
}

func randomWord() string { return fmt.Sprint(time.Now().UnixNano() % 1e9) }

func (s *secureSystem) passwordFile(user string) string { return filepath.Join(s.dir, user+".pass") }
func (s *secureSystem) tlsURL() string                  { return "tls://127.0.0.1:" + s.tlsPort }

// startSecureSpeaker runs speaker name over TLS with its password.
func (s *secureSystem) startSecureSpeaker(name string) {
	s.startSpeaker(name, "--broker", s.tlsURL(), "--ca", s.ca, "--password-file", s.passwordFile(name))
}

// tryPub publishes one message as user ("" = anonymous) on the plain port.
func (s *secureSystem) tryPub(user string, args ...string) error {
	cmd := []string{"-h", "127.0.0.1", "-p", s.brokerPort, "-q", "1"}
	if user != "" {
		cmd = append(cmd, "-u", user, "-P", s.passwords[user])
	}
	if len(args) == 0 {
		args = []string{"-t", "probe", "-n"}
	}
	out, err := exec.Command("mosquitto_pub", append(cmd, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// waitController waits until the controller answers a member.
func (s *secureSystem) waitController() {
	s.t.Helper()
	testwait.For(s.t, "the controller", 20*time.Second, func() bool {
		_, err := s.tutti("alice", "status")
		return err == nil
	})
}

// tutti runs a tutti client command as user, over TLS.
func (s *secureSystem) tutti(user string, args ...string) (string, error) {
	// The flags go right after the command: Go's flag parsing stops at the
	// first positional argument.
	full := append([]string{args[0], "--broker", s.tlsURL(), "--ca", s.ca, "--user", user, "--timeout", "3s"}, args[1:]...)
	cmd := exec.Command(tuttiBin, full...)
	cmd.Env = append(os.Environ(), "TUTTI_PASSWORD="+s.passwords[user])
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustTutti runs a tutti client command that must succeed.
func (s *secureSystem) mustTutti(user string, args ...string) string {
	s.t.Helper()
	out, err := s.tutti(user, args...)
	if err != nil {
		s.t.Fatalf("%s: tutti %v: %v\n%s", user, args, err, out)
	}
	return out
}

// received reads one message on topic as user within a few seconds: "" if
// none came (refused, or nothing there).
func (s *secureSystem) received(user, topic string) string {
	out, _ := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", s.brokerPort, "-u", user, "-P", s.passwords[user],
		"-t", topic, "-C", "1", "-W", "3").Output()
	return strings.TrimSpace(string(out))
}

// TestSecurity runs tutti outside demo mode and tries what a stranger, a
// member without rights and a misbehaving speaker would.
func TestSecurity(t *testing.T) {
	s := newSecureSystem(t)
	s.startSecureSpeaker("s1")
	s.startSecureSpeaker("s2")
	pathA, shaA := timecodeSong(t, "a.wav", 60, 0)
	pathB, shaB := timecodeSong(t, "b.wav", 60, songBFirst)

	// Strangers: anonymous and wrong passwords are refused.
	if err := s.tryPub(""); err == nil {
		t.Error("an anonymous client was let in")
	}
	s.passwords["mallory"] = "guess"
	if err := s.tryPub("mallory"); err == nil {
		t.Error("an unknown user was let in")
	}
	right := s.passwords["alice"]
	s.passwords["alice"] = "wrong"
	if err := s.tryPub("alice"); err == nil {
		t.Error("a wrong password was accepted")
	}
	s.passwords["alice"] = right

	// Alice (a member) loads songs over HTTPS and plays home on both speakers.
	s.waitController()
	s.mustTutti("alice", "load", "--quiet", pathA, pathB)
	s.mustTutti("alice", "enqueue", shaA)
	testwait.For(t, "s1 and s2 to fetch song A over HTTPS", 20*time.Second, func() bool { return cached(s.system, "s1", shaA) && cached(s.system, "s2", shaA) })
	s.mustTutti("alice", "play")

	// Admin makes a session only Alice may use; Bob may not create sessions.
	if out, err := s.tutti("bob", "create", "bobs"); err == nil || !strings.Contains(out, "only admins") {
		t.Errorf("bob created a session: %v %s", err, out)
	}
	s.mustTutti("admin", "create", "den", "The den")
	s.mustTutti("admin", "grant", "den", "alice", "alice", "alice")
	s.mustTutti("alice", "enqueue", "--session", "den", shaB)
	s.mustTutti("alice", "play", "--session", "den")
	if out := s.mustTutti("bob", "sessions"); strings.Contains(out, "den") {
		t.Errorf("bob sees den in the list: %s", out)
	}
	if out := s.mustTutti("alice", "sessions"); !strings.Contains(out, "den") {
		t.Errorf("alice does not see den: %s", out)
	}

	// Bob cannot control den (the broker drops his publish, no reply comes),
	// nor read it, nor sign as Alice.
	if out, err := s.tutti("bob", "pause", "--session", "den"); err == nil {
		t.Errorf("bob paused den: %s", out)
	}
	if got := s.received("bob", protocol.SessionStateTopic("den")); got != "" {
		t.Errorf("bob read den's state: %s", got)
	}
	if got := s.received("alice", protocol.SessionStateTopic("den")); got == "" {
		t.Error("alice cannot read den's state")
	}
	forged := protocol.UserTopic(protocol.SessionCommandTopic("den"), "alice")
	s.tryPub("bob", "-t", forged, "-m", `{"cmd":"pause","reply_to":"tutti/reply/bob"}`)
	var den struct{ State protocol.SessionState }
	json.Unmarshal([]byte(s.received("alice", protocol.SessionStateTopic("den"))), &den.State)
	if den.State.State != protocol.Playing {
		t.Errorf("den after bob's forged pause: %s", den.State.State)
	}

	// A speaker may not speak for another, nor write session state.
	before := s.received("admin", protocol.SpeakerStatusTopic("s2"))
	s.tryPub("s1", "-t", protocol.SpeakerStatusTopic("s2"), "-r", "-m", `{"v":1,"id":"s2","online":false,"instance":"forged"}`)
	s.tryPub("s1", "-t", protocol.SessionStateTopic("home"), "-r", "-m", `{"v":1,"session":"home","term":99,"seq":99,"state":"stopped"}`)
	time.Sleep(300 * time.Millisecond)
	if after := s.received("admin", protocol.SpeakerStatusTopic("s2")); strings.Contains(after, "forged") {
		t.Errorf("s1 wrote s2's status: %s (before %s)", after, before)
	}
	if st := s.received("admin", protocol.SessionStateTopic("home")); strings.Contains(st, `"seq":99`) {
		t.Errorf("s1 wrote home's state: %s", st)
	}

	// Songs: no token, no song; the lease's token, the song (over HTTPS).
	var lease protocol.Lease
	json.Unmarshal([]byte(s.received("alice", protocol.LeaseTopic)), &lease)
	trust, err := certs.ClientConfig(s.ca)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: trust}}
	for _, c := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"not-the-token", http.StatusUnauthorized}, {lease.FetchToken, http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodHead, lease.SongsURL+shaA, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("HEAD over HTTPS: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("song with token %q: %s, want %d", c.token, resp.Status, c.want)
		}
	}
	if !strings.HasPrefix(lease.SongsURL, "https://") {
		t.Errorf("songs are served at %s, not over HTTPS", lease.SongsURL)
	}

	// Alice moves s2 into den mid-song: it plays den's song where den is.
	time.Sleep(2 * time.Second)
	moved := time.Now()
	s.mustTutti("alice", "join", "--session", "den", "s2")
	time.Sleep(3 * time.Second)
	var status struct{ State protocol.SessionState }
	out := s.mustTutti("alice", "status", "--session", "den", "--json")
	var rep protocol.Reply
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rep); err != nil || json.Unmarshal(rep.Result, &status) != nil {
		t.Fatalf("den's status: %v %s", err, out)
	}
	for _, p := range s.speakers {
		p.stop(syscall.SIGTERM)
	}
	s2 := s.blocks("s2")
	a := status.State.Anchor
	var inDen, off int
	for _, b := range s2 {
		if b.TNs < moved.UnixNano() || b.Frame < songBFirst {
			continue
		}
		inDen++
		want := songBFirst + protocol.NsToFrames(a.PositionNs+b.TNs-a.AtNs, rate)
		if d := time.Duration(protocol.FramesToNs(abs(b.Frame-want), rate)); d > skewBar {
			off++
		}
	}
	t.Logf("s2 in den: %d blocks, %d off den's timeline by more than %v", inDen, off, skewBar)
	if inDen < 100 || off > inDen/100 {
		t.Errorf("s2 after joining den: %d blocks of den's song, %d off its timeline", inDen, off)
	}
	if homeSong := filterSong(s2, 0, songBFirst); len(homeSong) > 0 && homeSong[len(homeSong)-1].TNs > moved.UnixNano()+int64(time.Second) {
		t.Errorf("s2 still played home's song (frame %d) a second after it joined den", homeSong[len(homeSong)-1].Frame)
	}

	// Home Assistant's user (role homeassistant) reads the bridge's topics
	// and presses its entities; the bridge, an admin, turns that into
	// signed requests. Home Assistant itself may neither command tutti nor
	// read a session.
	bridge := start(t, "homeassistant", tuttiBin, "homeassistant", "--broker", s.tlsURL(), "--ca", s.ca,
		"--user", "bridge", "--password-file", s.passwordFile("bridge"))
	testwait.For(t, "the session's config for Home Assistant", 20*time.Second, func() bool {
		return strings.Contains(s.received("ha", "homeassistant/device/tutti_session_home/config"), "tutti_session_home_volume")
	})
	homeVolume := func() int {
		st, err := protocol.Decode[protocol.SessionState]([]byte(s.received("admin", protocol.SessionStateTopic("home"))))
		if err != nil {
			t.Fatal(err)
		}
		return st.Volume
	}
	if err := s.tryPub("ha", "-t", "tutti/ha/session/home/volume/set", "-m", "23"); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the volume Home Assistant set", 10*time.Second, func() bool { return homeVolume() == 23 })
	s1Before := s.received("admin", protocol.SpeakerStatusTopic("s1"))
	s.tryPub("ha", "-t", protocol.UserTopic(protocol.SessionCommandTopic("home"), "ha"), "-m", `{"cmd":"volume","volume":77}`)
	s.tryPub("ha", "-t", protocol.SessionCommandTopic("home"), "-m", `{"cmd":"volume","volume":78}`)
	s.tryPub("ha", "-t", protocol.SpeakerCommandTopic("s1"), "-m", `{"cmd":"restart"}`)
	if got := s.received("ha", protocol.SessionStateTopic("home")); got != "" {
		t.Errorf("Home Assistant's user read a session state: %s", got)
	}
	if v := homeVolume(); v != 23 {
		t.Errorf("Home Assistant's user commanded tutti directly: volume %d", v)
	}
	instance := func(status string) string {
		st, _ := protocol.Decode[protocol.SpeakerStatus]([]byte(status))
		return st.Instance
	}
	if before, after := instance(s1Before), instance(s.received("admin", protocol.SpeakerStatusTopic("s1"))); before == "" || before != after {
		t.Errorf("s1 restarted on Home Assistant's user's request: instance %q, then %q", before, after)
	}

	// No secret in any log: passwords, and the song token.
	logs := s.processLogs()
	logs["homeassistant"] = bridge.log
	for name, path := range logs {
		b, _ := os.ReadFile(path)
		for user, pw := range s.passwords {
			if user != "mallory" && bytes.Contains(b, []byte(pw)) {
				t.Errorf("%s's log holds %s's password", name, user)
			}
		}
		if lease.FetchToken != "" && bytes.Contains(b, []byte(lease.FetchToken)) {
			t.Errorf("%s's log holds the song token", name)
		}
	}
}

// filterSong keeps the blocks whose frames lie in [from, to).
func filterSong(blocks []playlog.Block, from, to int64) []playlog.Block {
	var out []playlog.Block
	for _, b := range blocks {
		if b.Frame >= from && b.Frame < to {
			out = append(out, b)
		}
	}
	return out
}

// processLogs are the log files of the system's processes, by name.
func (s *system) processLogs() map[string]string {
	logs := map[string]string{"broker": s.broker.log, "controller": s.controller.log}
	for name, p := range s.speakers {
		logs[name] = p.log
	}
	return logs
}
