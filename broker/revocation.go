package broker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A changed password or a removed user ends the connections logged in
// with the old credentials: whoever knew the old password (a lost phone, a
// former member) loses access at once, not at its next reconnect. The
// broker reloads the users file at every login and every
// usersPollInterval, and after each reload ends every connection whose
// user no longer has the password hash it logged in with.

// usersPollInterval is how often the users file is checked for changes: a
// stat a second costs nothing, and `tutti user passwd` takes effect within
// it.
const usersPollInterval = time.Second

// errCredentialsChanged is why a connection ends after its user's
// password changed or the user was removed.
var errCredentialsChanged = errors.New("the user's password changed or the user was removed")

// credential is who logged in on a connection, with which password hash.
type credential struct{ user, hash string }

// revocation ends the connections whose credentials are gone.
type revocation struct {
	mqtt.HookBase
	users   *userDirectory
	clients *mqtt.Clients
	logger  *slog.Logger
	swept   uint64 // users.loads() at the last sweep; only watch uses it
}

func newRevocation(users *userDirectory, clients *mqtt.Clients, logger *slog.Logger) *revocation {
	return &revocation{users: users, clients: clients, logger: logger, swept: users.loads()}
}

func (r *revocation) ID() string { return "tutti-revocation" }

func (r *revocation) Provides(b byte) bool { return b == mqtt.OnSessionEstablished }

// OnSessionEstablished ends a connection whose password changed between
// its check and its registration among the clients, which a reload's
// sweep may have missed.
func (r *revocation) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if r.stale(cl) {
		r.end(cl)
	}
}

// stale reports whether cl logged in with credentials its user no longer has.
func (r *revocation) stale(cl *mqtt.Client) bool {
	c, ok := connOf(cl)
	if !ok {
		return false
	}
	login := c.login.Load()
	if login == nil {
		return false // anonymous (demo mode)
	}
	u, ok := r.users.lookup(login.user)
	return !ok || u.PasswordHash != login.hash
}

func (r *revocation) end(cl *mqtt.Client) {
	r.logger.Warn("mqtt connection ended: its user's password changed or the user was removed",
		"user", string(cl.Properties.Username), "client", cl.ID, "remote", cl.Net.Remote)
	// Stop only closes the connection; a DISCONNECT packet could block on
	// a client that reads nothing.
	cl.Stop(packets.ErrNotAuthorized)
}

// sweep ends every stale connection.
func (r *revocation) sweep() {
	for _, cl := range r.clients.GetAll() {
		if r.stale(cl) {
			r.end(cl)
		}
	}
}

// watch reloads the users file every usersPollInterval, and sweeps after
// every reload (also those made by logins meanwhile), until ctx is done.
func (r *revocation) watch(ctx context.Context) {
	ticker := time.NewTicker(usersPollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		r.users.refresh()
		if loads := r.users.loads(); loads != r.swept {
			r.swept = loads
			r.sweep()
		}
	}
}
