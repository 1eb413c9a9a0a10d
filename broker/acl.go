package broker

import (
	"slices"
	"strings"

	"github.com/tutti-audio/tutti/protocol"
)

// access is what one authenticated client may do: its role, its name (a
// speaker's name is its speaker id) and the sessions it may use, from the
// directory of session ACLs and speaker assignments.
type access struct {
	role     string
	name     string
	sessions *sessionDirectory // never nil for members and speakers
}

// everything is the access of the broker's own client and, in demo mode,
// of anonymous clients. It has no name, so it may also sign commands with
// any name.
var everything = access{role: RoleAdmin}

// mayPublish reports whether the client may publish payload to topic (a
// topic name, without wildcards).
//
// Commands are signed: <command topic>/<user> (protocol.UserTopic) may carry
// only the publisher's own user name, whatever its role. Members must sign:
// a plain command topic carries anonymous requests, which only a controller
// in open (demo) mode obeys, and there it would bypass the member's session
// rights.
func (a access) mayPublish(topic string, payload []byte) bool {
	switch a.role {
	case RoleAdmin, RoleController:
		// Only controllers claim the lease: an admin's claim would depose
		// them. Nameless access (the broker's own client, anonymous demo
		// clients, among them the demo's controllers) may.
		if topic == protocol.LeaseTopic && a.role != RoleController && a.name != "" {
			return false
		}
		return a.name == "" || !signedByOther(topic, a.name)
	case RoleSpeaker:
		// A speaker answers its own commands (protocol.SpeakerCommandTopic)
		// on the reply topics below tutti/reply only.
		return slices.Contains(protocol.SpeakerPublishable(a.name), topic) || filterCovers(protocol.DefaultReplyTopic+"/#", topic)
	case RoleHomeAssistant:
		return !inTutti(topic) || filterCovers(protocol.HomeAssistantCommandFilter, topic)
	case RoleMember:
		// A member may publish anything outside tutti/ (its own reply
		// topics, for instance), but inside only its own signed requests,
		// never state, playlists or statuses.
		if !inTutti(topic) {
			return true
		}
		plain, user, ok := protocol.CommandTopic(topic)
		if !ok || user != a.name {
			return false
		}
		if session, ok := protocol.SessionFromTopic(plain); ok {
			return a.sessions.mayCommand(session, a.name, payload)
		}
		return true // library and sessions commands: the controller checks them
	}
	return false
}

// signedByOther reports whether topic is a command topic signed with a user
// name other than name.
func signedByOther(topic, name string) bool {
	_, user, ok := protocol.CommandTopic(topic)
	return ok && user != "" && user != name
}

// maySubscribe reports whether the client may subscribe to filter (which may
// hold + and #): only if every topic the filter can match is readable. The
// broker also calls it with plain topic names before delivering a message,
// so a client whose rights shrink stops receiving what its older
// subscriptions match.
func (a access) maySubscribe(filter string) bool {
	switch a.role {
	case RoleAdmin, RoleController:
		return true
	case RoleMember:
		session, matches, anySession := sessionsMatched(filter)
		switch {
		case !matches:
			return true
		case anySession:
			return a.sessions.seesAll(a.name)
		}
		return a.sessions.sees(session, a.name)
	case RoleHomeAssistant:
		if !inTutti(filter) && !strings.HasPrefix(filter, "#") && !strings.HasPrefix(filter, "+") {
			return true
		}
		for _, readable := range protocol.HomeAssistantReadable {
			if filterCovers(readable, filter) {
				return true
			}
		}
	case RoleSpeaker:
		for _, readable := range speakerReadable(a.name, a.sessions.assignment(a.name)) {
			if filterCovers(readable, filter) {
				return true
			}
		}
	}
	return false
}

// speakerReadable is what speaker id may read while assigned to session
// ("" = none): protocol.SpeakerReadable, with its session topics narrowed
// to that one session.
func speakerReadable(id, session string) []string {
	var readable []string
	for _, filter := range protocol.SpeakerReadable(id) {
		if _, matches, _ := sessionsMatched(filter); !matches {
			readable = append(readable, filter)
		}
	}
	if session != "" {
		readable = append(readable, sessionFilter(session))
	}
	return readable
}

// sessionFilter matches every topic of session. protocol has no function
// for it (its topics are built the same way).
func sessionFilter(session string) string { return protocol.Root + "/session/" + session + "/#" }

// sessionsMatched says which session topics (tutti/session/<s>/...) filter
// can match: none (matches false), any session (a wildcard at or above the
// session level), or the one session it names.
func sessionsMatched(filter string) (session string, matches, anySession bool) {
	levels := strings.Split(filter, "/")
	for i, want := range []string{protocol.Root, "session"} {
		if i == len(levels) {
			return "", false, false
		}
		switch levels[i] {
		case "#":
			return "", true, true
		case "+", want:
		default:
			return "", false, false
		}
	}
	if len(levels) == 2 {
		return "", false, false // tutti/session itself
	}
	if levels[2] == "+" || levels[2] == "#" {
		return "", true, true
	}
	return levels[2], true, false
}

func inTutti(topic string) bool {
	first, _, _ := strings.Cut(topic, "/")
	return first == protocol.Root
}

// filterCovers reports whether every topic that filter matches is also
// matched by pattern. Both may hold MQTT wildcards: "+" matches exactly one
// level, "#" (last level only) matches the parent and any number of levels
// below. A plain topic name is a filter that matches only itself.
func filterCovers(pattern, filter string) bool {
	p := strings.Split(pattern, "/")
	f := strings.Split(filter, "/")
	// Wildcards at the first level do not match topics starting with '$'
	// (MQTT 3.1.1, 4.7.2), so "#" does not cover "$SYS/#".
	if strings.HasPrefix(filter, "$") && (p[0] == "+" || p[0] == "#") {
		return false
	}
	for i := range p {
		switch {
		case p[i] == "#":
			return true // covers whatever filter has from here on, even nothing
		case i == len(f):
			return false // filter ended; pattern wants more levels
		case f[i] == "#":
			return false // filter matches any depth here; pattern does not
		case f[i] == "+":
			if p[i] != "+" {
				return false
			}
		case p[i] != "+" && p[i] != f[i]:
			return false
		}
	}
	return len(f) == len(p)
}
