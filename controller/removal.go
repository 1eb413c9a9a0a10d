package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"

	"github.com/tutti-audio/tutti/protocol"
)

// Removing a song (an admin's remove, on the library command topic): an
// upload, or a song whose files left the music folders; one with a file in
// a music folder is refused (inMusicFolder). The library loop hands the request to the session loop, which owns the
// playlists: their entries of the song go first (the store's entries refer
// to the song's record), then the record, its retained topic (standbys
// forget it when it is cleared) and the file.

// inMusicFolder refuses to remove a song that has a file in a music
// folder: tutti never changes the folders, so the song would stay (and its
// record come back at the next change of the file). The person is told
// where the file is, to delete it there. Songs whose files left the folders
// (missing) and uploads are removed.
func (c *Controller) inMusicFolder(sha string) error {
	files, err := c.store.songFiles(sha)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return nil
	}
	more := ""
	if len(files) > 1 {
		more = fmt.Sprintf(" and %d more", len(files)-1)
	}
	return fmt.Errorf("%w %s: delete the file there (%s%s); tutti never changes the music folders",
		errInMusicFolder, files[0].root, files[0].path, more)
}

// errInMusicFolder is remove's answer for a song with a file in a music
// folder.
var errInMusicFolder = errors.New("the song is in the music folder")

// removal is a remove request on its way to the session loop.
type removal struct {
	who     asker
	replyTo string
	req     protocol.Request
}

// removeResult is the result of remove.
type removeResult struct {
	Song    protocol.Song `json:"song"`
	Dropped int           `json:"dropped"` // playlist entries of it, removed
}

// queueRemoval hands r to the session loop.
func (c *Controller) queueRemoval(ctx context.Context, r removal) {
	select {
	case c.removals <- r:
	case <-ctx.Done():
	}
}

// removeSong carries out a removal and answers it (session loop).
func (c *Controller) removeSong(r removal) {
	result, err := c.remove(r.who, r.req)
	c.reply(r.replyTo, r.req, result, err)
}

func (c *Controller) remove(who asker, req protocol.Request) (removeResult, error) {
	if !c.lease.leading() {
		return removeResult{}, errLeaseLost
	}
	if err := protocol.CheckFields(req); err != nil {
		return removeResult{}, err
	}
	if err := who.mayAdminister(req.Cmd); err != nil {
		return removeResult{}, err
	}
	song, err := c.knownSong(req.Song)
	if err != nil {
		return removeResult{}, err
	}
	if err := c.inMusicFolder(song.SHA256); err != nil {
		return removeResult{}, err
	}
	dropped, err := c.dropEntriesOf(song.SHA256)
	if err != nil {
		return removeResult{}, err
	}
	converted, err := c.dropConversionOf(song.SHA256) // convert.go
	if err != nil {
		return removeResult{}, err
	}
	dropped += converted
	if err := c.store.deleteSong(song.SHA256); err != nil {
		return removeResult{}, fmt.Errorf("not stored: %v", err)
	}
	c.retractSong(song.SHA256)
	if err := os.Remove(c.lib.songPath(song.SHA256)); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Error("removed song's file not deleted", "sha256", song.SHA256, "err", err)
	}
	c.log.Info("song removed", "sha256", song.SHA256, "title", song.Title, "by", who.name(), "entries", dropped)
	return removeResult{Song: song, Dropped: dropped}, nil
}

// dropEntriesOf dequeues every playlist entry of song sha, as a dequeue
// command would (a playing entry gives way to the next), and publishes the
// sessions it changed. It returns how many entries went.
func (c *Controller) dropEntriesOf(sha string) (int, error) {
	names := make([]string, 0, len(c.sessions))
	for name := range c.sessions {
		names = append(names, name)
	}
	sort.Strings(names)
	dropped := 0
	for _, name := range names {
		s := c.sessions[name]
		next := s
		lead := c.leadOf(name)
		for {
			i := slices.IndexFunc(next.Playlist.Entries, func(e protocol.Entry) bool { return e.Song == sha })
			if i < 0 {
				break
			}
			var err error
			next, _, err = apply(c.now(), lead, next, protocol.Request{Cmd: protocol.CmdDequeue, Entry: next.Playlist.Entries[i].ID}, nil, nil)
			if err != nil {
				return dropped, fmt.Errorf("session %s: %w", name, err)
			}
			dropped++
		}
		if len(next.Playlist.Entries) == len(s.Playlist.Entries) {
			continue
		}
		next = c.stamp(next)
		if err := c.store.saveSession(next, true); err != nil {
			return dropped, fmt.Errorf("session %s not stored: %v", name, err)
		}
		c.sessions[name] = next
		c.publish(protocol.PlaylistTopic(name), true, protocol.Encode(next.Playlist))
		c.publish(protocol.SessionStateTopic(name), true, protocol.Encode(next.State))
	}
	return dropped, nil
}

// retractSong clears a removed song's retained record: standbys forget it.
func (c *Controller) retractSong(sha string) {
	c.publish(protocol.LibrarySongTopic(sha), true, []byte{})
}

// forgetSong is a standby's removal of a song the holder removed: its
// playlists, mirrored from the holder's, no longer refer to it.
func (c *Controller) forgetSong(sha string) {
	if err := c.store.deleteSong(sha); err != nil {
		c.log.Warn("removed song's record not deleted", "sha256", sha, "err", err)
		return
	}
	if err := os.Remove(c.lib.songPath(sha)); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Warn("removed song's file not deleted", "sha256", sha, "err", err)
	}
}
