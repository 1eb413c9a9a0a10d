package broker

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/protocol"
)

func TestClientIDOwner(t *testing.T) {
	users, err := newUserDirectory(writeUsers(t, kitchen, bob, ctl, testUser{"bob-kids", RoleMember, "kids-secret"}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"kitchen":                   "kitchen",
		"kitchen-2":                 "kitchen",
		"kitchen-":                  "kitchen",
		"kitchenette":               "",
		"bob-cli-1f2e":              "bob",
		"bob-kids":                  "bob-kids",
		"bob-kids-tablet":           "bob-kids",
		"bob-kid":                   "bob",
		"ctl-controller-a1b2":       "ctl",
		"tutti-controller-a1b2":     "",
		"-kitchen":                  "",
		"":                          "",
		"my-kitchen":                "",
		"random-id-from-some-phone": "",
	} {
		owner, ok := clientIDOwner(id, users)
		if owner != want || ok != (want != "") {
			t.Errorf("clientIDOwner(%q) = %q, %v; want %q", id, owner, ok, want)
		}
	}
}

// TestClientIDSquatting: a member cannot connect with a speaker's or a
// controller's client id, even while they are offline, and they connect
// whenever they come.
func TestClientIDSquatting(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, kitchen, bob, ctl)})
	controllerID := protocol.ClientID(ctl.name, "controller", "a1b2c3")
	for _, id := range []string{kitchen.name, kitchen.name + "-2", controllerID} {
		if _, err := connect(t, b, bob, id); err == nil {
			t.Errorf("bob connected with client id %q", id)
		}
	}
	waitForLog(t, log, `reason="client id belongs to user \"kitchen\""`)
	speaker := mustConnect(t, b, kitchen, kitchen.name)
	controller := mustConnect(t, b, ctl, controllerID)
	// While they are connected, too.
	for _, id := range []string{kitchen.name, controllerID} {
		if _, err := connect(t, b, bob, id); err == nil {
			t.Errorf("bob took client id %q over", id)
		}
	}
	if !speaker.IsConnectionOpen() || !controller.IsConnectionOpen() {
		t.Error("the owners lost their connections")
	}
	// bob keeps his own ids, and anyone may use ids of no user.
	mustConnect(t, b, bob, protocol.ClientID(bob.name, "cli", "1f2e"))
	mustConnect(t, b, bob, "phone-7")
}

// TestOwnerTakesItsIDOver: a member holds an id before a speaker of that
// name is added; the speaker then takes its id over, and the member
// cannot take it back.
func TestOwnerTakesItsIDOver(t *testing.T) {
	users := writeUsers(t, bob)
	b, _, _ := startBroker(t, Options{UsersFile: users})
	lost := make(chan struct{})
	if _, err := connect(t, b, bob, "den", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	}); err != nil {
		t.Fatalf("bob with an id of no user: %v", err)
	}
	den := testUser{"den", RoleSpeaker, "den-secret"}
	if err := AddUser(users, den.name, den.role, den.password); err != nil {
		t.Fatal(err)
	}
	speaker := mustConnect(t, b, den, "den")
	select {
	case <-lost:
	case <-time.After(testWait):
		t.Fatal("the squatter kept its connection")
	}
	if _, err := connect(t, b, bob, "den"); err == nil {
		t.Error("bob took the speaker's id back")
	}
	got := subscribe(t, speaker, protocol.SpeakerStatusTopic("den"))
	publish(t, speaker, protocol.SpeakerStatusTopic("den"), false, "online")
	if m := receive(t, got); m.payload != "online" {
		t.Errorf("got %+v", m)
	}
}

// FuzzClientIDOwner: whatever id a client sends, its owner, if any, is a
// user whose name is the id or begins it followed by "-".
func FuzzClientIDOwner(f *testing.F) {
	for _, seed := range []string{"kitchen", "kitchen-2", "bob-kids-tablet", "-", "", "kitchen--", "\x00kitchen", "bob-kid"} {
		f.Add(seed)
	}
	users, err := newUserDirectory(writeUsers(f, kitchen, bob, testUser{"bob-kids", RoleMember, "kids-secret"}), slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id string) {
		owner, ok := clientIDOwner(id, users)
		if !ok {
			if owner != "" {
				t.Fatalf("no owner but %q", owner)
			}
			return
		}
		if _, known := users.lookup(owner); !known {
			t.Fatalf("owner %q of %q is no user", owner, id)
		}
		if id != owner && !strings.HasPrefix(id, owner+"-") {
			t.Fatalf("owner %q of %q: the id neither is nor begins with its name", owner, id)
		}
	})
}
