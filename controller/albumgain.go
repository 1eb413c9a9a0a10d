package controller

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/tutti-audio/tutti/loudness"
	"github.com/tutti-audio/tutti/protocol"
)

// Gains measured for music folder songs (songlength.go measures them in
// the background): the album gain computed once every song of an album is
// measured, and the sessions' entries of those songs brought up to date.

// albumGain gives every song of song sha's album its album gain, once all
// of them are measured (a song with ReplayGain tags is not: its album's
// tags say): the album's integrated loudness, its blocks gated together as
// EBU R128 does for a programme (loudness.Integrated), and the loudest of
// its songs' peaks. It returns the songs whose ReplayGain changed.
func (c *Controller) albumGain(sha string) ([]string, error) {
	album, members, err := c.store.albumOf(sha)
	if err != nil || album == "" {
		return nil, err
	}
	hists := make([]loudness.Histogram, 0, len(members))
	var peak float64
	for _, m := range members {
		if m.histogram == nil {
			return nil, nil // not all measured yet
		}
		h, err := loudness.ParseHistogram(m.histogram)
		if err != nil {
			return nil, fmt.Errorf("song %s: %w", m.sha, err)
		}
		hists = append(hists, h)
		if m.gain != nil {
			peak = max(peak, m.gain.Track.Peak)
		}
	}
	lufs := loudness.Integrated(hists...)
	if math.IsInf(lufs, -1) {
		return nil, nil // a silent album
	}
	gain := gainOf(lufs, peak)
	var changed []string
	for _, m := range members {
		if m.gain == nil || !m.gain.Measured || m.gain.Album != nil && *m.gain.Album == gain {
			continue // silent, or up to date
		}
		rg := *m.gain
		rg.Album = &gain
		if err := c.store.setGain(m.sha, rg); err != nil {
			return changed, err
		}
		changed = append(changed, m.sha)
	}
	return changed, nil
}

// noteGains tells the session loop that songs' ReplayGain changed.
func (c *Controller) noteGains(shas []string) {
	c.gainNews.note(shas...)
}

// updateGains gives the entries of the songs whose ReplayGain changed
// their new gain, in every session that levels songs (session loop). Only
// the holder changes playlists; a standby mirrors the holder's.
func (c *Controller) updateGains() {
	news := c.gainNews.take()
	leveling := func(s session) bool { return s.Playlist.ReplayGain != protocol.GainOff && len(s.Playlist.Entries) > 0 }
	if !c.lease.leading() || !slices.ContainsFunc(slices.Collect(maps.Values(c.sessions)), leveling) {
		return
	}
	var shas []string
	for sha := range news {
		shas = append(shas, sha)
	}
	gains, err := c.store.replayGains(shas) // gain.go
	if err != nil {
		c.log.Error("measured gains not read", "err", err)
		return
	}
	c.reviseSessions("measured gains", func(now int64, lead time.Duration, s session) (session, bool) {
		return regain(now, lead, s, gains)
	})
}

// regain sets the gain of s's entries of the songs in gains, from shared
// instant now+lead: the timeline is anchored anew there, as a change of
// the ReplayGain mode does, so that every speaker changes the gain of the
// entry playing at the same frame.
func regain(now int64, lead time.Duration, s session, gains map[string]*protocol.ReplayGain) (session, bool) {
	mode := s.Playlist.ReplayGain
	differs := func(e protocol.Entry) bool {
		rg, ok := gains[e.Song]
		return ok && mode != protocol.GainOff && entryGain(mode, rg) != e.GainDb
	}
	return reviseEntries(now, lead, s, differs, func(e *protocol.Entry) { e.GainDb = entryGain(mode, gains[e.Song]) })
}
