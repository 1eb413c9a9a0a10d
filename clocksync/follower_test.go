package clocksync

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
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

// jitterTestConfig is a speaker's configuration (speaker/probe.go), its
// pace adapting to jitter.
var jitterTestConfig = func() FollowerConfig {
	c := followTestConfig
	c.Burst, c.FastFor = 10, 10*time.Second
	c.JitterSpeedup, c.Jittery, c.Congested = 4, 2*time.Millisecond, 50*time.Millisecond
	return c
}()

// followSim runs a follower of cfg on clock c through the networks of
// phases, one after the other, answers arriving in order of arrival. It
// returns when each probe was sent, the pace chosen after it, and the
// follower's error (ns) every 100 ms.
type followSim struct {
	sent, pace []time.Duration // since the start, shared clock
	errs       []float64
	errAt      []time.Duration
}

type phase struct {
	net  network
	for_ time.Duration
}

func simulateFollower(cfg FollowerConfig, c clock, seed uint64, phases ...phase) followSim {
	const hold = 30_000 // master's processing time, ns
	r := rand.New(rand.NewPCG(seed, 7))
	f := NewFollower(cfg, LocalNs(c.local(c.shared0)))
	type answer struct {
		id     uint64
		t1, t4 LocalNs
		t2     SharedNs
		arrive int64
	}
	var pending []answer
	var sim followSim
	next := c.shared0
	end := c.shared0
	for _, p := range phases {
		end += int64(p.for_)
		for at := end - int64(p.for_); at < end; at += int64(time.Millisecond) {
			slices.SortFunc(pending, func(a, b answer) int { return int(a.arrive - b.arrive) })
			for len(pending) > 0 && pending[0].arrive <= at {
				a := pending[0]
				pending = pending[1:]
				if _, err := f.Answer(a.id, a.t1, a.t2, a.t2+hold, a.t4); err != nil {
					panic(err)
				}
			}
			if at >= next {
				up, down := p.net(r)
				t1 := LocalNs(c.local(at))
				arrive := at + up + hold + down
				pending = append(pending, answer{f.Probe(), t1, LocalNs(c.local(arrive)), SharedNs(at + up), arrive})
				d := f.Next(t1)
				sim.sent = append(sim.sent, time.Duration(at-c.shared0))
				sim.pace = append(sim.pace, d)
				next = at + int64(float64(d)*c.rate)
			}
			if (at-c.shared0)%int64(100*time.Millisecond) == 0 {
				if m, _, ok := f.Model(); ok {
					sim.errs = append(sim.errs, c.errAt(m, c.local(at)))
					sim.errAt = append(sim.errAt, time.Duration(at-c.shared0))
				}
			}
		}
	}
	return sim
}

// paceAt is the pace chosen by the last probe sent at or before at.
func (s followSim) paceAt(at time.Duration) time.Duration {
	i, found := slices.BinarySearch(s.sent, at)
	if !found {
		i--
	}
	return s.pace[i]
}

// TestFollowerPaceFollowsJitter: through Wi-Fi-like jitter the follower
// probes JitterSpeedup times as often within a second of the burst (in the
// fast phase and after it), and within 14 s when a quiet link turns
// jittery (half its window of round trips must be jittery ones); on a
// quiet link it returns to the steady pace within seconds and keeps it, a
// 130 ms spike now and then changing nothing; it never probes faster than
// its fast pace sped up.
func TestFollowerPaceFollowsJitter(t *testing.T) {
	cfg := jitterTestConfig
	speedup := time.Duration(cfg.JitterSpeedup)
	spiky := func(r *rand.Rand) (up, down int64) {
		up, down = loopback(r)
		if r.IntN(50) == 0 { // a spike now and then is no jitter of the link
			up += int64(130 * time.Millisecond)
		}
		return up, down
	}
	sim := simulateFollower(cfg, newClock(5*time.Minute, 100), 1,
		phase{wifiBench, 20 * time.Second}, phase{loopback, 30 * time.Second},
		phase{wifiBench, 30 * time.Second}, phase{spiky, 30 * time.Second})
	s := time.Second
	for _, w := range []struct {
		from, to time.Duration
		want     time.Duration
	}{
		{1 * s, 10 * s, cfg.FastInterval / speedup}, // jitter in the fast phase
		{11 * s, 20 * s, cfg.Interval / speedup},    // and after it
		{28 * s, 50 * s, cfg.Interval},              // quiet
		{64 * s, 80 * s, cfg.Interval / speedup},
		{88 * s, 110 * s, cfg.Interval}, // quiet but for spikes
	} {
		for at := w.from; at < w.to; at += 100 * time.Millisecond {
			if got := sim.paceAt(at); got != w.want {
				t.Fatalf("pace at %v: %v, want %v", at, got, w.want)
			}
		}
	}
	// Bounded rate: after the burst no interval below the fast pace sped
	// up, and no more probes than that allows in any second.
	fastest := cfg.FastInterval / speedup
	for i, d := range sim.pace {
		if i >= cfg.Burst && d < fastest || d < cfg.BurstInterval {
			t.Fatalf("probe %d at %v followed after %v", i, sim.sent[i], d)
		}
	}
	for i := cfg.Burst; i < len(sim.sent); i++ {
		j, _ := slices.BinarySearch(sim.sent, sim.sent[i]+s)
		if n := j - i; n > int(s/fastest)+1 {
			t.Fatalf("%d probes in the second after %v", n, sim.sent[i])
		}
	}
}

// TestFollowerJitterHysteresis: round trips spreading between half of
// Jittery and Jittery keep the pace the link had, whichever it was; round
// trips as long as Congested are congestion and keep the steady
// pace.
func TestFollowerJitterHysteresis(t *testing.T) {
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	const start = LocalNs(1e18)
	feed := func(f *Follower, spread time.Duration, n int) {
		for i := range n {
			m := master{up: 200 * time.Microsecond, down: 300 * time.Microsecond}
			if i%4 != 0 { // the median round trip lies spread above the floor
				m.up += spread
			}
			if _, err := m.exchange(f, start); err != nil {
				t.Fatal(err)
			}
		}
	}
	pace := func(f *Follower) time.Duration { return f.Next(start + LocalNs(time.Hour)) }
	f := NewFollower(jitterTestConfig, start)
	for range jitterTestConfig.Burst {
		f.Next(start)
	}
	feed(f, ms(1.5), 200)
	if got := pace(f); got != jitterTestConfig.Interval {
		t.Fatalf("quiet link spreading by 1.5 ms: pace %v, want %v", got, jitterTestConfig.Interval)
	}
	feed(f, ms(2.5), 200)
	if got := pace(f); got != jitterTestConfig.Interval/time.Duration(jitterTestConfig.JitterSpeedup) {
		t.Fatalf("spreading by 2.5 ms: pace %v, want %v", got, jitterTestConfig.Interval/time.Duration(jitterTestConfig.JitterSpeedup))
	}
	feed(f, ms(1.5), 200)
	if got := pace(f); got != jitterTestConfig.Interval/time.Duration(jitterTestConfig.JitterSpeedup) {
		t.Fatalf("jittery link spreading by 1.5 ms: pace %v, want it kept at %v", got, jitterTestConfig.Interval/time.Duration(jitterTestConfig.JitterSpeedup))
	}
	feed(f, ms(0.5), 200)
	if got := pace(f); got != jitterTestConfig.Interval {
		t.Fatalf("spreading by 0.5 ms: pace %v, want %v", got, jitterTestConfig.Interval)
	}
	// Round trips as long as Congested: congestion, not jitter.
	feed(f, ms(60), 200)
	if got := pace(f); got != jitterTestConfig.Interval {
		t.Fatalf("congested, round trips of 60 ms: pace %v, want %v", got, jitterTestConfig.Interval)
	}
	feed(f, ms(2.5), 200)
	feed(f, ms(60), 200)
	if got := pace(f); got != jitterTestConfig.Interval {
		t.Fatalf("jittery, then congested: pace %v, want %v", got, jitterTestConfig.Interval)
	}
	f.Reset(start)
	if lo, p99 := f.RoundTrips(); lo != 0 || p99 != 0 {
		t.Errorf("after Reset round trips %v %v, want none", lo, p99)
	}
	noJitter := NewFollower(followTestConfig, start)
	for range followTestConfig.Burst {
		noJitter.Next(start)
	}
	feed(noJitter, ms(20), 200)
	if got := pace(noJitter); got != followTestConfig.Interval {
		t.Errorf("without a JitterSpeedup: pace %v, want %v", got, followTestConfig.Interval)
	}
}

// TestFollowerWiFiSkew: the three speakers of the sync benchmark, each
// pacing its probes by its own follower through the benchmark's Wi-Fi,
// against the same speakers held at the steady pace: faster probing
// through jitter must cut the skew the clock estimates alone make.
func TestFollowerWiFiSkew(t *testing.T) {
	steadyOnly := jitterTestConfig
	steadyOnly.JitterSpeedup = 0
	for _, w := range []struct{ from, to time.Duration }{{5 * time.Second, 25 * time.Second}, {30 * time.Second, 90 * time.Second}} {
		var skews [2][]float64
		var errs [2][]float64
		for ci, cfg := range []FollowerConfig{steadyOnly, jitterTestConfig} {
			for seed := range uint64(4) {
				var perSpeaker [][]float64
				var at []time.Duration
				for k, c := range benchClocks {
					sim := simulateFollower(cfg, c, seed*10+uint64(k), phase{wifiBench, w.to})
					perSpeaker, at = append(perSpeaker, sim.errs), sim.errAt
				}
				n := slices.Min([]int{len(perSpeaker[0]), len(perSpeaker[1]), len(perSpeaker[2])})
				for i := range n {
					if at[len(at)-n+i] < w.from {
						continue
					}
					lo, hi := math.Inf(1), math.Inf(-1)
					for _, e := range perSpeaker {
						x := e[len(e)-n+i]
						lo, hi = min(lo, x), max(hi, x)
						errs[ci] = append(errs[ci], math.Abs(x))
					}
					skews[ci] = append(skews[ci], hi-lo)
				}
			}
		}
		steadyErr, steadySkew := quantile(errs[0], .99), quantile(skews[0], .99)
		adaptErr, adaptSkew := quantile(errs[1], .99), quantile(skews[1], .99)
		t.Logf("%v-%v: error p99 %s at the steady pace, %s adapting; skew of 3 p99 %s, %s",
			w.from, w.to, µs(steadyErr), µs(adaptErr), µs(steadySkew), µs(adaptSkew))
		if adaptSkew > 0.75*steadySkew || adaptErr > 0.75*steadyErr {
			t.Errorf("%v-%v: adapting to jitter, skew p99 %s and error p99 %s; want 25 %% under the steady pace's %s and %s",
				w.from, w.to, µs(adaptSkew), µs(adaptErr), µs(steadySkew), µs(steadyErr))
		}
	}
}
