package controller

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// TestFullQueueAnswersBusy: with room for one queued session request, the
// session loop held up on carol's request (the users' roles are slow to
// read) and one of bob's queued, bob's next request is answered at once
// with "controller busy" on his reply topic, and so is one whose reply_to
// is not his (on his own). Meanwhile alice's library request is answered;
// once the loop runs again, the queued requests are answered as usual, and
// so are new ones.
func TestFullQueueAnswersBusy(t *testing.T) {
	broker := startBroker(t)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce)
	roles := func(user string) string {
		if user == "carol" {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
		return roleMember
	}
	c, _ := startController(t, Options{BrokerURL: broker, DataDir: t.TempDir(), Roles: roles, requestQueue: 1})
	bob := newTestClient(t, broker, protocol.UserReplyTopic("bob")+"/#", protocol.UserReplyTopic("bob"))
	alice := newTestClient(t, broker, protocol.UserReplyTopic("alice"))
	carol := newTestClient(t, broker, protocol.UserReplyTopic("carol"))
	home := protocol.UserTopic(protocol.SessionCommandTopic("home"), "bob")
	reply := func(tc *testClient, topic, reqID string) protocol.Reply {
		t.Helper()
		var r protocol.Reply
		tc.next(topic, func(b []byte) bool { return json.Unmarshal(b, &r) == nil && r.ReqID == reqID })
		return r
	}
	queued := func() int {
		c.sessionRequests.mu.Lock()
		defer c.sessionRequests.mu.Unlock()
		return len(c.sessionRequests.items)
	}

	carol.publish(protocol.UserTopic(protocol.SessionCommandTopic("home"), "carol"), []byte(`{"cmd":"status","req_id":"stuck"}`))
	select {
	case <-entered:
	case <-time.After(waitTimeout):
		t.Fatal("carol's request did not reach the session loop")
	}
	bob.publish(home, []byte(`{"cmd":"status","req_id":"queued","reply_to":"tutti/reply/bob/x"}`))
	testwait.For(t, "bob's first status to be queued", waitTimeout, func() bool { return queued() == 1 })
	bob.publish(home, []byte(`{"cmd":"status","req_id":"over","reply_to":"tutti/reply/bob/x"}`))
	bob.publish(home, []byte(`{"cmd":"volume","volume":5,"req_id":"elsewhere","reply_to":"tutti/reply/alice"}`))
	for _, want := range []struct{ topic, reqID, cmd string }{
		{protocol.UserReplyTopic("bob") + "/x", "over", protocol.CmdStatus},
		{protocol.UserReplyTopic("bob"), "elsewhere", protocol.CmdVolume},
	} {
		r := reply(bob, want.topic, want.reqID)
		if r.OK || r.Cmd != want.cmd || !strings.Contains(r.Error, "controller busy: 1 requests queued, retry") {
			t.Errorf("reply to %s: %+v", want.reqID, r)
		}
	}
	// The library loop has a queue of its own.
	alice.publish(protocol.UserTopic(protocol.LibraryCommandTopic, "alice"), []byte(`{"cmd":"search","query":"x","req_id":"lib"}`))
	if r := reply(alice, protocol.UserReplyTopic("alice"), "lib"); !r.OK {
		t.Errorf("alice's search while bob's queue is full: %+v", r)
	}

	releaseOnce()
	if r := reply(carol, protocol.UserReplyTopic("carol"), "stuck"); !r.OK {
		t.Errorf("reply to carol: %+v", r)
	}
	if r := reply(bob, protocol.UserReplyTopic("bob")+"/x", "queued"); !r.OK {
		t.Errorf("reply to bob's queued status: %+v", r)
	}
	bob.publish(home, []byte(`{"cmd":"status","req_id":"after","reply_to":"tutti/reply/bob/x"}`))
	if r := reply(bob, protocol.UserReplyTopic("bob")+"/x", "after"); !r.OK {
		t.Errorf("reply after the flood: %+v", r)
	}
}

// TestSparseLog: one line per interval, with the count of those left out.
func TestSparseLog(t *testing.T) {
	l := &sparseLog{interval: time.Second}
	t0 := time.Unix(1000, 0)
	for i, step := range []struct {
		at      time.Duration
		ok      bool
		skipped int
	}{
		{0, true, 0}, {10 * time.Millisecond, false, 0}, {999 * time.Millisecond, false, 0},
		{time.Second, true, 2}, {1500 * time.Millisecond, false, 0}, {5 * time.Second, true, 1},
	} {
		skipped, ok := l.allow(t0.Add(step.at))
		if ok != step.ok || skipped != step.skipped {
			t.Errorf("step %d at %v: allow = %d, %v; want %d, %v", i, step.at, skipped, ok, step.skipped, step.ok)
		}
	}
}
