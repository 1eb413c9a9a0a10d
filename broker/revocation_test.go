package broker

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/clock"
)

// connectWatched connects and returns a channel closed when the broker
// ends the connection.
func connectWatched(t *testing.T, b *Broker, u testUser, clientID string) (paho.Client, <-chan struct{}) {
	t.Helper()
	lost := make(chan struct{})
	c, err := connect(t, b, u, clientID, func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	})
	if err != nil {
		t.Fatalf("connect %s: %v", u.name, err)
	}
	return c, lost
}

// TestChangedPasswordEndsConnections: `tutti user passwd` ends the
// connections logged in with the old password, `tutti user remove` those
// of the removed user; the other users' connections stay and work.
func TestChangedPasswordEndsConnections(t *testing.T) {
	users := writeUsers(t, admin, bob, kitchen)
	b, _, log := startBroker(t, Options{UsersFile: users})
	_, bobLost := connectWatched(t, b, bob, "bob-phone")
	_, bobLost2 := connectWatched(t, b, bob, "bob-laptop")
	_, kitchenLost := connectWatched(t, b, kitchen, kitchen.name)
	other, otherLost := connectWatched(t, b, admin, "alice-laptop")

	if err := SetPassword(users, bob.name, "new-secret"); err != nil {
		t.Fatal(err)
	}
	for _, lost := range []<-chan struct{}{bobLost, bobLost2} {
		select {
		case <-lost:
		case <-time.After(testWait):
			t.Fatal("a connection logged in with the old password is still open")
		}
	}
	waitForLog(t, log, "password changed or the user was removed")
	if _, err := connect(t, b, bob, "bob-phone"); err == nil {
		t.Error("the old password still logs in")
	}
	mustConnect(t, b, testUser{bob.name, bob.role, "new-secret"}, "bob-phone")

	if err := RemoveUser(users, kitchen.name); err != nil {
		t.Fatal(err)
	}
	select {
	case <-kitchenLost:
	case <-time.After(testWait):
		t.Fatal("the removed speaker's connection is still open")
	}

	select {
	case <-otherLost:
		t.Fatal("another user's connection ended")
	default:
	}
	got := subscribe(t, other, "alice/echo")
	publish(t, other, "alice/echo", false, "still here")
	if m := receive(t, got); m.payload != "still here" {
		t.Errorf("got %+v", m)
	}
}

// TestLoginRacingAPasswordChange: a login checked against the old
// password but registered after the reload's sweep is ended as soon as it
// is established.
func TestLoginRacingAPasswordChange(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	path := writeUsers(t, bob)
	users, err := newUserDirectory(path, quiet)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := users.lookup(bob.name)
	brokerEnd, clientEnd := net.Pipe()
	defer clientEnd.Close()
	c, reason := newConnLimiter(10, clock.Real{}, quiet).admit(brokerEnd)
	if reason != "" {
		t.Fatal(reason)
	}
	c.login.Store(&credential{user: bob.name, hash: old.PasswordHash})
	cl := &mqtt.Client{Net: mqtt.ClientConnection{Conn: c, Remote: "pipe"}}
	r := newRevocation(users, nil, quiet)
	open := func() bool {
		clientEnd.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := clientEnd.Read(make([]byte, 1))
		return errors.Is(err, os.ErrDeadlineExceeded)
	}

	r.OnSessionEstablished(cl, packets.Packet{})
	if !open() {
		t.Fatal("a connection with the current password was ended")
	}
	if err := SetPassword(path, bob.name, "new-secret"); err != nil {
		t.Fatal(err)
	}
	users.refresh()
	r.OnSessionEstablished(cl, packets.Packet{})
	if open() {
		t.Fatal("a connection logged in with the old password stayed open")
	}
}

// TestBrokenUsersFileLoggedOnce: the broker checks the users file every
// second; a broken one keeps the users loaded before and is logged once.
func TestBrokenUsersFileLoggedOnce(t *testing.T) {
	path := writeUsers(t, admin)
	log := new(syncBuffer)
	users, err := newUserDirectory(path, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("[[user]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		users.refresh()
	}
	if n := strings.Count(log.String(), "users file not reloaded"); n != 1 {
		t.Errorf("broken users file logged %d times, want once:\n%s", n, log.String())
	}
	if _, ok := users.lookup(admin.name); !ok {
		t.Error("the users loaded before were dropped")
	}
}
