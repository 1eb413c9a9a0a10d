package controller

import (
	"cmp"
	"context"
	"time"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/protocol"
)

// This file holds the controller's two loops: the session loop, which
// owns the sessions and the lease, and the library loop.

// sessionLoop owns the sessions and the lease: while we hold the lease it
// handles session commands one at a time, runs auto-advance, and publishes
// retained state after every (re)connect; otherwise it mirrors the holder.
func (c *Controller) sessionLoop(ctx context.Context) error {
	advanceTimer := c.local.NewTimer(time.Hour)
	defer advanceTimer.Stop()
	leaseTicker := c.local.NewTicker(leaseTick(c.opts.LeaseTTL))
	defer leaseTicker.Stop()
	var connects uint64 // c.connects at the last tick
	for {
		c.noteLease()
		var advanceC <-chan time.Time
		if c.lease.leading() {
			c.advanceAll()
			if end, ok := c.nextEntryEnd(); ok {
				advanceTimer.Reset(time.Duration(max(0, end-c.now())))
				advanceC = advanceTimer.C()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.connected:
			if c.lease.leading() {
				c.publishAll()
			}
		case <-c.sessionEvents.ready:
			c.handleEvents()
		case <-c.sessionRequests.ready:
			// The events that came before this request, and since, first;
			// and a lease that ran out while we were busy ends now.
			c.handleEvents()
			c.doLease(c.lease.lapse(c.local.Now()))
			msg, ok := c.sessionRequests.pop()
			switch {
			case !ok:
			case c.lease.leading():
				c.handleSessionRequest(msg)
			default:
				c.notLeading(msg, protocol.SessionCommands)
			}
		case r := <-c.removals:
			c.removeSong(r)
		case <-c.presence.wake:
			c.updatePresence()
		case <-c.gainNews.wake:
			c.updateGains() // albumgain.go
		case <-c.statusWake:
			if c.lease.leading() {
				c.publishStatus()
			}
		case p := <-c.pendingLoads:
			if c.lease.leading() {
				c.quorum.add(&p)
				c.announceSong(p.result.(*loadResult).Song)
				c.settleReplies()
			} else {
				c.reply(p.replyTo, p.req, nil, errLeaseLost)
			}
		case <-leaseTicker.C():
			c.handleEvents() // our renewals that came back, first
			if !c.subscribed.Load() {
				// Cut off: we can neither renew nor claim, but a lease we
				// hold still runs out.
				c.doLease(c.lease.lapse(c.local.Now()))
			} else {
				if n := c.connects.Load(); n != connects {
					connects = n
					c.lease.reconnected(c.local.Now())
				}
				c.doLease(c.lease.tick(c.local.Now(), false))
				// Only while connected: speakers must learn the new token
				// before the one they use expires.
				if c.lease.leading() && clock.Since(c.local, c.tokenRotatedAt) >= c.opts.tokenRotation {
					c.rotateToken()
				}
			}
			c.settleReplies()
		case <-advanceC:
		}
	}
}

// nextEntryEnd is the earliest end of a playing entry over all sessions.
func (c *Controller) nextEntryEnd() (int64, bool) {
	var first int64
	found := false
	for _, s := range c.sessions {
		if end, ok := s.entryEnd(); ok && (!found || end < first) {
			first, found = end, true
		}
	}
	return first, found
}

// advanceAll applies auto-advance to every session whose entry has ended.
func (c *Controller) advanceAll() {
	now := c.now()
	for name, s := range c.sessions {
		next, changed := advance(s, now)
		if !changed {
			continue
		}
		next = c.stamp(next)
		if err := c.store.saveSession(next, false); err != nil {
			c.log.Error("auto-advance not stored", "session", name, "err", err)
			continue
		}
		c.sessions[name] = next
		c.log.Debug("auto-advance", "session", name, "index", next.State.Anchor.Index, "at_ns", next.State.Anchor.AtNs)
		c.publish(protocol.SessionStateTopic(name), true, protocol.Encode(next.State))
	}
}

// libraryLoop handles library commands one at a time, apart from session
// commands, since importing a file can take seconds.
func (c *Controller) libraryLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.libraryRequests.ready:
			msg, ok := c.libraryRequests.pop()
			if !ok {
				continue
			}
			if !c.holding() {
				c.notLeading(msg, protocol.LibraryCommands)
				continue
			}
			req, decodeErr := protocol.DecodeRequest(msg.payload, protocol.LibraryCommands)
			// Everyone askerFor accepts may use the library.
			_, user, signed := protocol.CommandTopic(msg.topic)
			replyTo, replyErr := replyTopic(req, user, signed)
			who, err := c.askerFor(msg.topic, user, signed)
			err = cmp.Or(err, decodeErr, replyErr)
			if err == nil && req.Cmd == protocol.CmdRemove {
				c.queueRemoval(ctx, removal{who: who, replyTo: replyTo, req: req}) // removal.go
				continue
			}
			if err == nil && req.Cmd == protocol.CmdScan {
				progress, err := c.startScan(who) // folders.go
				c.reply(replyTo, req, progress, err)
				continue
			}
			var result any
			if err == nil {
				result, err = c.runLibraryCommand(req)
			}
			if song, ok := result.(protocol.Song); ok && err == nil && req.Cmd == protocol.CmdLoad {
				c.convertAhead([]protocol.Song{song}) // convert.go: an M4A plays at once when wanted
				c.replicate(ctx, replyTo, req, song)
				continue
			}
			c.reply(replyTo, req, result, err)
		}
	}
}
