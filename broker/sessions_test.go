package broker

import (
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/protocol"
)

var (
	ctl   = testUser{"ctl", RoleController, "ctl-secret"}
	carol = testUser{"carol", RoleMember, "carol-secret"}
	bath  = testUser{"bath", RoleSpeaker, "bath-secret"}
)

// officeACL lets bob see and join office, and carol control it.
var officeACL = protocol.ACL{See: []string{"bob", "carol"}, Join: []string{"bob"}, Control: []string{"carol"}}

// atticACL hides attic from everyone but carol.
var atticACL = protocol.ACL{See: []string{"carol"}, Join: []string{"carol"}, Control: []string{"carol"}}

// refused reports whether the broker refuses c's subscription to filter.
func refused(t *testing.T, c paho.Client, filter string) bool {
	t.Helper()
	return trySubscribe(t, c, filter, func(paho.Client, paho.Message) {}) == 0x80
}

func TestMemberSeesOnlyVisibleSessions(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, ctl, bob)})
	controller := mustConnect(t, b, ctl, "controller")
	member := mustConnect(t, b, bob, "bob")

	// No session has an info yet: every member sees everything.
	states := subscribe(t, member, "tutti/session/+/state")

	publish(t, controller, protocol.SessionInfoTopic("home"), true, infoMsg("home", protocol.Everyone))
	publish(t, controller, protocol.SessionInfoTopic("attic"), true, infoMsg("attic", atticACL))
	publish(t, controller, protocol.SessionStateTopic("attic"), true, "attic state")
	publish(t, controller, protocol.SessionStateTopic("home"), true, "home state")
	// The subscription from before attic was hidden delivers home only.
	checkOnly(t, controller, protocol.SessionStateTopic("home"), states, protocol.SessionStateTopic("home"))

	for _, filter := range []string{protocol.SessionStateTopic("attic"), "tutti/session/attic/#", "tutti/session/+/state", "tutti/#", "#"} {
		if !refused(t, member, filter) {
			t.Errorf("bob may subscribe to %s", filter)
		}
	}
	// Refusals are logged at most once a second per user: the first one.
	if !strings.Contains(log.String(), `msg="mqtt subscription refused" user=bob client=bob error="filter tutti/session/attic/state"`) {
		t.Errorf("refused subscription not logged:\n%s", log.String())
	}
	// What bob may subscribe to delivers the retained messages he may see.
	home := subscribe(t, member, "tutti/session/home/#")
	got := map[string]bool{}
	for range 2 {
		got[receive(t, home).topic] = true
	}
	if !got[protocol.SessionInfoTopic("home")] || !got[protocol.SessionStateTopic("home")] {
		t.Errorf("retained home topics: got %v", got)
	}

	// Once attic is open to him, he sees it.
	publish(t, controller, protocol.SessionInfoTopic("attic"), true, infoMsg("attic", protocol.Everyone))
	if refused(t, member, protocol.SessionStateTopic("attic")) {
		t.Error("attic still refused after it was opened")
	}
}

func TestMemberCommandsNeedRights(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, ctl, bob, carol, admin)})
	controller := mustConnect(t, b, ctl, "controller")
	publish(t, controller, protocol.SessionInfoTopic("office"), true, infoMsg("office", officeACL))
	commands := subscribe(t, controller, "tutti/+/+/cmd/#")
	bobC := mustConnect(t, b, bob, "bob")
	carolC := mustConnect(t, b, carol, "carol")
	adminC := mustConnect(t, b, admin, "alice")

	office := protocol.SessionCommandTopic("office")
	play, status := `{"cmd":"play"}`, `{"cmd":"status"}`
	publish(t, bobC, protocol.UserTopic(office, "bob"), false, play)     // no Control: dropped
	publish(t, bobC, protocol.UserTopic(office, "bob"), false, status)   // See
	publish(t, bobC, protocol.UserTopic(office, "carol"), false, play)   // signed as another: dropped
	publish(t, bobC, office, false, play)                                // unsigned: dropped
	publish(t, carolC, protocol.UserTopic(office, "carol"), false, play) // Control
	publish(t, adminC, protocol.UserTopic(office, "carol"), false, play) // even an admin signs only as itself
	publish(t, adminC, protocol.UserTopic(office, admin.name), false, play)
	// Publishes of different clients may arrive in any order.
	var got []string
	for range 3 {
		m := receive(t, commands)
		got = append(got, m.topic+" "+m.payload)
	}
	slices.Sort(got)
	want := []string{
		protocol.UserTopic(office, admin.name) + " " + play,
		protocol.UserTopic(office, "bob") + " " + status,
		protocol.UserTopic(office, "carol") + " " + play,
	}
	if !slices.Equal(got, want) {
		t.Errorf("delivered:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Nothing else arrived before a last marker of alice's.
	checkOnly(t, adminC, protocol.UserTopic(office, admin.name), commands)
	if !strings.Contains(log.String(), "topic="+protocol.UserTopic(office, "carol")) {
		t.Errorf("forged signature not logged:\n%s", log.String())
	}
}

func TestSpeakerReadsOnlyItsSession(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, ctl, kitchen, bath)})
	controller := mustConnect(t, b, ctl, "controller")
	publish(t, controller, protocol.AssignTopic("kitchen"), true, assignMsg("kitchen", "home"))
	publish(t, controller, protocol.SessionStateTopic("home"), true, "home state")
	publish(t, controller, protocol.SessionStateTopic("office"), true, "office state")

	speaker := mustConnect(t, b, kitchen, "kitchen")
	if refused(t, speaker, protocol.SessionStateTopic("home")) || !refused(t, speaker, protocol.SessionStateTopic("office")) {
		t.Fatal("kitchen, assigned to home, may not read home or may read office")
	}
	// The speaker follows its assignment as a real one does: on a new
	// assignment it subscribes to the new session, which must be allowed
	// by the time the assignment reaches it.
	assigned := make(chan string, 10)
	followed := make(chan byte, 10)
	states := make(chan message, 100)
	onState := func(_ paho.Client, m paho.Message) { states <- message{m.Topic(), string(m.Payload()), m.Retained()} }
	trySubscribe(t, speaker, protocol.AssignTopic("kitchen"), func(c paho.Client, m paho.Message) {
		a, err := protocol.Decode[protocol.Assignment](m.Payload())
		if err != nil || a.Session == "" {
			return
		}
		assigned <- a.Session
		go func() { // paho handlers must not wait on tokens
			tok := c.Subscribe(sessionFilter(a.Session), 1, onState)
			tok.WaitTimeout(testWait)
			followed <- tok.(*paho.SubscribeToken).Result()[sessionFilter(a.Session)]
		}()
	})
	follows := func(session string) {
		t.Helper()
		if got := within(t, assigned); got != session {
			t.Fatalf("assigned to %q, want %q", got, session)
		}
		if code := within(t, followed); code == 0x80 {
			t.Fatalf("kitchen may not subscribe to its session %s", session)
		}
	}
	follows("home")
	if m := receive(t, states); m.payload != "home state" {
		t.Errorf("in home got %+v", m)
	}

	publish(t, controller, protocol.AssignTopic("kitchen"), true, assignMsg("kitchen", "office"))
	follows("office")
	if m := receive(t, states); m.payload != "office state" {
		t.Errorf("after the move got %+v", m)
	}
	// Its old subscription to home delivers nothing any more.
	publish(t, controller, protocol.SessionStateTopic("home"), true, "home state 2")
	checkOnly(t, controller, protocol.SessionStateTopic("office"), states)

	// An unassigned speaker reads no session at all.
	other := mustConnect(t, b, bath, "bath")
	if !refused(t, other, protocol.SessionStateTopic("home")) {
		t.Error("unassigned bath may read home")
	}
	publish(t, controller, protocol.AssignTopic("kitchen"), true, assignMsg("kitchen", ""))
	if !refused(t, speaker, protocol.SessionStateTopic("office")) {
		t.Error("kitchen, unassigned, may still read office")
	}
}

// within returns what ch yields, failing the test if nothing comes in time.
func within[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testWait):
		t.Fatal("nothing arrived")
		var zero T
		return zero
	}
}

func TestSessionRightsSurviveRestart(t *testing.T) {
	opts := Options{UsersFile: writeUsers(t, ctl, bob, kitchen), DataDir: t.TempDir()}
	b, stop, _ := startBroker(t, opts)
	controller := mustConnect(t, b, ctl, "controller")
	publish(t, controller, protocol.SessionInfoTopic("attic"), true, infoMsg("attic", atticACL))
	publish(t, controller, protocol.AssignTopic("kitchen"), true, assignMsg("kitchen", "attic"))
	controller.Disconnect(0)
	stop()

	b, _, _ = startBroker(t, opts)
	if !refused(t, mustConnect(t, b, bob, "bob"), protocol.SessionStateTopic("attic")) {
		t.Error("after a restart bob may read attic")
	}
	if refused(t, mustConnect(t, b, kitchen, "kitchen"), protocol.SessionStateTopic("attic")) {
		t.Error("after a restart kitchen may not read attic, its session")
	}
}

func TestSessionInfoOfDeposedControllerFenced(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, ctl, bob), Clock: newFakeClock()})
	controller := mustConnect(t, b, ctl, "controller")
	publish(t, controller, protocol.LeaseTopic, true, leaseMsg(2, "new"))
	hidden := protocol.Encode(protocol.SessionInfo{V: protocol.Version, Session: "attic", ACL: atticACL, Term: 2})
	publish(t, controller, protocol.SessionInfoTopic("attic"), true, string(hidden))
	open := protocol.Encode(protocol.SessionInfo{V: protocol.Version, Session: "attic", ACL: protocol.Everyone, Term: 1})
	publish(t, controller, protocol.SessionInfoTopic("attic"), true, string(open))
	publish(t, controller, protocol.SessionInfoTopic("attic"), true, "not json")
	if !refused(t, mustConnect(t, b, bob, "bob"), protocol.SessionStateTopic("attic")) {
		t.Error("a stale session info opened attic")
	}
	if pk, _ := b.server.Topics.Retained.Get(protocol.SessionInfoTopic("attic")); string(pk.Payload) != string(hidden) {
		t.Errorf("retained info %q", pk.Payload)
	}
	if !strings.Contains(log.String(), "stale term") {
		t.Errorf("stale info not logged:\n%s", log.String())
	}
}

func TestUnreadableSessionInfoDropped(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, ctl, bob)})
	controller := mustConnect(t, b, ctl, "controller")
	publish(t, controller, protocol.SessionInfoTopic("attic"), true, infoMsg("attic", atticACL))
	publish(t, controller, protocol.SessionInfoTopic("attic"), true, `{"v":1,"session":"attic","acl":{"see":"everyone"}}`)
	publish(t, controller, protocol.SessionInfoTopic("attic"), true, infoMsg("home", protocol.Everyone))
	if !refused(t, mustConnect(t, b, bob, "bob"), protocol.SessionStateTopic("attic")) {
		t.Error("an unreadable session info opened attic")
	}
	if pk, _ := b.server.Topics.Retained.Get(protocol.SessionInfoTopic("attic")); string(pk.Payload) != infoMsg("attic", atticACL) {
		t.Errorf("retained info %q", pk.Payload)
	}
	if !strings.Contains(log.String(), "unreadable session info") {
		t.Errorf("drop not logged:\n%s", log.String())
	}
}

// TestMemberReadsOnlyWhatItMaySee gives bob every wide subscription the
// broker grants him while carol uses attic: none delivers carol's requests
// or replies, attic's speaker or the bridge's view of it, even after a
// speaker he saw moves into attic; his own requests and replies come
// through.
func TestMemberReadsOnlyWhatItMaySee(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, ctl, bob, carol)})
	controller := mustConnect(t, b, ctl, "controller")
	publish(t, controller, protocol.SessionInfoTopic("home"), true, infoMsg("home", protocol.Everyone))
	publish(t, controller, protocol.SessionInfoTopic("attic"), true, infoMsg("attic", atticACL))
	publish(t, controller, protocol.AssignTopic("kitchen"), true, assignMsg("kitchen", "home"))
	publish(t, controller, protocol.AssignTopic("loft"), true, assignMsg("loft", "attic"))
	bobC := mustConnect(t, b, bob, "bob")
	carolC := mustConnect(t, b, carol, "carol")

	for _, filter := range []string{
		"#", "tutti/#", "+/#", protocol.DefaultReplyTopic + "/#", protocol.UserReplyTopic(carol.name), "tutti/reply/+/cli-1",
		protocol.SpeakerStatusFilter, protocol.SpeakerStatusTopic("loft"), "tutti/ha/#", "tutti/ha/session/attic/#",
		"tutti/ha/speaker/loft/state", protocol.HomeAssistantPrefix + "/#", protocol.UserTopic(protocol.SessionsCommandTopic, carol.name),
	} {
		if !refused(t, bobC, filter) {
			t.Errorf("bob may subscribe to %s", filter)
		}
	}
	seen := make(chan string, 100)
	for _, filter := range []string{
		"tutti/session/home/#", "tutti/sessions/#", "tutti/library/#", protocol.UserReplyTopic(bob.name) + "/#",
		"tutti/speaker/kitchen/#", "tutti/ha/session/home/#", "tutti/ha/speaker/kitchen/#", "elsewhere/#",
	} {
		if code := trySubscribe(t, bobC, filter, func(_ paho.Client, m paho.Message) { seen <- m.Topic() + " " + string(m.Payload()) }); code > 2 {
			t.Fatalf("bob may not subscribe to %s (code %#x)", filter, code)
		}
	}

	carolAsks := []string{
		protocol.UserTopic(protocol.SessionCommandTopic("home"), carol.name),
		protocol.UserTopic(protocol.SessionsCommandTopic, carol.name),
		protocol.UserTopic(protocol.LibraryCommandTopic, carol.name),
	}
	for _, topic := range carolAsks {
		publish(t, carolC, topic, false, `{"cmd":"status","reply_to":"tutti/reply/carol/cli-1"}`)
	}
	bobAsks := protocol.UserTopic(protocol.SessionCommandTopic("home"), bob.name)
	publish(t, bobC, bobAsks, false, `{"cmd":"status","reply_to":"tutti/reply/bob/cli-1"}`)
	bobReply := protocol.UserReplyTopic(bob.name) + "/cli-1"
	publish(t, controller, protocol.UserReplyTopic(carol.name)+"/cli-1", false, "carol's reply")
	publish(t, controller, bobReply, false, "bob's reply")
	publish(t, controller, protocol.SessionCommandTopic("home"), false, "an anonymous request")
	kitchenStatus, kitchenState := protocol.SpeakerStatusTopic("kitchen"), "tutti/ha/speaker/kitchen/state"
	publish(t, controller, kitchenStatus, true, "kitchen plays home")
	publish(t, controller, kitchenState, true, "kitchen plays home")
	publish(t, controller, "tutti/ha/session/attic/state", true, "attic plays")
	// Kitchen moves into attic: bob's older subscriptions stop delivering it.
	publish(t, controller, protocol.AssignTopic("kitchen"), true, assignMsg("kitchen", "attic"))
	publish(t, controller, kitchenStatus, true, "kitchen plays attic")
	publish(t, controller, kitchenState, true, "kitchen plays attic")
	publish(t, controller, protocol.SpeakerCommandTopic("kitchen"), false, `{"cmd":"identify"}`)
	// Each client's publishes are delivered in order: a marker from each
	// comes after whatever of theirs bob receives.
	marker := protocol.UserReplyTopic(bob.name) + "/marker"
	publish(t, controller, marker, false, "marker")
	publish(t, carolC, "elsewhere/carol", false, "marker")
	publish(t, bobC, "elsewhere/bob", false, "marker")
	var got []string
	for markers := 0; markers < 3; {
		select {
		case m := <-seen:
			if strings.HasSuffix(m, " marker") {
				markers++
				continue
			}
			got = append(got, m)
		case <-time.After(testWait):
			t.Fatalf("the markers did not arrive; got %q", got)
		}
	}
	slices.Sort(got)
	want := []string{
		bobAsks + ` {"cmd":"status","reply_to":"tutti/reply/bob/cli-1"}`, bobReply + " bob's reply",
		kitchenStatus + " kitchen plays home", kitchenState + " kitchen plays home",
		protocol.SessionInfoTopic("home") + " " + infoMsg("home", protocol.Everyone),
		protocol.AssignTopic("kitchen") + " " + assignMsg("kitchen", "home"),
	}
	slices.Sort(want)
	if got = slices.Compact(got); !slices.Equal(got, want) {
		t.Errorf("bob received %q, want %q", got, want)
	}
}
