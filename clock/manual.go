package clock

import (
	"slices"
	"sync"
	"time"
)

// Manual is a clock that moves only when Advance moves it; its timers
// and tickers fire, in the order of their instants, as it passes them. For
// tests whose code under test runs over real sockets, where a synctest
// bubble cannot be used. Safe for concurrent use.
type Manual struct {
	mu      sync.Mutex
	now     time.Time
	waiting []*manualTimer // active timers and tickers
}

// NewManual returns a Manual clock reading start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Advance moves the clock d forward, firing every timer and tick due on
// the way at its own instant; moved back, it fires nothing.
func (m *Manual) Advance(d time.Duration) { m.set(m.Now().Add(d)) }

// set moves the clock to t.
func (m *Manual) set(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		next := m.nextDue(t)
		if next == nil {
			break
		}
		m.now = next.when
		next.fire()
	}
	m.now = t
}

// nextDue is the timer due first at or before t, nil if none.
func (m *Manual) nextDue(t time.Time) *manualTimer {
	var first *manualTimer
	for _, w := range m.waiting {
		if !w.when.After(t) && (first == nil || w.when.Before(first.when)) {
			first = w
		}
	}
	return first
}

func (m *Manual) NewTimer(d time.Duration) Timer { return m.start(d, 0) }

func (m *Manual) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	return manualTicker{m.start(d, d)}
}

func (m *Manual) start(d, period time.Duration) *manualTimer {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := &manualTimer{clock: m, ch: make(chan time.Time, 1), period: period}
	m.schedule(w, d)
	return w
}

// schedule makes w due d from now; one due now fires at once. Under mu.
func (m *Manual) schedule(w *manualTimer, d time.Duration) {
	w.when = m.now.Add(d)
	if !slices.Contains(m.waiting, w) {
		m.waiting = append(m.waiting, w)
	}
	if d <= 0 {
		w.fire()
	}
}

// unschedule stops w and drops a value it sent and nobody received; it
// says whether w was active. Under mu.
func (m *Manual) unschedule(w *manualTimer) bool {
	i := slices.Index(m.waiting, w)
	if i >= 0 {
		m.waiting = slices.Delete(m.waiting, i, i+1)
	}
	select {
	case <-w.ch:
	default:
	}
	return i >= 0
}

// manualTimer is a timer (period 0) or a ticker of a Manual clock.
type manualTimer struct {
	clock  *Manual
	ch     chan time.Time
	when   time.Time
	period time.Duration
}

// fire sends the instant, dropping it if the last one is still unread as
// time.Ticker does, and reschedules a ticker. Under the clock's mu.
func (w *manualTimer) fire() {
	select {
	case w.ch <- w.when:
	default:
	}
	if w.period > 0 {
		w.when = w.when.Add(w.period)
		return
	}
	w.clock.waiting = slices.DeleteFunc(w.clock.waiting, func(x *manualTimer) bool { return x == w })
}

func (w *manualTimer) C() <-chan time.Time { return w.ch }

func (w *manualTimer) Stop() bool {
	w.clock.mu.Lock()
	defer w.clock.mu.Unlock()
	return w.clock.unschedule(w)
}

func (w *manualTimer) Reset(d time.Duration) bool {
	w.clock.mu.Lock()
	defer w.clock.mu.Unlock()
	active := w.clock.unschedule(w)
	if w.period > 0 {
		w.period = d
	}
	w.clock.schedule(w, d)
	return active
}

// manualTicker is a ticker's face of a manualTimer.
type manualTicker struct{ w *manualTimer }

func (t manualTicker) C() <-chan time.Time   { return t.w.ch }
func (t manualTicker) Stop()                 { t.w.Stop() }
func (t manualTicker) Reset(d time.Duration) { t.w.Reset(d) }
