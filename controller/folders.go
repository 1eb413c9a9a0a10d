package controller

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"

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
	if f.Format == musicfolder.FormatPlaylist {
		return x.putPlaylistFile(f) // m3uimport.go
	}
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
	// songlength.go; loudness waits for the scan's end, which wakes it.
	if song.SHA256 != "" && (song.Frames == 0 || song.ReplayGain == nil && !x.c.scanning()) {
		x.c.poke(x.c.measureWake)
	}
	if song.SHA256 != "" {
		x.c.trackArrived(f.Path) // m3uimport.go
	}
	return nil
}

// Move records a file moved within the music folders: the same song.
func (x folderIndex) Move(from, to, root string) error {
	if err := x.c.store.moveFile(from, to, root); err != nil {
		return err
	}
	return x.moved(from, to, root) // m3uimport.go
}

// Remove forgets the file (or folder) at path; songs left without a file
// are missing.
func (x folderIndex) Remove(path string) error {
	shas, err := x.c.store.removeFiles(path)
	if err != nil {
		return err
	}
	if err := x.c.playlistFilesGone(path); err != nil { // m3uimport.go
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

// filePath is the path of song sha's file as openSong finds it, or its
// path in songs/ when there is none.
func (l *library) filePath(sha string) string {
	f, err := l.openSong(sha)
	if err != nil {
		return l.songPath(sha)
	}
	f.Close()
	return f.Name()
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

// runFolders indexes the music folders until ctx is done, measures the
// songs whose length their headers did not tell, and imports M3U files.
func (c *Controller) runFolders(ctx context.Context) error {
	if len(c.opts.MusicDirs) == 0 {
		return nil
	}
	var loops sync.WaitGroup
	loops.Go(func() { c.measureLoop(ctx) })
	loops.Go(func() { c.m3uLoop(ctx) }) // m3uimport.go
	defer loops.Wait()
	return c.scanner.Run(ctx)
}

// poke wakes whoever waits on ch, once.
func (c *Controller) poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
