package controller

import (
	"fmt"
	"math"

	"github.com/tutti-audio/tutti/protocol"
)

// This file holds how a session's ReplayGain mode becomes the gain every
// speaker applies to each entry (Entry.GainDb).

// gainModes maps the replaygain command's modes to Playlist.ReplayGain.
var gainModes = map[string]string{"off": protocol.GainOff, protocol.GainTrack: protocol.GainTrack, protocol.GainAlbum: protocol.GainAlbum}

// setGainMode is the replaygain command: the session plays in another mode
// from shared instant at. The timeline goes on where it is; anchoring it
// anew at `at` makes every speaker change the gain at the same frame.
// entryGains then sets the entries' gains.
func setGainMode(s *session, at int64, req protocol.Request) (change, error) {
	mode, ok := gainModes[req.Mode]
	if !ok {
		return change{}, fmt.Errorf("replaygain mode %q: want off, %s or %s", req.Mode, protocol.GainTrack, protocol.GainAlbum)
	}
	if mode == s.Playlist.ReplayGain {
		return change{}, errNoChange
	}
	s.Playlist.ReplayGain = mode
	idx, pos, st := s.cursor(at)
	s.reanchor(at, idx, pos, st)
	return change{AtNs: at, PlaylistChanged: true}, nil
}

// entryGain is the gain (dB) of an entry of a song whose ReplayGain is rg
// in mode: the track's gain, or the album's in album mode when the song
// has one. Clipping is prevented as ReplayGain players do by default: the
// gain goes no higher than brings the song's peak, when known, to full
// scale. The speakers' limiter catches what a peak does not tell (songs
// without one, a lossy decoder's overshoot).
func entryGain(mode string, rg *protocol.ReplayGain) float64 {
	if mode == protocol.GainOff || rg == nil {
		return 0
	}
	g := rg.Track
	if mode == protocol.GainAlbum && rg.Album != nil {
		g = *rg.Album
	}
	db := g.Db
	if g.Peak > 0 {
		db = min(db, -20*math.Log10(g.Peak))
	}
	return roundTo(min(max(db, -protocol.MaxGainDb), protocol.MaxGainDb), 100)
}

// entryGains sets the gain of next's entries after a playlist change from
// old: all of them when the mode changed, else those that are new (an
// entry keeps the gain it was published with, even if its song's tags
// change meanwhile, so that every speaker and standby hears it alike).
func (c *Controller) entryGains(old, next session) (session, error) {
	all := next.Playlist.ReplayGain != old.Playlist.ReplayGain
	known := make(map[string]bool, len(old.Playlist.Entries))
	for _, e := range old.Playlist.Entries {
		known[e.ID] = true
	}
	var songs []string
	for _, e := range next.Playlist.Entries {
		if all || !known[e.ID] {
			songs = append(songs, e.Song)
		}
	}
	if len(songs) == 0 {
		return next, nil
	}
	var gains map[string]*protocol.ReplayGain
	if next.Playlist.ReplayGain != protocol.GainOff {
		var err error
		if gains, err = c.store.replayGains(songs); err != nil {
			return old, err
		}
	}
	entries := make([]protocol.Entry, len(next.Playlist.Entries))
	copy(entries, next.Playlist.Entries) // old may share next's array
	for i, e := range entries {
		if all || !known[e.ID] {
			entries[i].GainDb = entryGain(next.Playlist.ReplayGain, gains[e.Song])
		}
	}
	next.Playlist.Entries = entries
	if err := playlistFits(next.Playlist); err != nil {
		return old, err
	}
	return next, nil
}

// replayGains reads the ReplayGain of songs in one query (a mode change
// reads a whole playlist's); a song unknown, or without one, is left out.
func (st *store) replayGains(songs []string) (map[string]*protocol.ReplayGain, error) {
	records, err := st.songsOrMissing(songs) // store_playlists.go
	if err != nil {
		return nil, err
	}
	gains := map[string]*protocol.ReplayGain{}
	for _, song := range records {
		if !song.Missing {
			gains[song.SHA256] = song.ReplayGain
		}
	}
	return gains, nil
}
