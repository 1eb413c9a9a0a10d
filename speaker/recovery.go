package speaker

import (
	"fmt"

	"github.com/tutti-audio/tutti/clocksync"
)

// Recovery: a speaker whose state is inconsistent mutes at once (status
// state "recovering", Error says why), repairs the state and plays on where
// the timeline is, as a late joiner does. Three inconsistencies trigger it:
//   - the session state names a playlist hash the held playlist does not
//     have (engine.mismatched; the session loop re-reads the retained topics);
//   - the cached file of a song due fails to open or decode (markDamaged;
//     the fetch loop checks the file and fetches it again, see checkDamaged);
//   - the clock estimate's error bound grows beyond clockUncertain
//     (the follower's trust, clocksync.Follower; prompt clock answers
//     repair it). The estimator keeps its
//     bound through round-trip spikes (the bound is its best sample's), so
//     this takes a clock step that replaced its window with slow answers,
//     or slow answers only for so long that the good ones left the window.

// setClock gives the engine a new clock estimate, in the follower's order;
// it says whether the engine plays by it. Whether the estimate is good
// enough is the follower's to say (clocksync.Follower's trust rules).
func (e *engine) setClock(est clocksync.Estimate) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clock = est.Model
	e.trust = est.Trust
	if !e.clockKnown {
		// The fetch loop waits for the first estimate: where a song is due
		// now decides what to fetch first.
		e.clockKnown = true
		wake(e.fetchWake)
	}
	if est.Changed && est.Trust.Opened {
		if est.Trust.Open {
			e.log.Info("clock estimate good again; playing", "err_bound", est.Bound)
		} else {
			e.log.Warn("clock estimate uncertain; muted until it is better", "err_bound", est.Bound, "max", est.Trust.Limit)
		}
	}
	return e.trust.Open
}

// damage is a song whose verified file the engine failed to play. It stays
// muted until the fetch loop checked the file (checked), and then until it
// plays again from a file fetched anew.
type damage struct {
	err     string // what failed
	why     string // for the status
	checked bool
}

// markDamaged mutes a song whose verified file failed to open or decode,
// and wakes the fetch loop to check the file (it does the disk reads the
// audio goroutine must not); it says why.
func (e *engine) markDamaged(sha string, err error) string {
	e.log.Warn("cached song cannot be played; muted while its file is checked", "song", sha, "err", err.Error()) // no decoder stack
	d := &damage{err: err.Error(), why: fmt.Sprintf("cached song %s cannot be played: %v; checking it", sha, err)}
	e.damaged[sha] = d
	e.closePlayer(sha)
	wake(e.fetchWake)
	return d.why
}

// damagedSongs lists the songs marked damaged whose files are not checked yet.
func (e *engine) damagedSongs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var shas []string
	for sha, d := range e.damaged {
		if !d.checked {
			shas = append(shas, sha)
		}
	}
	return shas
}

// checked takes the fetch loop's verdict on a damaged song's file. An
// intact file holds a song that cannot be decoded: the engine stays silent
// for it for good. A damaged one was dropped from the cache and is fetched
// again: the engine plays the song once it can, and is recovering until then.
func (e *engine) checked(sha string, intact bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.damaged[sha]
	if d == nil {
		return
	}
	if intact {
		e.log.Error("song cannot be played; staying silent for it", "song", sha, "err", d.err)
		e.bad[sha] = "song cannot be decoded: " + d.err
		delete(e.damaged, sha)
		return
	}
	d.checked = true
	d.why = fmt.Sprintf("cached song %s was damaged on disk (%s): fetching it again", sha, d.err)
}

// checkDamaged hashes again the files of the songs the engine could not
// play. A damaged file (or a missing one) is dropped, and the fetch loop
// fetches the song anew; an intact one is a song that cannot be decoded. A
// song damaged again waits out damage's backoff before it is dropped and
// fetched once more, so that a disk that keeps damaging a file does not
// make a download loop.
func (s *Speaker) checkDamaged(damage backoff) {
	for _, sha := range s.eng.damagedSongs() {
		if damage.waiting(sha) {
			continue
		}
		intact, err := s.cache.recheck(sha)
		if err != nil {
			s.log.Warn("damaged song file not deleted", "song", sha, "err", err) // ensure overwrites it
		}
		if !intact {
			s.log.Warn("cached song damaged on disk; fetching it again", "song", sha, "times", damage.failed(sha))
		}
		s.eng.checked(sha, intact)
	}
}
