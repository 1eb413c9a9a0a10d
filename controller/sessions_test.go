package controller

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

var requestSeq atomic.Int64

// ask sends payload, a JSON request without req_id, to a command topic,
// signed with user ("" for unsigned), and returns its reply.
func (tc *testClient) ask(topic, user, payload string) protocol.Reply {
	tc.t.Helper()
	id := fmt.Sprint("q", requestSeq.Add(1))
	if user != "" {
		topic = protocol.UserTopic(topic, user)
	}
	payload = strings.TrimSuffix(payload, "}") + `,"req_id":"` + id + `"}`
	return tc.request(topic, protocol.UserReplyTopic(user), id, payload)
}

// mustAsk is ask for a request that must succeed; it decodes the result
// into result (unless nil).
func (tc *testClient) mustAsk(topic, user, payload string, result any) {
	tc.t.Helper()
	reply := tc.ask(topic, user, payload)
	if !reply.OK {
		tc.t.Fatalf("%s by %q: %+v", payload, user, reply)
	}
	if result != nil {
		if err := json.Unmarshal(reply.Result, result); err != nil {
			tc.t.Fatalf("%s: result %s: %v", payload, reply.Result, err)
		}
	}
}

// retainedGone says whether topic has no retained message. The broker
// sends a subscription's retained messages before it handles the next
// subscription, so if the controller's status (always retained) comes
// first, there is none.
func retainedGone(t *testing.T, broker, topic string) bool {
	t.Helper()
	tc := newTestClient(t, broker, topic, protocol.ControllerStatusTopic)
	select {
	case m := <-tc.msgs:
		return m.Topic() == protocol.ControllerStatusTopic
	case <-time.After(waitTimeout):
		t.Fatal("no retained controller status")
		return false
	}
}

// assignmentIs waits until the retained assignment of speaker says session.
func assignmentIs(t *testing.T, broker, speaker, session string) protocol.Assignment {
	t.Helper()
	var a protocol.Assignment
	testwait.For(t, speaker+" assigned to "+session, waitTimeout, func() bool {
		a = protocol.Assignment{}
		return json.Unmarshal(retained(t, broker, protocol.AssignTopic(speaker)), &a) == nil && a.Session == session
	})
	return a
}

func speakerIDs(speakers []protocol.SpeakerStatus) string {
	ids := make([]string, len(speakers))
	for i, s := range speakers {
		ids[i] = s.ID
	}
	return strings.Join(ids, ",")
}

// storedSessions reads a running controller's store.
func storedSessions(t *testing.T, dataDir string) (map[string]session, map[string]protocol.Assignment) {
	t.Helper()
	st := openTestStore(t, dataDir)
	defer st.Close()
	sessions, err := st.sessions()
	if err != nil {
		t.Fatal(err)
	}
	assignments, err := st.assignments()
	if err != nil {
		t.Fatal(err)
	}
	return sessions, assignments
}

func TestRightsAreChecked(t *testing.T) {
	broker := startBroker(t)
	roles := map[string]string{"root": roleAdmin, "alice": roleMember, "bob": roleMember, "carol": roleMember, "sp1": roleSpeaker}
	var rolesMu sync.Mutex // Roles is called on the controller's goroutines
	c, _ := startController(t, Options{BrokerURL: broker, DataDir: t.TempDir(), Sessions: []string{"home", "kitchen"},
		Roles: func(user string) string { rolesMu.Lock(); defer rolesMu.Unlock(); return roles[user] }})
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic+"/#")
	newFakeSpeakers(t, broker, "k1")
	assignmentIs(t, broker, "k1", "home")

	home, kitchen := protocol.SessionCommandTopic("home"), protocol.SessionCommandTopic("kitchen")
	sessions, library := protocol.SessionsCommandTopic, protocol.LibraryCommandTopic
	tc.mustAsk(sessions, "root", `{"cmd":"grant","session":"kitchen","acl":{"see":["alice","bob"],"join":["bob"],"control":["bob"]}}`, nil)

	for _, step := range []struct{ topic, user, payload, refusal string }{
		{kitchen, "alice", `{"cmd":"status"}`, ""},
		{kitchen, "alice", `{"cmd":"volume","volume":10}`, "alice may not control session kitchen"},
		{kitchen, "alice", `{"cmd":"join","speaker":"k1"}`, "alice may not join session kitchen"},
		{kitchen, "carol", `{"cmd":"status"}`, "carol may not see session kitchen"},
		{kitchen, "bob", `{"cmd":"volume","volume":20}`, ""},
		{kitchen, "bob", `{"cmd":"join","speaker":"k1"}`, ""}, // home lets everyone move its speakers
		{home, "carol", `{"cmd":"join","speaker":"k1"}`, "carol may not join session kitchen"},
		{kitchen, "alice", `{"cmd":"leave","speaker":"k1"}`, "alice may not join session kitchen"},
		{kitchen, "root", `{"cmd":"volume","volume":30}`, ""},
		{kitchen, "", `{"cmd":"status"}`, "anonymous requests are refused"},
		{kitchen, "", `{"cmd":"volume","volume":0}`, "anonymous requests are refused"},
		{kitchen, "sp1", `{"cmd":"status"}`, "sp1 is a speaker"},
		{kitchen, "mallory", `{"cmd":"status"}`, "mallory is not a known user"},
		{library, "alice", `{"cmd":"search","query":"x"}`, ""},
		{library, "sp1", `{"cmd":"search","query":"x"}`, "sp1 is a speaker"},
		{library, "", `{"cmd":"search","query":"x"}`, "anonymous requests are refused"},
		{sessions, "alice", `{"cmd":"create","session":"attic"}`, "alice may not create sessions"},
		{sessions, "bob", `{"cmd":"delete","session":"kitchen"}`, "bob may not delete sessions"},
		{sessions, "bob", `{"cmd":"grant","session":"kitchen","acl":{"see":["*"]}}`, "bob may not grant sessions"},
		{sessions, "sp1", `{"cmd":"list"}`, "sp1 is a speaker"},
		{sessions, "", `{"cmd":"list"}`, "anonymous requests are refused"},
	} {
		reply := tc.ask(step.topic, step.user, step.payload)
		if step.refusal == "" && !reply.OK || step.refusal != "" && (reply.OK || !strings.Contains(reply.Error, step.refusal)) {
			t.Errorf("%s by %q on %s: %+v, want refusal %q", step.payload, step.user, step.topic, reply, step.refusal)
		}
	}
	// Only the granted commands changed anything.
	var st protocol.SessionState
	if json.Unmarshal(retained(t, broker, protocol.SessionStateTopic("kitchen")), &st); st.Volume != 30 || st.Seq != 2 {
		t.Errorf("kitchen after the refusals: volume %d, seq %d; want 30, 2", st.Volume, st.Seq)
	}
	assignmentIs(t, broker, "k1", "kitchen")
	if _, err := c.store.song(strings.Repeat("0", 64)); err == nil {
		t.Error("a song appeared")
	}

	// list shows the sessions one may see; ACLs to admins only.
	for user, want := range map[string]string{"alice": "home,kitchen", "carol": "home", "root": "home,kitchen"} {
		var list []sessionListing
		tc.mustAsk(sessions, user, `{"cmd":"list"}`, &list)
		var names []string
		for _, l := range list {
			names = append(names, l.Session)
			if (l.ACL != nil) != (user == "root") || l.Title != l.Session {
				t.Errorf("%s lists %+v", user, l)
			}
		}
		if got := strings.Join(names, ","); got != want {
			t.Errorf("%s lists %s, want %s", user, got, want)
		}
	}

	// Commands on topics signed with a name that is no user name are refused.
	reply := tc.request(kitchen+"/Not-A-Name", protocol.DefaultReplyTopic, "bad", `{"cmd":"status","req_id":"bad"}`)
	if reply.OK || !strings.Contains(reply.Error, "not signed with a valid user name") {
		t.Errorf("badly signed: %+v", reply)
	}
}

func TestJoinLeaveAndSpeakerVolume(t *testing.T) {
	broker := startBroker(t)
	dataDir := t.TempDir()
	c, _ := startController(t, Options{Open: true, BrokerURL: broker, DataDir: dataDir, Sessions: []string{"home", "kitchen"}})
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic+"/#")
	newFakeSpeakers(t, broker, "k1", "k2")
	newFakeSpeakersIn(t, broker, "kitchen", "k3")
	newFakeSpeakersIn(t, broker, "attic", "k4") // no such session: the default one

	// New speakers are assigned the session they ask for, if it exists.
	for id, session := range map[string]string{"k1": "home", "k2": "home", "k3": "kitchen", "k4": "home"} {
		if a := assignmentIs(t, broker, id, session); a.Volume != 100 || a.Term == 0 || a.Speaker != id {
			t.Errorf("assignment %+v", a)
		}
	}

	home, kitchen := protocol.SessionCommandTopic("home"), protocol.SessionCommandTopic("kitchen")
	var a protocol.Assignment
	tc.mustAsk(kitchen, "", `{"cmd":"join","speaker":"k1"}`, &a)
	if a.Session != "kitchen" || a.Speaker != "k1" || a.Volume != 100 {
		t.Fatalf("join: %+v", a)
	}
	assignmentIs(t, broker, "k1", "kitchen")
	testwait.For(t, "k1 to count in kitchen", waitTimeout, func() bool { return speakerIDs(c.speakersOf("kitchen")) == "k1,k3" })
	if got := speakerIDs(c.speakersOf("home")); got != "k2,k4" {
		t.Fatalf("home has %s", got)
	}
	// The quorum of a session is its assigned speakers.
	var res commandResult
	tc.mustAsk(kitchen, "", `{"cmd":"volume","volume":30}`, &res)
	if res.Speakers != 2 || res.Acked != 2 {
		t.Fatalf("kitchen volume acked by %d of %d", res.Acked, res.Speakers)
	}

	for _, step := range []struct{ topic, payload, errPart string }{
		{home, `{"cmd":"leave","speaker":"k1"}`, "speaker k1 is not in session home"},
		{home, `{"cmd":"volume","speaker":"k3","volume":5}`, "speaker k3 is not in session home"},
		{home, `{"cmd":"volume","speaker":"k2","volume":101}`, "out of range"},
		{home, `{"cmd":"volume","speaker":"k2"}`, "volume needs volume"},
		{home, `{"cmd":"join","speaker":"ghost"}`, `unknown speaker "ghost"`},
		{home, `{"cmd":"join","speaker":"Bad Name"}`, "invalid name"},
		{home, `{"cmd":"join"}`, "join needs speaker"},
		{home, `{"cmd":"leave","speaker":"k2","volume":3}`, "leave takes no volume"},
	} {
		if reply := tc.ask(step.topic, "", step.payload); reply.OK || !strings.Contains(reply.Error, step.errPart) {
			t.Errorf("%s: %+v, want error with %q", step.payload, reply, step.errPart)
		}
	}

	tc.mustAsk(kitchen, "", `{"cmd":"leave","speaker":"k1"}`, &a)
	if a.Session != "" {
		t.Fatalf("leave: %+v", a)
	}
	assignmentIs(t, broker, "k1", "")
	if got := speakerIDs(c.speakersOf("kitchen")); got != "k3" {
		t.Fatalf("kitchen has %s after k1 left", got)
	}
	tc.mustAsk(home, "", `{"cmd":"volume","speaker":"k2","volume":40}`, &a)
	if a.Volume != 40 || a.Session != "home" {
		t.Fatalf("speaker volume: %+v", a)
	}
	var st protocol.SessionState
	if json.Unmarshal(retained(t, broker, protocol.SessionStateTopic("home")), &st); st.Volume != 100 {
		t.Errorf("a speaker's volume changed the session's to %d", st.Volume)
	}
	testwait.For(t, "k2's volume retained", waitTimeout, func() bool {
		var got protocol.Assignment
		return json.Unmarshal(retained(t, broker, protocol.AssignTopic("k2")), &got) == nil && got.Volume == 40
	})

	_, stored := storedSessions(t, dataDir)
	if stored["k1"].Session != "" || stored["k2"].Volume != 40 || stored["k3"].Session != "kitchen" || len(stored) != 4 {
		t.Fatalf("stored assignments %+v", stored)
	}
}

func TestSessionsCommands(t *testing.T) {
	broker := startBroker(t)
	ttl := 600 * time.Millisecond
	optsA := Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "a", LeaseTTL: ttl}
	a, _ := startController(t, optsA)
	optsB := Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "b", LeaseTTL: ttl}
	runController(t, optsB) // a standby: it mirrors what a does
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic+"/#")
	newFakeSpeakers(t, broker, "g1")
	assignmentIs(t, broker, "g1", "home")
	sessions := protocol.SessionsCommandTopic

	var info protocol.SessionInfo
	tc.mustAsk(sessions, "", `{"cmd":"create","session":"garage","title":"Garage"}`, &info)
	if info.Session != "garage" || info.Title != "Garage" || !sameACL(info.ACL, protocol.Everyone) || info.Term == 0 {
		t.Fatalf("create: %+v", info)
	}
	var retainedInfo protocol.SessionInfo
	if err := json.Unmarshal(retained(t, broker, protocol.SessionInfoTopic("garage")), &retainedInfo); err != nil ||
		!slices.Equal(retainedInfo.ACL.Control, info.ACL.Control) || retainedInfo.Title != "Garage" {
		t.Fatalf("retained info %+v, %v", retainedInfo, err)
	}
	var st protocol.SessionState
	if err := json.Unmarshal(retained(t, broker, protocol.SessionStateTopic("garage")), &st); err != nil ||
		st.State != protocol.Stopped || st.Term != info.Term {
		t.Fatalf("retained state of the new session %+v, %v", st, err)
	}
	// It takes commands at once.
	var res commandResult
	tc.mustAsk(protocol.SessionCommandTopic("garage"), "", `{"cmd":"volume","volume":20}`, &res)

	for _, step := range []struct{ payload, errPart string }{
		{`{"cmd":"create","session":"garage"}`, `session "garage" exists`},
		{`{"cmd":"create","session":"Bad/Name"}`, "invalid name"},
		{`{"cmd":"create"}`, "create needs session"},
		{`{"cmd":"create","session":"x","title":"a\u0007b"}`, "control characters"},
		{`{"cmd":"create","session":"x","acl":{"see":["Not Valid"]}}`, "invalid name"},
		{`{"cmd":"create","session":"x","acl":{"see":"alice"}}`, "malformed"},
		{`{"cmd":"rename","session":"nowhere","title":"x"}`, `unknown session "nowhere"`},
		{`{"cmd":"rename","session":"garage"}`, "rename needs title"},
		{`{"cmd":"grant","session":"garage","acl":{"see":["Not Valid"]}}`, "invalid name"},
		{`{"cmd":"grant","session":"garage"}`, "grant needs acl"},
		{`{"cmd":"grant","session":"garage","acl":{"see":"alice"}}`, "malformed"},
		{`{"cmd":"delete","session":"nowhere"}`, "unknown session"},
		{`{"cmd":"play"}`, "unknown command"},
		{`{"cmd":"list","session":"home"}`, "list takes no session"},
	} {
		if reply := tc.ask(sessions, "", step.payload); reply.OK || !strings.Contains(reply.Error, step.errPart) {
			t.Errorf("%s: %+v, want error with %q", step.payload, reply, step.errPart)
		}
	}

	tc.mustAsk(sessions, "", `{"cmd":"rename","session":"garage","title":"The Garage"}`, &info)
	if info.Title != "The Garage" || info.Session != "garage" {
		t.Fatalf("rename: %+v", info)
	}
	tc.mustAsk(sessions, "", `{"cmd":"grant","session":"garage","acl":{"see":["alice","*"],"join":[],"control":["bob"]}}`, &info)
	want := protocol.ACL{See: []string{"alice", "*"}, Join: []string{}, Control: []string{"bob"}}
	if !sameACL(info.ACL, want) || info.Title != "The Garage" {
		t.Fatalf("grant: %+v", info)
	}
	var list []sessionListing
	tc.mustAsk(sessions, "", `{"cmd":"list"}`, &list)
	if len(list) != 2 || list[0].Session != "garage" || list[0].Title != "The Garage" || list[0].ACL == nil ||
		!sameACL(*list[0].ACL, want) || list[1].Session != "home" {
		t.Fatalf("list: %+v", list)
	}
	tc.mustAsk(protocol.SessionCommandTopic("garage"), "", `{"cmd":"join","speaker":"g1"}`, nil)

	var mirrored string
	if !testwait.Until(waitTimeout, func() bool {
		sessions, assignments := storedSessions(t, optsB.DataDir)
		g := sessions["garage"]
		mirrored = fmt.Sprintf("title %q, acl %+v, volume %d, g1 in %q", g.Title, g.ACL, g.State.Volume, assignments["g1"].Session)
		return g.Title == "The Garage" && sameACL(g.ACL, want) && g.State.Volume == 20 && assignments["g1"].Session == "garage"
	}) {
		t.Fatalf("timed out waiting for the standby to mirror the new session; saw %s", mirrored)
	}

	var deleted deleteResult
	tc.mustAsk(sessions, "", `{"cmd":"delete","session":"garage"}`, &deleted)
	if deleted.Session != "garage" || strings.Join(deleted.Unassigned, ",") != "g1" {
		t.Fatalf("delete: %+v", deleted)
	}
	assignmentIs(t, broker, "g1", "")
	for _, topic := range []string{protocol.SessionInfoTopic("garage"), protocol.SessionStateTopic("garage"), protocol.PlaylistTopic("garage")} {
		if !retainedGone(t, broker, topic) {
			t.Errorf("%s still retained after delete", topic)
		}
	}
	if reply := tc.ask(protocol.SessionCommandTopic("garage"), "", `{"cmd":"status"}`); reply.OK {
		t.Errorf("status of a deleted session: %+v", reply)
	}
	if stored, _ := storedSessions(t, optsA.DataDir); len(stored) != 1 {
		t.Errorf("the holder's store after delete: %+v", stored)
	}
	testwait.For(t, "the standby to mirror the delete", waitTimeout, func() bool {
		sessions, assignments := storedSessions(t, optsB.DataDir)
		_, there := sessions["garage"]
		return !there && len(sessions) == 1 && assignments["g1"].Session == ""
	})

	// The last session may go too; a new speaker then plays none.
	tc.mustAsk(sessions, "", `{"cmd":"delete","session":"home"}`, &deleted)
	tc.mustAsk(sessions, "", `{"cmd":"list"}`, &list)
	if len(list) != 0 {
		t.Fatalf("list after deleting every session: %+v", list)
	}
	newFakeSpeakers(t, broker, "g2")
	assignmentIs(t, broker, "g2", "")
	// A new session without a title is called by its name.
	tc.mustAsk(sessions, "", `{"cmd":"create","session":"home"}`, &info)
	if info.Title != "home" {
		t.Fatalf("created without title: %+v", info)
	}
	if !a.holding() {
		t.Fatal("a lost the lease")
	}
}

func TestForgetSpeaker(t *testing.T) {
	broker := startBroker(t)
	roles := map[string]string{"root": roleAdmin, "alice": roleMember} // only read
	optsA := Options{BrokerURL: broker, DataDir: t.TempDir(), Name: "a", Roles: func(user string) string { return roles[user] }}
	a, _ := startController(t, optsA)
	optsB := Options{BrokerURL: broker, DataDir: t.TempDir(), Name: "b"}
	b, _ := runController(t, optsB) // a standby: it mirrors the forget
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic+"/#")
	newFakeSpeakers(t, broker, "k1", "k2")
	assignmentIs(t, broker, "k1", "home")
	assignmentIs(t, broker, "k2", "home")
	testwait.For(t, "the standby to mirror the assignments", waitTimeout, func() bool {
		_, assignments := storedSessions(t, optsB.DataDir)
		return assignments["k1"].Session == "home" && assignments["k2"].Session == "home"
	})
	setStatus := func(id string, online bool) {
		t.Helper()
		st := protocol.SpeakerStatus{V: 1, ID: id, Online: online, Instance: "later-" + id, Session: "home", Volume: 100}
		if tok := tc.mqtt.Publish(protocol.SpeakerStatusTopic(id), 1, true, protocol.Encode(st)); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("status of %s not sent: %v", id, tok.Error())
		}
	}
	setStatus("k1", false) // its last will
	testwait.For(t, "k1 to be offline", waitTimeout, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		st, ok := a.speakers["k1"]
		return ok && !st.Online
	})

	sessions := protocol.SessionsCommandTopic
	for _, step := range []struct{ user, payload, errPart string }{
		{"alice", `{"cmd":"forget","speaker":"k1"}`, "alice may not forget speakers: only admins may"},
		{"root", `{"cmd":"forget","speaker":"k2"}`, "speaker k2 is online: stop it first, or it comes back"},
		{"root", `{"cmd":"forget","speaker":"ghost"}`, `unknown speaker "ghost"`},
		{"root", `{"cmd":"forget","speaker":"Bad Name"}`, "invalid name"},
		{"root", `{"cmd":"forget"}`, "forget needs speaker"},
		{"root", `{"cmd":"forget","speaker":"k1","session":"home"}`, "forget takes no session"},
	} {
		if reply := tc.ask(sessions, step.user, step.payload); reply.OK || !strings.Contains(reply.Error, step.errPart) {
			t.Errorf("%s by %s: %+v, want error with %q", step.payload, step.user, reply, step.errPart)
		}
	}

	var forgotten forgetResult
	tc.mustAsk(sessions, "root", `{"cmd":"forget","speaker":"k1"}`, &forgotten)
	if forgotten.Speaker != "k1" {
		t.Fatalf("forget: %+v", forgotten)
	}
	// The standby deletes its copy when it sees the cleared assignment; by
	// then the holder has seen it too, and must not have put it back.
	testwait.For(t, "the standby to forget k1", waitTimeout, func() bool {
		_, assignments := storedSessions(t, optsB.DataDir)
		_, there := assignments["k1"]
		return !there && assignments["k2"].Session == "home"
	})
	testwait.For(t, "the standby's memory to forget k1", waitTimeout, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		_, assigned := b.assignments["k1"]
		_, seen := b.speakers["k1"]
		return !assigned && !seen
	})
	for _, topic := range []string{protocol.AssignTopic("k1"), protocol.SpeakerStatusTopic("k1")} {
		if !retainedGone(t, broker, topic) {
			t.Errorf("%s still retained after forget", topic)
		}
	}
	// What a new controller on the holder's data directory would load.
	if _, assignments := storedSessions(t, optsA.DataDir); len(assignments) != 1 || assignments["k2"].Session != "home" {
		t.Errorf("the holder's stored assignments after forget: %+v", assignments)
	}
	if _, known := a.assignmentOf("k1"); known {
		t.Error("the holder still knows k1")
	}
	if reply := tc.ask(sessions, "root", `{"cmd":"forget","speaker":"k1"}`); reply.OK || !strings.Contains(reply.Error, "unknown speaker") {
		t.Errorf("forget of a forgotten speaker: %+v", reply)
	}

	// Back again, it is a new speaker.
	setStatus("k1", true)
	if got := assignmentIs(t, broker, "k1", "home"); got.Volume != 100 || got.Term == 0 {
		t.Errorf("new assignment %+v", got)
	}
	testwait.For(t, "the standby to mirror the new assignment", waitTimeout, func() bool {
		_, assignments := storedSessions(t, optsB.DataDir)
		return assignments["k1"].Session == "home"
	})
	if !a.holding() {
		t.Fatal("a lost the lease")
	}
}

// steppingClock is a wall clock a test steps ahead.
type steppingClock struct {
	clock.Real
	mu     sync.Mutex
	offset time.Duration
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *steppingClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func TestFetchTokenRotates(t *testing.T) {
	broker := startBroker(t)
	const rotation = time.Second
	c, _ := startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), tokenRotation: rotation})
	leases := newTestClient(t, broker, protocol.LeaseTopic)
	song := upload(t, c, makeWAV(800, 8000, 11), "s")
	status := func(token string) int {
		resp, _ := do(t, http.MethodGet, c.SongsURL()+song.SHA256, nil, "Authorization", "Bearer "+token)
		return resp.StatusCode
	}
	nextToken := func(old string) string {
		t.Helper()
		var l protocol.Lease
		leases.next(protocol.LeaseTopic, func(b []byte) bool {
			return json.Unmarshal(b, &l) == nil && l.FetchToken != "" && l.FetchToken != old
		})
		return l.FetchToken
	}
	var retainedLease protocol.Lease
	json.Unmarshal(retained(t, broker, protocol.LeaseTopic), &retainedLease)
	t0 := c.tokens.get()
	if retainedLease.FetchToken != t0 || status(t0) != http.StatusOK || status("") != http.StatusUnauthorized ||
		status("wrong") != http.StatusUnauthorized {
		t.Fatalf("first token %q, retained lease %+v", t0, retainedLease)
	}

	t1 := nextToken(t0)
	json.Unmarshal(retained(t, broker, protocol.LeaseTopic), &retainedLease)
	if retainedLease.FetchToken != t1 {
		t.Fatalf("the rotated token is not retained: %+v", retainedLease)
	}
	if status(t0) != http.StatusOK || status(t1) != http.StatusOK {
		t.Fatal("after one rotation the current and the previous token must work")
	}

	t2 := nextToken(t1)
	if status(t0) != http.StatusUnauthorized || status(t1) != http.StatusOK || status(t2) != http.StatusOK {
		t.Fatal("after two rotations only the last two tokens may work")
	}
}

func TestCommandRateLimit(t *testing.T) {
	broker := startBroker(t)
	startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir()})
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic+"/#")
	home := protocol.SessionCommandTopic("home")
	const sent = 200 // sent at once to one session; at 20/s after a burst of 40, most are refused
	start := time.Now()
	for i := range sent {
		tc.publish(home, []byte(fmt.Sprintf(`{"cmd":"status","req_id":"flood%d"}`, i)))
	}
	ok, limited := 0, 0
	for ok+limited < sent {
		var r protocol.Reply
		tc.next(protocol.DefaultReplyTopic, func(b []byte) bool {
			return json.Unmarshal(b, &r) == nil && strings.HasPrefix(r.ReqID, "flood")
		})
		switch {
		case r.OK:
			ok++
		case strings.HasPrefix(r.Error, "rate limited: "):
			limited++
		default:
			t.Fatalf("reply %+v", r)
		}
	}
	elapsed := time.Since(start).Seconds()
	if ok < topicCommandBurst || float64(ok) > topicCommandBurst+topicCommandRate*elapsed+1 || limited == 0 {
		t.Fatalf("%d answered, %d rate limited in %.1f s", ok, limited, elapsed)
	}
	// Another user has a bucket of its own.
	tc.mustAsk(home, "alice", `{"cmd":"status"}`, nil)
}

// TestRepliesGoToTheAsker: a signed request is answered below its signer's
// own reply topic, which only that user may read; a reply_to anywhere else
// (another user's, the anonymous one) is refused there, and nothing goes
// where it pointed.
func TestRepliesGoToTheAsker(t *testing.T) {
	broker := startBroker(t)
	startController(t, Options{BrokerURL: broker, DataDir: t.TempDir(),
		Roles: func(user string) string { return roleMember }})
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic+"/#")
	home := protocol.UserTopic(protocol.SessionCommandTopic("home"), "alice")
	library := protocol.UserTopic(protocol.LibraryCommandTopic, "alice")
	own := protocol.UserReplyTopic("alice")

	for _, topic := range []string{home, library} {
		cmd := `"cmd":"status"`
		if topic == library {
			cmd = `"cmd":"search","query":"x"`
		}
		for i, replyTo := range []string{"", own, own + "/cli-1"} {
			id := fmt.Sprint("ok", i)
			payload := fmt.Sprintf(`{%s,"req_id":%q,"reply_to":%q}`, cmd, id, replyTo)
			want := cmp.Or(replyTo, own)
			if r := tc.request(topic, want, id, payload); !r.OK {
				t.Errorf("%s to %q: %+v", topic, replyTo, r)
			}
		}
		for i, replyTo := range []string{protocol.UserReplyTopic("bob") + "/cli-1", protocol.DefaultReplyTopic, "alice/replies", "tutti/reply/alicex"} {
			id := fmt.Sprint("refused", i)
			payload := fmt.Sprintf(`{%s,"req_id":%q,"reply_to":%q}`, cmd, id, replyTo)
			if r := tc.request(topic, own, id, payload); r.OK || !strings.Contains(r.Error, "reply_to") {
				t.Errorf("%s to %q: %+v, want a refusal on %s", topic, replyTo, r, own)
			}
		}
	}
	// Nothing reached bob's topic: each reply came before the next request,
	// so a marker there comes after whatever did.
	tc.publish(protocol.UserReplyTopic("bob"), []byte("marker"))
	for {
		m := tc.next(protocol.UserReplyTopic("bob"), func([]byte) bool { return true })
		if string(m) == "marker" {
			break
		}
		t.Errorf("a reply reached bob's topic: %s", m)
	}
}
