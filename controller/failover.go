package controller

import (
	"errors"
	"fmt"
	"sort"

	"github.com/tutti-audio/tutti/protocol"
)

// This file is the session loop's side of the lease: carrying out lease
// actions, taking over and stepping down, and, while a standby, mirroring
// the holder's retained state into our store so a takeover starts from it.

// holding says we hold the lease: the song server takes uploads and the
// time master answers only then (leasehold.go).
func (c *Controller) holding() bool { return c.hold.held() }

// ErrNoHolder answers a request that came while no controller held the
// lease, as far as we know: we lost it, or a takeover is under way.
var ErrNoHolder = errors.New("no controller holds the lease at the moment (a takeover is under way): retry in a second")

// notLeading handles a request, of one of commands, that reached us while
// we do not hold the lease. While another controller holds it, that one
// answers; otherwise nobody would, and the sender is told to retry.
func (c *Controller) notLeading(msg inbound, commands []string) {
	if c.otherHolder.Load() {
		return
	}
	req, _ := protocol.DecodeRequest(msg.payload, commands)
	_, user, signed := protocol.CommandTopic(msg.topic)
	replyTo, _ := replyTopic(req, user, signed)
	c.reply(replyTo, req, nil, ErrNoHolder)
}

// doLease carries out a lease action.
func (c *Controller) doLease(a leaseAction) {
	switch a {
	case sendClaim:
		c.log.Info("claiming the lease", "term", c.lease.term)
		c.publishLease(false, true)
	case sendRenew:
		c.publishLease(true, false)
	case takeOver:
		c.takeOver()
	case stepDown:
		c.stepDown()
	}
}

// takeOver makes us the holder: every session and assignment is restamped
// with our term and published, so speakers and standbys follow us from now
// on.
func (c *Controller) takeOver() {
	term := c.lease.term
	// The last holder's token stays valid as the previous one, for
	// speakers that have not seen our lease yet.
	c.tokens.set(randomID() + randomID())
	c.tokenRotatedAt = c.local.Now()
	if !c.opts.ClockFromBroker {
		// Before we answer probes: we are the time master now.
		c.sharedClock.freeze(c.wall.Now().UnixNano(), c.localNow())
	}
	c.noteLease()
	c.mirror.setSource("", "")
	// Retained, this renewal replaces a losing claim retained after ours.
	c.publishLease(true, true)
	c.takeOverAssignments()
	for name, s := range c.sessions {
		next := c.stamp(s)
		if err := c.store.saveSession(next, false); err != nil {
			c.log.Error("session not stored at takeover", "session", name, "err", err)
			continue
		}
		c.sessions[name] = next
	}
	c.log.Info("holding the lease", "term", term, "name", c.opts.Name)
	c.publishAll()
	c.reconvertMissing() // convert.go
	c.importAllM3U()     // m3uimport.go: the M3U files may have changed while another held it
}

// stepDown makes us a standby; replies still waiting for acks fail.
func (c *Controller) stepDown() {
	c.noteLease()
	c.sharedClock.follow(c.localNow())
	c.log.Warn("lost the lease", "term", c.lease.term, "holder", c.lease.holder)
	for _, p := range c.quorum.dropAll() {
		c.reply(p.replyTo, p.req, nil, errLeaseLost)
	}
}

// rotateToken replaces our fetch token, publishing the lease again retained
// so speakers and standbys learn the new one; the old one stays valid until
// the next rotation.
func (c *Controller) rotateToken() {
	c.tokens.set(randomID() + randomID())
	c.tokenRotatedAt = c.local.Now()
	c.log.Info("fetch token rotated", "term", c.lease.term)
	c.publishLease(true, true)
}

// publishLease publishes our claim or renewal without waiting for the
// broker's acknowledgement: what counts is its coming back to us, and
// waiting could hold the session loop, and with it the lease's clock, past
// the TTL while the broker does not answer.
func (c *Controller) publishLease(renewal, retained bool) {
	if !c.client.IsConnectionOpen() {
		return
	}
	token := ""
	if renewal {
		token = c.tokens.get()
	}
	c.client.Publish(protocol.LeaseTopic, 1, retained, protocol.Encode(c.lease.message(renewal, c.opts.Name, c.songsURL, token)))
}

// stamp marks a session with our term and makes its state name its playlist
// exactly; every state and playlist we publish goes through it.
func (c *Controller) stamp(s session) session {
	s.State.Term = c.lease.term
	s.Playlist.Term = c.lease.term
	s.Playlist.NextEntry = s.NextEntry
	s.State.PlaylistVersion = s.Playlist.Version
	s.State.PlaylistHash = s.Playlist.Hash()
	return s
}

// mirrorPlaylist stores a playlist the holder published. Our own echo, and
// anything older than what we have, changes nothing; while we hold the
// lease, an older one on the retained topic is put right.
func (c *Controller) mirrorPlaylist(name string, payload []byte) error {
	pl, err := protocol.Decode[protocol.Playlist](payload)
	if err != nil {
		return err
	}
	if pl.Session != name {
		return errWrongSession(pl.Session, name)
	}
	s, known := c.sessions[name]
	if c.lease.leading() {
		if known && pl.Term < s.Playlist.Term {
			c.log.Warn("a stale playlist was published; publishing ours again", "session", name, "term", pl.Term)
			c.publish(protocol.PlaylistTopic(name), true, protocol.Encode(s.Playlist))
		}
		return nil
	}
	if known && !protocol.Supersedes(pl.Term, pl.Version, s.Playlist.Term, s.Playlist.Version) {
		return nil
	}
	for _, e := range pl.Entries {
		if !protocol.IsSongHash(e.Song) || e.SampleRate <= 0 || e.Frames < 0 {
			return errBadEntry(e)
		}
	}
	if !known {
		if _, err := c.store.createSession(name, "", protocol.Everyone); err != nil {
			return err
		}
		s = newSession(name, "", protocol.Everyone)
	}
	if err := c.store.placeholdSongs(pl.Entries, c.now()); err != nil {
		return err
	}
	s.Playlist = pl
	s.NextEntry = max(s.NextEntry, pl.NextEntry)
	if err := c.store.saveSession(s, true); err != nil {
		return err
	}
	c.sessions[name] = s
	for _, e := range pl.Entries {
		if !e.Missing { // its file is gone from the holder's music folders too
			c.mirror.want(e.Song)
		}
	}
	return nil
}

// mirrorState stores a session state the holder published, as
// mirrorPlaylist does a playlist.
func (c *Controller) mirrorState(name string, payload []byte) error {
	st, err := protocol.Decode[protocol.SessionState](payload)
	if err != nil {
		return err
	}
	if st.Session != name {
		return errWrongSession(st.Session, name)
	}
	s, known := c.sessions[name]
	if c.lease.leading() {
		if known && st.Term < s.State.Term {
			c.log.Warn("a stale state was published; publishing ours again", "session", name, "term", st.Term)
			c.publish(protocol.SessionStateTopic(name), true, protocol.Encode(s.State))
		}
		return nil
	}
	if !known {
		return nil // its playlist comes first; a state alone has nothing to refer to
	}
	if !protocol.Supersedes(st.Term, st.Seq, s.State.Term, s.State.Seq) {
		return nil
	}
	s.State = st
	if err := c.store.saveSession(s, false); err != nil {
		return err
	}
	c.sessions[name] = s
	return nil
}

// mirrorSong stores the holder's record of a song and has its file fetched.
func (c *Controller) mirrorSong(sha string, payload []byte) {
	if c.lease.leading() {
		return
	}
	if len(payload) == 0 { // the holder removed it
		c.forgetSong(sha)
		return
	}
	song, err := protocol.Decode[protocol.Song](payload)
	if err != nil || song.SHA256 != sha || song.DerivedFrom != "" && !protocol.IsSongHash(song.DerivedFrom) {
		c.log.Warn("bad library song record", "sha256", sha, "derived_from", song.DerivedFrom, "err", err)
		return
	}
	song = protocol.CleanSong(song)
	if song.DerivedFrom != "" { // convert.go: the source plays as this FLAC
		err = c.store.linkConverted(song.DerivedFrom, song, c.now())
	} else {
		err = c.store.putSong(song, c.now())
	}
	if err != nil {
		c.log.Error("library song record not stored", "sha256", sha, "err", err)
		return
	}
	c.mirror.want(sha)
}

// publishStatus says we are the controller in charge.
func (c *Controller) publishStatus() {
	online := protocol.ControllerStatus{V: protocol.Version, Online: true, Instance: c.instance, Name: c.opts.Name,
		Term: c.lease.term, SongsURL: c.songsURL, Scan: c.scanStatus()}
	c.publish(protocol.ControllerStatusTopic, true, protocol.Encode(online))
}

// announceSong publishes a new song's record, retained: standbys mirror it,
// and speakers, hearing it live, fetch the song (a `load` then counts them).
func (c *Controller) announceSong(s protocol.Song) {
	c.publish(protocol.LibrarySongTopic(s.SHA256), true, protocol.Encode(s))
}

// publishLibrary publishes the record of every song, so standbys that start
// later mirror the whole library. The publishes are pipelined.
func (c *Controller) publishLibrary() {
	if !c.client.IsConnectionOpen() {
		return
	}
	var songs []protocol.Song
	if err := c.store.allSongs(func(s protocol.Song) { songs = append(songs, s) }); err != nil {
		c.log.Error("library not published", "err", err)
		return
	}
	inFolders, err := c.store.folderSongs()
	if err != nil {
		c.log.Error("library not published", "err", err)
		return
	}
	sources, err := c.store.conversionSources() // convert.go
	if err != nil {
		c.log.Error("library not published", "err", err)
		return
	}
	sort.Slice(songs, func(i, j int) bool { return songs[i].SHA256 < songs[j].SHA256 })
	for _, s := range songs {
		if s.Format == "" {
			continue // a placeholder: only its holder knows the record
		}
		if c.folderOnly(s, inFolders) {
			continue // folders.go: not announced
		}
		s.DerivedFrom = sources[s.SHA256]
		c.client.Publish(protocol.LibrarySongTopic(s.SHA256), 1, true, protocol.Encode(s))
	}
}

// settleReplies sends the replies whose quorum or deadline came.
func (c *Controller) settleReplies() {
	done, errs := c.quorum.settled(c.local.Now())
	for i, p := range done {
		if errs[i] != nil {
			c.reply(p.replyTo, p.req, nil, errs[i])
		} else {
			c.reply(p.replyTo, p.req, p.result, nil)
		}
	}
}

func errWrongSession(got, topic string) error {
	return fmt.Errorf("message of session %q on the topic of %q", got, topic)
}

func errBadEntry(e protocol.Entry) error {
	return fmt.Errorf("bad entry %q (song %q, %d frames at %d Hz)", e.ID, e.Song, e.Frames, e.SampleRate)
}
