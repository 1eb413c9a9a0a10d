package controller

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/broker"
	"github.com/tutti-audio/tutti/protocol"
)

// startSecureBroker runs tutti's own broker, which enforces the sessions'
// ACLs, with the users of roles (name → role), each with the password
// name+"-secret", until the test ends. It returns the URL clients dial.
func startSecureBroker(t *testing.T, roles map[string]string) string {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users.toml")
	for name, role := range roles {
		if err := broker.AddUser(users, name, role, name+"-secret"); err != nil {
			t.Fatal(err)
		}
	}
	b, err := broker.New(broker.Options{Addr: "127.0.0.1:0", UsersFile: users,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("broker: %v", err)
		}
	})
	return "tcp://" + b.Addr()
}

// TestPrivateSessionNeverShown: an admin creates den with an ACL naming
// alice only, while bob, a member, has been subscribed to every session's
// topics since before den existed. Alice receives den's info, playlist and
// state; bob receives nothing of den, while his own commands are answered
// and a session created without an ACL (open to every member, as before)
// reaches him.
func TestPrivateSessionNeverShown(t *testing.T) {
	roles := map[string]string{"ctl": broker.RoleController, "admin": broker.RoleAdmin,
		"alice": broker.RoleMember, "bob": broker.RoleMember}
	url := startSecureBroker(t, roles)
	startController(t, Options{BrokerURL: url, DataDir: t.TempDir(), Username: "ctl", Password: "ctl-secret",
		Roles: func(user string) string { return roles[user] }})
	everySession := protocol.Root + "/session/+/#"
	// Each watches with one client and asks with another (asking skips
	// the messages before the reply).
	aliceWatch := newUserClient(t, url, "alice", "alice-secret", everySession)
	bobWatch := newUserClient(t, url, "bob", "bob-secret", everySession)
	alice := newUserClient(t, url, "alice", "alice-secret", protocol.UserReplyTopic("alice"))
	bob := newUserClient(t, url, "bob", "bob-secret", protocol.UserReplyTopic("bob"))
	admin := newUserClient(t, url, "admin", "admin-secret", protocol.UserReplyTopic("admin"))

	var info protocol.SessionInfo
	admin.mustAsk(protocol.SessionsCommandTopic, "admin",
		`{"cmd":"create","session":"den","title":"The den","acl":{"see":["alice"],"join":["alice"],"control":["alice"]}}`, &info)
	if !sameACL(info.ACL, protocol.ACL{See: []string{"alice"}, Join: []string{"alice"}, Control: []string{"alice"}}) {
		t.Fatalf("den created with %+v", info.ACL)
	}
	alice.mustAsk(protocol.SessionCommandTopic("den"), "alice", `{"cmd":"volume","volume":31}`, nil)
	admin.mustAsk(protocol.SessionsCommandTopic, "admin", `{"cmd":"create","session":"attic"}`, &info)
	if !sameACL(info.ACL, protocol.Everyone) {
		t.Fatalf("attic created with %+v, want every member", info.ACL)
	}
	bob.mustAsk(protocol.SessionCommandTopic("home"), "bob", `{"cmd":"volume","volume":47}`, nil)

	// Alice receives den's topics, its info (with its ACL) first.
	var denTopics []string
	for {
		m := aliceWatch.nextAny()
		if strings.Contains(m.Topic(), "/den/") {
			denTopics = append(denTopics, m.Topic())
		}
		if len(denTopics) == 1 && !strings.Contains(string(m.Payload()), `"see":["alice"]`) {
			t.Errorf("den's first message to alice: %s %s", m.Topic(), m.Payload())
		}
		if m.Topic() == protocol.SessionStateTopic("den") && strings.Contains(string(m.Payload()), `"volume":31`) {
			break
		}
	}
	if denTopics[0] != protocol.SessionInfoTopic("den") || !slices.Contains(denTopics, protocol.PlaylistTopic("den")) {
		t.Errorf("alice received den's topics in the order %v", denTopics)
	}
	// Everything published before home's new state has reached bob by then
	// (one publisher, one subscriber: in order), attic's state among it.
	var seen []string
	for {
		m := bobWatch.nextAny()
		seen = append(seen, m.Topic())
		if strings.Contains(m.Topic(), "/den/") || strings.Contains(string(m.Payload()), "den") {
			t.Errorf("bob received %s: %s", m.Topic(), m.Payload())
		}
		var st protocol.SessionState
		if m.Topic() == protocol.SessionStateTopic("home") && json.Unmarshal(m.Payload(), &st) == nil && st.Volume == 47 {
			break
		}
	}
	if !strings.Contains(strings.Join(seen, " "), protocol.SessionStateTopic("attic")) {
		t.Errorf("bob did not receive attic's state; he saw %v", seen)
	}
}
