package broker

import (
	"slices"
	"strings"

	"github.com/tutti-audio/tutti/protocol"
)

// access is what one authenticated client may do: its role, its name (a
// speaker's name is its speaker id), the sessions it may use, from the
// directory of session ACLs and speaker assignments, and the speaker
// commands it may answer.
type access struct {
	role            string
	name            string
	sessions        *sessionDirectory // never nil for members and speakers
	speakerCommands *speakerCommands  // never nil for speakers
	haPrefix        string            // Home Assistant's discovery prefix
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
// rights. Replies come from controllers, and from a speaker only in answer
// to a request it was sent (speakercmds.go). Below Home Assistant's
// discovery prefix only admins and controllers (the bridge) write, and Home
// Assistant its own status.
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
		return slices.Contains(protocol.SpeakerPublishable(a.name), topic) || a.speakerCommands.answer(a.name, topic, payload)
	case RoleHomeAssistant:
		switch {
		case topic == protocol.HomeAssistantStatus(a.haPrefix):
			return true // its birth message
		case inTutti(topic):
			return filterCovers(protocol.HomeAssistantCommandFilter, topic)
		}
		return !filterCovers(a.haPrefix+"/#", topic)
	case RoleMember:
		// Inside tutti/ a member publishes only its own signed requests,
		// never state, playlists, statuses or replies.
		if !inTutti(topic) {
			return !filterCovers(a.haPrefix+"/#", topic)
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

// mayWill reports whether the client may leave a last will on topic: what
// it may publish, but no reply, which answers a request now or never.
func (a access) mayWill(topic string, payload []byte) bool {
	if a.role == RoleSpeaker {
		return slices.Contains(protocol.SpeakerPublishable(a.name), topic)
	}
	return a.mayPublish(topic, payload)
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
//
// Requests are the exception: they are read by whoever answers them, and of
// the others only by who signed them (a speaker reads those sent to it). A
// filter that also matches other users' requests (tutti/session/home/#) is
// allowed, and those are withheld from it at delivery.
func (a access) maySubscribe(filter string) bool {
	switch {
	case a.role == RoleAdmin || a.role == RoleController:
		return true
	case !strings.ContainsAny(filter, "+#") && !a.mayReadRequests(filter):
		return false
	case a.role != RoleMember && a.role != RoleHomeAssistant && a.role != RoleSpeaker:
		return false
	case filterCovers(protocol.UserReplyTopic(a.name)+"/#", filter):
		return true // its own replies
	}
	switch a.role {
	case RoleMember:
		return a.memberMayRead(filter)
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

// mayReadRequests reports whether the client may read topic, if topic
// carries requests: only those it signed, or, for a speaker, those sent to
// it.
func (a access) mayReadRequests(topic string) bool {
	signer, isRequest := requestSigner(topic)
	switch {
	case !isRequest:
		return true
	case a.role == RoleSpeaker && topic == protocol.SpeakerCommandTopic(a.name):
		return true
	}
	return signer != "" && signer == a.name
}

// requestSigner says whether topic carries requests (a command topic,
// signed or not, a speaker's command topic, or a topic below one) and who
// signed them ("" for none).
func requestSigner(topic string) (user string, isRequest bool) {
	plain, user, ok := protocol.CommandTopic(topic)
	switch {
	case ok:
		return user, true
	case plain != "":
		return "", strings.HasPrefix(topic, plain+"/")
	}
	id, ok := protocol.SpeakerFromTopic(topic)
	cmd := protocol.SpeakerCommandTopic(id)
	return "", ok && (topic == cmd || strings.HasPrefix(topic, cmd+"/"))
}

// memberMayRead reports whether member a may read every topic filter
// matches, bar the requests withheld from it (see maySubscribe): below
// tutti/ the controller's and the library's topics, and what shows a
// session it sees: the session's topics, the speakers that play it, and the
// Home Assistant bridge's view of both. A speaker that plays no session
// shows none, and a member needs its name to join it to a session: every
// member sees it. Outside tutti/ a member reads anything but Home
// Assistant's discovery topics, which describe every session.
func (a access) memberMayRead(filter string) bool {
	levels := strings.Split(filter, "/")
	switch {
	case levels[0] == "+" || levels[0] == "#":
		return false // matches tutti/ too, other users' replies among it
	case levels[0] != protocol.Root:
		return !filtersOverlap(filter, a.haPrefix+"/#")
	case len(levels) == 1:
		return true // tutti itself: no topic
	}
	switch levels[1] {
	case area(protocol.ControllerStatusTopic), area(protocol.LibraryCommandTopic), area(protocol.SessionsCommandTopic):
		return true
	case area(protocol.SessionCommandFilter):
		return a.seesSessions(levels[2:])
	case area(protocol.SpeakerStatusFilter):
		return a.seesSpeakers(levels[2:])
	case area(protocol.HomeAssistantRoot):
		return a.seesBridgeTopics(levels[2:])
	}
	return false // other users' replies, or topics tutti does not use
}

// area is the second level of a tutti topic: what it is about (controller,
// library, session, speaker, ...).
func area(topic string) string {
	levels := strings.SplitN(topic, "/", 3)
	if len(levels) < 2 {
		return ""
	}
	return levels[1]
}

// seesSessions reports whether member a sees every session that levels,
// the filter's levels after tutti/session/, can name.
func (a access) seesSessions(levels []string) bool {
	switch {
	case len(levels) == 0:
		return true // tutti/session itself: no topic
	case levels[0] == "+" || levels[0] == "#":
		return a.sessions.seesAll(a.name)
	}
	return a.sessions.sees(levels[0], a.name)
}

// seesSpeakers reports whether member a sees every speaker that levels,
// the filter's levels after tutti/speaker/, can name.
func (a access) seesSpeakers(levels []string) bool {
	switch {
	case len(levels) == 0:
		return true
	case levels[0] == "+" || levels[0] == "#":
		return a.sessions.seesAllSpeakers(a.name)
	}
	return a.sessions.seesSpeaker(levels[0], a.name)
}

// seesBridgeTopics reports whether member a may read what levels, the
// filter's levels after tutti/ha/, can name: the bridge's view of a session
// or a speaker (tutti/ha/<kind>/<id>/..., kinds named like tutti's areas)
// like the session or speaker itself; its status and the controller's
// device freely.
func (a access) seesBridgeTopics(levels []string) bool {
	switch {
	case len(levels) == 0:
		return true
	case levels[0] == "+" || levels[0] == "#":
		return a.seesSessions(levels[:1]) && a.seesSpeakers(levels[:1])
	case levels[0] == area(protocol.SessionCommandFilter):
		return a.seesSessions(levels[1:])
	case levels[0] == area(protocol.SpeakerStatusFilter):
		return a.seesSpeakers(levels[1:])
	}
	return true
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

// filtersOverlap reports whether some topic matches both filters x and y.
func filtersOverlap(x, y string) bool {
	a, b := strings.Split(x, "/"), strings.Split(y, "/")
	for i := 0; ; i++ {
		switch {
		case i < len(a) && a[i] == "#", i < len(b) && b[i] == "#":
			return true
		case i == len(a) || i == len(b):
			return len(a) == len(b)
		case a[i] != "+" && b[i] != "+" && a[i] != b[i]:
			return false
		}
	}
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
