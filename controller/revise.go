package controller

import (
	"slices"
	"sync"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// songNews collects songs whose state changed (went missing or came back,
// a gain measured) for the session loop, which wake wakes.
type songNews struct {
	wake chan struct{}
	mu   sync.Mutex
	shas map[string]bool
}

func newSongNews() *songNews {
	return &songNews{wake: make(chan struct{}, 1), shas: map[string]bool{}}
}

// note adds songs and wakes the session loop.
func (n *songNews) note(shas ...string) {
	if len(shas) == 0 {
		return
	}
	n.mu.Lock()
	for _, sha := range shas {
		n.shas[sha] = true
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default: // a wake is pending
	}
}

// take returns the songs noted since it was last called.
func (n *songNews) take() map[string]bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	shas := n.shas
	n.shas = map[string]bool{}
	return shas
}

// reviseSessions applies revise, a change the controller makes on its own
// (songs gone missing, gains measured), to every session at a shared
// instant now+lead, and stores and publishes the sessions it changed
// (session loop). what names the change in a log line if one is not stored.
func (c *Controller) reviseSessions(what string, revise func(now int64, lead time.Duration, s session) (session, bool)) {
	for name, s := range c.sessions {
		next, changed := revise(c.now(), c.leadOf(name), s)
		if !changed {
			continue
		}
		next = c.stamp(next)
		if err := c.store.saveSession(next, true); err != nil {
			c.log.Error(what+" not stored", "session", name, "err", err)
			continue
		}
		c.sessions[name] = next
		c.publish(protocol.PlaylistTopic(name), true, protocol.Encode(next.Playlist))
		c.publish(protocol.SessionStateTopic(name), true, protocol.Encode(next.State))
	}
}

// reviseEntries changes, with revise, the entries of s that differs picks,
// from shared instant now+lead: the timeline is anchored anew there, so
// every role makes the change at the same frame. An entry playing then
// that the change makes missing ends there, and the next plays.
func reviseEntries(now int64, lead time.Duration, s session, differs func(protocol.Entry) bool, revise func(*protocol.Entry)) (session, bool) {
	if !slices.ContainsFunc(s.Playlist.Entries, differs) {
		return s, false
	}
	next := settle(s, now)
	at := max(now+int64(lead), next.State.Anchor.AtNs)
	idx, pos, st := next.cursor(at)
	next.Playlist.Entries = slices.Clone(next.Playlist.Entries)
	for i := range next.Playlist.Entries {
		if differs(next.Playlist.Entries[i]) {
			revise(&next.Playlist.Entries[i])
		}
	}
	if idx >= 0 && next.Playlist.Entries[idx].Missing {
		pos = 0
	}
	next.reanchor(at, idx, pos, st)
	next, _, err := commit(s, next, change{AtNs: at, StateChanged: true, PlaylistChanged: true})
	return next, err == nil
}
