package controller

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dhowden/tag"
	"github.com/gopxl/beep/v2"
	"github.com/gopxl/beep/v2/flac"
	"github.com/gopxl/beep/v2/mp3"
	"github.com/gopxl/beep/v2/vorbis"
	"github.com/gopxl/beep/v2/wav"

	"github.com/tutti-audio/tutti/protocol"
)

// Errors of adding a song, told apart so the song server can answer with
// the right status.
var (
	errHashMismatch = errors.New("content does not match its sha256")
	errNotAudio     = errors.New("not a decodable audio file (mp3, flac, wav or ogg vorbis)")
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
	song, err = analyze(tmp)
	if err != nil {
		return song, false, err
	}
	song.SHA256, song.URI, song.Size = sha, protocol.SongURI(sha), n
	if song.Title == "" {
		song.Title = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
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
	// A record mirrored from the lease holder stays as it was.
	stored, err := l.store.song(sha)
	return stored, err == nil, err
}

// holds says whether the song's verified file is on disk: files get there
// only by a rename after their hash was checked.
func (l *library) holds(sha string) bool {
	_, err := os.Stat(l.songPath(sha))
	return err == nil
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

// analyze reads the tags of the audio file f and decodes all of it to count
// its frames exactly, as speakers will decode it.
func analyze(f *os.File) (song protocol.Song, err error) {
	// Decoders of third-party formats can panic on hostile input; a bad
	// file must cost an error, not the process.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: decoder failed: %v", errNotAudio, p)
		}
	}()
	var head [12]byte
	if _, err := f.ReadAt(head[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return song, err
	}
	song.Format = detectFormat(head[:])
	if song.Format == "" {
		return song, fmt.Errorf("%w: unknown file type", errNotAudio)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return song, err
	}
	if meta, err := tag.ReadFrom(f); err == nil {
		song.Title = strings.TrimSpace(meta.Title())
		song.Artist = strings.TrimSpace(meta.Artist())
		song.Album = strings.TrimSpace(meta.Album())
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return song, err
	}
	song.Frames, song.SampleRate, err = countFrames(f, song.Format)
	if err != nil {
		return song, fmt.Errorf("%w: %v", errNotAudio, err)
	}
	song.DurationNs = protocol.FramesToNs(song.Frames, song.SampleRate)
	return song, nil
}

// detectFormat tells the format from the first bytes of a file.
func detectFormat(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("fLaC")):
		return "flac"
	case bytes.HasPrefix(head, []byte("OggS")):
		return "ogg"
	case len(head) >= 12 && bytes.HasPrefix(head, []byte("RIFF")) && string(head[8:12]) == "WAVE":
		return "wav"
	case bytes.HasPrefix(head, []byte("ID3")),
		len(head) >= 2 && head[0] == 0xFF && head[1]&0xE0 == 0xE0: // MPEG frame sync
		return "mp3"
	}
	return ""
}

// countFrames decodes the whole file and counts the frames the decoder
// gives, which is what a speaker will play (go-mp3's leading delay included).
func countFrames(f *os.File, format string) (frames int64, rate int, err error) {
	var s beep.StreamSeekCloser
	var fm beep.Format
	// Decoders close what they read when it is a Closer; the caller closes f.
	r := struct{ io.ReadSeeker }{f}
	rc := io.NopCloser(r)
	switch format {
	case "mp3":
		s, fm, err = mp3.Decode(rc)
	case "flac":
		s, fm, err = flac.Decode(r)
	case "wav":
		s, fm, err = wav.Decode(r)
	case "ogg":
		s, fm, err = vorbis.Decode(rc)
	}
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	if fm.SampleRate <= 0 || fm.NumChannels <= 0 {
		return 0, 0, fmt.Errorf("bad format: %d Hz, %d channels", fm.SampleRate, fm.NumChannels)
	}
	buf := make([][2]float64, 4096)
	for {
		n, ok := s.Stream(buf)
		frames += int64(n)
		if !ok || n == 0 {
			break
		}
	}
	if err := s.Err(); err != nil {
		return 0, 0, err
	}
	if frames == 0 {
		return 0, 0, errors.New("no audio frames")
	}
	return frames, int(fm.SampleRate), nil
}
