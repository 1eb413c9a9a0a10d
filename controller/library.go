package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/tutti-audio/tutti/musicfolder"
	"github.com/tutti-audio/tutti/protocol"
)

// Errors of adding a song, told apart so the song server can answer with
// the right status.
var (
	errHashMismatch = errors.New("content does not match its sha256")
	errNotAudio     = errors.New("not a decodable audio file (mp3, flac, wav, ogg vorbis, opus or m4a)")
	errTooLarge     = errors.New("song too large")
)

// library is the song files on disk (songs/<sha256>, staged in tmp/) and
// their records in the store. A standby controller may hold a record before
// the file.
type library struct {
	store    *store
	songsDir string
	tmpDir   string
	maxSize  int64
	now      func() int64 // for the added time
	// convertible is nil when M4A songs can be converted (convert.go).
	convertible func() error
	// present is told of a missing song (its music folder files gone)
	// that an upload brought back; nil: nobody.
	present func(sha string)

	// analyzing lets one analysis run at a time: each may take a core for
	// seconds (within analyze's limits), and the broker, the clock replies
	// and the lease need the other. Uploads wait for their turn, and at
	// most maxConcurrentUploads wait.
	analyzing sync.Mutex
}

func (l *library) songPath(sha string) string { return filepath.Join(l.songsDir, sha) }

// add stores the song read from r. wantSHA, when not "", is the hash the
// content must have. name is the file name the title falls back to. A song
// already in the library is returned as it is, with created false.
func (l *library) add(r io.Reader, wantSHA, name string) (song protocol.Song, created bool, err error) {
	if wantSHA != "" && l.holds(wantSHA) {
		if s, err := l.store.song(wantSHA); err == nil {
			return s, false, nil
		}
	}
	tmp, err := os.CreateTemp(l.tmpDir, "upload-*")
	if err != nil {
		return song, false, err
	}
	defer func() {
		tmp.Close()
		if err != nil || !created {
			os.Remove(tmp.Name())
		}
	}()
	hash := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, hash), io.LimitReader(r, l.maxSize+1))
	if err != nil {
		return song, false, fmt.Errorf("receive song: %w", err)
	}
	if n > l.maxSize {
		return song, false, fmt.Errorf("%w: over %d bytes", errTooLarge, l.maxSize)
	}
	sha := hex.EncodeToString(hash.Sum(nil))
	if wantSHA != "" && sha != wantSHA {
		return song, false, fmt.Errorf("%w: got %s, want %s", errHashMismatch, sha, wantSHA)
	}
	if l.holds(sha) {
		if s, err := l.store.song(sha); err == nil {
			return s, false, nil
		}
	}
	l.analyzing.Lock()
	song, err = analyze(tmp)
	l.analyzing.Unlock()
	if err != nil {
		return song, false, err
	}
	if song.Format == "m4a" && l.convertible != nil {
		if err := l.convertible(); err != nil {
			return song, false, fmt.Errorf("%w: %v", errNotAudio, err)
		}
	}
	song.SHA256, song.URI, song.Size = sha, protocol.SongURI(sha), n
	if song.Title == "" {
		song.Title = musicfolder.TitleFromName(name)
	}
	if song.Title == "" || song.Title == "." {
		song.Title = sha[:12]
	}
	if err := tmp.Sync(); err != nil {
		return song, false, err
	}
	if err := os.Rename(tmp.Name(), l.songPath(sha)); err != nil {
		return song, false, err
	}
	if err := syncDir(l.songsDir); err != nil {
		return song, false, err
	}
	if err := l.store.addSong(song, l.now()); err != nil {
		return song, false, err
	}
	if back, err := l.store.markMissing(sha, false); err != nil {
		return song, false, err
	} else if back && l.present != nil {
		l.present(sha)
	}
	// A record mirrored from the lease holder stays as it was.
	stored, err := l.store.song(sha)
	return stored, err == nil, err
}

// holds says whether the song's verified file is on disk: an upload copy
// (files get there only by a rename after their hash was checked) or a
// music folder's file as it was hashed.
func (l *library) holds(sha string) bool {
	f, err := l.openSong(sha)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
