package controller

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tutti-audio/tutti/protocol"
)

// This file handles the sessions command topic (list, create, rename,
// delete, grant; forget, which is about speakers, is in assign.go) and the
// sessions' retained info, which says what a session is called and who may
// use it: the lease holder publishes it, tutti's broker enforces the ACL
// from it, standbys mirror it.

// sessionListing is one session in the result of list.
type sessionListing struct {
	Session string        `json:"session"`
	Title   string        `json:"title"`
	ACL     *protocol.ACL `json:"acl,omitempty"` // shown to admins only
}

// deleteResult is the result of delete.
type deleteResult struct {
	Session    string   `json:"session"`
	Unassigned []string `json:"unassigned"` // the speakers that were in it, now in none
}

// runSessionsCommand runs a request of the sessions command topic.
func (c *Controller) runSessionsCommand(who asker, req protocol.Request) (any, error) {
	if err := protocol.CheckFields(req); err != nil {
		return nil, err
	}
	if req.Cmd == protocol.CmdList {
		return c.listSessions(who), nil
	}
	if err := who.mayAdminister(req.Cmd); err != nil {
		return nil, err
	}
	switch req.Cmd {
	case protocol.CmdCreate:
		return c.createSession(req.Session, req.Title, req.ACL)
	case protocol.CmdForget:
		return c.forgetSpeaker(req.Speaker)
	}
	s, known := c.sessions[req.Session]
	if !known {
		return nil, fmt.Errorf("unknown session %q", req.Session)
	}
	switch req.Cmd {
	case protocol.CmdRename:
		if err := checkTitle(req.Title); err != nil {
			return nil, err
		}
		return c.saveInfo(s, req.Title, s.ACL)
	case protocol.CmdGrant:
		acl, err := checkACL(*req.ACL)
		if err != nil {
			return nil, err
		}
		return c.saveInfo(s, s.Title, acl)
	case protocol.CmdDelete:
		return c.deleteSession(req.Session)
	}
	return nil, fmt.Errorf("%w %q", protocol.ErrUnknownCommand, req.Cmd)
}

// listSessions lists the sessions who may see, by name.
func (c *Controller) listSessions(who asker) []sessionListing {
	out := []sessionListing{}
	for name, s := range c.sessions {
		if who.may(rightSee, name, s.ACL) != nil {
			continue
		}
		l := sessionListing{Session: name, Title: s.Title}
		if who.admin {
			l.ACL = &s.ACL
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b sessionListing) int { return strings.Compare(a.Session, b.Session) })
	return out
}

// maxTitle bounds a session's title, in bytes.
const maxTitle = 200

// checkTitle refuses titles people could not read: too long, not UTF-8,
// or with control characters.
func checkTitle(title string) error {
	switch {
	case len(title) > maxTitle:
		return fmt.Errorf("title of %d bytes: at most %d", len(title), maxTitle)
	case !utf8.ValidString(title):
		return fmt.Errorf("title is not valid UTF-8")
	case slices.ContainsFunc([]rune(title), unicode.IsControl):
		return fmt.Errorf("title holds control characters")
	}
	return nil
}

// newSession is a stopped session with an empty playlist.
func newSession(name, title string, acl protocol.ACL) session {
	if title == "" {
		title = name
	}
	return session{
		State: protocol.SessionState{V: protocol.Version, Session: name, State: protocol.Stopped, Volume: 100,
			Anchor: protocol.Anchor{Index: -1}},
		Playlist:  protocol.Playlist{V: protocol.Version, Session: name, Entries: []protocol.Entry{}},
		NextEntry: 1,
		Title:     title,
		ACL:       acl,
	}
}

// createSession adds a session with the ACL given, protocol.Everyone if
// none, and publishes it. Its info goes out first: the broker learns the ACL
// from it before any other topic of the session exists, so a private
// session is never shown to members outside its ACL.
func (c *Controller) createSession(name, title string, given *protocol.ACL) (protocol.SessionInfo, error) {
	if err := protocol.ValidName(name); err != nil {
		return protocol.SessionInfo{}, fmt.Errorf("session: %w", err)
	}
	if err := checkTitle(title); err != nil {
		return protocol.SessionInfo{}, err
	}
	acl := protocol.Everyone
	if given != nil {
		var err error
		if acl, err = checkACL(*given); err != nil {
			return protocol.SessionInfo{}, err
		}
	}
	if _, known := c.sessions[name]; known {
		return protocol.SessionInfo{}, fmt.Errorf("session %q exists", name)
	}
	created, err := c.store.createSession(name, title, acl)
	if err == nil && !created {
		err = fmt.Errorf("session %q is in the store already", name)
	}
	s := c.stamp(newSession(name, title, acl))
	if err == nil {
		err = c.store.saveSession(s, false)
	}
	if err != nil {
		c.log.Error("session not created", "session", name, "err", err)
		return protocol.SessionInfo{}, fmt.Errorf("not stored: %v", err)
	}
	c.sessions[name] = s
	c.log.Info("session created", "session", name, "title", s.Title, "acl", acl)
	info := c.publishInfo(name, s)
	c.publish(protocol.PlaylistTopic(name), true, protocol.Encode(s.Playlist))
	c.publish(protocol.SessionStateTopic(name), true, protocol.Encode(s.State))
	return info, nil
}

// saveInfo gives session s a new title and ACL, and publishes its info.
func (c *Controller) saveInfo(s session, title string, acl protocol.ACL) (protocol.SessionInfo, error) {
	name := s.State.Session
	if err := c.store.saveSessionInfo(name, title, acl); err != nil {
		c.log.Error("session info not stored", "session", name, "err", err)
		return protocol.SessionInfo{}, fmt.Errorf("not stored: %v", err)
	}
	s.Title, s.ACL = title, acl
	c.sessions[name] = s
	c.log.Info("session info changed", "session", name, "title", title, "acl", acl)
	return c.publishInfo(name, s), nil
}

// deleteSession removes a session: its speakers fall silent in no session,
// and its retained topics are cleared, which tells standbys it is gone.
func (c *Controller) deleteSession(name string) (deleteResult, error) {
	changed, err := c.store.deleteSession(name, c.lease.term)
	if err != nil {
		c.log.Error("session not deleted", "session", name, "err", err)
		return deleteResult{}, fmt.Errorf("not stored: %v", err)
	}
	delete(c.sessions, name)
	result := deleteResult{Session: name, Unassigned: []string{}}
	c.mu.Lock()
	for _, a := range changed {
		c.assignments[a.Speaker] = a
	}
	c.mu.Unlock()
	sort.Slice(changed, func(i, j int) bool { return changed[i].Speaker < changed[j].Speaker })
	for _, a := range changed {
		c.publish(protocol.AssignTopic(a.Speaker), true, protocol.Encode(a))
		result.Unassigned = append(result.Unassigned, a.Speaker)
	}
	for _, topic := range []string{protocol.SessionStateTopic(name), protocol.PlaylistTopic(name), protocol.SessionInfoTopic(name)} {
		c.publish(topic, true, []byte{})
	}
	c.log.Info("session deleted", "session", name, "unassigned", result.Unassigned)
	return result, nil
}

// publishInfo publishes a session's info under our term.
func (c *Controller) publishInfo(name string, s session) protocol.SessionInfo {
	info := protocol.SessionInfo{V: protocol.Version, Session: name, Title: s.Title, ACL: s.ACL, Term: c.lease.term}
	c.publish(protocol.SessionInfoTopic(name), true, protocol.Encode(info))
	return info
}

// mirrorInfo stores a session's info the holder published; it creates the
// session if we do not know it. While we hold the lease, a stale one on the
// retained topic is put right instead.
func (c *Controller) mirrorInfo(name string, payload []byte) error {
	info, err := protocol.Decode[protocol.SessionInfo](payload)
	if err != nil {
		return err
	}
	if info.Session != name {
		return errWrongSession(info.Session, name)
	}
	s, known := c.sessions[name]
	if c.lease.leading() {
		if known && info.Term < c.lease.term {
			c.log.Warn("a stale session info was published; publishing ours again", "session", name, "term", info.Term)
			c.publishInfo(name, s)
		}
		return nil
	}
	if info.Term < c.lease.term {
		return nil // from a deposed holder
	}
	acl, err := checkACL(info.ACL)
	if err == nil {
		err = checkTitle(info.Title)
	}
	if err != nil {
		return err
	}
	if !known {
		if _, err := c.store.createSession(name, info.Title, acl); err != nil {
			return err
		}
		c.sessions[name] = newSession(name, info.Title, acl)
		return nil
	}
	if err := c.store.saveSessionInfo(name, info.Title, acl); err != nil {
		return err
	}
	s.Title, s.ACL = info.Title, acl
	c.sessions[name] = s
	return nil
}

// mirrorGone handles a cleared retained topic of a session (its state,
// playlist or info): the holder deleted the session. While we hold the
// lease, we publish ours again instead.
func (c *Controller) mirrorGone(name, topic string) error {
	s, known := c.sessions[name]
	if !known {
		return nil
	}
	if c.lease.leading() {
		c.log.Warn("a session topic was cleared; publishing ours again", "topic", topic)
		switch topic {
		case protocol.SessionInfoTopic(name):
			c.publishInfo(name, s)
		case protocol.PlaylistTopic(name):
			c.publish(topic, true, protocol.Encode(s.Playlist))
		default:
			c.publish(topic, true, protocol.Encode(s.State))
		}
		return nil
	}
	changed, err := c.store.deleteSession(name, c.lease.term)
	if err != nil {
		return err
	}
	delete(c.sessions, name)
	c.mu.Lock()
	for _, a := range changed {
		c.assignments[a.Speaker] = a
	}
	c.mu.Unlock()
	c.log.Info("session deleted by the lease holder", "session", name)
	return nil
}
