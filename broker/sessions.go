package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/protocol"
)

// The per-session rights of acl.go come from two retained messages the
// lease holder publishes: protocol.SessionInfo (who may see, join and
// control a session) and protocol.Assignment (which session a speaker
// plays). sessionDirectory keeps the latest of each, restored from the store
// at start and then updated by sessionTracker as they are published.

// sessionDirectory holds what the broker knows of sessions and speakers.
// mochi checks ACLs on every client's goroutine, so it is guarded by mu.
type sessionDirectory struct {
	mu       sync.RWMutex
	acls     map[string]protocol.ACL // by session, from its latest SessionInfo
	assigned map[string]string       // speaker id → session, from its latest Assignment
}

func newSessionDirectory() *sessionDirectory {
	return &sessionDirectory{acls: map[string]protocol.ACL{}, assigned: map[string]string{}}
}

// sees reports whether member user may read session's topics. A session
// without a SessionInfo yet is open to every member: the controller
// publishes one for every session it has, and until it has (a fresh broker
// without a store, say) refusing would lock every member out of sessions
// that were open to them.
func (d *sessionDirectory) sees(session, user string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.seesLocked(session, user)
}

// seesLocked is sees with d.mu held.
func (d *sessionDirectory) seesLocked(session, user string) bool {
	acl, known := d.acls[session]
	return !known || protocol.Allows(acl.See, user)
}

// seesSpeaker reports whether member user may read speaker's topics, which
// show what it plays: those of a speaker assigned to a session the user
// sees, or to none.
func (d *sessionDirectory) seesSpeaker(speaker, user string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	session := d.assigned[speaker]
	return session == "" || d.seesLocked(session, user)
}

// seesAllSpeakers reports whether member user may read every known
// speaker's topics: the condition for a filter with a wildcard at the
// speaker level.
func (d *sessionDirectory) seesAllSpeakers(user string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, session := range d.assigned {
		if session != "" && !d.seesLocked(session, user) {
			return false
		}
	}
	return true
}

// seesAll reports whether member user may read every known session: the
// condition for a filter with a wildcard at the session level, which also
// matches sessions the user may not see.
func (d *sessionDirectory) seesAll(user string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, acl := range d.acls {
		if !protocol.Allows(acl.See, user) {
			return false
		}
	}
	return true
}

// mayCommand reports whether member user may send session the command in
// payload, by the controller's rules: status needs See, join and leave need
// Join, every other command (and a payload whose command is unreadable)
// needs Control. An unknown session allows everything, like sees.
func (d *sessionDirectory) mayCommand(session, user string, payload []byte) bool {
	d.mu.RLock()
	acl, known := d.acls[session]
	d.mu.RUnlock()
	if !known {
		return true
	}
	var req struct {
		Cmd string `json:"cmd"`
	}
	_ = json.Unmarshal(payload, &req) // unreadable: Cmd stays "", which needs Control
	switch req.Cmd {
	case protocol.CmdStatus:
		return protocol.Allows(acl.See, user)
	case protocol.CmdJoin, protocol.CmdLeave:
		return protocol.Allows(acl.Join, user)
	}
	return protocol.Allows(acl.Control, user)
}

// assignment returns the session speaker is assigned to, "" if none.
func (d *sessionDirectory) assignment(speaker string) string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.assigned[speaker]
}

// apply takes a message published (or restored) on topic: a SessionInfo or
// an Assignment replaces the one before, an empty payload removes it, and
// any other topic is none of its business. A payload it cannot read is an
// error and changes nothing.
func (d *sessionDirectory) apply(topic string, payload []byte) error {
	switch {
	case filterCovers(protocol.SessionInfoFilter, topic):
		session, ok := protocol.SessionFromTopic(topic)
		if !ok {
			return errors.New("session info of an invalid session name")
		}
		if isEmpty(payload) {
			d.mu.Lock()
			delete(d.acls, session)
			d.mu.Unlock()
			return nil
		}
		info, err := protocol.Decode[protocol.SessionInfo](payload)
		if err != nil {
			return err
		}
		if info.Session != session {
			return fmt.Errorf("session info of %q on the topic of %q", info.Session, session)
		}
		d.mu.Lock()
		d.acls[session] = info.ACL
		d.mu.Unlock()
	case filterCovers(protocol.AssignFilter, topic):
		speaker, ok := protocol.SpeakerFromTopic(topic)
		if !ok {
			return errors.New("assignment of an invalid speaker id")
		}
		if isEmpty(payload) {
			d.mu.Lock()
			delete(d.assigned, speaker)
			d.mu.Unlock()
			return nil
		}
		a, err := protocol.Decode[protocol.Assignment](payload)
		if err != nil {
			return err
		}
		if a.Speaker != speaker {
			return fmt.Errorf("assignment of %q on the topic of %q", a.Speaker, speaker)
		}
		if a.Session != "" {
			if err := protocol.ValidName(a.Session); err != nil {
				return err
			}
		}
		d.mu.Lock()
		d.assigned[speaker] = a.Session
		d.mu.Unlock()
	}
	return nil
}

// restore applies the retained messages of a store, skipping (and logging)
// those it cannot read.
func (d *sessionDirectory) restore(retained []storage.Message, logger *slog.Logger) {
	for _, m := range retained {
		if err := d.apply(m.TopicName, m.Payload); err != nil {
			logger.Warn("stored session info or assignment ignored", "topic", m.TopicName, "err", err)
		}
	}
}

func isEmpty(payload []byte) bool { return len(bytes.TrimSpace(payload)) == 0 }

// sessionTracker is the mochi hook that feeds published SessionInfo and
// Assignment messages to the directory. It is added after every hook that
// may drop a publish (authHook, leaseArbiter), so it sees only what mochi
// will retain and deliver. mochi runs OnPublish before delivering: an
// assignment takes effect before its speaker receives it, so the speaker's
// subscription to its new session, which follows, is allowed.
type sessionTracker struct {
	mqtt.HookBase
	sessions *sessionDirectory
	logger   *slog.Logger
}

func (h *sessionTracker) ID() string { return "tutti-sessions" }

func (h *sessionTracker) Provides(b byte) bool { return b == mqtt.OnPublish }

// OnPublish drops a SessionInfo or Assignment it cannot read, so that what
// is retained there is always what the broker enforces.
func (h *sessionTracker) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if err := h.sessions.apply(pk.TopicName, pk.Payload); err != nil {
		h.logger.Warn("publish dropped: unreadable session info or assignment", "client", cl.ID, "topic", pk.TopicName, "err", err)
		return pk, packets.CodeSuccessIgnore
	}
	return pk, nil
}
