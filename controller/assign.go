package controller

import (
	"fmt"
	"maps"
	"slices"

	"github.com/tutti-audio/tutti/protocol"
)

// This file keeps the speakers' assignments: which session each speaker
// plays and its own volume. The lease holder stores them and publishes each
// retained on protocol.AssignTopic; the speaker follows it, and standbys
// mirror it. The session loop owns the writes; c.mu guards the map, which
// speakersOf reads.

// runAssignCommand runs join, leave, or volume of one speaker, sent to
// session name by who, who holds the right the command needs there.
func (c *Controller) runAssignCommand(who asker, name string, req protocol.Request) (protocol.Assignment, error) {
	if err := protocol.CheckFields(req); err != nil {
		return protocol.Assignment{}, err
	}
	if err := protocol.ValidName(req.Speaker); err != nil {
		return protocol.Assignment{}, fmt.Errorf("speaker: %w", err)
	}
	a, known := c.assignmentOf(req.Speaker)
	if !known {
		return a, fmt.Errorf("unknown speaker %q", req.Speaker)
	}
	switch req.Cmd {
	case protocol.CmdJoin:
		if from, ok := c.sessions[a.Session]; ok && a.Session != name {
			// Joining takes the speaker out of its session: that takes the
			// right to move speakers out of it.
			if err := who.may(rightJoin, a.Session, from.ACL); err != nil {
				return a, fmt.Errorf("%w (speaker %s is in it)", err, a.Speaker)
			}
		}
		a.Session = name
	case protocol.CmdLeave:
		if a.Session != name {
			return a, fmt.Errorf("speaker %s is not in session %s", a.Speaker, name)
		}
		a.Session = ""
	case protocol.CmdVolume:
		if a.Session != name {
			return a, fmt.Errorf("speaker %s is not in session %s", a.Speaker, name)
		}
		if *req.Volume < 0 || *req.Volume > 100 {
			return a, fmt.Errorf("volume %d out of range 0-100", *req.Volume)
		}
		a.Volume = *req.Volume
	default:
		return a, fmt.Errorf("%w %q", protocol.ErrUnknownCommand, req.Cmd)
	}
	if err := c.assign(a); err != nil {
		c.log.Error("assignment not stored", "speaker", a.Speaker, "cmd", req.Cmd, "err", err)
		return a, fmt.Errorf("not stored: %v", err)
	}
	c.log.Info("speaker assigned", "speaker", a.Speaker, "session", a.Session, "volume", a.Volume, "cmd", req.Cmd)
	return a, nil
}

// assignmentOf is a speaker's assignment; a speaker whose status is known
// but which has none yet is in no session, at the volume it reports.
// known is false for a speaker never heard of.
func (c *Controller) assignmentOf(id string) (a protocol.Assignment, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.assignments[id]; ok {
		return a, true
	}
	st, ok := c.speakers[id]
	return protocol.Assignment{V: protocol.Version, Speaker: id, Volume: ownVolume(st)}, ok
}

// ownVolume is the volume a speaker reports, which it was configured with.
func ownVolume(st protocol.SpeakerStatus) int {
	if st.Volume < 0 || st.Volume > 100 {
		return 100
	}
	return st.Volume
}

// assign stores a, stamped with our term, and publishes it.
func (c *Controller) assign(a protocol.Assignment) error {
	a.V, a.Term = protocol.Version, c.lease.term
	if err := c.store.saveAssignments(a); err != nil {
		return err
	}
	c.mu.Lock()
	c.assignments[a.Speaker] = a
	c.mu.Unlock()
	c.publish(protocol.AssignTopic(a.Speaker), true, protocol.Encode(a))
	return nil
}

// NoSession as Options.NewSpeakerSession leaves new speakers unassigned.
// It is not a valid session name.
const NoSession = "-"

// assignNew assigns a speaker seen for the first time (placeNew says where).
func (c *Controller) assignNew(id string) {
	c.mu.Lock()
	st, seen := c.speakers[id]
	_, assigned := c.assignments[id]
	c.mu.Unlock()
	if !seen || assigned {
		return
	}
	session, refused := c.placeNew(id, st.Session)
	a := protocol.Assignment{Speaker: id, Session: session, Volume: ownVolume(st)}
	if err := c.assign(a); err != nil {
		c.log.Error("new speaker not assigned", "speaker", id, "err", err)
		return
	}
	if refused != "" {
		c.log.Warn("new speaker not given the session it asked for", "speaker", id, "asked_for", st.Session, "session", session, "reason", refused)
		return
	}
	c.log.Info("new speaker assigned", "speaker", id, "session", session, "asked_for", st.Session)
}

// placeNew says which session a speaker seen for the first time joins, and
// if that is not the session it asked for, why. A speaker chooses its
// session itself (its --session, or a stolen speaker password), so asking
// grants nothing: it gets the session asked for only where the session's
// join list names it (an admin's grant) or the controller is open (the
// demo, where anybody may join anything); otherwise the new speakers'
// session (Options.NewSpeakerSession) if it exists, else none.
func (c *Controller) placeNew(id, asked string) (session, refused string) {
	s, exists := c.sessions[asked]
	switch {
	case asked == "":
	case !exists:
		refused = fmt.Sprintf("no session %q", asked)
	case c.opts.Open || slices.Contains(s.ACL.Join, id):
		return asked, ""
	default:
		refused = fmt.Sprintf("session %s's join list does not name speaker %s: an admin, or a user who may join %s, moves it there with join", asked, id, asked)
	}
	session = c.opts.NewSpeakerSession
	if _, ok := c.sessions[session]; !ok {
		session = ""
	}
	if session == asked {
		refused = ""
	}
	return session, refused
}

// forgetResult is the result of forget.
type forgetResult struct {
	Speaker string `json:"speaker"`
}

// forgetSpeaker removes a speaker that is gone for good: its assignment
// from the store and from memory, and its retained assignment and status
// from the broker, which tells standbys (mirrorAssignment) and Home
// Assistant's bridge that it is gone. A speaker that is online would come
// straight back, so it is refused; one that comes back later is new to us
// (noteSpeaker, assignNew).
func (c *Controller) forgetSpeaker(id string) (forgetResult, error) {
	if err := protocol.ValidName(id); err != nil {
		return forgetResult{}, fmt.Errorf("speaker: %w", err)
	}
	// Held across the check and the removal, so noteSpeaker cannot slip a
	// new online status in between.
	c.mu.Lock()
	st, seen := c.speakers[id]
	_, assigned := c.assignments[id]
	var err error
	switch {
	case !seen && !assigned:
		err = fmt.Errorf("unknown speaker %q", id)
	case seen && st.Online:
		err = fmt.Errorf("speaker %s is online: stop it first, or it comes back", id)
	default:
		if err = c.store.deleteAssignment(id); err != nil {
			c.log.Error("speaker not forgotten", "speaker", id, "err", err)
			err = fmt.Errorf("not stored: %v", err)
			break
		}
		delete(c.assignments, id)
		delete(c.speakers, id)
	}
	c.mu.Unlock()
	if err != nil {
		return forgetResult{}, err
	}
	// Empty retained payloads make the broker drop the topics.
	c.publish(protocol.AssignTopic(id), true, []byte{})
	c.publish(protocol.SpeakerStatusTopic(id), true, []byte{})
	c.log.Info("speaker forgotten", "speaker", id)
	return forgetResult{Speaker: id}, nil
}

// takeOverAssignments restamps every assignment with our term, and assigns
// the speakers that have none; publishAll publishes them.
func (c *Controller) takeOverAssignments() {
	c.mu.Lock()
	all := slices.Collect(maps.Values(c.assignments))
	var unassigned []string
	for id := range c.speakers {
		if _, ok := c.assignments[id]; !ok {
			unassigned = append(unassigned, id)
		}
	}
	c.mu.Unlock()
	for i := range all {
		all[i].Term = c.lease.term
	}
	if err := c.store.saveAssignments(all...); err != nil {
		c.log.Error("assignments not stored at takeover", "err", err)
	} else {
		c.mu.Lock()
		for _, a := range all {
			c.assignments[a.Speaker] = a
		}
		c.mu.Unlock()
	}
	slices.Sort(unassigned)
	for _, id := range unassigned {
		c.assignNew(id)
	}
}

// mirrorAssignment stores an assignment the holder published; an empty one
// means the holder forgot the speaker. While we hold the lease, a stale one
// on the retained topic is put right instead, unless the speaker is one we
// do not know (any more).
func (c *Controller) mirrorAssignment(id string, payload []byte) error {
	c.mu.Lock()
	ours, known := c.assignments[id]
	c.mu.Unlock()
	if c.lease.leading() {
		if !known {
			return nil
		}
		if len(payload) == 0 {
			c.log.Warn("an assignment was cleared; publishing ours again", "speaker", id)
			c.publish(protocol.AssignTopic(id), true, protocol.Encode(ours))
			return nil
		}
		if a, err := protocol.Decode[protocol.Assignment](payload); err != nil || a.Term < ours.Term {
			c.log.Warn("a stale assignment was published; publishing ours again", "speaker", id, "err", err)
			c.publish(protocol.AssignTopic(id), true, protocol.Encode(ours))
		}
		return nil
	}
	if len(payload) == 0 {
		if !known {
			return nil
		}
		if err := c.store.deleteAssignment(id); err != nil {
			return err
		}
		c.mu.Lock()
		delete(c.assignments, id)
		c.mu.Unlock()
		return nil
	}
	a, err := protocol.Decode[protocol.Assignment](payload)
	if err != nil {
		return err
	}
	switch {
	case a.Speaker != id:
		return fmt.Errorf("assignment of speaker %q on the topic of %q", a.Speaker, id)
	case a.Session != "" && protocol.ValidName(a.Session) != nil:
		return fmt.Errorf("assignment to an invalid session %q", a.Session)
	case a.Volume < 0 || a.Volume > 100:
		return fmt.Errorf("assignment with volume %d out of range 0-100", a.Volume)
	case a.Term < c.lease.term || known && a.Term < ours.Term:
		return nil // from a deposed holder
	}
	if err := c.store.saveAssignments(a); err != nil {
		return err
	}
	c.mu.Lock()
	c.assignments[id] = a
	c.mu.Unlock()
	return nil
}
