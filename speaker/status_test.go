package speaker

import (
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// statusLog records every status a speaker publishes, in order.
type statusLog struct {
	mu  sync.Mutex
	all []protocol.SpeakerStatus
}

func recordStatuses(t *testing.T, c *testController, id string) *statusLog {
	l := &statusLog{}
	err := c.broker.Subscribe(protocol.SpeakerStatusTopic(id), 10, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		if st, err := protocol.Decode[protocol.SpeakerStatus](pk.Payload); err == nil {
			l.mu.Lock()
			l.all = append(l.all, st)
			l.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *statusLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

func (l *statusLog) last() protocol.SpeakerStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.all) == 0 {
		return protocol.SpeakerStatus{}
	}
	return l.all[len(l.all)-1]
}

// TestStatusPublishedOnChangeWithoutPolling: the speaker's clock never
// moves, so no ticker of the speaker's fires; a change of what the engine
// plays is still published at once (the engine signals it), nothing is
// published while nothing changes, and the status goes out again
// statusInterval after the last one.
func TestStatusPublishedOnChangeWithoutPolling(t *testing.T) {
	c := newTestController(t, nil)
	statuses := recordStatuses(t, c, "porch")
	manual := clock.NewManual(time.Now())
	startSpeaker(t, c, "porch", manual)
	testwait.For(t, "the first status", 10*time.Second, func() bool { return statuses.count() > 0 })

	// The assignment's own signal publishes before the engine's next block
	// plays unassigned: only the engine's signal brings the new state.
	c.retain(protocol.AssignTopic("porch"), protocol.Assignment{V: 1, Speaker: "porch", Session: "", Volume: 40, Term: 1})
	testwait.For(t, "the unassigned state", 5*time.Second, func() bool { return statuses.last().State == unassigned })

	// Nothing changes (the clock is not synced and no probe goes out on a
	// clock that does not move): three of the old 100 ms polls pass, and
	// nothing is published.
	settled := statuses.count()
	time.Sleep(300 * time.Millisecond)
	if n := statuses.count(); n != settled {
		t.Errorf("%d statuses published with nothing changed: %+v", n-settled, statuses.last())
	}

	manual.Advance(statusInterval - time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	if n := statuses.count(); n != settled {
		t.Errorf("%d statuses published before statusInterval passed", n-settled)
	}
	manual.Advance(time.Millisecond)
	testwait.For(t, "the status after statusInterval", 5*time.Second, func() bool { return statuses.count() == settled+1 })
	if st := statuses.last(); st.State != unassigned || st.Volume != 40 {
		t.Errorf("status %+v, want unassigned at volume 40", st)
	}
}
