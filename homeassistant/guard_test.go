package homeassistant

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestGuardTellsEchoesFromOthers(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	g := newConfigGuard()
	const topic = "homeassistant/device/tutti_session_home/config"
	v1, v2, forged := []byte("v1"), []byte("v2"), []byte("forged")

	// Nothing published: anything is someone else's.
	if g.superseded(now, topic, forged) {
		t.Fatal("a config with no publish of the bridge's was taken for an echo")
	}
	// Two publishes; an older retained copy arrives before their echoes,
	// then the echoes in order: none needs correcting.
	g.sent(now, topic, v1)
	g.sent(now, topic, v2)
	for _, p := range [][]byte{[]byte("old"), v1, v2} {
		if !g.superseded(now, topic, p) {
			t.Errorf("%s, before or as the bridge's echoes, taken for someone else's", p)
		}
	}
	// Once the echoes are in, a change is someone else's.
	if g.superseded(now, topic, forged) {
		t.Error("a change after the echoes was taken for an echo")
	}
	// A lost echo (the bridge was not subscribed yet) is not waited for
	// forever.
	g.sent(now, topic, v1)
	if g.superseded(now.Add(echoWait+time.Second), topic, forged) {
		t.Error("a change long after a publish whose echo never came was taken for an echo")
	}
	// A reconnection forgets the echoes due.
	g.sent(now, topic, v1)
	g.forgetEchoes()
	if g.superseded(now, topic, forged) {
		t.Error("echoes survived a reconnection")
	}
	// The echoes remembered are bounded.
	for i := range 100 {
		g.sent(now, topic, fmt.Appendf(nil, "v%d", i))
	}
	if n := len(g.echoes[topic]); n != maxEchoes {
		t.Errorf("%d echoes remembered, want %d", n, maxEchoes)
	}
}

// TestGuardPacesCorrections: a client that rewrites a config without end
// gets it corrected at once, then after 1, 2, 4 ... s, at last every
// maxCorrectionWait; a quiet topic starts over.
func TestGuardPacesCorrections(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	g := newConfigGuard()
	const topic = "homeassistant/device/tutti_speaker_kitchen/config"
	var corrected []time.Duration
	// The other client rewrites the config every 100 ms for an hour.
	for now := start; now.Before(start.Add(time.Hour)); now = now.Add(100 * time.Millisecond) {
		g.schedule(now, topic)
		if at, ok := g.wake(); !ok || at.After(now.Add(maxCorrectionWait)) {
			t.Fatalf("at %v: next correction at %v (%v)", now.Sub(start), at, ok)
		}
		for _, tp := range g.due(now) {
			if tp != topic {
				t.Fatalf("due %q", tp)
			}
			corrected = append(corrected, now.Sub(start))
		}
	}
	want := []time.Duration{0}
	wait := firstCorrectionWait
	for at := time.Duration(0); ; {
		at += wait
		if at >= time.Hour {
			break
		}
		want = append(want, at)
		wait = min(2*wait, maxCorrectionWait)
	}
	if !slices.Equal(corrected, want) {
		t.Errorf("corrections at %v, want %v", corrected, want)
	}
	if len(corrected) > 20 {
		t.Errorf("%d corrections in an hour of rewrites", len(corrected))
	}

	// Left alone for correctionQuiet, the next rewrite is corrected at once.
	later := start.Add(time.Hour).Add(correctionQuiet)
	g.schedule(later, topic)
	if due := g.due(later); len(due) != 1 {
		t.Errorf("after a quiet spell: due %v", due)
	}
	// A publish of the bridge's own cancels a pending correction.
	g.schedule(later, topic)
	g.cancel(topic)
	if due := g.due(later.Add(time.Hour)); len(due) != 0 {
		t.Errorf("cancelled correction still due: %v", due)
	}
	if _, ok := g.wake(); ok {
		t.Error("a cancelled correction sets a wake-up")
	}
}

// TestGuardBoundsTopics: a flood of made-up tutti configs tracks at most
// maxGuardedTopics; old quiet ones make room.
func TestGuardBoundsTopics(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	g := newConfigGuard()
	accepted := 0
	for i := range 3 * maxGuardedTopics {
		if g.schedule(now, fmt.Sprintf("homeassistant/device/tutti_speaker_x%d/config", i)) {
			accepted++
		}
	}
	if accepted != maxGuardedTopics || len(g.topics) != maxGuardedTopics {
		t.Fatalf("accepted %d, tracking %d; want %d", accepted, len(g.topics), maxGuardedTopics)
	}
	if due := g.due(now); len(due) != maxGuardedTopics {
		t.Fatalf("%d due", len(due))
	}
	later := now.Add(correctionQuiet)
	if !g.schedule(later, "homeassistant/device/tutti_speaker_new/config") || len(g.topics) != 1 {
		t.Errorf("quiet topics not pruned: tracking %d", len(g.topics))
	}
}
