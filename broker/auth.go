package broker

import (
	"bytes"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"
)

// authHook authenticates clients against the users file and enforces the
// topic ACL of acl.go. Everything not allowed is denied.
type authHook struct {
	mqtt.HookBase
	users          *userDirectory
	allowAnonymous bool
	sessions       *mqtt.Clients // the broker's clients, to guard client ids
	logger         *slog.Logger
}

func (h *authHook) ID() string { return "tutti-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnPublish,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
	}, []byte{b})
}

// accessOf looks the client's rights up afresh each time from its username,
// so a session restored from the store gets the rights of the current users
// file, and a removed user gets none.
func (h *authHook) accessOf(cl *mqtt.Client) (access, bool) {
	if cl.Net.Inline {
		return everything, true
	}
	name := string(cl.Properties.Username)
	if name == "" {
		return everything, h.allowAnonymous
	}
	u, ok := h.users.lookup(name)
	if !ok {
		return access{}, false
	}
	return access{role: u.Role, name: u.Name}, true
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	name := string(pk.Connect.Username)
	refuse := func(reason string) bool {
		h.logger.Warn("mqtt connection refused", "reason", reason, "user", name, "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	if name == "" {
		if !h.allowAnonymous {
			return refuse("anonymous clients are not allowed")
		}
	} else {
		h.users.refresh()
		u, ok := h.users.lookup(name)
		if !ok {
			return refuse("unknown user")
		}
		if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), pk.Connect.Password) != nil {
			return refuse("wrong password")
		}
	}
	// mochi publishes a last will without any ACL check, so the will topic
	// is checked here, as if the client published it now.
	a, _ := h.accessOf(cl)
	if pk.Connect.WillFlag && !a.mayPublish(pk.Connect.WillTopic) {
		return refuse("last will to a topic the user may not publish: " + pk.Connect.WillTopic)
	}
	// Taking over a client id disconnects its holder and inherits its
	// session (subscriptions included): only the same user may do that.
	if old, ok := h.sessions.Get(cl.ID); ok && (old.Net.Inline || !bytes.Equal(old.Properties.Username, pk.Connect.Username)) {
		return refuse("client id is in use by another user")
	}
	return true
}

// OnACLCheck decides subscriptions (topic is a filter) and deliveries (topic
// is a topic name). It lets every publish of an authenticated client through:
// a denial here makes mochi disconnect a 3.1.1 client that publishes at QoS
// 1 or 2, so publishes are checked in OnPublish, which can acknowledge and
// drop them.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	a, ok := h.accessOf(cl)
	if !ok {
		return false
	}
	if write {
		return true
	}
	if !a.maySubscribe(topic) {
		h.logger.Warn("mqtt subscription refused", "user", a.name, "role", a.role, "client", cl.ID, "filter", topic)
		return false
	}
	return true
}

// OnPublish drops a forbidden publish with CodeSuccessIgnore: mochi then
// acknowledges it (the client is not left waiting) but neither retains nor
// delivers it. A plain error would still deliver it for 3.1.1 clients.
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	a, ok := h.accessOf(cl)
	if ok && a.mayPublish(pk.TopicName) {
		return pk, nil
	}
	h.logger.Warn("mqtt publish refused", "user", a.name, "role", a.role, "client", cl.ID, "topic", pk.TopicName)
	return pk, packets.CodeSuccessIgnore
}

func (h *authHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.logger.Debug("mqtt client connected", "client", cl.ID, "user", string(cl.Properties.Username), "remote", cl.Net.Remote)
}

func (h *authHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	h.logger.Debug("mqtt client disconnected", "client", cl.ID, "user", string(cl.Properties.Username), "error", err)
}
