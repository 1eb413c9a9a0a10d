package controller

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/tutti-audio/tutti/musicfolder"
	"github.com/tutti-audio/tutti/protocol"
)

// Music folders (Options.MusicDirs): every controller that reaches them
// indexes them in place (musicfolder), standbys too, so each serves their
// songs from the folders' own files; uploads still go to songs/. A standby
// that cannot reach them fetches the songs its mirrored playlists name from
// the holder, as it does uploads. Folder songs are not announced on the
// library topics: speakers replicate every song announced live, and a
// household's library would fill their caches.

// folderIndex is the musicfolder.Index of the controller: the files table
// and the songs read from them.
type folderIndex struct {
	c *Controller
}

func (x folderIndex) Lookup(path string) (size, modNs int64, ok bool) {
	size, modNs, ok, err := x.c.store.fileStat(path)
	if err != nil {
		x.c.log.Error("music folders: file record not read", "path", path, "err", err)
	}
	return size, modNs, ok
}

func (x folderIndex) Paths(root string) ([]string, error) { return x.c.store.filePaths(root) }

// Put records a file read from a music folder, and its song. A file whose
// audio tutti does not play is recorded without a song, so it is not read
// again until it changes.
func (x folderIndex) Put(f musicfolder.File) error {
	song, err := folderSong(f)
	if err != nil {
		x.c.log.Warn("music folders: not a playable song", "path", f.Path, "err", err)
		song = protocol.Song{}
	}
	replaced, wasMissing, err := x.c.store.putFile(musicFile{path: f.Path, root: f.Root, size: f.Size, modNs: f.ModNs, sha: f.SHA256}, song, x.c.now())
	if err != nil {
		return err
	}
	if wasMissing {
		x.c.log.Info("song back in the music folders", "sha256", song.SHA256, "path", f.Path)
		x.c.notePresence(song.SHA256)
	}
	if replaced != "" {
		x.checkGone(replaced)
	}
	if song.SHA256 != "" && song.Frames == 0 {
		x.c.poke(x.c.measureWake)
	}
	return nil
}

// Move records a file moved within the music folders: the same song.
func (x folderIndex) Move(from, to, root string) error { return x.c.store.moveFile(from, to, root) }

// Remove forgets the file (or folder) at path; songs left without a file
// are missing.
func (x folderIndex) Remove(path string) error {
	shas, err := x.c.store.removeFiles(path)
	if err != nil {
		return err
	}
	slices.Sort(shas)
	for _, sha := range slices.Compact(shas) {
		x.checkGone(sha)
	}
	return nil
}

// checkGone marks song sha missing when none of its files is left and it
// has no upload copy.
func (x folderIndex) checkGone(sha string) {
	files, err := x.c.store.songFiles(sha)
	if err != nil {
		x.c.log.Error("music folders: song's files not read", "sha256", sha, "err", err)
		return
	}
	if len(files) > 0 || x.c.lib.holdsUpload(sha) {
		return
	}
	changed, err := x.c.store.markMissing(sha, true)
	if err != nil {
		x.c.log.Error("music folders: song not marked missing", "sha256", sha, "err", err)
		return
	}
	if changed {
		x.c.log.Info("song missing: its files left the music folders", "sha256", sha)
		x.c.notePresence(sha)
	}
}

// folderSong is the song record of a file read from a music folder, or
// why tutti cannot play it.
func folderSong(f musicfolder.File) (protocol.Song, error) {
	song := f.Tags.Song
	song.SHA256, song.URI, song.Size, song.Format = f.SHA256, protocol.SongURI(f.SHA256), f.Size, f.Format
	if song.Title == "" {
		song.Title = musicfolder.TitleFromName(f.Path)
	}
	if song.Title == "" {
		song.Title = f.SHA256[:12]
	}
	l := f.Length
	switch {
	case l.SampleRate == 0 && l.Frames == 0:
		// Not known from the headers (M4A): the rate comes with the length.
	case l.SampleRate < minSampleRate || l.SampleRate > maxSampleRate:
		return song, fmt.Errorf("sample rate %d Hz outside %d-%d Hz", l.SampleRate, minSampleRate, maxSampleRate)
	case l.Channels < 1 || l.Channels > maxChannels:
		return song, fmt.Errorf("%d channels: tutti plays mono and stereo", l.Channels)
	case l.Frames > int64(maxSongDuration.Seconds())*int64(l.SampleRate):
		return song, fmt.Errorf("longer than %v", maxSongDuration)
	}
	song.Frames, song.SampleRate = l.Frames, l.SampleRate
	song.DurationNs = protocol.FramesToNs(song.Frames, song.SampleRate)
	return song, nil
}

// openSong opens song sha's file: the upload copy in songs/, else one of
// its files in the music folders that still has the size and time it was
// hashed with (a file changed since is not served under its old hash).
func (l *library) openSong(sha string) (*os.File, error) {
	f, err := os.Open(l.songPath(sha))
	if !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	files, err := l.store.songFiles(sha)
	if err != nil {
		return nil, err
	}
	for _, mf := range files {
		f, err := os.Open(mf.path)
		if err != nil {
			continue
		}
		info, err := f.Stat()
		if err == nil && info.Mode().IsRegular() && info.Size() == mf.size && info.ModTime().UnixNano() == mf.modNs {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("song %s: %w", sha, fs.ErrNotExist)
}

// holdsUpload says whether song sha has an upload copy in songs/.
func (l *library) holdsUpload(sha string) bool {
	_, err := os.Stat(l.songPath(sha))
	return err == nil
}

// folderOnly says whether s is a music folder's song without an upload
// copy (or one whose files went missing): such songs are not announced.
// inFolders are the songs with files in the music folders (folderSongs).
func (c *Controller) folderOnly(s protocol.Song, inFolders map[string]bool) bool {
	return s.Missing || inFolders[s.SHA256] && !c.lib.holdsUpload(s.SHA256)
}

// runFolders indexes the music folders until ctx is done, and measures the
// songs whose length their headers did not tell.
func (c *Controller) runFolders(ctx context.Context) error {
	if len(c.opts.MusicDirs) == 0 {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.measureLoop(ctx)
	}()
	defer func() { <-done }()
	return c.scanner.Run(ctx)
}

// maxMeasureBatch bounds the songs the measuring loop lists at once.
const maxMeasureBatch = 64

// measureLoop decodes, one at a time (through the library's analysis
// slot, shared with uploads), the folder songs whose headers did not give
// their exact length: only then may they be enqueued.
func (c *Controller) measureLoop(ctx context.Context) {
	failed := map[string]bool{} // not decodable: not tried again until restart
	for {
		todo, err := c.store.unmeasuredSongs(maxMeasureBatch + len(failed))
		if err != nil {
			c.log.Error("music folders: songs to measure not listed", "err", err)
		}
		measured := 0
		for _, f := range todo {
			if ctx.Err() != nil {
				return
			}
			if failed[f.sha] {
				continue
			}
			if err := c.measure(f); err != nil {
				c.log.Warn("music folders: song length not measured; it cannot be played", "sha256", f.sha, "path", f.path, "err", err)
				failed[f.sha] = true
				continue
			}
			measured++
		}
		if measured > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-c.measureWake:
		}
	}
}

// measure decodes one song's file to count its frames.
func (c *Controller) measure(f musicFile) (err error) {
	// Decoders of third-party formats can panic on hostile input.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder failed: %v", p)
		}
	}()
	song, err := c.store.song(f.sha)
	if err != nil {
		return err
	}
	file, err := c.lib.openSong(f.sha)
	if err != nil {
		return err
	}
	defer file.Close()
	c.lib.analyzing.Lock()
	defer c.lib.analyzing.Unlock()
	frames, rate, err := countFrames(file, song.Format, nil)
	if err != nil {
		return err
	}
	return c.store.setLength(f.sha, frames, rate)
}

// poke wakes whoever waits on ch, once.
func (c *Controller) poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// notePresence hands a song that went missing or came back to the session
// loop, which marks the playlists' entries of it.
func (c *Controller) notePresence(sha string) {
	c.presenceMu.Lock()
	c.presence[sha] = true
	c.presenceMu.Unlock()
	c.poke(c.presenceWake)
}

// scanProgressed notes a scan's progress for the controller status (the
// session loop publishes it).
func (c *Controller) scanProgressed(p protocol.ScanProgress) {
	c.scanProgress.Store(&p)
	c.poke(c.statusWake)
}

// startScan runs the scan command: an admin's rescan of the music folders.
func (c *Controller) startScan(who asker) (protocol.ScanProgress, error) {
	if err := who.mayAdminister(protocol.CmdScan); err != nil {
		return protocol.ScanProgress{}, err
	}
	if c.scanner == nil {
		return protocol.ScanProgress{}, errors.New("this controller has no music folders (--music DIR)")
	}
	// The scan asked for starts after the last one started (the first
	// scan, or one running, ends first).
	next := protocol.ScanProgress{Number: 1, Scanning: true}
	if last := c.scanProgress.Load(); last != nil {
		next.Number = last.Number + 1
	}
	c.scanner.Rescan()
	return next, nil
}

// updatePresence marks, in every playlist, the entries of the songs that
// went missing or came back (session loop). Only the holder changes
// playlists; a standby mirrors the holder's.
func (c *Controller) updatePresence() {
	c.presenceMu.Lock()
	shas := c.presence
	c.presence = map[string]bool{}
	c.presenceMu.Unlock()
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
	for name, s := range c.sessions {
		lead := c.opts.Lead
		if lead == 0 {
			lead = leadFor(c.speakersOf(name))
		}
		next, changed := markMissing(c.now(), lead, s, missing)
		if !changed {
			continue
		}
		next = c.stamp(next)
		if err := c.store.saveSession(next, true); err != nil {
			c.log.Error("missing songs not marked", "session", name, "err", err)
			continue
		}
		c.sessions[name] = next
		c.publish(protocol.PlaylistTopic(name), true, protocol.Encode(next.Playlist))
		c.publish(protocol.SessionStateTopic(name), true, protocol.Encode(next.State))
	}
}

// markMissing marks s's entries of the songs in missing as missing (true)
// or present (false), from shared instant now+lead: a playing entry that
// goes missing ends then, and the timeline goes on with the next, as
// every role skips a missing entry.
func markMissing(now int64, lead time.Duration, s session, missing map[string]bool) (session, bool) {
	differs := func(e protocol.Entry) bool { m, ok := missing[e.Song]; return ok && m != e.Missing }
	if !slices.ContainsFunc(s.Playlist.Entries, differs) {
		return s, false
	}
	next := settle(s, now)
	at := max(now+int64(lead), next.State.Anchor.AtNs)
	idx, pos, st := next.cursor(at)
	next.Playlist.Entries = slices.Clone(next.Playlist.Entries)
	for i, e := range next.Playlist.Entries {
		if differs(e) {
			next.Playlist.Entries[i].Missing = missing[e.Song]
		}
	}
	if idx >= 0 && next.Playlist.Entries[idx].Missing {
		pos = 0
	}
	next.reanchor(at, idx, pos, st)
	next, _, err := commit(s, next, change{AtNs: at, StateChanged: true, PlaylistChanged: true})
	return next, err == nil
}

// scanStatus is the scan progress to publish in the controller status.
func (c *Controller) scanStatus() *protocol.ScanProgress {
	if c.scanner == nil {
		return nil
	}
	return c.scanProgress.Load()
}
