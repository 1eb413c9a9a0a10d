package controller

import (
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// This file is the session loop's event dispatcher: the lease, the
// controller status, acks, speakers seen for the first time, and the
// holder's retained state to mirror, taken from the session inbox in
// arrival order.

// handleEvents handles every queued event, in arrival order.
func (c *Controller) handleEvents() {
	for {
		msg, ok := c.sessionEvents.pop()
		if !ok {
			break
		}
		c.handleEvent(msg)
	}
	c.noteLease()
}

// noteLease tells the other goroutines what the session loop knows of the
// lease.
func (c *Controller) noteLease() {
	c.hold.set(c.lease.term, c.lease.heldUntil())
	c.otherHolder.Store(c.lease.heldByOther(c.local.Now()))
}

// handleEvent dispatches a message the session loop subscribed to.
func (c *Controller) handleEvent(msg inbound) {
	now := c.local.Now()
	switch {
	case msg.topic == protocol.LeaseTopic:
		if len(msg.payload) == 0 {
			return
		}
		m, err := protocol.Decode[protocol.Lease](msg.payload)
		if err != nil {
			c.log.Warn("bad lease message", "err", err)
			return
		}
		// The lease counts from when the message came, not from when a
		// busy loop got to it.
		heard := msg.at
		if heard.IsZero() {
			heard = now
		}
		if msg.retained {
			c.doLease(c.lease.observeRetained(m, heard))
		} else {
			c.doLease(c.lease.observe(m, heard))
		}
		if m.Holder != c.instance && m.Holder == c.lease.holder && m.Term == c.lease.term && m.FetchToken != "" {
			// The holder's tokens: our song server accepts them, and our
			// mirror fetches with them.
			c.tokens.set(m.FetchToken)
			c.mirror.setSource(m.SongsURL, m.FetchToken)
		}
	case msg.topic == protocol.ControllerStatusTopic:
		c.onControllerStatus(msg.payload, now)
	default:
		c.handleStateEvent(msg)
	}
}

func (c *Controller) handleStateEvent(msg inbound) {
	if id, ok := protocol.SpeakerFromTopic(msg.topic); ok {
		switch msg.topic {
		case protocol.AckTopic(id):
			ack, err := protocol.Decode[protocol.Ack](msg.payload)
			if err != nil {
				c.log.Warn("bad ack", "speaker", id, "err", err)
				return
			}
			c.quorum.note(id, ack)
			c.settleReplies()
		case protocol.SpeakerStatusTopic(id): // seen for the first time (noteSpeaker)
			if c.lease.leading() {
				c.assignNew(id)
			}
		case protocol.AssignTopic(id):
			if err := c.mirrorAssignment(id, msg.payload); err != nil {
				c.log.Warn("assignment not mirrored", "speaker", id, "err", err)
			}
		}
		return
	}
	if sha, ok := protocol.SongFromTopic(msg.topic); ok {
		c.mirrorSong(sha, msg.payload)
		return
	}
	if id, ok := protocol.SavedPlaylistFromTopic(msg.topic); ok {
		if err := c.mirrorSavedPlaylist(id, msg.payload); err != nil {
			c.log.Warn("saved playlist not mirrored", "playlist", id, "err", err)
		}
		return
	}
	name, ok := protocol.SessionFromTopic(msg.topic)
	if !ok {
		return
	}
	var err error
	switch {
	case len(msg.payload) == 0:
		err = c.mirrorGone(name, msg.topic)
	case msg.topic == protocol.SessionInfoTopic(name):
		err = c.mirrorInfo(name, msg.payload)
	case msg.topic == protocol.PlaylistTopic(name):
		err = c.mirrorPlaylist(name, msg.payload)
	default:
		err = c.mirrorState(name, msg.payload)
	}
	if err != nil {
		c.log.Warn("session message not mirrored", "topic", msg.topic, "err", err)
	}
}

// onControllerStatus watches the shared status topic: a will of the holder
// ends its lease now, and while we hold the lease nobody else's status may
// stay there.
func (c *Controller) onControllerStatus(payload []byte, now time.Time) {
	if len(payload) == 0 {
		return
	}
	st, err := protocol.Decode[protocol.ControllerStatus](payload)
	if err != nil {
		c.log.Warn("bad controller status", "err", err)
		return
	}
	if !st.Online {
		c.doLease(c.lease.holderGone(st.Instance, now))
	}
	if c.lease.leading() && (st.Instance != c.instance || !st.Online) {
		c.publishStatus()
	}
}
