package broker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/BurntSushi/toml"

	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

// testWait bounds every wait for an event; generous for a busy 2-core machine.
const testWait = 15 * time.Second

// testUser is a user of the test users file, with its plain password.
type testUser struct{ name, role, password string }

var (
	admin   = testUser{"alice", RoleAdmin, "alice-secret"}
	kitchen = testUser{"kitchen", RoleSpeaker, "kitchen-secret"}
	bob     = testUser{"bob", RoleMember, "bob-secret"}
)

// writeUsers writes a users file with cheap bcrypt hashes, so tests stay fast.
func writeUsers(t testing.TB, users ...testUser) string {
	t.Helper()
	return writeUsersAtCost(t, bcrypt.MinCost, users...)
}

// writeUsersAtCost writes a users file with bcrypt hashes of cost.
func writeUsersAtCost(t testing.TB, cost int, users ...testUser) string {
	t.Helper()
	var doc usersFile
	for _, u := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(u.password), cost)
		if err != nil {
			t.Fatal(err)
		}
		doc.Users = append(doc.Users, User{Name: u.name, PasswordHash: string(hash), Role: u.role})
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startBroker runs a broker on 127.0.0.1:0 until the test ends. The returned
// stop function closes it early and waits for Run to return; the log holds
// everything it logged, at debug level.
func startBroker(t *testing.T, opts Options) (b *Broker, stop func(), log *syncBuffer) {
	t.Helper()
	log = new(syncBuffer)
	opts.Addr = "127.0.0.1:0"
	opts.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- b.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-ran:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(testWait):
			t.Errorf("Run did not return after cancel")
		}
	})
	t.Cleanup(stop)
	return b, stop, log
}

// connect connects a paho client over TCP and returns the broker's refusal,
// if any. The client is disconnected when the test ends.
func connect(t *testing.T, b *Broker, u testUser, clientID string, configure ...func(*paho.ClientOptions)) (paho.Client, error) {
	t.Helper()
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + b.Addr()).
		SetClientID(clientID).
		SetUsername(u.name).
		SetPassword(u.password).
		SetProtocolVersion(4).
		SetConnectTimeout(testWait).
		SetAutoReconnect(false).
		// In order: checkOnly relies on it. Handlers only fill a buffered channel.
		SetOrderMatters(true)
	for _, c := range configure {
		c(opts)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(testWait) {
		t.Fatalf("connect %s: no answer", u.name)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func mustConnect(t *testing.T, b *Broker, u testUser, clientID string) paho.Client {
	t.Helper()
	c, err := connect(t, b, u, clientID)
	if err != nil {
		t.Fatalf("connect %s: %v", u.name, err)
	}
	return c
}

type message struct {
	topic, payload string
	retained       bool
}

// subscribe subscribes c to filter and returns the channel of what arrives.
// It fails the test if the broker refuses the filter.
func subscribe(t *testing.T, c paho.Client, filter string) <-chan message {
	t.Helper()
	got := make(chan message, 100)
	code := trySubscribe(t, c, filter, func(_ paho.Client, m paho.Message) {
		got <- message{m.Topic(), string(m.Payload()), m.Retained()}
	})
	if code > 2 {
		t.Fatalf("subscribe %s: refused with code %#x", filter, code)
	}
	return got
}

// trySubscribe returns the SUBACK return code: the granted QoS, or 0x80.
func trySubscribe(t *testing.T, c paho.Client, filter string, handler paho.MessageHandler) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, handler)
	if !tok.WaitTimeout(testWait) {
		t.Fatalf("subscribe %s: no SUBACK", filter)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func publish(t *testing.T, c paho.Client, topic string, retained bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(testWait) {
		t.Fatalf("publish %s: no PUBACK", topic)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

func receive(t *testing.T, got <-chan message) message {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(testWait):
		t.Fatal("no message arrived")
		return message{}
	}
}

func TestAuthentication(t *testing.T) {
	users := writeUsers(t, admin, kitchen)
	b, _, log := startBroker(t, Options{UsersFile: users})
	tests := []struct {
		name string
		user testUser
		ok   bool
	}{
		{"admin", admin, true},
		{"speaker", kitchen, true},
		{"wrong password", testUser{name: kitchen.name, password: "guess"}, false},
		{"empty password", testUser{name: kitchen.name}, false},
		{"unknown user", testUser{name: "mallory", password: "x"}, false},
		{"anonymous", testUser{}, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := connect(t, b, tc.user, fmt.Sprintf("auth-%d", i))
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("accepted")
			}
		})
	}
	for _, secret := range []string{admin.password, kitchen.password, "guess", "$2a$"} {
		if strings.Contains(log.String(), secret) {
			t.Errorf("log contains %q:\n%s", secret, log.String())
		}
	}
	if !strings.Contains(log.String(), "wrong password") {
		t.Errorf("refusal not logged:\n%s", log.String())
	}
}

func TestAnonymousInDemoMode(t *testing.T) {
	b, _, log := startBroker(t, Options{AllowAnonymous: true})
	if !strings.Contains(log.String(), "DEMO MODE") {
		t.Errorf("no demo warning in log:\n%s", log.String())
	}
	c := mustConnect(t, b, testUser{}, "anon")
	got := subscribe(t, c, "#")
	publish(t, c, protocol.SessionStateTopic("home"), false, "state")
	if m := receive(t, got); m.topic != protocol.SessionStateTopic("home") {
		t.Errorf("got %v", m)
	}
	// Named users still need a valid password in demo mode.
	if _, err := connect(t, b, testUser{name: "mallory", password: "x"}, "mallory"); err == nil {
		t.Error("unknown user accepted in demo mode")
	}
}

func TestNewChecksOptions(t *testing.T) {
	for name, opts := range map[string]Options{
		"no users, no anonymous": {Addr: "127.0.0.1:0"},
		"missing users file":     {Addr: "127.0.0.1:0", UsersFile: filepath.Join(t.TempDir(), "none.toml")},
		"no address":             {AllowAnonymous: true},
		"negative packet size":   {Addr: "127.0.0.1:0", AllowAnonymous: true, MaxPacketSize: -1},
	} {
		if b, err := New(opts); err == nil {
			b.Close()
			t.Errorf("%s: New accepted %+v", name, opts)
		}
	}
}

// retainedTopics lists the broker's retained topics outside $SYS.
func retainedTopics(b *Broker) []string {
	var topics []string
	for topic := range b.server.Topics.Retained.GetAll() {
		if !strings.HasPrefix(topic, "$") {
			topics = append(topics, topic)
		}
	}
	slices.Sort(topics)
	return topics
}

// checkOnly publishes a marker from the same client after the publishes
// under test, then checks that the observer saw exactly want before the
// marker. The broker handles one client's publishes in order, so anything
// delivered would have arrived before the marker.
func checkOnly(t *testing.T, from paho.Client, markerTopic string, seen <-chan message, want ...string) {
	t.Helper()
	publish(t, from, markerTopic, false, "marker")
	var got []string
	for {
		m := receive(t, seen)
		if m.payload == "marker" {
			break
		}
		got = append(got, m.topic)
	}
	// QoS 1 is at least once: a message the broker resends while its ack is
	// on the way arrives twice.
	if got = slices.Compact(got); !slices.Equal(got, want) {
		t.Errorf("delivered %q, want %q", got, want)
	}
}

func TestSpeakerPublishACL(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, admin, kitchen)})
	observer := mustConnect(t, b, admin, "observer")
	seen := subscribe(t, observer, "tutti/#")
	speaker := mustConnect(t, b, kitchen, "kitchen")

	// Refused publishes are acknowledged (publish waits for PUBACK) and dropped.
	publish(t, speaker, protocol.SpeakerStatusTopic("bath"), true, "forged status")
	publish(t, speaker, protocol.SessionStateTopic("home"), true, "forged state")
	publish(t, speaker, protocol.SessionCommandTopic("home"), false, "forged command")
	publish(t, speaker, protocol.LibraryCommandTopic, false, "forged command")
	publish(t, speaker, "elsewhere", false, "outside tutti")
	publish(t, speaker, protocol.SpeakerStatusTopic("kitchen"), true, "status")
	publish(t, speaker, protocol.ClockRequestTopic("kitchen"), false, "probe")
	if !speaker.IsConnectionOpen() {
		t.Fatal("speaker disconnected after a refused publish")
	}
	checkOnly(t, speaker, protocol.ClockRequestTopic("kitchen"), seen,
		protocol.SpeakerStatusTopic("kitchen"), protocol.ClockRequestTopic("kitchen"))
	if got, want := retainedTopics(b), []string{protocol.SpeakerStatusTopic("kitchen")}; !slices.Equal(got, want) {
		t.Errorf("retained %q, want %q", got, want)
	}
	if !strings.Contains(log.String(), "topic="+protocol.SessionStateTopic("home")) {
		t.Errorf("refused publish not logged with its topic:\n%s", log.String())
	}
}

func TestSpeakerSubscribeACL(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin, kitchen)})
	controller := mustConnect(t, b, admin, "controller")
	publish(t, controller, protocol.AssignTopic("kitchen"), true, assignMsg("kitchen", "home"))
	speaker := mustConnect(t, b, kitchen, "kitchen")
	ignore := func(paho.Client, paho.Message) {}
	for _, filter := range []string{
		"tutti/session/home/#", protocol.SessionStateTopic("home"), protocol.PlaylistTopic("home"), protocol.AssignTopic("kitchen"),
		protocol.ControllerStatusTopic, protocol.ClockResponseTopic("kitchen"), "tutti/speaker/kitchen/#",
		protocol.LeaseTopic, protocol.LibrarySongFilter, protocol.SpeakerStatusFilter, // replication and peer fetch
	} {
		if code := trySubscribe(t, speaker, filter, ignore); code > 2 {
			t.Errorf("%s refused (code %#x)", filter, code)
		}
	}
	for _, filter := range []string{
		"#", "tutti/#", "tutti/session/#", "tutti/session/+/state", protocol.SessionStateTopic("office"),
		"tutti/+/home/state", "tutti/speaker/+/#", "tutti/speaker/bath/#", protocol.AckFilter,
		protocol.ClockResponseTopic("bath"), protocol.LibraryCommandTopic, "elsewhere", "$SYS/#",
	} {
		if code := trySubscribe(t, speaker, filter, ignore); code != 0x80 {
			t.Errorf("%s allowed (code %#x)", filter, code)
		}
	}
	// mqttclient.Subscribe reports the refused filters as an error, and
	// only those: paho itself calls the token a success.
	err := mqttclient.Subscribe(speaker, map[string]byte{"tutti/#": 1, protocol.LeaseTopic: 1}, ignore, testWait)
	if err == nil || !strings.Contains(err.Error(), "tutti/# (code 0x80)") || strings.Contains(err.Error(), protocol.LeaseTopic) {
		t.Errorf("mqttclient.Subscribe of a refused and an allowed filter: %v", err)
	}
	if !speaker.IsConnectionOpen() {
		t.Error("speaker disconnected after a refused subscription")
	}
}

func TestMemberACL(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin, bob)})
	observer := mustConnect(t, b, admin, "observer")
	seen := subscribe(t, observer, "#")
	member := mustConnect(t, b, bob, "bob")
	if code := trySubscribe(t, member, protocol.UserReplyTopic(bob.name)+"/#", func(paho.Client, paho.Message) {}); code > 2 {
		t.Errorf("member may not subscribe to its replies (code %#x)", code)
	}

	signedSession := protocol.UserTopic(protocol.SessionCommandTopic("home"), bob.name)
	signedLibrary := protocol.UserTopic(protocol.LibraryCommandTopic, bob.name)
	publish(t, member, signedSession, false, `{"cmd":"play"}`)
	publish(t, member, signedLibrary, false, `{"cmd":"search"}`)
	publish(t, member, protocol.SessionCommandTopic("home"), false, "unsigned")
	publish(t, member, protocol.LibraryCommandTopic, false, "unsigned")
	publish(t, member, protocol.UserTopic(protocol.SessionCommandTopic("home"), admin.name), false, "signed as another")
	publish(t, member, "bob/replies", false, "outside tutti")
	publish(t, member, protocol.SessionStateTopic("home"), true, "forged state")
	publish(t, member, protocol.PlaylistTopic("home"), true, "forged playlist")
	publish(t, member, protocol.SpeakerStatusTopic("kitchen"), true, "forged status")
	publish(t, member, protocol.DefaultReplyTopic, false, "forged reply")
	publish(t, member, protocol.UserReplyTopic(admin.name), false, "forged reply")
	// Home Assistant's discovery topics are the bridge's, and its status
	// Home Assistant's.
	publish(t, member, protocol.HomeAssistantPrefix+"/device/tutti_session_home/config", true, "forged config")
	publish(t, member, protocol.HomeAssistantStatus(protocol.HomeAssistantPrefix), false, "online")
	checkOnly(t, member, "bob/replies", seen, signedSession, signedLibrary, "bob/replies")
	if got := retainedTopics(b); len(got) != 0 {
		t.Errorf("retained %q, want nothing", got)
	}
}

func TestLastWillChecked(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, kitchen, admin)})
	willTo := func(topic string) func(*paho.ClientOptions) {
		return func(o *paho.ClientOptions) { o.SetWill(topic, "offline", 1, true) }
	}
	if _, err := connect(t, b, kitchen, "kitchen", willTo(protocol.SessionStateTopic("home"))); err == nil {
		t.Error("speaker connected with a last will on a session state")
	}
	if _, err := connect(t, b, kitchen, "kitchen", willTo(protocol.SpeakerStatusTopic("kitchen"))); err != nil {
		t.Errorf("speaker refused with a last will on its own status: %v", err)
	}
	if _, err := connect(t, b, admin, "alice", willTo(protocol.SessionInfoTopic("home"))); err == nil {
		t.Error("admin connected with a last will on a session info, which the broker would not track")
	}
}

func TestClientIDOfAnotherUserRefused(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, kitchen, bob)})
	speaker := mustConnect(t, b, kitchen, "kitchen")
	if _, err := connect(t, b, bob, "kitchen"); err == nil {
		t.Error("member took over the speaker's client id")
	}
	if !speaker.IsConnectionOpen() {
		t.Error("speaker lost its connection")
	}
	// The same user may take its own id over (a restarted speaker does).
	mustConnect(t, b, kitchen, "kitchen")
}

func TestRetainedSurvivesRestart(t *testing.T) {
	dataDir := t.TempDir()
	opts := Options{UsersFile: writeUsers(t, admin), DataDir: dataDir}
	b, stop, _ := startBroker(t, opts)
	c := mustConnect(t, b, admin, "controller")
	publish(t, c, protocol.SessionStateTopic("home"), true, "state v1")
	publish(t, c, protocol.PlaylistTopic("home"), true, "playlist v1")
	publish(t, c, protocol.PlaylistTopic("home"), true, "") // empty retained payload deletes
	c.Disconnect(0)
	stop()

	b, _, _ = startBroker(t, opts)
	c = mustConnect(t, b, admin, "client")
	got := subscribe(t, c, "tutti/#")
	if m := receive(t, got); m != (message{protocol.SessionStateTopic("home"), "state v1", true}) {
		t.Errorf("after restart got %+v", m)
	}
	if got := retainedTopics(b); !slices.Equal(got, []string{protocol.SessionStateTopic("home")}) {
		t.Errorf("retained after restart: %q", got)
	}
}

func TestOversizedPacketRefused(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin), MaxPacketSize: 4096})
	lost := make(chan error, 1)
	big, err := connect(t, b, admin, "big", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	})
	if err != nil {
		t.Fatal(err)
	}
	big.Publish(protocol.SessionStateTopic("home"), 1, true, strings.Repeat("x", 8192))
	select {
	case <-lost:
	case <-time.After(testWait):
		t.Fatal("client that sent an oversized packet is still connected")
	}

	// The broker survives, keeps nothing of it, and serves others.
	c := mustConnect(t, b, admin, "after")
	got := subscribe(t, c, "tutti/#")
	publish(t, c, protocol.SessionStateTopic("home"), false, strings.Repeat("y", 2048))
	if m := receive(t, got); m.payload != strings.Repeat("y", 2048) {
		t.Errorf("got %d bytes on %s", len(m.payload), m.topic)
	}
	if got := retainedTopics(b); len(got) != 0 {
		t.Errorf("retained %q", got)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	b, err := New(Options{Addr: "127.0.0.1:0", AllowAnonymous: true, DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Run(context.Background()); err == nil {
		t.Error("Run after Close succeeded")
	}
}

func TestNewRefusesBusyAddressAndStore(t *testing.T) {
	dataDir := t.TempDir()
	b, _, _ := startBroker(t, Options{AllowAnonymous: true, DataDir: dataDir})
	quiet := slog.New(slog.DiscardHandler)
	if other, err := New(Options{Addr: b.Addr(), AllowAnonymous: true, Logger: quiet}); err == nil {
		other.Close()
		t.Error("second broker bound the same address")
	}
	// The store is locked by the running broker: a second one must not share it.
	if other, err := New(Options{Addr: "127.0.0.1:0", AllowAnonymous: true, DataDir: dataDir, Logger: quiet}); err == nil {
		other.Close()
		t.Error("second broker opened the same store")
	}
}

func TestUsersFileReloaded(t *testing.T) {
	users := writeUsers(t, admin)
	b, _, log := startBroker(t, Options{UsersFile: users})
	if _, err := connect(t, b, bob, "bob-1"); err == nil {
		t.Fatal("bob connected before he was added")
	}
	if err := AddUser(users, bob.name, bob.role, bob.password); err != nil {
		t.Fatal(err)
	}
	mustConnect(t, b, bob, "bob-2")

	// A broken file is not taken: the users loaded before stay.
	if err := os.WriteFile(users, []byte("[[user]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustConnect(t, b, admin, "alice")
	if !strings.Contains(log.String(), "users file not reloaded") {
		t.Errorf("broken users file not logged:\n%s", log.String())
	}
}
