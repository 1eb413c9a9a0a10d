package speaker

import (
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// subscriptions is a broker hook that counts the granted subscribes and
// the unsubscribes of each filter.
type subscriptions struct {
	mochi.HookBase
	mu           sync.Mutex
	subs, unsubs map[string]int
}

func (*subscriptions) ID() string { return "subscriptions" }
func (*subscriptions) Provides(b byte) bool {
	return b == mochi.OnSubscribed || b == mochi.OnUnsubscribed
}

func (h *subscriptions) OnSubscribed(_ *mochi.Client, pk packets.Packet, codes []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] <= 2 {
			h.subs[f.Filter]++
		}
	}
}

func (h *subscriptions) OnUnsubscribed(_ *mochi.Client, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range pk.Filters {
		h.unsubs[f.Filter]++
	}
}

// of says how often filter was subscribed and unsubscribed.
func (h *subscriptions) of(filter string) (subs, unsubs int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.subs[filter], h.unsubs[filter]
}

// TestSpeakerFollowsAssignment runs two sessions playing different timecode
// songs over a real broker and moves a speaker between them mid-song: it
// leaves the first for good and joins the second where its timeline is,
// acknowledges the second's states and says where it is; a deposed
// controller's assignment is ignored, a volume-only assignment changes the
// level without a move, and an assignment to no session silences it.
func TestSpeakerFollowsAssignment(t *testing.T) {
	const firstB = 5_000_000 // B's timecodes: far from A's (0..), so a frame tells the song
	songA, shaA := timecodeWAV(t, 30*testRate, 0)
	songB, shaB := timecodeWAV(t, 30*testRate, firstB)
	c := newTestController(t, map[string][]byte{shaA: songA, shaB: songB})
	subs := &subscriptions{subs: map[string]int{}, unsubs: map[string]int{}}
	if err := c.broker.AddHook(subs, nil); err != nil {
		t.Fatal(err)
	}
	c.retain(protocol.LeaseTopic, protocol.Lease{V: 1, Term: 1, Holder: "c1", TTLMs: 2000, SongsURL: c.songs.URL + "/songs/"})
	plA := protocol.Playlist{V: 1, Session: "home", Term: 1, Version: 1,
		Entries: []protocol.Entry{{ID: "a", Song: shaA, Frames: 30 * testRate, SampleRate: testRate}}}
	plB := protocol.Playlist{V: 1, Session: "den", Term: 1, Version: 4,
		Entries: []protocol.Entry{{ID: "b", Song: shaB, Frames: 30 * testRate, SampleRate: testRate}}}
	startA := time.Now().Add(500 * time.Millisecond).UnixNano()
	startB := time.Now().Add(-3 * time.Second).UnixNano() // den is 3 s into its song already
	c.retain(protocol.PlaylistTopic("home"), plA)
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Term: 1, Seq: 1, State: protocol.Playing,
		Volume: 100, PlaylistVersion: 1, PlaylistHash: plA.Hash(), Anchor: protocol.Anchor{AtNs: startA, Index: 0, Entry: "a", Playing: true}})
	c.retain(protocol.PlaylistTopic("den"), plB)
	c.retain(protocol.SessionStateTopic("den"), protocol.SessionState{V: 1, Session: "den", Term: 1, Seq: 7, State: protocol.Playing,
		Volume: 100, PlaylistVersion: 4, PlaylistHash: plB.Hash(), Anchor: protocol.Anchor{AtNs: startB, Index: 0, Entry: "b", Playing: true}})

	logged := &lockedBuffer{}
	sp := startSpeakerWith(t, c, "kitchen", nil, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(os.Stderr, logged), &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	// Unassigned yet, the speaker plays the session it asks for.
	waitForStatus(t, c, "kitchen", "playing home", 10*time.Second, func(st protocol.SpeakerStatus) bool {
		return st.State == protocol.Playing && st.Session == "home"
	})
	time.Sleep(500 * time.Millisecond) // some of A, heard

	movedAt := time.Now().UnixNano()
	c.retain(protocol.AssignTopic("kitchen"), protocol.Assignment{V: 1, Speaker: "kitchen", Session: "den", Volume: 100, Term: 1})
	waitForStatus(t, c, "kitchen", "playing den", 10*time.Second, func(st protocol.SpeakerStatus) bool {
		return st.State == protocol.Playing && st.Session == "den" && st.Song == shaB
	})
	testwait.For(t, "the ack of den's state", 5*time.Second, func() bool {
		return slices.ContainsFunc(c.acksOf("kitchen"), func(a protocol.Ack) bool {
			return a.Session == "den" && a.Term == 1 && a.Seq == 7
		})
	})
	time.Sleep(time.Second) // B, heard for a while
	homeState, denState := protocol.SessionStateTopic("home"), protocol.SessionStateTopic("den")
	// (A connect may subscribe twice: once in a race with it; that is harmless.)
	if sub, unsub := subs.of(homeState); sub < 1 || unsub != 1 {
		t.Errorf("home's state subscribed %d times, unsubscribed %d: want once each", sub, unsub)
	}
	denSubs, unsub := subs.of(denState)
	if denSubs != 1 || unsub != 0 {
		t.Errorf("den's state subscribed %d times, unsubscribed %d: want 1 and 0", denSubs, unsub)
	}

	// A deposed controller (term 1 < the lease's 2) moves it back: ignored.
	c.retain(protocol.LeaseTopic, protocol.Lease{V: 1, Term: 2, Holder: "c2", TTLMs: 2000, SongsURL: c.songs.URL + "/songs/"})
	testwait.For(t, "the lease of term 2", 5*time.Second, func() bool {
		sp.sp.mu.Lock()
		defer sp.sp.mu.Unlock()
		return sp.sp.fence.leaseTerm == 2
	})
	if err := c.broker.Publish(protocol.AssignTopic("kitchen"), protocol.Encode(protocol.Assignment{V: 1, Speaker: "kitchen", Session: "home", Volume: 100, Term: 1}), false, 1); err != nil {
		t.Fatal(err)
	}
	// So is an assignment of another speaker on its topic.
	if err := c.broker.Publish(protocol.AssignTopic("kitchen"), protocol.Encode(protocol.Assignment{V: 1, Speaker: "hall", Session: "home", Volume: 100, Term: 2}), false, 1); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the bad assignments ignored", 5*time.Second, func() bool {
		return strings.Contains(logged.String(), "assignment of term 1 from a deposed controller") &&
			strings.Contains(logged.String(), `assignment of speaker \"hall\"`)
	})

	// Volume only: 50 (gain 0.25), in the same session.
	volumeAt := time.Now().UnixNano()
	c.retain(protocol.AssignTopic("kitchen"), protocol.Assignment{V: 1, Speaker: "kitchen", Session: "den", Volume: 50, Term: 2})
	testwait.For(t, "status volume 50", 5*time.Second, func() bool { return c.status("kitchen").Volume == 50 })
	time.Sleep(time.Second)
	if sub, unsub := subs.of(denState); sub != denSubs || unsub != 0 {
		t.Errorf("after a volume change den's state subscribed %d times, unsubscribed %d: want %d and 0", sub, unsub, denSubs)
	}

	unassignedAt := time.Now().UnixNano()
	c.retain(protocol.AssignTopic("kitchen"), protocol.Assignment{V: 1, Speaker: "kitchen", Session: "", Volume: 50, Term: 2})
	waitForStatus(t, c, "kitchen", "unassigned", 5*time.Second, func(st protocol.SpeakerStatus) bool {
		return st.State == unassigned && st.Session == ""
	})
	testwait.For(t, "den unsubscribed", 5*time.Second, func() bool { _, unsub := subs.of(denState); return unsub == 1 })
	time.Sleep(500 * time.Millisecond)
	sp.stop()

	if st := c.status("kitchen"); st.Volume != 50 {
		t.Errorf("status %+v, want volume 50", st)
	}
	for _, a := range c.acksOf("kitchen") {
		if a.Session != "home" && a.Session != "den" {
			t.Errorf("ack %+v of no session the speaker played", a)
		}
	}

	// What was heard. A change applies to the blocks the speaker fills
	// after it hears of it, which are heard a device buffer (80 ms) later:
	// allow that and a margin for a busy machine.
	settle := int64(80*time.Millisecond + 150*time.Millisecond)
	const tolerance = 3 * testRate / 1000 // 3 ms
	var heardA, louderB, quieterB int
	firstHeardB, lastA := int64(-1), movedAt
	for _, rec := range parseLog(t, sp.log.String()) {
		frame, audible := audiogen.ReadTimecode(audiogen.Frame{L: rec.L, R: rec.R})
		if rec.Underrun || !audible {
			continue
		}
		at := time.Duration(rec.TNs - movedAt)
		dueB := firstB + protocol.NsToFrames(rec.TNs-startB, testRate)
		switch {
		case rec.TNs < movedAt:
			if frame >= firstB {
				t.Errorf("heard B's frame %d at %v, before the move", frame, at)
			}
			heardA++
		case rec.TNs > unassignedAt+settle:
			t.Errorf("heard frame %d %v after the speaker was unassigned", frame, time.Duration(rec.TNs-unassignedAt))
		case rec.TNs > volumeAt+settle:
			// At gain 0.25 the timecode is unreadable: check the level of
			// the right channel, ((first+i)>>16 + 1) at full scale.
			full := float64(dueB>>16 + 1)
			if d := float64(rec.R) - full*0.25; d < -1.5 || d > 1.5 {
				t.Errorf("at %v after the volume change: right channel %d, want %.1f (a quarter of %.0f)",
					time.Duration(rec.TNs-volumeAt), rec.R, full*0.25, full)
			}
			quieterB++
		case rec.TNs < volumeAt:
			if frame < firstB {
				if rec.TNs > movedAt+settle {
					t.Errorf("heard A's frame %d %v after the move", frame, at)
				}
				lastA = rec.TNs
				continue
			}
			if d := frame - dueB; d < -tolerance || d > tolerance {
				t.Errorf("at %v after the move heard B's frame %d, want %d (%.2f ms off)", at, frame, dueB, float64(d)*1000/testRate)
			}
			if firstHeardB < 0 {
				firstHeardB = rec.TNs
			}
			louderB++
		}
	}
	t.Logf("%d blocks of A before the move; after it A until %v, B from %v; %d blocks of B, %d at volume 50",
		heardA, time.Duration(lastA-movedAt), time.Duration(firstHeardB-movedAt), louderB, quieterB)
	if heardA < 10 || louderB < 30 || quieterB < 30 {
		t.Errorf("too little heard: %d blocks of A, %d of B, %d of B at volume 50", heardA, louderB, quieterB)
	}
	if wait := time.Duration(firstHeardB - movedAt); firstHeardB < 0 || wait > 1500*time.Millisecond {
		t.Errorf("B first heard %v after the move", wait)
	}
}

// waitForStatus waits until the status of speaker id satisfies cond, and
// fails with the last status if it does not in time.
func waitForStatus(t *testing.T, c *testController, id, what string, timeout time.Duration, cond func(protocol.SpeakerStatus) bool) {
	t.Helper()
	if !testwait.Until(timeout, func() bool { return cond(c.status(id)) }) {
		t.Fatalf("timed out waiting for %s %s; status %+v", id, what, c.status(id))
	}
}
