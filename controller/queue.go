package controller

import (
	"cmp"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/tutti-audio/tutti/protocol"
)

// This file holds the queue's commands as pure functions on a session, as
// schedule.go's are: enqueue (songs at the end, next, now or an index),
// move and shuffle. None of them moves the timeline of the entry that
// plays, except enqueue at now, which starts the new songs at a scheduled
// instant like next does.

// newShuffleRand is the controller's source of shuffled orders, seeded so
// nobody can guess one order from the last.
func newShuffleRand() *rand.Rand {
	var seed [32]byte
	cryptorand.Read(seed[:])
	return rand.New(rand.NewChaCha8(seed))
}

// maxPlaylistEntries bounds a playlist, so it stays one retained message
// that every speaker reads quickly. One enqueue (an album, an artist, a
// saved playlist) adds at most as many.
const maxPlaylistEntries = 1000

// enqueue inserts songs, in order, where req says: before req.Index, or at
// req.At (EnqueueNext: right after the current entry; EnqueueNow: before
// it, and the first of them plays from the scheduled instant at; EnqueueEnd
// or nothing: at the end). Songs whose file has gone (Missing) are left
// out. Apart from EnqueueNow the change is immediate: the timeline does not
// move, only the indexes behind the insert.
func enqueue(s *session, now, at int64, req protocol.Request, songs []protocol.Song) (change, error) {
	songs = slices.DeleteFunc(slices.Clone(songs), func(song protocol.Song) bool { return song.Missing })
	if len(songs) == 0 {
		return change{}, errors.New("enqueue needs a song whose file is in the library")
	}
	for _, song := range songs {
		if song.Frames <= 0 || song.SampleRate <= 0 {
			return change{}, fmt.Errorf("song %s has no audio frames", song.SHA256)
		}
	}
	entries := s.Playlist.Entries
	if len(entries) >= maxPlaylistEntries {
		return change{}, fmt.Errorf("playlist full (%d entries)", maxPlaylistEntries)
	}
	if len(entries)+len(songs) > maxPlaylistEntries {
		return change{}, fmt.Errorf("playlist full: %d entries and %d more would exceed %d", len(entries), len(songs), maxPlaylistEntries)
	}
	if req.Index != nil && req.At != "" {
		return change{}, errors.New("enqueue takes index or at, not both")
	}
	now = max(now, s.State.Anchor.AtNs)
	idx, pos, st := s.cursor(now)
	cur, _, _ := s.current(now) // during a crossfade, the entry fading in
	insert := len(entries)
	switch {
	case req.Index != nil:
		if *req.Index < 0 || *req.Index > len(entries) {
			return change{}, fmt.Errorf("index %d out of range: insert before 0 to %d", *req.Index, len(entries))
		}
		insert = *req.Index
	case req.At == protocol.EnqueueNext:
		insert = cur + 1 // 0 when the playlist is empty
	case req.At == protocol.EnqueueNow:
		insert = max(cur, 0)
	case req.At != "" && req.At != protocol.EnqueueEnd:
		return change{}, fmt.Errorf("at %q: want %q, %q or %q", req.At, protocol.EnqueueNow, protocol.EnqueueNext, protocol.EnqueueEnd)
	}
	added := make([]protocol.Entry, len(songs))
	for i, song := range songs {
		added[i] = newEntry(s, song)
	}
	s.Playlist.Entries = slices.Insert(slices.Clone(entries), insert, added...)
	if req.At == protocol.EnqueueNow {
		s.reanchor(at, insert, 0, protocol.Playing)
		return change{AtNs: at, PlaylistChanged: true, Entry: added[0].ID}, nil
	}
	if len(entries) == 0 {
		idx, pos, st = 0, 0, protocol.Stopped
	} else if insert <= idx {
		idx += len(added)
	}
	s.reanchor(now, idx, pos, st)
	return change{PlaylistChanged: true, Entry: added[0].ID}, nil
}

// newEntry makes the next entry of s for song: its id ("e<n>") is never
// reused, and its number tells the order entries were added in.
func newEntry(s *session, song protocol.Song) protocol.Entry {
	e := protocol.Entry{
		ID:         "e" + strconv.FormatUint(s.NextEntry, 10),
		Song:       song.SHA256,
		Title:      song.Title,
		Artist:     song.Artist,
		Frames:     song.Frames,
		SampleRate: song.SampleRate,
	}
	s.NextEntry++
	return e
}

// entryNumber is the number in an entry id ("e<n>"): entries added later
// have larger ones. An id of another form sorts first.
func entryNumber(id string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimPrefix(id, "e"), 10, 64)
	return n
}

// entryIndex finds the entry req names, by req.Index or req.Entry.
func entryIndex(entries []protocol.Entry, req protocol.Request) (int, error) {
	if req.Index != nil {
		if *req.Index < 0 || *req.Index >= len(entries) {
			return -1, fmt.Errorf("index %d out of range: the playlist has %d entries", *req.Index, len(entries))
		}
		return *req.Index, nil
	}
	if i := slices.IndexFunc(entries, func(e protocol.Entry) bool { return e.ID == req.Entry }); i >= 0 {
		return i, nil
	}
	return -1, fmt.Errorf("no entry %q in the playlist", req.Entry)
}

// move puts one entry at position req.To. The entry that plays goes on
// playing where it is in its song, wherever it moves: the change is
// immediate and only indexes change.
func move(s *session, now int64, req protocol.Request) (change, error) {
	entries := s.Playlist.Entries
	from, err := entryIndex(entries, req)
	if err != nil {
		return change{}, err
	}
	to := *req.To
	if to < 0 || to >= len(entries) {
		return change{}, fmt.Errorf("to %d out of range: the playlist has positions 0 to %d", to, len(entries)-1)
	}
	if from == to {
		return change{}, errNoChange
	}
	now = max(now, s.State.Anchor.AtNs)
	idx, pos, st := s.cursor(now)
	current := entries[idx].ID
	moved := slices.Delete(slices.Clone(entries), from, from+1)
	s.Playlist.Entries = slices.Insert(moved, to, entries[from])
	s.reanchor(now, indexOf(s.Playlist.Entries, current), pos, st)
	return change{PlaylistChanged: true}, nil
}

// indexOf is the index of the entry with id.
func indexOf(entries []protocol.Entry, id string) int {
	return slices.IndexFunc(entries, func(e protocol.Entry) bool { return e.ID == id })
}

// shuffle turns shuffling on (req.On) or off. On, the entries after the
// current one are put in an order drawn from rng (again if it was on
// already); a session stopped at the start of its playlist has every entry
// shuffled, so it starts with a random one. Off, the entries after the
// current one go back to the order they were added in (their entry
// numbers). The entry that plays is never disturbed, and the order is part
// of the retained playlist, so every speaker and standby has the same.
func shuffle(s *session, now int64, req protocol.Request, rng *rand.Rand) (change, error) {
	on := *req.On
	if !on && !s.Playlist.Shuffle {
		return change{}, errNoChange
	}
	s.Playlist.Shuffle = on
	entries := slices.Clone(s.Playlist.Entries)
	now = max(now, s.State.Anchor.AtNs)
	idx, pos, st := s.cursor(now)
	cur, _, _ := s.current(now) // during a crossfade, the entry fading in stays
	from := cur + 1
	if st == protocol.Stopped && pos == 0 {
		from = 0
	}
	if from < len(entries) {
		rest := entries[from:]
		if on {
			rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		} else {
			slices.SortStableFunc(rest, func(a, b protocol.Entry) int {
				return cmp.Compare(entryNumber(a.ID), entryNumber(b.ID))
			})
		}
	}
	s.Playlist.Entries = entries
	s.reanchor(now, idx, pos, st)
	return change{PlaylistChanged: true}, nil
}
