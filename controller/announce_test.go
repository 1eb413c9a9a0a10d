package controller

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

func TestAnnounce(t *testing.T) {
	broker := startBroker(t)
	shared := offsetClock{offset: -2 * time.Minute}
	roles := map[string]string{"root": roleAdmin, "alice": roleMember, "bob": roleMember} // only read
	startController(t, Options{BrokerURL: broker, DataDir: t.TempDir(), Clock: shared,
		Roles: func(user string) string { return roles[user] }})
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic+"/#")
	heard := newTestClient(t, broker, protocol.AnnounceTopic("home"))
	var lease protocol.Lease
	if err := json.Unmarshal(retained(t, broker, protocol.LeaseTopic), &lease); err != nil || lease.Term == 0 {
		t.Fatalf("lease %+v: %v", lease, err)
	}

	// A slow speaker in the session: the chime starts as late as a play would.
	slow := protocol.SpeakerStatus{V: 1, ID: "a1", Online: true, Instance: "i1", Session: "home", Volume: 100,
		LatencyNs: int64(600 * time.Millisecond), RTTP99Ns: int64(100 * time.Millisecond)}
	if tok := tc.mqtt.Publish(protocol.SpeakerStatusTopic("a1"), 1, true, protocol.Encode(slow)); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("speaker status: %v", tok.Error())
	}
	assignmentIs(t, broker, "a1", "home")
	lead := leadFor([]protocol.SpeakerStatus{slow})

	home, sessions := protocol.SessionCommandTopic("home"), protocol.SessionsCommandTopic
	tc.mustAsk(sessions, "root", `{"cmd":"grant","session":"home","acl":{"see":["*"],"join":["*"],"control":["bob"]}}`, nil)

	before := shared.Now().UnixNano()
	var res announceResult
	tc.mustAsk(home, "bob", `{"cmd":"announce","text":"Dinner is ready!\n\tCome down 🍝"}`, &res)
	after := shared.Now().UnixNano()
	var a protocol.Announcement
	heard.next(protocol.AnnounceTopic("home"), func(b []byte) bool { return json.Unmarshal(b, &a) == nil })
	want := protocol.Announcement{V: 1, Term: lease.Term, ID: res.ID, AtNs: res.AtNs, Text: "Dinner is ready!\n\tCome down 🍝", Sound: protocol.SoundChime}
	if a != want || a.ID == "" {
		t.Fatalf("announcement %+v\nwant %+v", a, want)
	}
	slack := int64(5 * time.Millisecond) // the shared clock's model may round
	if a.AtNs < before+int64(lead)-slack || a.AtNs > after+int64(lead)+slack {
		t.Fatalf("announcement at %d: %v after the request was sent, want %v (lead)",
			a.AtNs, time.Duration(a.AtNs-before), lead)
	}

	for _, step := range []struct{ user, payload, refusal string }{
		{"alice", `{"cmd":"announce","text":"hi"}`, "alice may not control session home"},
		{"", `{"cmd":"announce"}`, "anonymous requests are refused"},
		{"bob", `{"cmd":"announce","text":"` + strings.Repeat("a", protocol.MaxAnnouncementText+1) + `"}`, "exceeds 1000"},
		{"bob", `{"cmd":"announce","text":"ding\u0007dong"}`, "control character U+0007"},
		{"bob", `{"cmd":"announce","text":"\u009b"}`, "control character U+009B"},
		{"bob", `{"cmd":"announce","volume":10}`, "announce takes no volume"},
		{"bob", `{"cmd":"pause","text":"shh"}`, "pause takes no text"},
	} {
		reply := tc.ask(home, step.user, step.payload)
		if reply.OK || !strings.Contains(reply.Error, step.refusal) {
			t.Errorf("%.60s by %q: %+v, want refusal %q", step.payload, step.user, reply, step.refusal)
		}
	}
	// Nothing was announced for the refusals: the next announcement heard
	// is the next one made.
	var plain announceResult
	tc.mustAsk(home, "root", `{"cmd":"announce"}`, &plain)
	a = protocol.Announcement{}
	heard.next(protocol.AnnounceTopic("home"), func(b []byte) bool { return json.Unmarshal(b, &a) == nil })
	if a.ID != plain.ID || a.ID == res.ID || a.Text != "" || a.AtNs != plain.AtNs {
		t.Fatalf("after the refusals heard %+v, want id %s", a, plain.ID)
	}
}

func TestCheckAnnouncementText(t *testing.T) {
	for text, ok := range map[string]bool{
		"":                             true,
		"Dinner!\nTabs\tare fine":      true,
		"Grüße, 你好":                    true,
		strings.Repeat("é", 500):       true, // 1000 bytes
		strings.Repeat("é", 500) + "a": false,
		"bell\a":                       false,
		"carriage\rreturn":             false,
		"\x7f":                         false,
		"bad \xff utf-8":               false,
		"nul\x00":                      false,
	} {
		if err := checkAnnouncementText(text); (err == nil) != ok {
			t.Errorf("%.40q: %v, want ok %v", text, err, ok)
		}
	}
}
