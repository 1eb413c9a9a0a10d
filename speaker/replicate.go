package speaker

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/protocol"
)

// Song replication: the controller announces a song live on
// LibrarySongTopic (not retained) to ask the speakers to hold it; each
// fetches it when the timeline's own songs are cached, and acknowledges it.
const (
	maxReplicaQueue    = 1024 // songs waiting; more announcements are refused
	maxReplicaAttempts = 5    // failed fetches before a song is given up
)

// replicaQueue is the songs to replicate, oldest announcement first.
type replicaQueue struct {
	shas []string
}

// add queues sha, unless it is queued already; false when the queue is full.
func (q *replicaQueue) add(sha string) bool {
	if slices.Contains(q.shas, sha) {
		return true
	}
	if len(q.shas) >= maxReplicaQueue {
		return false
	}
	q.shas = append(q.shas, sha)
	return true
}

func (q *replicaQueue) remove(sha string) {
	q.shas = slices.DeleteFunc(q.shas, func(s string) bool { return s == sha })
}

// next is the first song not to skip.
func (q *replicaQueue) next(skip func(sha string) bool) (string, bool) {
	for _, sha := range q.shas {
		if !skip(sha) {
			return sha, true
		}
	}
	return "", false
}

// onLibrarySong handles a message on LibrarySongTopic(topicSHA). The
// retained ones are the library's records, for standby controllers; a live
// one asks the speakers to hold the song.
func (s *Speaker) onLibrarySong(topicSHA string, b []byte, retained bool) error {
	if retained || len(b) == 0 {
		return nil
	}
	song, err := protocol.Decode[protocol.Song](b)
	if err != nil {
		return err
	}
	if !validHash(song.SHA256) || song.SHA256 != topicSHA {
		return fmt.Errorf("announcement of song %q on the topic of %q", song.SHA256, topicSHA)
	}
	if _, ok := s.cache.Lookup(song.SHA256); ok {
		s.publishAck(protocol.Ack{V: protocol.Version, Song: song.SHA256})
		return nil
	}
	if song.Size > s.cache.maxBytes {
		s.log.Warn("not replicating a song larger than the whole song cache", "song", song.SHA256, "bytes", song.Size, "cap_bytes", s.cache.maxBytes)
		return nil
	}
	s.mu.Lock()
	added := s.replicas.add(song.SHA256)
	s.mu.Unlock()
	if !added {
		return fmt.Errorf("not replicating song %s: %d songs are waiting already", song.SHA256, maxReplicaQueue)
	}
	s.wake(s.fetchWake)
	return nil
}

// replicate fetches the oldest announced song that is not waiting for a
// retry, in the background of the timeline's songs: it gives way (cancels,
// to start again later) as soon as the timeline wants a song not cached.
func (s *Speaker) replicate(ctx context.Context, src sources, timer clock.Timer, failures backoff) {
	s.mu.Lock()
	sha, ok := s.replicas.next(failures.waiting)
	s.mu.Unlock()
	if !ok {
		return
	}
	fetchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.cache.ensure(fetchCtx, src, sha, 0) }()
	for {
		// A wanted song's retry falling due makes it urgent.
		timer.Reset(failures.sleep(time.Now(), fetchSafety))
		select {
		case err := <-done:
			if ctx.Err() == nil {
				s.replicated(sha, err, failures)
				if err != nil {
					s.wantPeers()
				}
			}
			return
		case <-timer.C():
		case <-s.fetchWake:
		}
		if s.fetchUrgent(failures) {
			cancel()
			<-done
			s.log.Debug("song replication gives way to a song the timeline wants", "song", sha)
			return
		}
	}
}

// replicated acknowledges a replicated song, or counts a failure.
func (s *Speaker) replicated(sha string, err error, failures backoff) {
	if err != nil {
		n := failures.failed(sha)
		if n < maxReplicaAttempts {
			s.log.Warn("song replication failed; will retry", "song", sha, "attempt", n, "err", err)
			return
		}
		s.log.Error("song replication failed; giving up", "song", sha, "attempts", n, "err", err)
	} else {
		failures.succeeded(sha)
		s.log.Info("song replicated", "song", sha)
		s.publishAck(protocol.Ack{V: protocol.Version, Song: sha})
		if now, synced := s.sharedNow(); synced {
			s.evictFor(now)
		}
	}
	s.mu.Lock()
	s.replicas.remove(sha)
	s.mu.Unlock()
}
