package controller

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tutti-audio/tutti/musicfolder"
	"github.com/tutti-audio/tutti/protocol"
)

// M3U files in the music folders become saved playlists (m3u.go). Every
// controller that indexes the folders records them (store_m3u.go); the
// lease holder imports them, in the background: a file new or changed, a
// file one of whose missing tracks turned up, and all of them when it takes
// the lease (the playlists it mirrored come out the same: their ids are the
// files' paths). An imported playlist changes only with its file: edits
// over MQTT are refused, and deleting the file deletes it.

// m3uSettle is how long the importer waits after news before it imports:
// the songs of an album copied in with its playlist arrive over a few
// seconds (each read once it settles), and one import after them all beats
// one per song.
const m3uSettle = time.Second

// putPlaylistFile records an M3U file the scan read, to be imported.
func (x folderIndex) putPlaylistFile(f musicfolder.File) error {
	if _, _, err := x.c.store.putFile(musicFile{path: f.Path, root: f.Root, size: f.Size, modNs: f.ModNs, sha: f.SHA256}, protocol.Song{}, x.c.now()); err != nil {
		return err
	}
	file := m3uFile{path: f.Path, root: f.Root}
	if err := x.c.store.putM3UFile(file, importedID(file)); err != nil {
		return err
	}
	x.c.poke(x.c.m3uWake)
	return nil
}

// moved follows a file moved within the music folders: an M3U file's
// playlist, whose id is the file's path, goes, and the file is imported
// anew; a song's file may be a track an M3U file waits for.
func (x folderIndex) moved(from, to, root string) error {
	if !musicfolder.IsPlaylistName(to) {
		x.c.trackArrived(to)
		return nil
	}
	if err := x.c.playlistFilesGone(from); err != nil {
		return err
	}
	file := m3uFile{path: to, root: root}
	if err := x.c.store.putM3UFile(file, importedID(file)); err != nil {
		return err
	}
	x.c.poke(x.c.m3uWake)
	return nil
}

// trackArrived has the M3U files that name a track at path, where the
// library has a song now, imported again.
func (c *Controller) trackArrived(path string) {
	waited, err := c.store.waitedFor(path)
	if err != nil {
		c.log.Error("music folders: playlist files naming a song not looked up", "path", path, "err", err)
	}
	if waited {
		c.poke(c.m3uWake)
	}
}

// playlistFilesGone forgets the M3U files at or below path, which left
// the music folders, and, while we hold the lease, deletes their playlists.
func (c *Controller) playlistFilesGone(path string) error {
	ids, err := c.store.removeM3UFiles(path)
	if err != nil || len(ids) == 0 || !c.holding() {
		return err
	}
	for _, id := range ids {
		if err := c.dropImported(path, id); err != nil {
			return err
		}
	}
	return nil
}

// dropImported deletes saved playlist id, imported from the M3U file at
// path, which went.
func (c *Controller) dropImported(path, id string) error {
	if _, err := c.store.deleteSavedPlaylist(id); err != nil {
		return err
	}
	c.publish(protocol.SavedPlaylistTopic(id), true, []byte{})
	c.log.Info("playlist file gone from the music folders: its saved playlist deleted", "path", path, "playlist", id)
	return nil
}

// importAllM3U has every M3U file imported again: we took the lease, and
// the playlists we mirrored may be behind the files.
func (c *Controller) importAllM3U() {
	if c.scanner == nil {
		return
	}
	if err := c.store.allM3UPending(); err != nil {
		c.log.Error("music folders: playlist files not marked for import", "err", err)
	}
	c.poke(c.m3uWake)
}

// m3uLoop imports the M3U files waiting for it, while we hold the lease,
// once the first scan is over (before, most of their tracks are not
// indexed yet) and news has settled.
func (c *Controller) m3uLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.m3uWake:
		}
		settle := c.local.NewTimer(m3uSettle)
		select {
		case <-ctx.Done():
			settle.Stop()
			return
		case <-settle.C():
		}
		if c.holding() && !c.scanning() {
			c.importPendingM3U()
		}
	}
}

// importPendingM3U imports the M3U files waiting for it. A file that
// cannot be imported is logged, and waits until it changes.
func (c *Controller) importPendingM3U() {
	files, err := c.store.pendingM3UFiles()
	if err != nil {
		c.log.Error("music folders: playlist files to import not listed", "err", err)
		return
	}
	resolve := c.trackResolver()
	for _, f := range files {
		if !c.holding() {
			return // the next holder imports them
		}
		report, err := c.importM3UFile(f, resolve)
		switch {
		case err != nil:
			c.log.Warn("music folders: playlist file not imported; it is tried again when it changes", "path", f.path, "err", err)
		case report.Missing > 0:
			c.log.Warn("music folders: playlist file imported; some of its tracks are not in the library (yet)",
				"path", f.path, "playlist", report.Playlist.ID, "songs", report.Playlist.Songs, "missing", report.Missing,
				"unresolved", report.Unresolved, "skipped", report.Skipped, "truncated", report.Truncated)
		default:
			c.log.Info("music folders: playlist file imported", "path", f.path, "playlist", report.Playlist.ID,
				"songs", report.Playlist.Songs, "skipped", report.Skipped, "truncated", report.Truncated)
		}
		known, err := c.store.m3uImported(f.path, report.waiting)
		switch {
		case err != nil:
			c.log.Error("music folders: playlist file's import not recorded", "path", f.path, "err", err)
		case !known && report.Playlist.ID != "": // the file went while it was imported
			if err := c.dropImported(f.path, report.Playlist.ID); err != nil {
				c.log.Error("music folders: a gone playlist file's saved playlist not deleted", "path", f.path, "err", err)
			}
		}
	}
}

// importM3UFile reads the M3U file f and imports it.
func (c *Controller) importM3UFile(f m3uFile, resolve func(string) (string, bool)) (m3uImport, error) {
	data, err := readM3U(f.path)
	if err != nil {
		return m3uImport{}, err
	}
	return c.importM3U(f, data, resolve)
}

// readM3U reads an M3U file, within maxM3USize.
func readM3U(path string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxM3USize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxM3USize {
		return nil, fmt.Errorf("playlist file over %d bytes", maxM3USize)
	}
	return data, nil
}

// trackResolver finds the song of the music folders' file at a path as an
// M3U file gives it: exactly, else whatever its case (the map of every
// file by folded path is read once, the first time it is needed).
func (c *Controller) trackResolver() func(path string) (string, bool) {
	var folded map[string]string
	return func(path string) (string, bool) {
		sha, ok, err := c.store.songAtPath(path)
		if err != nil {
			c.log.Error("music folders: a playlist's track not looked up", "path", path, "err", err)
			return "", false
		}
		if ok {
			return sha, true
		}
		if folded == nil {
			if folded, err = c.store.songsByFoldedPath(); err != nil {
				c.log.Error("music folders: files not listed for a playlist's tracks", "err", err)
				folded = map[string]string{}
			}
		}
		sha, ok = folded[foldedPath(path)]
		return sha, ok
	}
}

// refuseImported refuses a change over MQTT to saved playlist id if it was
// imported from an M3U file: the file's next change would undo it.
func (c *Controller) refuseImported(id string) error {
	if !imported(id) {
		return nil
	}
	name := "a playlist file in the music folders"
	if f, ok, err := c.store.m3uFileOf(id); err == nil && ok {
		if rel, err := filepath.Rel(f.root, f.path); err == nil {
			name = filepath.Join(filepath.Base(f.root), rel)
		}
	}
	return fmt.Errorf("saved playlist %s is imported from %s; edit the file", id, name)
}
