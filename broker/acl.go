package broker

import (
	"slices"
	"strings"

	"github.com/tutti-audio/tutti/protocol"
)

// access is what one authenticated client may do: its role, and its name
// (a speaker's name is its speaker id).
type access struct {
	role string
	name string
}

// everything is the access of admins, controllers and, in demo mode,
// anonymous clients.
var everything = access{role: RoleAdmin}

// mayPublish reports whether the client may publish to topic (a topic
// name, without wildcards).
func (a access) mayPublish(topic string) bool {
	switch a.role {
	case RoleAdmin, RoleController:
		return true
	case RoleSpeaker:
		return slices.Contains(protocol.SpeakerPublishable(a.name), topic)
	case RoleMember:
		// A member may send requests and publish anything outside tutti/
		// (its own reply topics, for instance), but never state, playlists
		// or statuses.
		if !inTutti(topic) {
			return true
		}
		return topic == protocol.LibraryCommandTopic || filterCovers(protocol.SessionCommandFilter, topic)
	}
	return false
}

// maySubscribe reports whether the client may subscribe to filter (which may
// hold + and #): only if every topic the filter can match is readable. The
// broker also calls it with plain topic names before delivering a message.
func (a access) maySubscribe(filter string) bool {
	switch a.role {
	case RoleAdmin, RoleController, RoleMember:
		return true
	case RoleSpeaker:
		for _, readable := range protocol.SpeakerReadable(a.name) {
			if filterCovers(readable, filter) {
				return true
			}
		}
	}
	return false
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
