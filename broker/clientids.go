package broker

import (
	"fmt"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Connecting with the client id of a connected client takes the id over
// and disconnects that client, so the ids a user's programs depend on are
// that user's alone: a client id belongs to the user of that name, or to
// the user whose name followed by "-" begins it (the longest such name).
// A speaker's id is its user name; the controller, the CLI and the Home
// Assistant bridge use protocol.ClientID, "<user>-<program>-<instance>".
// Another user, or an anonymous client, is refused that id at CONNECT,
// and its owner takes it over from whoever holds it. An id that belongs
// to no user goes to the first client that takes it, and only a client of
// the same user may take it over.

// clientIDOwner returns the user a client id belongs to, if any.
func clientIDOwner(id string, users *userDirectory) (string, bool) {
	for candidate := id; candidate != ""; {
		if _, ok := users.lookup(candidate); ok {
			return candidate, true
		}
		i := strings.LastIndexByte(candidate, '-')
		if i < 0 {
			break
		}
		candidate = candidate[:i]
	}
	return "", false
}

// clientIDRefusal says why user ("" = anonymous) may not connect with
// client id, or "" if it may.
func clientIDRefusal(id, user string, users *userDirectory, clients *mqtt.Clients) string {
	old, held := clients.Get(id)
	if held && old.Net.Inline {
		return "client id is the broker's own"
	}
	if owner, ok := clientIDOwner(id, users); ok {
		if owner != user {
			return fmt.Sprintf("client id belongs to user %q", owner)
		}
		return ""
	}
	if held && string(old.Properties.Username) != user {
		return "client id is in use by another user"
	}
	return ""
}
