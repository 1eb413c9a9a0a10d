package broker

import (
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

func TestFilterCovers(t *testing.T) {
	tests := []struct {
		pattern, filter string
		want            bool
	}{
		// plain topics
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a", false},
		{"a", "a/b", false},
		{"a/b", "a/b/c", false},
		// + in the pattern
		{"a/+/c", "a/x/c", true},
		{"a/+/c", "a//c", true},
		{"a/+/c", "a/+/c", true},
		{"a/+/c", "a/x/d", false},
		{"a/+/c", "a/x", false},
		{"a/+/c", "a/x/c/d", false},
		{"a/+/c", "a/#", false},
		{"a/+/c", "a/+/#", false},
		{"a/+", "a", false},
		// # in the pattern covers its parent and everything below
		{"a/#", "a", true},
		{"a/#", "a/b", true},
		{"a/#", "a/b/c/d", true},
		{"a/#", "a/#", true},
		{"a/#", "a/+", true},
		{"a/#", "a/+/c/#", true},
		{"a/#", "#", false},
		{"a/#", "+/b", false},
		{"a/#", "b/c", false},
		{"a/b/#", "a/+/c", false},
		{"#", "a/b", true},
		{"#", "#", true},
		// # or + in the filter needs the same or wider in the pattern
		{"a/b", "a/+", false},
		{"a/b", "a/#", false},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"+/+", "+/#", false},
		// $ topics are not matched by leading wildcards
		{"#", "$SYS/broker", false},
		{"+/broker", "$SYS/broker", false},
		{"$SYS/#", "$SYS/broker", true},
		// the tutti cases
		{"tutti/session/#", "tutti/session/+/state", true},
		{"tutti/session/#", "tutti/#", false},
		{"tutti/speaker/kitchen/#", "tutti/speaker/kitchen/clock/resp", true},
		{"tutti/speaker/kitchen/#", "tutti/speaker/+/clock/resp", false},
		{"tutti/speaker/kitchen/#", "tutti/speaker/kitchenette/clock/resp", false},
		{"tutti/session/+/cmd", "tutti/session/home/cmd", true},
		{"tutti/session/+/cmd", "tutti/session/home/state", false},
	}
	for _, tc := range tests {
		if got := filterCovers(tc.pattern, tc.filter); got != tc.want {
			t.Errorf("filterCovers(%q, %q) = %v, want %v", tc.pattern, tc.filter, got, tc.want)
		}
	}
}

// infoMsg and assignMsg are a SessionInfo and an Assignment as the lease
// holder publishes them.
func infoMsg(session string, acl protocol.ACL) string {
	return string(protocol.Encode(protocol.SessionInfo{V: protocol.Version, Session: session, Title: session, ACL: acl}))
}

func assignMsg(speaker, session string) string {
	return string(protocol.Encode(protocol.Assignment{V: protocol.Version, Speaker: speaker, Session: session, Volume: 100}))
}

// testDirectory knows three sessions: home (every member), office (bob may
// see and join it, carol controls it) and attic (carol only); kitchen
// plays home, loft plays attic. Other sessions and speakers are unknown.
func testDirectory(t *testing.T) *sessionDirectory {
	t.Helper()
	d := newSessionDirectory()
	for topic, payload := range map[string]string{
		protocol.SessionInfoTopic("home"):   infoMsg("home", protocol.Everyone),
		protocol.SessionInfoTopic("office"): infoMsg("office", protocol.ACL{See: []string{"bob", "carol"}, Join: []string{"bob"}, Control: []string{"carol"}}),
		protocol.SessionInfoTopic("attic"):  infoMsg("attic", protocol.ACL{See: []string{"carol"}, Join: []string{"carol"}, Control: []string{"carol"}}),
		protocol.AssignTopic("kitchen"):     assignMsg("kitchen", "home"),
		protocol.AssignTopic("loft"):        assignMsg("loft", "attic"),
	} {
		if err := d.apply(topic, []byte(payload)); err != nil {
			t.Fatalf("apply %s: %v", topic, err)
		}
	}
	return d
}

// testAccess is the access of user name with role in a broker whose
// sessions are d and whose Home Assistant prefix is the default.
func testAccess(role, name string, d *sessionDirectory) access {
	return access{role: role, name: name, sessions: d, speakerCommands: newSpeakerCommands(newFakeClock()), haPrefix: protocol.HomeAssistantPrefix}
}

func TestAccess(t *testing.T) {
	d := testDirectory(t)
	speaker := testAccess(RoleSpeaker, "kitchen", d)
	unassigned := testAccess(RoleSpeaker, "bath", d)
	member := testAccess(RoleMember, "bob", d)
	controller := testAccess(RoleController, "ctl", d)
	adminUser := testAccess(RoleAdmin, "alice", d)
	homeAssistant := testAccess(RoleHomeAssistant, "ha", d)
	nobody := testAccess("guest", "eve", d)
	otherPrefix := testAccess(RoleMember, "bob", d)
	otherPrefix.haPrefix = "ha/discovery"
	play := `{"cmd":"play"}`
	reply := `{"v":1,"ok":true,"cmd":"identify","req_id":"1"}`
	tests := []struct {
		who     access
		publish bool // else subscribe
		topic   string
		payload string
		want    bool
	}{
		{speaker, true, "tutti/speaker/kitchen/status", "", true},
		{speaker, true, "tutti/speaker/kitchen/clock/req", "", true},
		{speaker, true, "tutti/speaker/kitchen/clock/resp", "", false},
		{speaker, true, "tutti/speaker/bath/status", "", false},
		{speaker, true, "tutti/speaker/bath/ack", "", false},
		{speaker, true, "tutti/speaker/kitchen/ack", "", true},
		{speaker, true, "tutti/session/home/state", "", false},
		{speaker, true, "tutti/session/home/cmd", play, false},
		{speaker, true, "tutti/session/home/cmd/kitchen", play, false},
		{speaker, true, "tutti/speaker/kitchen/assign", "", false},
		{speaker, true, "elsewhere", "", false},
		// Replies only to requests it was sent (TestSpeakerAnswersOnlyItsCommands).
		{speaker, true, "tutti/reply", reply, false},
		{speaker, true, "tutti/reply/bob", reply, false},
		{speaker, true, "tutti/replyx", "", false},
		{speaker, false, "tutti/session/home/#", "", true},
		{speaker, false, "tutti/session/home/playlist", "", true},
		{speaker, false, "tutti/session/home/info", "", true},
		{speaker, false, "tutti/session/home/cmd/bob", "", false}, // a member's request
		{speaker, false, "tutti/session/home/cmd", "", false},
		{speaker, false, "tutti/session/office/state", "", false}, // not its session
		{speaker, false, "tutti/session/#", "", false},
		{speaker, false, "tutti/session/+/state", "", false},
		{speaker, false, "tutti/controller/status", "", true},
		{speaker, false, "tutti/speaker/kitchen/#", "", true},
		{speaker, false, "tutti/speaker/kitchen/assign", "", true},
		{speaker, false, "tutti/speaker/kitchen/cmd", "", true}, // requests sent to it
		{speaker, false, "tutti/speaker/bath/status", "", true}, // peer fetch: where its cache is served
		{speaker, false, "tutti/speaker/bath/ack", "", false},
		{speaker, false, "tutti/speaker/bath/cmd", "", false},
		{speaker, false, "tutti/library/song/ab", "", true},
		{speaker, false, "tutti/library/cmd", "", false},
		{speaker, false, "tutti/reply/#", "", false},
		{speaker, false, "tutti/reply/kitchen/#", "", true},
		{speaker, false, "tutti/#", "", false},
		{speaker, false, "#", "", false},
		{unassigned, false, "tutti/session/home/state", "", false},
		{unassigned, false, "tutti/speaker/bath/assign", "", true},
		{unassigned, false, "tutti/controller/lease", "", true},

		// Members sign their requests, with their own name only.
		{member, true, "tutti/session/home/cmd/bob", play, true},
		{member, true, "tutti/session/home/cmd", play, false},
		{member, true, "tutti/session/home/cmd/carol", play, false},
		{member, true, "tutti/library/cmd/bob", "", true},
		{member, true, "tutti/library/cmd", "", false},
		{member, true, "tutti/sessions/cmd/bob", "", true},
		{member, true, "tutti/sessions/cmd/alice", "", false},
		{member, true, "bob/reply", "", true},
		{member, true, "tutti/session/home/state", "", false},
		{member, true, "tutti/session/home/info", "", false},
		{member, true, "tutti/session/home/cmd/bob/x", play, false},
		{member, true, "tutti/controller/status", "", false},
		{member, true, "tutti/reply", "", false},
		{member, true, "tutti/reply/bob", "", false},
		{member, true, "tutti/reply/carol", reply, false},
		{member, true, "tutti", "", false},
		// Home Assistant's discovery topics are the bridge's.
		{member, true, "homeassistant/device/tutti_session_home/config", "{}", false},
		{member, true, "homeassistant/status", "online", false},
		{member, true, "homeassistant", "", false},
		{member, true, "homeassistantx/status", "", true},
		{otherPrefix, true, "ha/discovery/status", "online", false},
		{otherPrefix, true, "homeassistant/status", "online", true},
		// office: bob may see and join, not control.
		{member, true, "tutti/session/office/cmd/bob", play, false},
		{member, true, "tutti/session/office/cmd/bob", `{"cmd":"status"}`, true},
		{member, true, "tutti/session/office/cmd/bob", `{"cmd":"join","speaker":"kitchen"}`, true},
		{member, true, "tutti/session/office/cmd/bob", `{"cmd":"leave","speaker":"kitchen"}`, true},
		{member, true, "tutti/session/office/cmd/bob", `not json`, false},
		// attic: nothing; unknown sessions: everything until their info comes.
		{member, true, "tutti/session/attic/cmd/bob", `{"cmd":"status"}`, false},
		{member, true, "tutti/session/garage/cmd/bob", play, true},

		{member, false, "tutti/session/home/state", "", true},
		{member, false, "tutti/session/office/#", "", true},
		{member, false, "tutti/session/attic/state", "", false},
		{member, false, "tutti/session/attic/#", "", false},
		{member, false, "+/session/attic/playlist", "", false},
		{member, false, "+/session/home/playlist", "", false},
		{member, false, "tutti/session/garage/state", "", true},
		{member, false, "tutti/session/+/state", "", false}, // would match attic
		{member, false, "tutti/session/#", "", false},
		{member, false, "tutti/+/+/state", "", false},
		{member, false, "tutti/#", "", false},
		{member, false, "#", "", false},
		{member, false, "tutti/controller/#", "", true},
		{member, false, "tutti/library/song/+", "", true},
		// Requests: its own only; a wider filter is allowed and withheld
		// the others' at delivery.
		{member, false, "tutti/session/home/#", "", true},
		{member, false, "tutti/session/home/cmd/bob", "", true},
		{member, false, "tutti/session/home/cmd/carol", "", false},
		{member, false, "tutti/session/home/cmd", "", false},
		{member, false, "tutti/session/home/cmd/carol/x", "", false},
		{member, false, "tutti/sessions/cmd/+", "", true},
		{member, false, "tutti/sessions/cmd/bob", "", true},
		{member, false, "tutti/sessions/cmd/alice", "", false},
		{member, false, "tutti/library/cmd/carol", "", false},
		{member, false, "tutti/speaker/kitchen/cmd", "", false},
		// Replies: its own only.
		{member, false, "tutti/reply/bob", "", true},
		{member, false, "tutti/reply/bob/#", "", true},
		{member, false, "tutti/reply/bob/cli-1", "", true},
		{member, false, "tutti/reply/#", "", false},
		{member, false, "tutti/reply", "", false},
		{member, false, "tutti/reply/carol", "", false},
		{member, false, "tutti/reply/+/cli-1", "", false},
		{member, false, "tutti/reply/bobby", "", false},
		// Speakers: those of sessions it sees, and those of none.
		{member, false, "tutti/speaker/kitchen/status", "", true},
		{member, false, "tutti/speaker/kitchen/#", "", true},
		{member, false, "tutti/speaker/bath/status", "", true}, // unassigned
		{member, false, "tutti/speaker/loft/status", "", false},
		{member, false, "tutti/speaker/loft/assign", "", false},
		{member, false, "tutti/speaker/+/status", "", false}, // would match loft
		{member, false, "tutti/speaker/#", "", false},
		// The bridge's view of sessions and speakers, likewise.
		{member, false, "tutti/ha/session/home/state", "", true},
		{member, false, "tutti/ha/session/attic/state", "", false},
		{member, false, "tutti/ha/session/+/state", "", false},
		{member, false, "tutti/ha/speaker/kitchen/state", "", true},
		{member, false, "tutti/ha/speaker/loft/state", "", false},
		{member, false, "tutti/ha/+/loft/state", "", false},
		{member, false, "tutti/ha/#", "", false},
		{member, false, "tutti/ha/status", "", true},
		{member, false, "tutti/ha/controller/state", "", true},
		// Outside tutti: anything but the discovery topics.
		{member, false, "bob/reply", "", true},
		{member, false, "$SYS/#", "", true},
		{member, false, "homeassistant/#", "", false},
		{member, false, "homeassistant/device/tutti_session_attic/config", "", false},
		{member, false, "homeassistant/+/+/config", "", false},
		{member, false, "+/status", "", false},
		{member, false, "homeassistantx/#", "", true},
		{otherPrefix, false, "ha/#", "", false},
		{otherPrefix, false, "homeassistant/#", "", true},
		{member, false, "tutti/elsewhere", "", false},

		{controller, true, "tutti/session/home/state", "", true},
		{controller, true, "tutti/session/attic/cmd", play, true},
		{controller, true, "tutti/session/attic/cmd/bob", play, false},
		{controller, true, "tutti/reply/bob/cli-1", reply, true},
		{controller, true, "homeassistant/device/tutti_session_home/config", "{}", true},
		{controller, false, "#", "", true},
		{adminUser, true, "tutti/session/attic/cmd/alice", play, true},
		{adminUser, true, "tutti/session/attic/cmd", play, true},
		{adminUser, true, "tutti/library/cmd/bob", "", false},
		{adminUser, true, "homeassistant/device/tutti_session_home/config", "{}", true},
		{adminUser, false, "tutti/session/attic/state", "", true},
		{adminUser, false, "tutti/reply/#", "", true},
		{everything, true, "tutti/speaker/x/status", "", true},
		{everything, true, "tutti/session/home/cmd/bob", play, true}, // demo: anonymous may do anything

		// Home Assistant: the bridge's command topics and its own status;
		// reads the bridge's states and the statuses, no session.
		{homeAssistant, true, "tutti/ha/session/home/play/set", "PRESS", true},
		{homeAssistant, true, "tutti/ha/speaker/kitchen/volume/set", "40", true},
		{homeAssistant, true, "homeassistant/status", "online", true},
		{homeAssistant, true, "homeassistant/device/tutti_session_home/config", "{}", false},
		{homeAssistant, true, "homeassistant/device/tutti_session_home", "{}", false},
		{homeAssistant, true, "elsewhere", "", true},
		{homeAssistant, true, "tutti/ha/session/home/state", "", false},
		{homeAssistant, true, "tutti/ha/session/home/play/set/x", "", false},
		{homeAssistant, true, "tutti/session/home/cmd", play, false},
		{homeAssistant, true, "tutti/session/home/cmd/ha", play, false},
		{homeAssistant, true, "tutti/speaker/kitchen/cmd", `{"cmd":"restart"}`, false},
		{homeAssistant, true, "tutti/reply/bob", reply, false},
		{homeAssistant, false, "homeassistant/#", "", true},
		{homeAssistant, false, "tutti/ha/#", "", true},
		{homeAssistant, false, "tutti/ha/session/home/state", "", true},
		{homeAssistant, false, "tutti/controller/status", "", true},
		{homeAssistant, false, "tutti/speaker/kitchen/status", "", true},
		{homeAssistant, false, "tutti/speaker/+/status", "", true},
		{homeAssistant, false, "tutti/speaker/kitchen/assign", "", false},
		{homeAssistant, false, "tutti/speaker/kitchen/cmd", "", false},
		{homeAssistant, false, "tutti/session/home/state", "", false},
		{homeAssistant, false, "tutti/reply/#", "", false},
		{homeAssistant, false, "tutti/reply/ha/#", "", true},
		{homeAssistant, false, "tutti/#", "", false},
		{homeAssistant, false, "#", "", false},
		{homeAssistant, false, "+/status", "", false},

		{nobody, true, "elsewhere", "", false},
		{nobody, false, "elsewhere", "", false},
		{nobody, false, "tutti/reply/eve", "", false},
	}
	for _, tc := range tests {
		got := tc.who.maySubscribe(tc.topic)
		verb := "subscribe"
		if tc.publish {
			got, verb = tc.who.mayPublish(tc.topic, []byte(tc.payload)), "publish"
		}
		if got != tc.want {
			t.Errorf("%s %q (prefix %q) may %s %q %s: %v, want %v", tc.who.role, tc.who.name, tc.who.haPrefix, verb, tc.topic, tc.payload, got, tc.want)
		}
	}
}

// TestMemberSeesSpeakersOfItsSessions follows a speaker from a session bob
// sees to one he does not, and out of every session.
func TestMemberSeesSpeakersOfItsSessions(t *testing.T) {
	d := testDirectory(t)
	bob := testAccess(RoleMember, "bob", d)
	move := func(session string) {
		t.Helper()
		if err := d.apply(protocol.AssignTopic("kitchen"), []byte(assignMsg("kitchen", session))); err != nil {
			t.Fatal(err)
		}
	}
	status := protocol.SpeakerStatusTopic("kitchen")
	for _, step := range []struct {
		session string
		want    bool
	}{{"home", true}, {"attic", false}, {"", true}, {"office", true}} {
		move(step.session)
		if got := bob.maySubscribe(status); got != step.want {
			t.Errorf("kitchen in %q: bob reads its status %v, want %v", step.session, got, step.want)
		}
	}
	// Loft plays attic: no wildcard over the speakers, until it leaves.
	if bob.maySubscribe(protocol.SpeakerStatusFilter) {
		t.Error("bob may read every speaker's status while loft plays attic")
	}
	if err := d.apply(protocol.AssignTopic("loft"), nil); err != nil {
		t.Fatal(err)
	}
	if !bob.maySubscribe(protocol.SpeakerStatusFilter) {
		t.Error("bob may not read every speaker's status with none in attic")
	}
}

func TestFiltersOverlap(t *testing.T) {
	for _, tc := range []struct {
		x, y string
		want bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a", "a/#", true},
		{"a/b/c", "a/#", true},
		{"b", "a/#", false},
		{"+/b", "a/#", true},
		{"+", "a/b", false},
		{"a/+", "+/b", true},
		{"a/+/c", "a/b", false},
		{"#", "x", true},
		{"homeassistantx/#", "homeassistant/#", false},
		{"ha/#", "ha/discovery/#", true},
	} {
		if got := filtersOverlap(tc.x, tc.y); got != tc.want {
			t.Errorf("filtersOverlap(%q, %q) = %v, want %v", tc.x, tc.y, got, tc.want)
		}
		if got := filtersOverlap(tc.y, tc.x); got != tc.want {
			t.Errorf("filtersOverlap(%q, %q) = %v, want %v", tc.y, tc.x, got, tc.want)
		}
	}
}

func TestMemberSeesAllOnlyWithoutHiddenSessions(t *testing.T) {
	d := newSessionDirectory()
	bob := testAccess(RoleMember, "bob", d)
	if !bob.maySubscribe("tutti/session/#") {
		t.Error("tutti/session/# refused while no session is known")
	}
	if err := d.apply(protocol.SessionInfoTopic("home"), []byte(infoMsg("home", protocol.Everyone))); err != nil {
		t.Fatal(err)
	}
	if !bob.maySubscribe("tutti/session/+/state") {
		t.Error("wildcard refused while every session is visible")
	}
	hidden := protocol.ACL{See: []string{"carol"}}
	if err := d.apply(protocol.SessionInfoTopic("attic"), []byte(infoMsg("attic", hidden))); err != nil {
		t.Fatal(err)
	}
	if bob.maySubscribe("tutti/session/+/state") {
		t.Error("wildcard allowed over a hidden session")
	}
	// Deleting the session's info (empty payload) forgets it.
	if err := d.apply(protocol.SessionInfoTopic("attic"), nil); err != nil {
		t.Fatal(err)
	}
	if !bob.maySubscribe("tutti/session/+/state") {
		t.Error("wildcard still refused after the hidden session's info was deleted")
	}
}

func TestDirectoryRefusesBadMessages(t *testing.T) {
	d := testDirectory(t)
	for _, tc := range []struct{ topic, payload string }{
		{protocol.SessionInfoTopic("home"), "{"},
		{protocol.SessionInfoTopic("home"), `{"v":2,"session":"home"}`},
		{protocol.SessionInfoTopic("home"), infoMsg("attic", protocol.Everyone)},
		{"tutti/session/Home/info", infoMsg("Home", protocol.Everyone)},
		{protocol.AssignTopic("kitchen"), assignMsg("bath", "home")},
		{protocol.AssignTopic("kitchen"), assignMsg("kitchen", "../x")},
		{protocol.AssignTopic("kitchen"), "[]"},
	} {
		if err := d.apply(tc.topic, []byte(tc.payload)); err == nil {
			t.Errorf("apply %s %s: accepted", tc.topic, tc.payload)
		}
	}
	// Nothing changed.
	if got := d.assignment("kitchen"); got != "home" {
		t.Errorf("kitchen assigned to %q", got)
	}
	if !d.sees("home", "bob") || d.sees("attic", "bob") {
		t.Error("session ACLs changed")
	}
	// Other topics are none of its business.
	if err := d.apply(protocol.SessionStateTopic("home"), []byte("{")); err != nil {
		t.Errorf("state topic: %v", err)
	}
}

func TestSessionsMatched(t *testing.T) {
	for _, tc := range []struct {
		filter, session string
		matches, any    bool
	}{
		{"tutti/session/home/state", "home", true, false},
		{"tutti/session/home", "home", true, false},
		{"+/session/home/#", "home", true, false},
		{"tutti/session/+/state", "", true, true},
		{"tutti/+/#", "", true, true},
		{"#", "", true, true},
		{"tutti/session", "", false, false},
		{"tutti", "", false, false},
		{"tutti/sessions/cmd", "", false, false},
		{"tutti/speaker/+/status", "", false, false},
		{"elsewhere/#", "", false, false},
		{"$SYS/#", "", false, false},
	} {
		session, matches, anySession := sessionsMatched(tc.filter)
		if session != tc.session || matches != tc.matches || anySession != tc.any {
			t.Errorf("sessionsMatched(%q) = %q, %v, %v; want %q, %v, %v", tc.filter, session, matches, anySession, tc.session, tc.matches, tc.any)
		}
	}
}
