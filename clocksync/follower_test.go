package clocksync

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// followTestConfig is a speaker's configuration.
var followTestConfig = FollowerConfig{
	Burst: 3, BurstInterval: 20 * time.Millisecond, FastInterval: 100 * time.Millisecond,
	FastFor: time.Second, Interval: 200 * time.Millisecond,
	Samples: 4, ErrorBound: 2 * time.Millisecond, Patience: 1500 * time.Millisecond,
	Uncertain: 5 * time.Millisecond, StaleProbes: 100,
}

func TestFollowerPacing(t *testing.T) {
	const start = LocalNs(1e18)
	f := NewFollower(followTestConfig, start)
	var got []time.Duration
	for now := start; now < start+LocalNs(1300*time.Millisecond); {
		d := f.Next(now)
		got = append(got, d)
		now += LocalNs(d)
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	// 3 at the burst rate, fast until 1 s, then the steady pace.
	want := []time.Duration{ms(20), ms(20), ms(20), ms(100), ms(100), ms(100), ms(100), ms(100), ms(100), ms(100), ms(100), ms(100), ms(100), ms(200), ms(200)}
	if len(got) != len(want) {
		t.Fatalf("intervals %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("intervals %v, want %v", got, want)
		}
	}
	later := start + LocalNs(time.Hour)
	f.Reconnected(later)
	if d := f.Next(later); d != ms(20) {
		t.Errorf("after a reconnect: %v, want the burst again", d)
	}
}

// master is a time master whose clock runs offset ahead of the follower's
// and ppm fast, reached over a link of the given one-way delays.
type master struct {
	offset   time.Duration
	ppm      float64
	up, down time.Duration
}

func (m master) shared(local LocalNs) SharedNs {
	return SharedNs(int64(local) + int64(m.offset) + int64(float64(local-1e18)*m.ppm/1e6))
}

// exchange sends one probe at t1 and hands its answer to f.
func (m master) exchange(f *Follower, t1 LocalNs) (Estimate, error) {
	id := f.Probe()
	t2 := m.shared(t1 + LocalNs(m.up))
	t3 := t2 + SharedNs(10*time.Microsecond)
	t4 := t1 + LocalNs(m.up+m.down+10*time.Microsecond)
	return f.Answer(id, t1, t2, t3, t4)
}

func TestFollowerFollowsTheMaster(t *testing.T) {
	const start = LocalNs(1e18)
	m := master{offset: 3 * time.Minute, ppm: 80, up: 200 * time.Microsecond, down: 300 * time.Microsecond}
	f := NewFollower(followTestConfig, start)
	if _, _, ok := f.Model(); ok || f.trust.Open || f.trust.Why() != "clock not synchronised" {
		t.Fatalf("before any answer: trust %+v", f.trust)
	}
	now := start
	for i := range 3 {
		est, err := m.exchange(f, now)
		if err != nil {
			t.Fatal(err)
		}
		if est.Trust.Open {
			t.Fatalf("trusted after %d answers", i+1)
		}
		now += LocalNs(20 * time.Millisecond)
	}
	est, err := m.exchange(f, now)
	if err != nil {
		t.Fatal(err)
	}
	if !est.Trust.Open || !est.Changed || est.Samples != 4 || est.RTT != 500*time.Microsecond {
		t.Fatalf("after 4 prompt answers: %+v", est)
	}
	for range 100 {
		now += LocalNs(200 * time.Millisecond)
		if est, err = m.exchange(f, now); err != nil {
			t.Fatal(err)
		}
	}
	// The link is asymmetric by 100 µs: the estimate is off by half of it.
	if off := time.Duration(int64(est.Model.SharedAt(now)) - int64(m.shared(now))); off.Abs() > 60*time.Microsecond {
		t.Errorf("estimate %v off the master after 20 s", off)
	}
	if est.Changed || !est.Trust.Open {
		t.Errorf("trust moved while the link stayed good: %+v", est)
	}

	f.Reset(now)
	if _, _, ok := f.Model(); ok || f.trust.Opened {
		t.Error("Reset kept the answers of the old master")
	}
}

func TestFollowerRefusesUnknownProbes(t *testing.T) {
	const start = LocalNs(1e18)
	f := NewFollower(followTestConfig, start)
	first := f.Probe()
	for range followTestConfig.StaleProbes {
		f.Probe()
	}
	last := f.Probe()
	for name, id := range map[string]uint64{"probe 0": 0, "not sent": last + 1, "too old": first} {
		if _, err := f.Answer(id, start, 1, 2, start+1000); !errors.Is(err, errUnknownProbe) {
			t.Errorf("%s: %v, want refused", name, err)
		}
	}
	if _, err := f.Answer(last, start, 5000, 9000, start+1000); err == nil {
		t.Error("an answer with a negative round trip accepted")
	}
	if _, _, ok := f.Model(); ok {
		t.Error("refused answers made a model")
	}
	if _, err := f.Answer(last-followTestConfig.StaleProbes, start, 1, 2, start+1000); err != nil {
		t.Errorf("the oldest probe still answerable: %v", err)
	}
}

// TestFollowerTrust walks the trust rules through a series of estimates:
// it opens within the start bound, closes beyond its limit, waits out its
// patience on a slow network, and never settles for more than its limit
// once it was open.
func TestFollowerTrust(t *testing.T) {
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	steps := []struct {
		atMs    float64
		samples int
		boundMs float64
		open    bool
	}{
		{0, 1, 1, false},      // too few answers
		{60, 4, 1.5, true},    // within the start bound
		{100, 5, 4, true},     // worse, but within Uncertain
		{200, 6, 6, false},    // beyond: closed
		{300, 7, 3, false},    // not yet back within the start bound
		{400, 8, 1.9, true},   // back
		{500, 9, 7, false},    // closed again
		{1900, 10, 4, false},  // 1.4 s of nothing better: not yet
		{2100, 11, 4, true},   // 1.6 s: settles for a bound within Uncertain
		{2200, 12, 7.5, true}, // opened at 4 ms, it closes beyond twice that
		{2300, 13, 9, false},
		{4000, 14, 9, false}, // recovering, never settles for more than its limit
	}
	f := NewFollower(followTestConfig, 0)
	for _, s := range steps {
		f.update(Estimate{Bound: ms(s.boundMs), Samples: s.samples, At: LocalNs(ms(s.atMs))})
		if f.trust.Open != s.open {
			t.Fatalf("at %vms with bound %vms: open %v, want %v", s.atMs, s.boundMs, f.trust.Open, s.open)
		}
	}
	if why := f.trust.Why(); !strings.Contains(why, "uncertain") || !strings.Contains(why, "9ms") {
		t.Errorf("why = %q: want the bound that closed it", why)
	}

	// On a network whose best round trip is long (a bound of 8 ms) it
	// opens after its patience rather than never, and closes only if the
	// bound then doubles.
	slow := NewFollower(followTestConfig, 0)
	for at := 0.0; at < 1400; at += 100 {
		if slow.update(Estimate{Bound: ms(8), Samples: 10, At: LocalNs(ms(at))}); slow.trust.Open || slow.trust.Why() != "clock not synchronised" {
			t.Fatalf("a bound of 8ms at %vms: %+v; want closed, not synchronised", at, slow.trust)
		}
	}
	for _, s := range []struct {
		atMs, boundMs float64
		open          bool
	}{{1600, 8, true}, {1700, 15, true}, {1800, 17, false}, {3500, 15, true}} {
		if slow.update(Estimate{Bound: ms(s.boundMs), Samples: 10, At: LocalNs(ms(s.atMs))}); slow.trust.Open != s.open {
			t.Fatalf("slow network at %vms with bound %vms: open %v, want %v", s.atMs, s.boundMs, slow.trust.Open, s.open)
		}
	}
}
