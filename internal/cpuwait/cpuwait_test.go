package cpuwait

import (
	"os/exec"
	"testing"
	"time"
)

// start runs a command for the test, killed at its end.
func start(t *testing.T, args ...string) int {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

func heldFor(spans []Span) time.Duration {
	var d time.Duration
	for _, s := range spans {
		d += time.Duration(s.ToNs - s.FromNs)
	}
	return d
}

// A process that wants the CPU while another, of higher priority, holds it
// is held back most of the time (it gets a slice now and then); one that
// sleeps is not (beyond what a virtual machine's host takes from every
// process alike).
func TestHeldBackByTheMachine(t *testing.T) {
	const cpu = "0"
	start(t, "taskset", "-c", cpu, "sh", "-c", "while :; do :; done")
	starved := start(t, "nice", "-n", "19", "taskset", "-c", cpu, "sh", "-c", "while :; do :; done")
	sleeper := start(t, "sleep", "30")
	const window = time.Second
	w := Start([]int{starved, sleeper}, 10*time.Millisecond, 5*time.Millisecond)
	time.Sleep(window) // the window sampled: what the processes do meanwhile is the test
	held, longest, err := w.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("held back: the starved process %v, the sleeper %v, of %v; longest wait between samples %v",
		heldFor(held[0]), heldFor(held[1]), window, longest)
	if heldFor(held[0]) < window/2 {
		t.Errorf("the starved process was held back %v of %v", heldFor(held[0]), window)
	}
	if heldFor(held[1]) >= heldFor(held[0])/2 {
		t.Errorf("the sleeper was held back %v, the starved process %v", heldFor(held[1]), heldFor(held[0]))
	}
	if !Held(held[0], time.Now().Add(-window/2).UnixNano(), time.Now().UnixNano()) {
		t.Error("Held: not held over the last half of the window")
	}
	if Held(nil, 0, time.Now().UnixNano()) {
		t.Error("Held with no spans")
	}
}
