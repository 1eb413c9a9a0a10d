package speaker

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"

	"github.com/tutti-audio/tutti/protocol"
)

// fence keeps the lease terms a speaker has seen, so that a deposed
// controller (one whose term is lower than the lease's) cannot override the
// controller in charge: terms are fencing tokens.
type fence struct {
	leaseTerm uint64 // highest lease term seen
	// The fetch tokens of the current lease and of the one before: a term
	// change must not break a peer download in flight.
	token, prevToken string
	songsURL         string // of the controller in charge

	assignTerm uint64 // of the latest accepted assignment

	// Of the session the speaker plays (reset when it moves):
	haveState           bool
	stateTerm, stateSeq uint64 // of the latest accepted session state

	announced []string // ids of the latest announcements, oldest first
}

// lease notes a lease message and says whether it is current (not of a
// lower term than one seen before). A claim and its renewals share a term;
// the latest message of the highest term wins.
func (f *fence) lease(l protocol.Lease) bool {
	if l.Term < f.leaseTerm {
		return false
	}
	f.leaseTerm = l.Term
	if l.FetchToken != f.token {
		f.prevToken, f.token = f.token, l.FetchToken
	}
	if l.SongsURL != "" {
		f.songsURL = l.SongsURL
	}
	return true
}

// controllerStatus takes the song server of a controller status, unless the
// status comes from a deposed controller. term 0: a controller that does not
// say its term.
func (f *fence) controllerStatus(term uint64, songsURL string) bool {
	if songsURL == "" || term != 0 && term < f.leaseTerm {
		return false
	}
	f.songsURL = songsURL
	return true
}

// errStale is a session state that an applied one supersedes: a duplicate
// or a message overtaken by a newer one. It is dropped without a word.
var errStale = errors.New("stale session state")

// state says whether a session state stamped (term, seq) is to be applied
// (nil): it supersedes the latest applied one and is not of a deposed term.
// If so, it becomes the latest.
func (f *fence) state(term, seq uint64) error {
	switch {
	case term < f.leaseTerm:
		return fmt.Errorf("session state of term %d from a deposed controller (lease term %d)", term, f.leaseTerm)
	case f.haveState && !protocol.Supersedes(term, seq, f.stateTerm, f.stateSeq):
		return errStale
	}
	f.haveState, f.stateTerm, f.stateSeq = true, term, seq
	return nil
}

// playlist says whether a playlist of term is current (nil): not lower than
// any term seen, of a lease or of an applied state.
func (f *fence) playlist(term uint64) error {
	if highest := max(f.leaseTerm, f.stateTerm); term < highest {
		return fmt.Errorf("playlist of term %d from a deposed controller (term %d seen)", term, highest)
	}
	return nil
}

// assignment says whether an assignment of term is current (nil): not lower
// than any lease term seen, nor than the latest accepted assignment's.
// Within a term the latest assignment wins.
func (f *fence) assignment(term uint64) error {
	if highest := max(f.leaseTerm, f.assignTerm); term < highest {
		return fmt.Errorf("assignment of term %d from a deposed controller (term %d seen)", term, highest)
	}
	f.assignTerm = term
	return nil
}

// newSession forgets the terms and seqs of the session the speaker left:
// another session's states carry their own.
func (f *fence) newSession() {
	f.haveState, f.stateTerm, f.stateSeq = false, 0, 0
}

// tokenValid tells whether a peer's request bearing token may be served.
func (f *fence) tokenValid(token string) bool {
	same := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	return token != "" && (same(token, f.token) || same(token, f.prevToken))
}

// announcement says whether an announcement of term with id is to be
// played (nil): not of a deposed term (lower than a lease's or an applied
// state's), and not one already heard. If so, its id is remembered.
func (f *fence) announcement(term uint64, id string) error {
	if highest := max(f.leaseTerm, f.stateTerm); term < highest {
		return fmt.Errorf("announcement of term %d from a deposed controller (term %d seen)", term, highest)
	}
	if slices.Contains(f.announced, id) {
		return errDuplicateAnnouncement
	}
	f.announced = append(f.announced, id)
	if len(f.announced) > rememberedAnnouncements {
		f.announced = slices.Delete(f.announced, 0, 1)
	}
	return nil
}
