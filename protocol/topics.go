// Package protocol is tutti's wire protocol: every MQTT topic name and every
// JSON message that crosses the broker. All roles import it; it imports only
// the standard library. docs/PROTOCOL.md describes the same things for people.
package protocol

import (
	"fmt"
	"regexp"
	"strings"
)

// Root is the first level of every tutti topic.
const Root = "tutti"

// DefaultSession is the session a speaker and a command use when none is named.
const DefaultSession = "home"

// DefaultReplyTopic receives the replies to anonymous requests (a demo
// broker) that name no reply_to. Every reply topic lies in its subtree:
// UserReplyTopic.
const DefaultReplyTopic = Root + "/reply"

// UserReplyTopic is where the requests signed by user are answered when
// they name no reply_to, and its subtree is the only place their reply_to
// may name: the broker lets user read no other reply topic, so nobody reads
// another's replies. Anonymous requests (user "") get DefaultReplyTopic.
func UserReplyTopic(user string) string {
	if user == "" {
		return DefaultReplyTopic
	}
	return DefaultReplyTopic + "/" + user
}

// Topics of the controller.
const (
	// ControllerStatusTopic is retained, QoS 1, published by the controller
	// that holds the lease (every controller's last will says offline there;
	// the holder corrects another's will at once). Payload: ControllerStatus.
	ControllerStatusTopic = Root + "/controller/status"
	// LeaseTopic says which controller is in charge, under which term.
	// QoS 1; a claim is retained, renewals are not. Payload: Lease.
	LeaseTopic = Root + "/controller/lease"
	// LibrarySongFilter matches every LibrarySongTopic.
	LibrarySongFilter = Root + "/library/song/+"
	// SavedPlaylistFilter matches every SavedPlaylistTopic.
	SavedPlaylistFilter = Root + "/library/playlist/+"
	// LibraryCommandTopic takes library requests (load, search, lookup). QoS 1.
	LibraryCommandTopic = Root + "/library/cmd"
	// SessionsCommandTopic takes requests about sessions (list, create,
	// rename, delete, grant). QoS 1.
	SessionsCommandTopic = Root + "/sessions/cmd"
	// SessionCommandFilter matches every session's command topic.
	SessionCommandFilter = Root + "/session/+/cmd"
	// SessionInfoFilter and AssignFilter match every SessionInfoTopic and
	// AssignTopic.
	SessionInfoFilter = Root + "/session/+/info"
	AssignFilter      = Root + "/speaker/+/assign"
	// ClockRequestFilter matches every speaker's clock request topic.
	ClockRequestFilter = Root + "/speaker/+/clock/req"
	// SpeakerStatusFilter matches every speaker's status topic.
	SpeakerStatusFilter = Root + "/speaker/+/status"
	// AckFilter matches every speaker's ack topic.
	AckFilter = Root + "/speaker/+/ack"
	// SessionStateFilter and PlaylistFilter match every session's state and
	// playlist topics (standby controllers mirror them).
	SessionStateFilter = Root + "/session/+/state"
	PlaylistFilter     = Root + "/session/+/playlist"
)

// LibrarySongTopic is retained, QoS 1, published by the lease holder for
// every song in the library before a load is answered. Payload: Song. Standby
// controllers mirror the library from it; speakers fetch a song announced
// live (not retained) and acknowledge it (see Ack).
func LibrarySongTopic(sha256 string) string { return Root + "/library/song/" + sha256 }

// SavedPlaylistTopic is retained, QoS 1, published by the lease holder for
// every saved playlist after each change; cleared when it is deleted.
// Payload: SavedPlaylist. Standby controllers mirror saved playlists from it.
func SavedPlaylistTopic(id string) string { return Root + "/library/playlist/" + id }

// SessionStateTopic is retained, QoS 1, published by the controller. Payload: SessionState.
func SessionStateTopic(session string) string { return Root + "/session/" + session + "/state" }

// PlaylistTopic is retained, QoS 1, published by the controller. Payload: Playlist.
func PlaylistTopic(session string) string { return Root + "/session/" + session + "/playlist" }

// SessionCommandTopic takes a session's requests (play, pause, ...). QoS 1, not retained.
func SessionCommandTopic(session string) string { return Root + "/session/" + session + "/cmd" }

// SessionInfoTopic is retained, QoS 1, published by the lease holder.
// Payload: SessionInfo.
func SessionInfoTopic(session string) string { return Root + "/session/" + session + "/info" }

// AnnounceTopic carries the session's announcements (Announcement). QoS 1,
// not retained: an announcement is for those who hear it now.
func AnnounceTopic(session string) string { return Root + "/session/" + session + "/announce" }

// AssignTopic is retained, QoS 1, published by the lease holder. Payload:
// Assignment.
func AssignTopic(speaker string) string { return Root + "/speaker/" + speaker + "/assign" }

// UserTopic is a command topic signed with the sender's user name:
// <command topic>/<user>. The broker lets a user publish only under its own
// name, so the controller knows who asks and checks that user's rights. The
// plain command topics carry anonymous requests (a demo broker).
func UserTopic(commandTopic, user string) string { return commandTopic + "/" + user }

// CommandTopic splits a topic a command arrived on into the plain command
// topic and the user it is signed with ("" when it is not).
func CommandTopic(topic string) (plain, user string, ok bool) {
	for _, plain := range []string{LibraryCommandTopic, SessionsCommandTopic} {
		if topic == plain {
			return plain, "", true
		}
		if user, found := strings.CutPrefix(topic, plain+"/"); found {
			return plain, user, ValidName(user) == nil
		}
	}
	session, ok := SessionFromTopic(topic)
	if !ok {
		return "", "", false
	}
	plain = SessionCommandTopic(session)
	if topic == plain {
		return plain, "", true
	}
	user, found := strings.CutPrefix(topic, plain+"/")
	return plain, user, found && ValidName(user) == nil
}

// SpeakerStatusTopic is retained, QoS 1, published by the speaker; its last will
// publishes Online=false there. Payload: SpeakerStatus.
func SpeakerStatusTopic(id string) string { return Root + "/speaker/" + id + "/status" }

// ClockBaseTopic is retained, QoS 1, published by the time master (the
// broker in a hub, else the lease holder). Payload: ClockBase.
const ClockBaseTopic = Root + "/clock/base"

// ClockRequestTopic carries a speaker's clock probes to the time master. QoS 0.
func ClockRequestTopic(id string) string { return Root + "/speaker/" + id + "/clock/req" }

// ClockResponseTopic carries the time master's answers back. QoS 0.
func ClockResponseTopic(id string) string { return Root + "/speaker/" + id + "/clock/resp" }

// AckTopic carries speaker id's acknowledgements to the controller. QoS 1.
// Payload: Ack.
func AckTopic(id string) string { return Root + "/speaker/" + id + "/ack" }

// HomeAssistantRoot holds the topics of the Home Assistant bridge: the
// states it publishes for Home Assistant and the command topics Home
// Assistant publishes to (HomeAssistantCommandFilter), which the bridge
// turns into tutti requests.
const HomeAssistantRoot = Root + "/ha"

// HomeAssistantPrefix is Home Assistant's MQTT discovery prefix by
// default: device configs below it, and its own status (HomeAssistantStatus)
// at <prefix>/status. Only the bridge writes configs there.
const HomeAssistantPrefix = "homeassistant"

// HomeAssistantStatus is where Home Assistant announces itself ("online"
// when it starts: its birth message) under discovery prefix prefix.
func HomeAssistantStatus(prefix string) string { return prefix + "/status" }

// HomeAssistantCommandFilter matches every command topic of the bridge:
// tutti/ha/<kind>/<id>/<entity>/set.
const HomeAssistantCommandFilter = HomeAssistantRoot + "/+/+/+/set"

// HomeAssistantReadable lists what Home Assistant reads of tutti: the
// bridge's topics and the statuses its entities' availability follows.
var HomeAssistantReadable = []string{HomeAssistantRoot + "/#", ControllerStatusTopic, SpeakerStatusFilter}

// SpeakerCommandTopic takes requests to one speaker itself (SpeakerCommands:
// identify, restart, calibrate, status), which the speaker answers. QoS 1.
// Only admins and controllers may publish there: it is no signed command
// topic, so tutti's broker refuses members.
func SpeakerCommandTopic(id string) string { return Root + "/speaker/" + id + "/cmd" }

// ArtPath is where a controller's song server serves a song's cover art
// (GET ArtPath+sha256, no token: cover images are shown by dashboards that
// hold none). A song without embedded art gets a picture made from its hash.
const ArtPath = "/art/"

// ArtURL is the cover art URL of song sha on the song server whose songs
// URL (Lease.SongsURL, ".../songs/") is songsURL; "" if songsURL has
// another form.
func ArtURL(songsURL, sha string) string {
	base, ok := strings.CutSuffix(songsURL, "/songs/")
	if !ok || !IsSongHash(sha) {
		return ""
	}
	return base + ArtPath + sha
}

// SpeakerPublishable lists the topics speaker id may publish to; the broker's
// ACL allows a speaker nothing else.
func SpeakerPublishable(id string) []string {
	return []string{SpeakerStatusTopic(id), ClockRequestTopic(id), AckTopic(id)}
}

// SpeakerReadable lists the topic filters speaker id may subscribe to; the
// broker's ACL allows a speaker nothing else. Besides its session's state
// and playlist, the controller's topics and its own, a speaker reads the
// library's song records (to replicate new songs) and the other speakers'
// statuses (where their caches are served, for peer fetch).
func SpeakerReadable(id string) []string {
	return []string{
		Root + "/session/#",
		Root + "/controller/#",
		LibrarySongFilter,
		SpeakerStatusFilter,
		Root + "/speaker/" + id + "/#",
	}
}

// SpeakerFromTopic returns the speaker id of a tutti/speaker/<id>/... topic.
func SpeakerFromTopic(topic string) (string, bool) {
	return levelAfter(topic, Root+"/speaker/")
}

// SongFromTopic returns the song hash of a tutti/library/song/<sha256> topic.
func SongFromTopic(topic string) (string, bool) {
	sha, ok := strings.CutPrefix(topic, Root+"/library/song/")
	return sha, ok && IsSongHash(sha)
}

// SavedPlaylistFromTopic returns the id of a tutti/library/playlist/<id> topic.
func SavedPlaylistFromTopic(topic string) (string, bool) {
	id, ok := strings.CutPrefix(topic, Root+"/library/playlist/")
	return id, ok && ValidPlaylistID(id)
}

// SessionFromTopic returns the session name of a tutti/session/<name>/... topic.
func SessionFromTopic(topic string) (string, bool) {
	return levelAfter(topic, Root+"/session/")
}

func levelAfter(topic, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, prefix)
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, "/")
	return name, ValidName(name) == nil
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidName checks a speaker or session name: it becomes a topic level, so
// it must not hold '/', '+', '#' or anything a person would not type.
func ValidName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("invalid name %q: want 1-64 of a-z 0-9 _ -, starting with a letter or digit", name)
	}
	return nil
}

// ReplyTopic checks the reply_to of a request signed by user ("" for an
// anonymous one, or one whose signer the answerer does not know, such as a
// speaker command), for whoever answers it: a topic name (no wildcards,
// which would get the answerer disconnected) in UserReplyTopic(user)'s
// subtree. It returns where to answer: a refused one is replaced by
// UserReplyTopic(user), where the error goes.
func ReplyTopic(replyTo, user string) (string, error) {
	own := UserReplyTopic(user)
	switch {
	case replyTo == "":
		return own, nil
	case strings.ContainsAny(replyTo, "+#\x00") || CheckTopicSize(replyTo) != nil:
		return own, fmt.Errorf("reply_to %.100q refused: not a plain topic name within the size limits", replyTo)
	case replyTo != own && !strings.HasPrefix(replyTo, own+"/"):
		return own, fmt.Errorf("reply_to %.100q refused: replies go to %s or below it", replyTo, own)
	}
	return replyTo, nil
}

// Size limits of every topic name and filter the broker takes (publishes,
// subscriptions, last wills). mochi's topic tree walks a topic level by level
// from its start, so its cost grows with the square of the depth. tutti's
// longest topics have about 110 bytes and 6 levels (a Home Assistant
// command topic tutti/ha/<kind>/<64-byte id>/<entity>/set, a discovery
// config homeassistant/device/tutti_session_<64-byte name>/config): the
// limits leave 9 times that length and 5 times that depth, for longer
// discovery prefixes and for a household's other MQTT devices (Home
// Assistant discovery <prefix>/<component>/<node>/<object>/config, Zigbee
// bridges); retaining a topic at the limit costs mochi about 0.1 ms (one
// 20,000 levels deep took 1.9 s).
const (
	MaxTopicLength = 1024 // bytes; also the longest reply_to
	MaxTopicLevels = 32   // levels ('/' separated parts)
)

// CheckTopicSize checks a topic name or filter against MaxTopicLength and
// MaxTopicLevels. The error quotes at most the topic's start.
func CheckTopicSize(topic string) error {
	if len(topic) > MaxTopicLength {
		return fmt.Errorf("topic of %d bytes exceeds %d (it starts %.40q)", len(topic), MaxTopicLength, topic)
	}
	if levels := strings.Count(topic, "/") + 1; levels > MaxTopicLevels {
		return fmt.Errorf("topic of %d levels exceeds %d (it starts %.40q)", levels, MaxTopicLevels, topic)
	}
	return nil
}

// retainedFilters match every topic below Root that the protocol defines as
// retained: the controller's status, lease claims, library records and
// saved playlists,
// session states, playlists and infos, assignments, speaker statuses, the
// shared clock's base, and the Home Assistant bridge's status, device
// states and session covers.
var retainedFilters = []string{
	ControllerStatusTopic,
	LeaseTopic,
	ClockBaseTopic,
	LibrarySongFilter,
	SavedPlaylistFilter,
	SessionStateFilter,
	PlaylistFilter,
	SessionInfoFilter,
	AssignFilter,
	SpeakerStatusFilter,
	HomeAssistantRoot + "/status",
	HomeAssistantRoot + "/controller/state",
	HomeAssistantRoot + "/+/+/state",
	HomeAssistantRoot + "/session/+/cover",
}

// Retained reports whether the protocol defines topic, a topic name below
// Root, as retained. The broker retains nothing else below Root (but
// accepts an empty retained payload anywhere: it clears the topic).
func Retained(topic string) bool {
	for _, filter := range retainedFilters {
		if matchesLevels(filter, topic) {
			return true
		}
	}
	return false
}

// matchesLevels reports whether topic matches filter, whose only wildcard is
// '+' (exactly one non-empty level).
func matchesLevels(filter, topic string) bool {
	for {
		f, fRest, fMore := strings.Cut(filter, "/")
		t, tRest, tMore := strings.Cut(topic, "/")
		if fMore != tMore || t == "" || (f != "+" && f != t) {
			return false
		}
		if !fMore {
			return true
		}
		filter, topic = fRest, tRest
	}
}
