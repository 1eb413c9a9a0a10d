package controller

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// A command is answered once a quorum of the speakers it concerns
// acknowledged it: a majority (f+1 of 2f+1) of the session's speakers for a
// session command, a majority of the nodes (speakers and this controller)
// holding a song for a load. Speakers that have gone offline still count in
// the total: they are members until their retained status is cleared.

// Deadlines for a quorum.
const (
	stateQuorumTimeout = 2 * time.Second
	songQuorumTimeout  = 30 * time.Second // a speaker downloads the song first
)

// pending is a reply waiting for acks.
type pending struct {
	replyTo string
	req     protocol.Request
	result  any // commandResult or loadResult; its ack counts are filled in

	// What must be acked: a session state (session, term, seq) or a song.
	session   string
	term, seq uint64
	song      string

	members  []string // speakers that count
	self     bool     // this controller holds the song and counts as a node
	deadline time.Time
}

// need is the quorum: a majority of the nodes.
func (p *pending) need() int { return p.nodes()/2 + 1 }

func (p *pending) nodes() int {
	if p.self {
		return len(p.members) + 1
	}
	return len(p.members)
}

// ackMark is the latest session state a speaker acknowledged.
type ackMark struct {
	session   string
	term, seq uint64
}

// quorum counts acks for pending replies. The session loop owns it.
type quorum struct {
	states  map[string]ackMark         // by speaker
	songs   map[string]map[string]bool // song -> speakers that hold it, for pending songs only
	waiting []*pending
}

// add registers p; songs need their holders tracked from now on.
func (q *quorum) add(p *pending) {
	if p.song != "" {
		if q.songs == nil {
			q.songs = map[string]map[string]bool{}
		}
		if q.songs[p.song] == nil {
			q.songs[p.song] = map[string]bool{}
		}
	}
	q.waiting = append(q.waiting, p)
}

// note records speaker id's ack.
func (q *quorum) note(id string, a protocol.Ack) {
	if a.Song != "" {
		if holders, ok := q.songs[a.Song]; ok {
			holders[id] = true
		}
		return
	}
	if q.states == nil {
		q.states = map[string]ackMark{}
	}
	old, ok := q.states[id]
	if !ok || old.session != a.Session || protocol.Supersedes(a.Term, a.Seq, old.term, old.seq) {
		q.states[id] = ackMark{session: a.Session, term: a.Term, seq: a.Seq}
	}
}

// acked lists the members of p that acknowledged it. A speaker that acked a
// later state of the session has the earlier one too.
func (q *quorum) acked(p *pending) []string {
	var out []string
	for _, id := range p.members {
		if p.song != "" {
			if q.songs[p.song][id] {
				out = append(out, id)
			}
			continue
		}
		m, ok := q.states[id]
		if ok && m.session == p.session && !protocol.Supersedes(p.term, p.seq, m.term, m.seq) {
			out = append(out, id)
		}
	}
	return out
}

// settled takes out the pending replies that reached their quorum or their
// deadline, with the error each gets (nil for a quorum).
func (q *quorum) settled(now time.Time) (done []*pending, errs []error) {
	keep := q.waiting[:0]
	for _, p := range q.waiting {
		acked := q.acked(p)
		count := len(acked)
		if p.self {
			count++
		}
		switch {
		case count >= p.need():
			p.fill(count)
			done, errs = append(done, p), append(errs, nil)
		case !now.Before(p.deadline):
			done, errs = append(done, p), append(errs, p.shortfall(acked, count))
		default:
			keep = append(keep, p)
		}
	}
	clear(q.waiting[len(keep):])
	q.waiting = keep
	q.forgetSongs()
	return done, errs
}

// dropAll takes out every pending reply (the lease is lost).
func (q *quorum) dropAll() []*pending {
	all := q.waiting
	q.waiting = nil
	q.forgetSongs()
	return all
}

// forgetSongs drops holder sets no pending reply needs.
func (q *quorum) forgetSongs() {
	for sha := range q.songs {
		if !slices.ContainsFunc(q.waiting, func(p *pending) bool { return p.song == sha }) {
			delete(q.songs, sha)
		}
	}
}

func (p *pending) fill(count int) {
	switch r := p.result.(type) {
	case *commandResult:
		r.Acked, r.Speakers = count, p.nodes()
	case *loadResult:
		r.Holders, r.Nodes = count, p.nodes()
	}
}

func (p *pending) shortfall(acked []string, count int) error {
	var missing []string
	for _, id := range p.members {
		if !slices.Contains(acked, id) {
			missing = append(missing, id)
		}
	}
	what := fmt.Sprintf("%d of %d speakers acknowledged", count, p.nodes())
	if p.song != "" {
		what = fmt.Sprintf("%d of %d nodes hold the song", count, p.nodes())
	}
	return fmt.Errorf("no quorum: %s by the deadline (need %d); missing: %s", what, p.need(), strings.Join(missing, ", "))
}
