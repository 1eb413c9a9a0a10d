package broker

import (
	"bytes"
	"fmt"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/protocol"
)

// authHook authenticates clients against the users file, enforces the
// topic ACL of acl.go and the publish limit of ratelimit.go. Everything not
// allowed is denied.
type authHook struct {
	mqtt.HookBase
	users          *userDirectory
	logins         *logins // checks passwords, throttled per source
	allowAnonymous bool
	clients        *mqtt.Clients     // the broker's clients, to guard client ids
	sessions       *sessionDirectory // session ACLs and speaker assignments
	speakerCmds    *speakerCommands  // requests sent to speakers, which they may answer
	haPrefix       string            // Home Assistant's discovery prefix
	limiter        *publishLimiter   // nil: no limit
	refusals       *refusalLog       // logs refused subscriptions
	logger         *slog.Logger
}

func (h *authHook) ID() string { return "tutti-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnSubscribed,
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
	return access{role: u.Role, name: u.Name, sessions: h.sessions, speakerCommands: h.speakerCmds, haPrefix: h.haPrefix}, true
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
	} else if reason := h.logins.verify(cl, name, pk.Connect.Password); reason == loginThrottled {
		return false // logged by logins, sparingly: a refused guesser retries at once
	} else if reason != "" {
		return refuse(reason)
	}
	// A last will passes no OnPublish hook, so limitsHook's checks are
	// made here.
	if pk.Connect.WillFlag {
		if err := checkMessage(pk.Connect.WillTopic, pk.Connect.WillPayload, pk.Connect.WillRetain); err != nil {
			return refuse("last will over a limit: " + err.Error())
		}
	}
	// mochi publishes a last will without any ACL check, so the will topic
	// is checked here, as if the client published it now.
	a, _ := h.accessOf(cl)
	if pk.Connect.WillFlag && !a.mayWill(pk.Connect.WillTopic, pk.Connect.WillPayload) {
		return refuse("last will to a topic the user may not publish: " + pk.Connect.WillTopic)
	}
	// Nor does a will pass OnPublish, where session infos and assignments
	// are fenced and recorded (sessions.go) and lease claims arbitrated
	// (lease.go): none may be a will.
	if pk.Connect.WillFlag && (filterCovers(protocol.SessionInfoFilter, pk.Connect.WillTopic) || filterCovers(protocol.AssignFilter, pk.Connect.WillTopic) ||
		pk.Connect.WillTopic == protocol.LeaseTopic) {
		return refuse("last will to a session info, assignment or lease topic: " + pk.Connect.WillTopic)
	}
	// Taking over a client id disconnects its holder and inherits its
	// session: see clientids.go for who may.
	if reason := clientIDRefusal(cl.ID, name, h.users, h.clients); reason != "" {
		return refuse(reason)
	}
	return true
}

// OnACLCheck decides subscriptions (topic is a filter) and deliveries (topic
// is a topic name). It lets every publish of an authenticated client through:
// a denial here makes mochi disconnect a 3.1.1 client that publishes at QoS
// 1 or 2, so publishes are checked in OnPublish, which can acknowledge and
// drop them. Refusals are logged by OnSubscribed: a delivery refused (a
// topic of a session the client may no longer read) is routine. A filter
// over the size limits (limits.go) is refused before mochi's topic tree
// sees it.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	a, ok := h.accessOf(cl)
	if !ok {
		return false
	}
	return write || (protocol.CheckTopicSize(topic) == nil && a.maySubscribe(topic))
}

// OnSubscribed logs the filters of a subscription that were refused, at
// most once a second per user: one SUBSCRIBE can hold thousands. Those the
// subscription cap refused (subscriptions.go) it logged itself.
func (h *authHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	for i, code := range reasonCodes {
		if code >= packets.ErrUnspecifiedError.Code && i < len(pk.Filters) && pk.Filters[i].Filter != refusedFilter {
			h.refusals.add(cl, "mqtt subscription refused", fmt.Errorf("filter %s", logTopic(pk.Filters[i].Filter)))
		}
	}
}

// OnPublish drops a forbidden publish, or one beyond the client's rate
// limit, with CodeSuccessIgnore: mochi then acknowledges it (the client is
// not left waiting) but neither retains nor delivers it. A plain error would
// still deliver it for 3.1.1 clients. Controllers, the broker's own client
// and anonymous demo clients (among them the demo's controller) have no
// limit: a controller publishes a record per song when a library loads.
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	a, ok := h.accessOf(cl)
	// The limit comes first, so a flood of forbidden publishes does not
	// flood the log either.
	limited := h.limiter != nil && a.name != "" && a.role != RoleController
	if limited && !h.limiter.allow(cl) {
		return pk, packets.CodeSuccessIgnore
	}
	if !ok || !a.mayPublish(pk.TopicName, pk.Payload) {
		h.logger.Warn("mqtt publish refused", "user", a.name, "role", a.role, "client", cl.ID, "topic", pk.TopicName)
		return pk, packets.CodeSuccessIgnore
	}
	if id, ok := protocol.SpeakerFromTopic(pk.TopicName); ok && pk.TopicName == protocol.SpeakerCommandTopic(id) {
		h.speakerCmds.sent(id, pk.Payload)
	}
	return pk, nil
}

func (h *authHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.logger.Debug("mqtt client connected", "client", cl.ID, "user", string(cl.Properties.Username), "remote", cl.Net.Remote)
}

func (h *authHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	if h.limiter != nil {
		h.limiter.forget(cl)
	}
	h.logger.Debug("mqtt client disconnected", "client", cl.ID, "user", string(cl.Properties.Username), "error", err)
}
