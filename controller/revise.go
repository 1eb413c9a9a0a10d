package controller

import (
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// reviseSessions applies revise, a change the controller makes on its own
// (songs gone missing, gains measured), to every session at a shared
// instant now+lead, and stores and publishes the sessions it changed
// (session loop). what names the change in a log line if one is not stored.
func (c *Controller) reviseSessions(what string, revise func(now int64, lead time.Duration, s session) (session, bool)) {
	for name, s := range c.sessions {
		next, changed := revise(c.now(), c.leadOf(name), s)
		if !changed {
			continue
		}
		next = c.stamp(next)
		if err := c.store.saveSession(next, true); err != nil {
			c.log.Error(what+" not stored", "session", name, "err", err)
			continue
		}
		c.sessions[name] = next
		c.publish(protocol.PlaylistTopic(name), true, protocol.Encode(next.Playlist))
		c.publish(protocol.SessionStateTopic(name), true, protocol.Encode(next.State))
	}
}
