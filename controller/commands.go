package controller

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/tutti-audio/tutti/protocol"
)

// publishAll publishes the library's records and saved playlists, every
// session's info (which the broker's ACL follows), playlist, then state, the
// speakers' assignments, and last the controller status, which tells clients
// that commands are heard.
func (c *Controller) publishAll() {
	c.publishLibrary()
	c.publishSavedPlaylists()
	names := make([]string, 0, len(c.sessions))
	for name := range c.sessions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := c.sessions[name]
		c.publishInfo(name, s)
		c.publish(protocol.PlaylistTopic(name), true, protocol.Encode(s.Playlist))
		c.publish(protocol.SessionStateTopic(name), true, protocol.Encode(s.State))
	}
	c.mu.Lock()
	assignments := slices.Collect(maps.Values(c.assignments))
	c.mu.Unlock()
	slices.SortFunc(assignments, func(a, b protocol.Assignment) int { return strings.Compare(a.Speaker, b.Speaker) })
	for _, a := range assignments {
		c.publish(protocol.AssignTopic(a.Speaker), true, protocol.Encode(a))
	}
	c.publishStatus()
}

// commandResult is the result of a session command.
type commandResult struct {
	AtNs     int64                 `json:"at_ns,omitempty"` // when a scheduled change takes effect
	Entry    string                `json:"entry,omitempty"` // enqueue: the new entry's id
	State    protocol.SessionState `json:"state"`
	Acked    int                   `json:"acked"`    // speakers that acknowledged the state (a quorum)
	Speakers int                   `json:"speakers"` // speakers in the session
}

// loadResult is the result of a load: the song, and how many nodes hold it.
type loadResult struct {
	protocol.Song
	Holders int `json:"holders"` // this controller and the speakers holding it verified (a quorum)
	Nodes   int `json:"nodes"`   // this controller and every known speaker
}

// errLeaseLost answers requests that were waiting when we lost the lease.
var errLeaseLost = errors.New("the controller lost its lease while handling this; the new one has the state: check and retry")

// statusResult is the result of the status command.
type statusResult struct {
	State    protocol.SessionState    `json:"state"`
	Playlist protocol.Playlist        `json:"playlist"`
	Speakers []protocol.SpeakerStatus `json:"speakers"`
}

// handleSessionRequest answers a request on a session's command topic or on
// the sessions command topic.
func (c *Controller) handleSessionRequest(msg inbound) {
	plain, user, signed := protocol.CommandTopic(msg.topic)
	commands := protocol.SessionCommands
	if plain == protocol.SessionsCommandTopic {
		commands = protocol.SessionsCommands
	}
	req, decodeErr := protocol.DecodeRequest(msg.payload, commands)
	replyTo, replyErr := replyTopic(req, user, signed)
	who, err := c.askerFor(msg.topic, user, signed)
	err = cmp.Or(err, decodeErr, replyErr)
	var result any
	var wait *pending
	switch {
	case err != nil:
	case plain == protocol.SessionsCommandTopic:
		result, err = c.runSessionsCommand(who, req)
	default:
		result, wait, err = c.runSessionCommand(who, plain, req)
	}
	if c.retryWhenConverted(msg, err) {
		return // convert.go: it runs again once its song is converted
	}
	if wait != nil {
		wait.replyTo = replyTo
		c.quorum.add(wait)
		c.settleReplies()
		return
	}
	c.reply(replyTo, req, result, err)
}

// replyTopic is where to answer req, signed by user if signed: its reply_to
// if that lies below the user's own reply topic (which only that user may
// read), else the user's own reply topic, where a refusal goes. A request
// whose signature is not a valid name counts as anonymous.
func replyTopic(req protocol.Request, user string, signed bool) (string, error) {
	if !signed {
		user = ""
	}
	return protocol.ReplyTopic(req.ReplyTo, user)
}

// askerFor accepts or refuses the sender of a request that came on topic,
// signed with user, and takes one of its rate tokens for that topic.
func (c *Controller) askerFor(topic, user string, signed bool) (asker, error) {
	if !signed {
		return asker{}, fmt.Errorf("topic %q: not a command topic, or not signed with a valid user name", topic)
	}
	role := roleMember
	if user != "" && c.opts.Roles != nil {
		role = c.opts.Roles(user)
	}
	who, err := askerOf(user, role, c.opts.Open)
	if err != nil {
		return who, err
	}
	plain, _, _ := protocol.CommandTopic(topic)
	return who, c.limiter.allow(user, plain, c.local.Now())
}

// runSessionCommand runs a command on the session whose command topic is
// topic; a change that speakers must acknowledge comes back as a pending
// reply.
func (c *Controller) runSessionCommand(who asker, topic string, req protocol.Request) (any, *pending, error) {
	name, ok := protocol.SessionFromTopic(topic)
	s, known := c.sessions[name]
	if !ok || !known {
		return nil, nil, fmt.Errorf("unknown session %q", name)
	}
	if err := who.may(rightFor(req.Cmd), name, s.ACL); err != nil {
		return nil, nil, err
	}
	if req.Cmd == protocol.CmdAnnounce {
		a, err := c.announce(name, req)
		return a, nil, err
	}
	if req.Cmd == protocol.CmdJoin || req.Cmd == protocol.CmdLeave || req.Cmd == protocol.CmdVolume && req.Speaker != "" {
		a, err := c.runAssignCommand(who, name, req)
		return a, nil, err
	}
	var songs []protocol.Song
	if req.Cmd == protocol.CmdEnqueue && req.Song != "" {
		var err error
		if songs, err = c.songsOfRef(req.Song); err == nil {
			songs, err = c.playableSongs(songs) // convert.go
		}
		if err != nil {
			return nil, nil, err
		}
	}
	lead := c.leadOf(name)
	next, ch, err := apply(c.now(), lead, s, req, songs, c.shuffleRand)
	if err == nil && ch.PlaylistChanged {
		next, err = c.entryGains(s, next)
	}
	if err != nil {
		return nil, nil, err
	}
	if ch.StateChanged {
		next = c.stamp(next)
		if err := c.store.saveSession(next, ch.PlaylistChanged); err != nil {
			c.log.Error("session not stored", "session", name, "cmd", req.Cmd, "err", err)
			return nil, nil, fmt.Errorf("not stored: %v", err)
		}
		c.sessions[name] = next
		if ch.PlaylistChanged {
			c.publish(protocol.PlaylistTopic(name), true, protocol.Encode(next.Playlist))
		}
		c.publish(protocol.SessionStateTopic(name), true, protocol.Encode(next.State))
	}
	speakers := c.speakersOf(name)
	if req.Cmd == protocol.CmdStatus {
		return statusResult{State: next.State, Playlist: next.Playlist, Speakers: speakers}, nil, nil
	}
	result := &commandResult{AtNs: ch.AtNs, Entry: ch.Entry, State: next.State, Speakers: len(speakers)}
	if !ch.StateChanged || len(speakers) == 0 {
		return result, nil, nil
	}
	members := make([]string, len(speakers))
	for i, sp := range speakers {
		members[i] = sp.ID
	}
	return result, &pending{req: req, result: result, session: name, term: next.State.Term, seq: next.State.Seq,
		members: members, deadline: c.local.Now().Add(stateQuorumTimeout)}, nil
}

// speakersOf lists the speakers assigned to session name whose status is
// known.
func (c *Controller) speakersOf(name string) []protocol.SpeakerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []protocol.SpeakerStatus{}
	for id, st := range c.speakers {
		if a, ok := c.assignments[id]; ok && a.Session == name {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b protocol.SpeakerStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// knownSong resolves a song reference to a song in the library.
func (c *Controller) knownSong(ref string) (protocol.Song, error) {
	sha, _, err := protocol.ParseSongRef(ref)
	if err != nil {
		return protocol.Song{}, err
	}
	song, err := c.store.song(sha)
	if errors.Is(err, errUnknownSong) {
		return song, fmt.Errorf("unknown song %s: upload it with PUT %s%s", sha, c.songsURL, sha)
	}
	return song, err
}

// replicate has a loaded song announced live, so speakers fetch it, and
// answers once a quorum of nodes holds it. With speakers to wait for, the
// session loop makes the announcement once it counts their acks (an ack that
// came earlier would be lost); without, it is announced and answered here.
func (c *Controller) replicate(ctx context.Context, replyTo string, req protocol.Request, song protocol.Song) {
	var members []string
	c.mu.Lock()
	for id := range c.speakers {
		members = append(members, id)
	}
	c.mu.Unlock()
	sort.Strings(members)
	p := pending{replyTo: replyTo, req: req, result: &loadResult{Song: song}, song: song.SHA256,
		members: members, self: true, deadline: c.local.Now().Add(songQuorumTimeout)}
	if len(members) == 0 {
		c.announceSong(song)
		p.fill(1)
		c.reply(replyTo, req, p.result, nil)
		return
	}
	select {
	case c.pendingLoads <- p:
	case <-ctx.Done():
	}
}

func (c *Controller) runLibraryCommand(req protocol.Request) (any, error) {
	if err := protocol.CheckFields(req); err != nil {
		return nil, err
	}
	switch req.Cmd {
	case protocol.CmdLoad:
		if req.Path != "" {
			return c.importPath(req.Path)
		}
		return c.knownSong(req.Song)
	case protocol.CmdLookup:
		return c.lookup(req.Song) // links.go
	case protocol.CmdSearch:
		return c.search(req)
	case protocol.CmdPlaylists, protocol.CmdPlaylistShow, protocol.CmdPlaylistCreate, protocol.CmdPlaylistRename,
		protocol.CmdPlaylistDelete, protocol.CmdPlaylistAdd, protocol.CmdPlaylistRemove:
		return c.runPlaylistCommand(req)
	case protocol.CmdArtists, protocol.CmdAlbums, protocol.CmdTracks, protocol.CmdRecent, protocol.CmdGenres:
		return c.browse(req) // browse.go
	}
	return nil, fmt.Errorf("%w %q", protocol.ErrUnknownCommand, req.Cmd)
}

// importPath adds a file below the import directory to the library.
func (c *Controller) importPath(path string) (protocol.Song, error) {
	resolved, err := resolveImport(c.opts.ImportDir, path)
	if err != nil {
		return protocol.Song{}, err
	}
	f, err := os.Open(resolved)
	if err != nil {
		return protocol.Song{}, fmt.Errorf("load %q: %w", path, err)
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		return protocol.Song{}, fmt.Errorf("load %q: not a regular file", path)
	}
	song, created, err := c.lib.add(f, "", filepath.Base(resolved))
	if err != nil {
		return song, fmt.Errorf("load %q: %w", path, err)
	}
	if created {
		c.log.Info("song imported", "path", resolved, "sha256", song.SHA256, "title", song.Title)
	}
	return song, nil
}

// resolveImport turns a requested path into a file path that is surely below
// root (itself absolute and free of symlinks): relative paths are taken from
// root, and the path is cleaned and its symlinks resolved before the check.
func resolveImport(root, path string) (string, error) {
	if root == "" {
		return "", errors.New("loading by path is disabled: the controller has no import directory")
	}
	if strings.ContainsRune(path, 0) {
		return "", errors.New("invalid path")
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	resolved, err := filepath.EvalSymlinks(filepath.Clean(path))
	if err != nil {
		return "", fmt.Errorf("load %q: %w", path, unwrapPathError(err))
	}
	rel, err := filepath.Rel(root, resolved)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("load %q: outside the import directory", path)
	}
	return resolved, nil
}

// unwrapPathError drops the path from an *os.PathError, which would reveal
// resolved paths on the controller's disk.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// reply sends the one reply every request gets.
func (c *Controller) reply(topic string, req protocol.Request, result any, err error) {
	if err != nil {
		c.log.Info("request refused", "cmd", req.Cmd, "req_id", req.ReqID, "err", err)
	}
	payload, ok := encodeReply(req, result, err)
	c.log.Debug("reply", "cmd", req.Cmd, "req_id", req.ReqID, "ok", ok, "topic", topic)
	c.publish(topic, false, payload)
}

// encodeReply is the reply to req: its result, or err; ok is false for an
// error, the result's too.
func encodeReply(req protocol.Request, result any, err error) (payload []byte, ok bool) {
	r := protocol.Reply{V: protocol.Version, OK: err == nil, Cmd: req.Cmd, ReqID: req.ReqID}
	if err != nil {
		r.Error = err.Error()
	} else if result != nil {
		b, merr := json.Marshal(result)
		if merr != nil {
			r.OK, r.Error = false, "encode result: "+merr.Error()
		} else {
			r.Result = b
		}
	}
	payload = protocol.Encode(r)
	if len(payload) > protocol.MaxPayload {
		// Brokers refuse larger messages; a status with a full playlist and
		// many speakers can get here.
		r.OK, r.Result = false, nil
		r.Error = fmt.Sprintf("result of %d bytes exceeds the %d byte message limit; read the retained topics instead",
			len(payload), protocol.MaxPayload)
		payload = protocol.Encode(r)
	}
	return payload, r.OK
}
