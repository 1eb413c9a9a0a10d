package controller

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// This file holds the scheduling rules as pure functions: from (now, session,
// request) to the next session. Nothing here reads a clock or a store.

// session is everything the controller keeps about one session.
type session struct {
	State     protocol.SessionState
	Playlist  protocol.Playlist
	NextEntry uint64       // number of the next entry id ("e<n>"), so ids are never reused
	Title     string       // the name people see
	ACL       protocol.ACL // who may see, join and control it
}

// change says what a command did to a session.
type change struct {
	AtNs            int64  // shared instant the change takes effect; 0 when immediate
	StateChanged    bool   // the state must be stored and published
	PlaylistChanged bool   // the playlist too (before the state)
	Entry           string // enqueue: the id of the new entry
}

// errNoChange is never returned to callers: apply turns it into an ok reply
// that changes nothing (pause when paused, play when playing).
var errNoChange = errors.New("no change")

// apply runs one session command at shared time now. songs are the library
// records enqueue adds (resolved by the caller from its link), rng what
// shuffle draws from; nil for other commands. On error the session is
// returned unchanged.
func apply(now int64, lead time.Duration, s session, req protocol.Request, songs []protocol.Song, rng *rand.Rand) (session, change, error) {
	if err := protocol.CheckFields(req); err != nil {
		return s, change{}, err
	}
	next := settle(s, now)
	// A scheduled change never takes effect before an earlier scheduled one,
	// so the timeline stays ordered even if the clock steps back.
	at := max(now+int64(lead), next.State.Anchor.AtNs)
	var c change
	var err error
	switch req.Cmd {
	case protocol.CmdPlay:
		c, err = play(&next, at, req)
	case protocol.CmdPause:
		c, err = pause(&next, at)
	case protocol.CmdNext:
		c = skip(&next, at)
	case protocol.CmdPrevious:
		idx, _, st := next.current(at)
		next.reanchor(at, idx, 0, st)
		c = change{AtNs: at}
	case protocol.CmdSeek:
		c, err = seek(&next, at, req)
	case protocol.CmdEnqueue:
		c, err = enqueue(&next, now, at, req, songs)
	case protocol.CmdDequeue:
		c, err = dequeue(&next, now, at, req)
	case protocol.CmdMove:
		c, err = move(&next, now, req)
	case protocol.CmdShuffle:
		c, err = shuffle(&next, now, req, rng)
	case protocol.CmdClear:
		if len(next.Playlist.Entries) == 0 && next.State.State == protocol.Stopped {
			err = errNoChange
			break
		}
		next.Playlist.Entries = nil
		next.reanchor(at, -1, 0, protocol.Stopped)
		c = change{AtNs: at, PlaylistChanged: true}
	case protocol.CmdVolume:
		if req.Speaker != "" {
			// One speaker's volume is part of its assignment, not of the session.
			return s, change{}, fmt.Errorf("volume of speaker %q is not a session change", req.Speaker)
		}
		if *req.Volume < 0 || *req.Volume > 100 {
			return s, change{}, fmt.Errorf("volume %d out of range 0-100", *req.Volume)
		}
		next.State.Volume = *req.Volume
	case protocol.CmdGain:
		c, err = setGainMode(&next, at, req)
	case protocol.CmdRepeat:
		c, err = setRepeat(&next, at, req)
	case protocol.CmdFade:
		c, err = setCrossfade(&next, at, req)
	case protocol.CmdStatus:
		err = errNoChange
	default:
		return s, change{}, fmt.Errorf("%w %q", protocol.ErrUnknownCommand, req.Cmd)
	}
	if errors.Is(err, errNoChange) {
		// Nothing asked for changes; settling may still have moved on.
		return commit(s, next, change{})
	}
	if err != nil {
		return s, change{}, err
	}
	c.StateChanged = true
	return commit(s, next, c)
}

// commit finishes a change: versions increase, and the playlist must still
// fit in one retained message.
func commit(old, next session, c change) (session, change, error) {
	if c.PlaylistChanged {
		next.Playlist.Version = old.Playlist.Version + 1
		if err := playlistFits(next.Playlist); err != nil {
			return old, change{}, err
		}
	}
	if next.State.Seq != old.State.Seq {
		c.StateChanged = true // settle moved on
	}
	if c.StateChanged {
		next.State.Seq = old.State.Seq + 1
		next.State.PlaylistVersion = next.Playlist.Version
	}
	return next, c, nil
}

// playlistFits refuses a playlist that would not fit in one retained message.
func playlistFits(pl protocol.Playlist) error {
	if n := len(protocol.Encode(pl)); n > protocol.MaxPayload {
		return fmt.Errorf("playlist full: %d entries would take %d bytes, over the %d byte limit",
			len(pl.Entries), n, protocol.MaxPayload)
	}
	return nil
}

func play(s *session, at int64, req protocol.Request) (change, error) {
	entries := s.Playlist.Entries
	if len(entries) == 0 {
		return change{}, errors.New("playlist is empty: enqueue a song first")
	}
	idx, pos, st := s.cursor(at)
	if req.Index == nil && req.Position == nil && st == protocol.Playing {
		return change{}, errNoChange
	}
	if req.Index != nil {
		if *req.Index < 0 || *req.Index >= len(entries) {
			return change{}, fmt.Errorf("index %d out of range: the playlist has %d entries", *req.Index, len(entries))
		}
		idx, pos = *req.Index, 0
	}
	if req.Position != nil {
		pos = int64(*req.Position)
		if err := checkPosition(entries[idx], pos); err != nil {
			return change{}, err
		}
	}
	s.reanchor(at, idx, pos, protocol.Playing)
	return change{AtNs: at}, nil
}

func pause(s *session, at int64) (change, error) {
	if !s.State.Anchor.Playing {
		return change{}, errNoChange
	}
	idx, pos, st := s.cursor(at)
	if st == protocol.Playing {
		st = protocol.Paused
	}
	s.reanchor(at, idx, pos, st)
	return change{AtNs: at}, nil
}

func seek(s *session, at int64, req protocol.Request) (change, error) {
	if len(s.Playlist.Entries) == 0 {
		return change{}, errors.New("playlist is empty: nothing to seek in")
	}
	idx, _, st := s.current(at)
	pos := int64(*req.Position)
	if err := checkPosition(s.Playlist.Entries[idx], pos); err != nil {
		return change{}, err
	}
	s.reanchor(at, idx, pos, st)
	return change{AtNs: at}, nil
}

func checkPosition(e protocol.Entry, pos int64) error {
	if d := e.DurationNs(); pos >= d {
		return fmt.Errorf("position %s is beyond the end of entry %s (%s long)",
			time.Duration(pos), e.ID, time.Duration(d))
	}
	return nil
}

// dequeue removes an entry. Removing the current entry moves on to the
// following one at the scheduled instant at, like next; removing any other
// entry is immediate and leaves the timeline as it is.
func dequeue(s *session, now, at int64, req protocol.Request) (change, error) {
	entries := s.Playlist.Entries
	remove := -1
	if req.Index != nil {
		if *req.Index < 0 || *req.Index >= len(entries) {
			return change{}, fmt.Errorf("index %d out of range: the playlist has %d entries", *req.Index, len(entries))
		}
		remove = *req.Index
	} else {
		for i, e := range entries {
			if e.ID == req.Entry {
				remove = i
			}
		}
		if remove < 0 {
			return change{}, fmt.Errorf("no entry %q in the playlist", req.Entry)
		}
	}
	now = max(now, s.State.Anchor.AtNs)
	idx, pos, st := s.cursor(now)
	s.Playlist.Entries = append(entries[:remove:remove], entries[remove+1:]...)
	remaining := len(s.Playlist.Entries)
	switch {
	case remaining == 0:
		s.reanchor(at, -1, 0, protocol.Stopped)
		return change{AtNs: at, PlaylistChanged: true}, nil
	case remove == idx:
		if remove >= remaining {
			s.reanchor(at, 0, 0, protocol.Stopped)
		} else {
			s.reanchor(at, remove, 0, st)
		}
		return change{AtNs: at, PlaylistChanged: true}, nil
	case remove < idx:
		idx--
	}
	s.reanchor(now, idx, pos, st)
	return change{PlaylistChanged: true}, nil
}

// cursor says where the session's timeline is at shared instant t: entry
// index, position in it, and state. During a crossfade it is the entry
// fading out (protocol.Timeline.Locate), so that re-anchoring there plays
// on exactly as before. A playing timeline that has run past the last
// entry is stopped at entry 0.
func (s *session) cursor(t int64) (idx int, pos int64, state string) {
	a := s.State.Anchor
	entries := s.Playlist.Entries
	if len(entries) == 0 {
		return -1, 0, protocol.Stopped
	}
	if a.Index < 0 || a.Index >= len(entries) {
		return 0, 0, protocol.Stopped
	}
	if !a.Playing {
		return a.Index, a.PositionNs, s.State.State
	}
	idx, pos, ok := s.Playlist.Timeline().Locate(a.Index, a.PositionNs+max(0, t-a.AtNs))
	if !ok {
		return 0, 0, protocol.Stopped
	}
	return idx, pos, protocol.Playing
}

// current is cursor as a person sees it: during a crossfade, the entry
// fading in. Commands that name "the current song" (next, previous, seek)
// act on it.
func (s *session) current(t int64) (idx int, pos int64, state string) {
	idx, pos, state = s.cursor(t)
	if idx >= 0 && state != protocol.Stopped {
		idx, pos = s.Playlist.Timeline().Current(idx, pos)
	}
	return idx, pos, state
}

// reanchor sets the anchor: from shared instant at, entry idx at pos, in state.
func (s *session) reanchor(at int64, idx int, pos int64, state string) {
	entry := ""
	if idx >= 0 && idx < len(s.Playlist.Entries) {
		entry = s.Playlist.Entries[idx].ID
	} else {
		idx, pos, state = -1, 0, protocol.Stopped
	}
	s.State.State = state
	s.State.Anchor = protocol.Anchor{AtNs: at, Index: idx, Entry: entry, PositionNs: pos, Playing: state == protocol.Playing}
}

// entryEnd is the shared instant auto-advance next re-anchors a playing
// session: when its current entry ends, but, unless the playlist ends with
// it, not within minAdvance of the anchor. ok is false when the session is
// not playing.
func (s *session) entryEnd() (end int64, ok bool) {
	a := s.State.Anchor
	if !a.Playing || a.Index < 0 || a.Index >= len(s.Playlist.Entries) {
		return 0, false
	}
	end = a.AtNs + max(0, s.Playlist.Entries[a.Index].DurationNs()-a.PositionNs)
	if s.Playlist.Timeline().Next(a.Index) < 0 {
		return end, true
	}
	return max(end, a.AtNs+int64(minAdvance)), true
}

// minAdvance is the least time between two auto-advances of a session.
// Speakers walk the timeline by themselves, so a re-anchor only tells
// everyone else where it is; without a bound, songs of a few milliseconds
// on repeat would have the controller publish a state for each.
const minAdvance = time.Second

// maxSettleSteps bounds the auto-advances settle makes one by one (a
// controller back after hours of a playlist on repeat): past them it
// re-anchors where the timeline is at now, in one step.
const maxSettleSteps = maxPlaylistEntries

// settle is auto-advance: every entry end at or before now (as entryEnd
// spaces them) re-anchors the session at that instant to where the timeline
// is then (the same timeline speakers follow by themselves): the entry that
// follows, as the repeat mode says, at the position its crossfade has
// brought it to; or, after the last entry, stopped at entry 0. Seq is not
// touched here; commit and advance do it.
func settle(s session, now int64) session {
	for step := 0; ; step++ {
		end, ok := s.entryEnd()
		if !ok || end > now {
			return s
		}
		if step == maxSettleSteps {
			end = now
		}
		idx, pos, st := s.cursor(end)
		s.reanchor(end, idx, pos, st)
		s.State.Seq++ // marks the change; commit renumbers it
	}
}

// advance is settle for the auto-advance timer: it reports whether anything
// changed, with Seq increased by one if so.
func advance(s session, now int64) (session, bool) {
	next := settle(s, now)
	if next.State.Seq == s.State.Seq {
		return s, false
	}
	next.State.Seq = s.State.Seq + 1
	return next, true
}

// Bounds of the adaptive lead time.
const (
	minLead = 40 * time.Millisecond
	maxLead = time.Second
	// leadMargin covers what no speaker reports: the block (10 ms) a
	// speaker's output may already be filling, and the controller's own
	// handling and store write (a few ms).
	leadMargin = 15 * time.Millisecond
	// defaultLead is used while no speaker of the session has reported.
	defaultLead = 150 * time.Millisecond
)

// leadOf is the lead of session name's commands: the one configured, else
// leadFor its speakers.
func (c *Controller) leadOf(name string) time.Duration {
	if c.opts.Lead != 0 {
		return c.opts.Lead
	}
	return leadFor(c.speakersOf(name))
}

// leadFor is how far ahead a command must take effect for every online
// speaker to hear it in time: the slowest speaker's output latency plus the
// round trip its recent probes took at the 99th percentile (a command
// travels one way; the round trip leaves room for asymmetric delay), plus
// leadMargin, within [minLead, maxLead]. A small lead makes commands feel
// instant on a quiet network; jitter makes it grow.
func leadFor(speakers []protocol.SpeakerStatus) time.Duration {
	var worst time.Duration
	seen := false
	for _, sp := range speakers {
		if !sp.Online {
			continue
		}
		seen = true
		worst = max(worst, time.Duration(sp.LatencyNs+sp.RTTP99Ns))
	}
	if !seen {
		return defaultLead
	}
	return min(max(worst+leadMargin, minLead), maxLead)
}
