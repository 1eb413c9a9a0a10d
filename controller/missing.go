package controller

import (
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// A song whose files all left the music folders (and that has no upload
// copy) is missing: the holder marks its playlist entries, which every
// role skips, and unmarks them when it comes back.

// notePresence hands a song that went missing or came back to the session
// loop, which marks the playlists' entries of it.
func (c *Controller) notePresence(sha string) {
	c.presence.note(sha)
}

// updatePresence marks, in every playlist, the entries of the songs that
// went missing or came back (session loop). Only the holder changes
// playlists; a standby mirrors the holder's.
func (c *Controller) updatePresence() {
	shas := c.presence.take()
	if !c.lease.leading() {
		return
	}
	missing := map[string]bool{}
	for sha := range shas {
		song, err := c.store.song(sha)
		if err != nil {
			continue
		}
		missing[sha] = song.Missing
	}
	c.reviseSessions("missing songs marked", func(now int64, lead time.Duration, s session) (session, bool) {
		return markMissing(now, lead, s, missing)
	})
}

// markMissing marks s's entries of the songs in missing as missing (true)
// or present (false), from shared instant now+lead: a playing entry that
// goes missing ends then, and the timeline goes on with the next, as
// every role skips a missing entry.
func markMissing(now int64, lead time.Duration, s session, missing map[string]bool) (session, bool) {
	differs := func(e protocol.Entry) bool { m, ok := missing[e.Song]; return ok && m != e.Missing }
	return reviseEntries(now, lead, s, differs, func(e *protocol.Entry) { e.Missing = missing[e.Song] })
}
