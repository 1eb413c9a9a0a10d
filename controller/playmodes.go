package controller

import (
	"fmt"
	"math"

	"github.com/tutti-audio/tutti/protocol"
)

// How a session's playlist plays on: repeat and crossfade, and next, which
// moves on whatever they say.

// skip is next: the entry after the current one (during a crossfade, after
// the one fading in) starts at its beginning at instant at, cut, not faded,
// as the peers do. Under repeat one it moves on too (a person pressing next
// wants another song), and under repeat one and all it wraps to the first
// entry after the last; under repeat off, next on the last entry stops.
func skip(s *session, at int64) change {
	idx, _, st := s.current(at)
	order := s.Playlist.Timeline()
	if order.Repeat == protocol.RepeatOne {
		order.Repeat = protocol.RepeatAll
	}
	if next := order.Next(idx); next >= 0 {
		s.reanchor(at, next, 0, st)
	} else {
		s.reanchor(at, 0, 0, protocol.Stopped)
	}
	return change{AtNs: at}
}

// repeatModes maps the repeat command's modes to the playlist's.
var repeatModes = map[string]string{"off": protocol.RepeatOff, protocol.RepeatOne: protocol.RepeatOne, protocol.RepeatAll: protocol.RepeatAll}

// setRepeat sets the playlist's repeat mode from instant at: the session
// re-anchors where it is then under the old mode, so what has played stays
// as it was and only what follows changes.
func setRepeat(s *session, at int64, req protocol.Request) (change, error) {
	mode, ok := repeatModes[req.Mode]
	if !ok {
		return change{}, fmt.Errorf("repeat mode %q: want off, one or all", req.Mode)
	}
	if mode == s.Playlist.Repeat {
		return change{}, errNoChange
	}
	idx, pos, st := s.cursor(at)
	s.Playlist.Repeat = mode
	s.reanchor(at, idx, pos, st)
	return change{AtNs: at, PlaylistChanged: true}, nil
}

// setCrossfade sets how long consecutive entries overlap, from instant at,
// re-anchoring where the session is then as setRepeat does. A crossfade
// under way when it changes goes on with the new length: the entry fading
// in may jump, once.
func setCrossfade(s *session, at int64, req protocol.Request) (change, error) {
	secs := *req.Seconds
	if math.IsNaN(secs) || secs < 0 || secs*1000 > protocol.MaxCrossfadeMs {
		return change{}, fmt.Errorf("crossfade %v s out of range: 0 (gapless) to %d s", secs, protocol.MaxCrossfadeMs/1000)
	}
	ms := int64(math.Round(secs * 1000))
	if ms == s.Playlist.CrossfadeMs {
		return change{}, errNoChange
	}
	idx, pos, st := s.cursor(at)
	s.Playlist.CrossfadeMs = ms
	s.reanchor(at, idx, pos, st)
	return change{AtNs: at, PlaylistChanged: true}, nil
}
