package controller

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// sharedAhead probes the time master as speaker "probe" over tc, which
// subscribes to the probe's answers, and returns how far the shared clock
// is ahead of real time. Like a speaker it probes again when no answer
// comes: a controller that just took the lease may not be subscribed to
// probes yet.
func sharedAhead(tc *testClient) time.Duration {
	tc.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for id := uint64(time.Now().UnixNano()); time.Now().Before(deadline); id++ {
		t1 := time.Now().UnixNano()
		tc.publish(protocol.ClockRequestTopic("probe"), protocol.Encode(protocol.ClockRequest{V: 1, ID: id, T1: t1}))
		wait := time.After(200 * time.Millisecond)
		for waiting := true; waiting; {
			select {
			case m := <-tc.msgs:
				var r protocol.ClockResponse
				if json.Unmarshal(m.Payload(), &r) == nil && r.ID == id {
					t4 := time.Now().UnixNano()
					return time.Duration((r.T2 - t1 + r.T3 - t4) / 2)
				}
			case <-wait:
				waiting = false // probe again
			}
		}
	}
	tc.t.Fatal("no answer to clock probes")
	return 0
}

// TestControllerClockIgnoresWallSteps: a controller that is the time master
// (no broker answers probes) has its wall clock stepped by minutes, as NTP
// steps a Pi's: its answers to clock probes stay where they were, and it
// publishes a new clock base (and its own again over one somebody else
// retains). A controller that starts after it, with
// nobody to follow and its wall clock off by the same minutes (a Pi that
// booted with a stale clock), continues the shared clock from that base
// instead of starting it at its wall clock.
func TestControllerClockIgnoresWallSteps(t *testing.T) {
	broker := startBroker(t)
	wall := &steppingClock{}
	_, stop := startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "a", Wall: wall})
	probe := newTestClient(t, broker, protocol.ClockResponseTopic("probe"))
	before := sharedAhead(probe)
	if before.Abs() > 50*time.Millisecond {
		t.Fatalf("the first master's clock is %v off real time", before)
	}

	wall.advance(5 * time.Minute)
	bases := newTestClient(t, broker, protocol.ClockBaseTopic)
	bases.next(protocol.ClockBaseTopic, func(b []byte) bool {
		base, err := protocol.Decode[protocol.ClockBase](b)
		ahead := time.Duration(base.SharedNs - base.WallNs)
		return err == nil && (ahead+5*time.Minute).Abs() < 50*time.Millisecond
	})
	if after := sharedAhead(probe); (after - before).Abs() > 50*time.Millisecond {
		t.Errorf("the wall clock stepped 5 minutes ahead and the shared clock moved from %v to %v", before, after)
	}
	// A base somebody else retains is replaced with the master's.
	forged := protocol.ClockBase{V: 1, SharedNs: 0, WallNs: time.Now().UnixNano()}
	if tok := bases.mqtt.Publish(protocol.ClockBaseTopic, 1, true, protocol.Encode(forged)); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("publish a forged base: %v", tok.Error())
	}
	for _, forgedOne := range []bool{true, false} { // the forged one, then the master's
		bases.next(protocol.ClockBaseTopic, func(b []byte) bool {
			base, err := protocol.Decode[protocol.ClockBase](b)
			return err == nil && (base.SharedNs == 0) == forgedOne
		})
	}

	stop()
	startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "b", Clock: offsetClock{offset: 5 * time.Minute}})
	if ahead := sharedAhead(probe); (ahead - before).Abs() > 100*time.Millisecond {
		t.Errorf("the next master's shared clock is %v ahead of real time, want %v as before", ahead, before)
	}
}
