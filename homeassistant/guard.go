package homeassistant

import (
	"bytes"
	"maps"
	"slices"
	"time"
)

// The bridge owns every tutti device config under the discovery prefix: it
// restores its own configs when another client changes them, and clears
// tutti configs it does not publish. It sees every config come back on its
// subscription, its own publishes included, so it must tell those echoes
// apart, and pace its corrections so that it never fights another
// publisher (a second bridge with another version, say) in a loop. It
// relies on the broker delivering the retained messages of a topic to every
// subscriber in the order it retained them, as tutti's broker and Mosquitto
// do: what the bridge sees last is then what Home Assistant sees last.
const (
	// maxEchoes bounds the publishes remembered per topic while their echo
	// is due; the bridge publishes a config at most once per sync.
	maxEchoes = 8
	// echoWait is how long an echo is expected: after that, the broker did
	// not send it back (the bridge was not subscribed yet), and a config
	// that differs is someone else's.
	echoWait = 10 * time.Second
	// firstCorrectionWait is the pause after a topic's first correction;
	// each further correction within correctionQuiet doubles it, up to
	// maxCorrectionWait, so a fight over a config settles at one rewrite
	// per maxCorrectionWait.
	firstCorrectionWait = time.Second
	maxCorrectionWait   = 5 * time.Minute
	// correctionQuiet: a topic left alone that long starts over with an
	// immediate correction.
	correctionQuiet = 10 * time.Minute
	// maxGuardedTopics bounds the topics tracked for correction: configs
	// the bridge publishes (a few per speaker and session) plus foreign
	// tutti configs waiting to be cleared.
	maxGuardedTopics = 1024
)

// configGuard decides which configs need correcting, and when. Run's loop
// owns it; every method takes the time as an argument.
type configGuard struct {
	echoes map[string][]echo
	topics map[string]*correction
}

// echo is a config the bridge published, which its subscription returns.
type echo struct {
	payload []byte
	at      time.Time
}

// correction paces the corrections of one topic.
type correction struct {
	pending bool
	next    time.Time     // no correction before this
	wait    time.Duration // the pause after the next correction
	last    time.Time     // when the last correction was published
}

func newConfigGuard() *configGuard {
	return &configGuard{echoes: map[string][]echo{}, topics: map[string]*correction{}}
}

// sent records a config the bridge publishes on topic.
func (g *configGuard) sent(now time.Time, topic string, payload []byte) {
	q := append(g.echoes[topic], echo{payload: payload, at: now})
	g.echoes[topic] = q[max(0, len(q)-maxEchoes):]
}

// forgetEchoes drops the echoes due: after a reconnection none will come.
func (g *configGuard) forgetEchoes() { clear(g.echoes) }

// superseded says whether payload, just arrived on topic, needs no
// correction because of the bridge's own publishes: it is one coming back,
// or it arrived before the echo of the bridge's latest publish there, so
// the broker took it before that publish, which replaced it.
func (g *configGuard) superseded(now time.Time, topic string, payload []byte) bool {
	q := g.echoes[topic]
	for len(q) > 0 && now.Sub(q[0].at) > echoWait {
		q = q[1:]
	}
	defer func() {
		if len(q) == 0 {
			delete(g.echoes, topic)
		} else {
			g.echoes[topic] = q
		}
	}()
	if len(q) == 0 {
		return false
	}
	for i, e := range q {
		if bytes.Equal(e.payload, payload) {
			q = q[i+1:]
			break
		}
	}
	return true
}

// schedule marks topic for correction. It reports false when too many
// topics are tracked already.
func (g *configGuard) schedule(now time.Time, topic string) bool {
	c, ok := g.topics[topic]
	if !ok {
		if len(g.topics) >= maxGuardedTopics {
			g.prune(now)
		}
		if len(g.topics) >= maxGuardedTopics {
			return false
		}
		c = &correction{}
		g.topics[topic] = c
	}
	c.pending = true
	return true
}

// pending says whether topic is marked for correction.
func (g *configGuard) pending(topic string) bool {
	c, ok := g.topics[topic]
	return ok && c.pending
}

// cancel unmarks topic: the bridge published what belongs there anyway.
func (g *configGuard) cancel(topic string) {
	if c, ok := g.topics[topic]; ok {
		c.pending = false
	}
}

// due returns, sorted, the marked topics whose correction may be published
// at now, and paces their next ones.
func (g *configGuard) due(now time.Time) []string {
	var topics []string
	for _, topic := range slices.Sorted(maps.Keys(g.topics)) {
		c := g.topics[topic]
		if !c.pending || now.Before(c.next) {
			continue
		}
		if now.Sub(c.last) >= correctionQuiet {
			c.wait = firstCorrectionWait
		}
		c.pending, c.last, c.next = false, now, now.Add(c.wait)
		c.wait = min(2*c.wait, maxCorrectionWait)
		topics = append(topics, topic)
	}
	return topics
}

// wake returns when the earliest marked correction becomes due.
func (g *configGuard) wake() (time.Time, bool) {
	var at time.Time
	found := false
	for _, c := range g.topics {
		if c.pending && (!found || c.next.Before(at)) {
			at, found = c.next, true
		}
	}
	return at, found
}

// prune forgets the topics that have been quiet for correctionQuiet.
func (g *configGuard) prune(now time.Time) {
	for topic, c := range g.topics {
		if !c.pending && now.Sub(c.last) >= correctionQuiet {
			delete(g.topics, topic)
		}
	}
}
