package homeassistant

import (
	"bytes"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// TestClockReadingsFollowMeaningfulChanges feeds a speaker's statuses every
// 2 s, as a speaker sends them, and checks what Home Assistant would record.
func TestClockReadingsFollowMeaningfulChanges(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	var c clockReadings
	status := func(offsetUs, errorUs int64) protocol.SpeakerStatus {
		return protocol.SpeakerStatus{ID: "kitchen", Online: true, ClockOffsetNs: offsetUs * 1000, ClockErrorNs: errorUs * 1000}
	}
	// One status per 2 s for 10 min, wobbling by up to 300 µs around a
	// steady offset and error: only the first is shown.
	changes := 0
	last := c.offset.shown()
	for i := range 300 {
		c.follow(start.Add(time.Duration(i)*2*time.Second), status(-1234+int64(i%3)*150, 250+int64(i%2)*100))
		if now := c.offset.shown(); last == nil || *now != *last {
			changes++
			last = now
		}
	}
	if changes != 1 || *c.offset.shown() != -1.234 || *c.syncError.shown() != 0.25 {
		t.Errorf("%d changes shown, offset %v, error %v; want 1, -1.234, 0.25", changes, *c.offset.shown(), *c.syncError.shown())
	}

	// A jump beyond the deadband shows, but no sooner than a minute after
	// the last change.
	at := start.Add(20 * time.Minute)
	c.follow(at, status(5000, 2000))
	if *c.offset.shown() != 5 || *c.syncError.shown() != 2 {
		t.Fatalf("after the jump: offset %v, error %v", *c.offset.shown(), *c.syncError.shown())
	}
	c.follow(at.Add(30*time.Second), status(9000, 4000))
	if *c.offset.shown() != 5 || *c.syncError.shown() != 2 {
		t.Errorf("changed again within the minimum interval: offset %v, error %v", *c.offset.shown(), *c.syncError.shown())
	}
	c.follow(at.Add(clockMinInterval), status(9000, 4000))
	if *c.offset.shown() != 9 || *c.syncError.shown() != 4 {
		t.Errorf("not changed after the minimum interval: offset %v, error %v", *c.offset.shown(), *c.syncError.shown())
	}

	// The deadbands apply to each figure on its own.
	c.follow(at.Add(3*clockMinInterval), status(9000+999, 4000+500))
	if *c.offset.shown() != 9 || *c.syncError.shown() != 4.5 {
		t.Errorf("offset %v (moved less than its deadband), error %v (moved by its deadband)", *c.offset.shown(), *c.syncError.shown())
	}

	// An offline status (a last will) measures nothing.
	c.follow(at.Add(10*clockMinInterval), protocol.SpeakerStatus{ID: "kitchen"})
	if *c.offset.shown() != 9 {
		t.Errorf("the last will moved the offset to %v", *c.offset.shown())
	}
}

// TestWobblingClockKeepsSpeakerState: statuses every 2 s whose clock figures
// wobble within the deadbands leave the speaker's state, as the bridge
// publishes it, byte for byte the same; a real change shows.
func TestWobblingClockKeepsSpeakerState(t *testing.T) {
	status, assign := testSpeaker()
	m := newModel()
	start := time.Unix(1_000_000, 0)
	apply := func(at time.Time, topic string, msg any) {
		t.Helper()
		if err := m.apply(at, topic, protocol.Encode(msg)); err != nil {
			t.Fatal(err)
		}
	}
	speakerState := func() []byte {
		for _, r := range m.discovery("homeassistant", testVersion) {
			if r.topic == stateTopic(kindSpeaker, "kitchen") {
				return r.payload
			}
		}
		t.Fatal("no speaker state")
		return nil
	}
	apply(start, protocol.AssignTopic("kitchen"), assign)
	apply(start, protocol.SpeakerStatusTopic("kitchen"), status)
	first := speakerState()
	for i := range 150 {
		wobbling := status
		wobbling.ClockOffsetNs += int64(i%3) * 400_000
		wobbling.ClockErrorNs += int64(i%2) * 200_000
		apply(start.Add(time.Duration(i)*2*time.Second), protocol.SpeakerStatusTopic("kitchen"), wobbling)
		if got := speakerState(); !bytes.Equal(got, first) {
			t.Fatalf("status %d changed the state:\n%s\nwas\n%s", i, got, first)
		}
	}
	moved := status
	moved.ClockOffsetNs += 3_000_000
	apply(start.Add(10*time.Minute), protocol.SpeakerStatusTopic("kitchen"), moved)
	if got := speakerState(); bytes.Equal(got, first) {
		t.Errorf("a 3 ms move of the offset did not show: %s", got)
	}
}
