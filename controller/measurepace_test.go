package controller

import (
	"testing"
	"time"

	"github.com/tutti-audio/tutti/clock"
)

// timerWatch is a manual clock that tells when a timer is started.
type timerWatch struct {
	*clock.Manual
	started chan struct{}
}

func (w timerWatch) NewTimer(d time.Duration) clock.Timer {
	t := w.Manual.NewTimer(d)
	w.started <- struct{}{}
	return t
}

// TestMeasuringYieldsToCommands: a song's measuring goes on at once while
// no command came, waits until commands stopped coming for commandQuiet,
// and waits no more than maxYield over the whole song.
func TestMeasuringYieldsToCommands(t *testing.T) {
	clk := timerWatch{clock.NewManual(time.Unix(1000, 0)), make(chan struct{}, 1)}
	y := newYielder(clk)
	pace := y.pacer()
	// run paces once, and waits until it waits (true) or returned at once.
	run := func() (done chan struct{}, waits bool) {
		done = make(chan struct{})
		go func() { pace(); close(done) }()
		select {
		case <-clk.started:
			return done, true
		case <-done:
			return done, false
		case <-time.After(waitTimeout):
			t.Fatal("pace neither waited nor returned")
			return nil, false
		}
	}
	if _, waits := run(); waits {
		t.Fatal("measuring waited with no command")
	}
	y.commandArrived()
	done, waits := run()
	if !waits {
		t.Fatal("measuring went on while a command had just arrived")
	}
	clk.Advance(commandQuiet / 2)
	y.commandArrived() // another: the quiet starts again
	clk.Advance(commandQuiet / 2)
	<-clk.started // waiting again
	clk.Advance(commandQuiet / 2)
	<-done

	// Commands that keep coming hold one song's measuring for maxYield in all.
	held := 3 * commandQuiet / 2
	for held < maxYield {
		y.commandArrived()
		done, waits := run()
		if !waits {
			t.Fatalf("measuring went on after %v of commands", held)
		}
		step := min(commandQuiet, maxYield-held)
		clk.Advance(step)
		held += step
		<-done
	}
	y.commandArrived()
	if _, waits := run(); waits {
		t.Fatal("measuring waited after its budget was spent")
	}
}
