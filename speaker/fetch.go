package speaker

import (
	"context"
	"time"

	"github.com/tutti-audio/tutti/clock"
)

// This file keeps the songs the timeline needs in the cache.

const (
	// fetchSafety is how long the fetch loop sleeps when nothing woke it.
	// Everything it acts on signals fetchWake (a session state, playlist,
	// lease or controller status; the clock's first estimate; another song
	// playing; a damaged song; an announced song), and it wakes itself when
	// a retry (of a fetch, or of a damaged song's check) falls due: this
	// tick only backs those up.
	fetchSafety     = 5 * time.Second
	fetchBackoffMax = 10 * time.Second
)

// fetchLoop keeps the songs the timeline needs next in the cache, most
// urgent first, retrying failures with backoff, and fetches again those
// whose cached file turned out damaged; when it has none to fetch, it
// replicates the songs the controller announced.
func (s *Speaker) fetchLoop(ctx context.Context) {
	timer := s.clock.NewTimer(0)
	defer timer.Stop()
	failures := backoff{}
	damage := backoff{} // of songs whose cached file was damaged
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		case <-s.fetchWake:
		}
		if !s.fetchPass(ctx, timer, failures, damage) {
			return
		}
		now := time.Now()
		timer.Reset(min(failures.sleep(now, fetchSafety), damage.sleep(now, fetchSafety)))
	}
}

// fetchPass fetches the songs the timeline wants, then replicates; false
// when ctx ended it.
func (s *Speaker) fetchPass(ctx context.Context, timer clock.Timer, failures, damage backoff) bool {
	s.checkDamaged(damage)
	src := s.songSources()
	now, synced := s.sharedNow()
	if len(src.bases) == 0 && synced {
		s.wantPeers()
	}
	if len(src.bases) == 0 || !synced {
		// Wait for the controller's lease or status (or peers), and for
		// the first clock answer: where a song is due now decides what to
		// fetch first.
		return true
	}
	for _, w := range s.eng.wanted(now) {
		sha := w.sha
		if _, ok := s.cache.Lookup(sha); ok || failures.waiting(sha) {
			continue
		}
		start := time.Now()
		if err := s.cache.ensure(ctx, src, sha, w.startFrac); err != nil {
			if ctx.Err() != nil {
				return false
			}
			s.log.Warn("song fetch failed; will retry", "song", sha, "attempt", failures.failed(sha), "err", err)
			s.wantPeers()
			continue
		}
		failures.succeeded(sha)
		s.log.Info("song cached", "song", sha, "took", time.Since(start).Round(time.Millisecond))
		s.evictFor(now)
	}
	if !s.fetchUrgent(failures) {
		s.replicate(ctx, src, timer, failures)
	}
	return true
}

// fetchUrgent tells whether the timeline wants a song that is not cached
// and not waiting for a retry.
func (s *Speaker) fetchUrgent(failures backoff) bool {
	now, synced := s.sharedNow()
	if !synced {
		return false
	}
	for _, w := range s.eng.wanted(now) {
		if _, ok := s.cache.Lookup(w.sha); !ok && !failures.waiting(w.sha) {
			return true
		}
	}
	return false
}

// backoff spaces out the retries of failed fetches, by song.
type backoff map[string]failure

type failure struct {
	count int
	retry time.Time
}

func (b backoff) waiting(sha string) bool { return time.Now().Before(b[sha].retry) }

// failed notes a failure and says how many there were in a row.
func (b backoff) failed(sha string) int {
	f := b[sha]
	f.count++
	f.retry = time.Now().Add(min(fetchBackoffMax, 100*time.Millisecond<<min(f.count, 10)))
	b[sha] = f
	return f.count
}

func (b backoff) succeeded(sha string) { delete(b, sha) }

// sleep is how long from now until the next retry is due, at most limit.
func (b backoff) sleep(now time.Time, limit time.Duration) time.Duration {
	for _, f := range b {
		if f.retry.After(now) {
			limit = min(limit, f.retry.Sub(now))
		}
	}
	return limit
}

// evictFor keeps the cache within its cap, sparing the songs the timeline
// wants at shared instant now.
func (s *Speaker) evictFor(now int64) {
	deleted, err := s.cache.evict(s.wantedSongs(now))
	if err != nil {
		s.log.Warn("song cache eviction failed", "err", err)
	}
	if len(deleted) > 0 {
		s.log.Info("song cache full: least recently used songs deleted", "songs", deleted, "cap_bytes", s.cache.maxBytes)
	}
}

// wantedSongs is the set of songs the timeline wants at shared instant now.
func (s *Speaker) wantedSongs(now int64) map[string]bool {
	wanted := map[string]bool{}
	for _, w := range s.eng.wanted(now) {
		wanted[w.sha] = true
	}
	return wanted
}
