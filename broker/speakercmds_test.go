package broker

import (
	"fmt"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/protocol"
)

// speakerReply is a speaker's reply to request reqID.
func speakerReply(reqID string) []byte {
	return protocol.Encode(protocol.Reply{V: protocol.Version, OK: true, Cmd: protocol.CmdIdentify, ReqID: reqID})
}

func TestSpeakerAnswersOnlyItsCommands(t *testing.T) {
	clock := newFakeClock()
	c := newSpeakerCommands(clock)
	identify := func(reqID, replyTo string) []byte {
		return protocol.Encode(protocol.Request{V: protocol.Version, Cmd: protocol.CmdIdentify, ReqID: reqID, ReplyTo: replyTo})
	}
	if c.answer("kitchen", "tutti/reply/bob", speakerReply("1")) {
		t.Error("a reply to no request allowed")
	}
	c.sent("kitchen", identify("1", "tutti/reply/alice/cli-1"))
	for _, tc := range []struct{ speaker, topic, reqID string }{
		{"bath", "tutti/reply/alice/cli-1", "1"},    // sent to another speaker
		{"kitchen", "tutti/reply/bob", "1"},         // not the topic it named
		{"kitchen", "tutti/reply/alice/cli-1", "2"}, // not its request id
	} {
		if c.answer(tc.speaker, tc.topic, speakerReply(tc.reqID)) {
			t.Errorf("%s answering on %s with req_id %s: allowed", tc.speaker, tc.topic, tc.reqID)
		}
	}
	if c.answer("kitchen", "tutti/reply/alice/cli-1", []byte("not a reply")) {
		t.Error("a payload that is no reply allowed")
	}
	if !c.answer("kitchen", "tutti/reply/alice/cli-1", speakerReply("1")) {
		t.Error("the reply to the request refused")
	}
	if c.answer("kitchen", "tutti/reply/alice/cli-1", speakerReply("1")) {
		t.Error("a second reply to one request allowed")
	}

	// A reply_to the speaker refuses: its error reply goes to the default
	// reply topic, and may.
	c.sent("kitchen", identify("3", "tutti/session/home/state"))
	if c.answer("kitchen", "tutti/session/home/state", speakerReply("3")) || !c.answer("kitchen", protocol.DefaultReplyTopic, speakerReply("3")) {
		t.Error("the error reply to a refused reply_to goes elsewhere than the speaker sends it")
	}
	// A request that cannot be read gets an error reply on what could be.
	c.sent("kitchen", []byte(`{"cmd":"identify","req_id":"4","reply_to":"tutti/reply/alice","volume":"x"}`))
	if !c.answer("kitchen", "tutti/reply/alice", speakerReply("4")) {
		t.Error("the error reply to a malformed request refused")
	}

	// Requests expire after speakerCommandTTL.
	c.sent("kitchen", identify("5", "tutti/reply/alice"))
	clock.Advance(speakerCommandTTL)
	c.sent("kitchen", identify("6", "tutti/reply/alice"))
	clock.Advance(1)
	if c.answer("kitchen", "tutti/reply/alice", speakerReply("5")) {
		t.Error("a reply after speakerCommandTTL allowed")
	}
	if !c.answer("kitchen", "tutti/reply/alice", speakerReply("6")) {
		t.Error("a reply within speakerCommandTTL refused")
	}

	// At most maxPendingSpeakerCommands: the oldest is forgotten first.
	for i := range maxPendingSpeakerCommands + 1 {
		c.sent("kitchen", identify(fmt.Sprint("n", i), "tutti/reply/alice"))
	}
	if got := len(c.pending); got != maxPendingSpeakerCommands {
		t.Errorf("%d requests remembered, want %d", got, maxPendingSpeakerCommands)
	}
	if c.answer("kitchen", "tutti/reply/alice", speakerReply("n0")) {
		t.Error("the oldest request was not forgotten")
	}
	if !c.answer("kitchen", "tutti/reply/alice", speakerReply(fmt.Sprint("n", maxPendingSpeakerCommands))) {
		t.Error("the newest request was forgotten")
	}
}

// TestSpeakerRepliesOnlyToItsCommands runs the same over a real broker: a
// speaker's forged reply to a member is dropped, its reply to an admin's
// request arrives, once.
func TestSpeakerRepliesOnlyToItsCommands(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, admin, bob, kitchen)})
	adminC := mustConnect(t, b, admin, "alice")
	bobC := mustConnect(t, b, bob, "bob")
	speaker := mustConnect(t, b, kitchen, "kitchen")
	adminReplies := subscribe(t, adminC, protocol.UserReplyTopic(admin.name)+"/#")
	// Bob also reads the speaker's status (it plays no session), on which
	// the speaker marks the end of its publishes: they are delivered in order.
	bobReads := make(chan message, 100)
	for _, filter := range []string{protocol.UserReplyTopic(bob.name), protocol.SpeakerStatusTopic("kitchen")} {
		if code := trySubscribe(t, bobC, filter, func(_ paho.Client, m paho.Message) {
			bobReads <- message{topic: m.Topic(), payload: string(m.Payload())}
		}); code > 2 {
			t.Fatalf("bob may not subscribe to %s (code %#x)", filter, code)
		}
	}
	commands := subscribe(t, speaker, protocol.SpeakerCommandTopic("kitchen"))

	// Unasked, the speaker answers bob's request before the controller.
	publish(t, speaker, protocol.UserReplyTopic(bob.name), false, string(speakerReply("bob-1")))
	publish(t, speaker, protocol.DefaultReplyTopic, false, string(speakerReply("bob-1")))
	checkOnly(t, speaker, protocol.SpeakerStatusTopic("kitchen"), bobReads)

	// Asked by the admin, it answers there, once; not to bob with that id.
	adminTopic := protocol.UserReplyTopic(admin.name) + "/t"
	publish(t, adminC, protocol.SpeakerCommandTopic("kitchen"), false,
		string(protocol.Encode(protocol.Request{Cmd: protocol.CmdIdentify, ReqID: "a-1", ReplyTo: adminTopic})))
	receive(t, commands)
	publish(t, speaker, protocol.UserReplyTopic(bob.name), false, string(speakerReply("a-1")))
	publish(t, speaker, adminTopic, false, string(speakerReply("a-1")))
	if m := receive(t, adminReplies); m.topic != adminTopic || m.payload != string(speakerReply("a-1")) {
		t.Errorf("the admin received %s %s, want the speaker's reply", m.topic, m.payload)
	}
	publish(t, speaker, adminTopic, false, string(speakerReply("a-1")))
	checkOnly(t, speaker, protocol.SpeakerStatusTopic("kitchen"), bobReads)
	checkOnly(t, adminC, adminTopic, adminReplies)
	if !speaker.IsConnectionOpen() {
		t.Error("speaker disconnected after a refused reply")
	}
	if !strings.Contains(log.String(), "topic="+protocol.UserReplyTopic(bob.name)) {
		t.Errorf("the forged reply was not logged:\n%s", log.String())
	}
	// A speaker cannot leave a reply as its last will either.
	if _, err := connect(t, b, kitchen, "kitchen-2", func(o *paho.ClientOptions) {
		o.SetWill(protocol.UserReplyTopic(bob.name), string(speakerReply("bob-2")), 1, false)
	}); err == nil {
		t.Error("speaker connected with a last will on a reply topic")
	}
}

// FuzzSpeakerCommands sends a request and a reply of any bytes: the broker
// never panics, allows a reply only on the topic the speaker would answer
// on, and remembers a bounded number of requests.
func FuzzSpeakerCommands(f *testing.F) {
	f.Add([]byte(`{"cmd":"identify","req_id":"1","reply_to":"tutti/reply/alice"}`), "tutti/reply/alice", []byte(`{"v":1,"ok":true,"req_id":"1"}`))
	f.Add([]byte(`{"cmd":`), "tutti/reply", []byte(`{"v":1,"ok":false,"req_id":""}`))
	f.Add([]byte(`{"cmd":"status","reply_to":"x/+"}`), "x/+", []byte(`{}`))
	f.Fuzz(func(t *testing.T, request []byte, topic string, reply []byte) {
		c := newSpeakerCommands(newFakeClock())
		c.sent("kitchen", request)
		req, _ := protocol.DecodeRequest(request, protocol.SpeakerCommands)
		where, _ := protocol.ReplyTopic(req.ReplyTo, "")
		if c.answer("kitchen", topic, reply) && topic != where {
			t.Errorf("a reply on %q allowed; the speaker answers on %q", topic, where)
		}
		if len(c.pending) > 1 {
			t.Errorf("%d requests remembered after one", len(c.pending))
		}
	})
}
