package speaker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cache is the verified song store: CacheDir/songs/<sha256>, written through
// temp files in CacheDir. A file is trusted only after its hash was checked
// in this process (on download, or on first use of a file left by an earlier
// run), so a file damaged on disk is caught before it plays; one damaged
// after that is caught when it fails to play (recheck).
type cache struct {
	dir    string
	client *http.Client
	log    *slog.Logger

	maxBytes int64 // size cap of the verified songs; 0 = none
	// The cap may be above what the disk has free (other files share it):
	// before a fetch, songs are also evicted until the song fits with
	// cacheFreeMargin to spare, by freeSpace's reading (statfs by default).
	freeSpace func(dir string) (int64, error)
	// keep says which songs eviction spares: those the timeline plays now
	// and next. nil = none.
	keep func() map[string]bool
	// statusWake wakes the status loop when noRoom changes; nil: none.
	statusWake chan<- struct{}

	mu        sync.Mutex
	verified  map[string]bool
	mp3       map[string]mp3Indexed // of the verified MP3 songs
	downloads map[string]*download  // in progress
	lastUse   map[string]time.Time  // when the engine last looked a song up
	noRoom    string                // why the last fetch found no room on the disk; "" once one found room
}

// cacheFreeMargin is the space the cache leaves free on its disk beyond the
// song it fetches: the speaker still writes its calibration, and the
// system its logs, on a full SD card; and a song's size is known only once
// its download starts, so the margin also covers the temp file of a second
// fetch (a replication) running at the same time. 64 MiB is a few minutes
// of WAV, a few hours of MP3, and little of any card.
const cacheFreeMargin = 64 << 20

// errNoRoom says the disk has no room for a song even with every song but
// the ones the timeline needs evicted: other files fill it.
var errNoRoom = errors.New("no room on the disk for the song")

func newCache(dir string, client *http.Client) (*cache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "songs"), 0o755); err != nil {
		return nil, fmt.Errorf("song cache: %w", err)
	}
	return &cache{dir: dir, client: client, log: slog.Default(), freeSpace: freeSpace,
		verified: map[string]bool{}, mp3: map[string]mp3Indexed{}, downloads: map[string]*download{}, lastUse: map[string]time.Time{}}, nil
}

func (c *cache) path(sha string) string { return filepath.Join(c.dir, "songs", sha) }

// Lookup implements songFiles: only verified songs are found.
func (c *cache) Lookup(sha string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.verified[sha] {
		c.lastUse[sha] = time.Now()
	}
	return c.path(sha), c.verified[sha]
}

// evict deletes the least recently used songs until the cache fits its cap,
// never one in keep (the songs the timeline plays now and next), and says
// which it deleted.
func (c *cache) evict(keep map[string]bool) ([]string, error) {
	if c.maxBytes <= 0 {
		return nil, nil
	}
	deleted, _, err := c.evictUntil(keep, func(total, _ int64) bool { return total <= c.maxBytes })
	return deleted, err
}

// makeRoom deletes the least recently used songs (sparing c.keep) until a
// song of size bytes fits on the disk with cacheFreeMargin to spare, and
// says which it deleted; errNoRoom if even that is not enough. A disk whose
// free space cannot be read is taken to have room: the write will tell.
func (c *cache) makeRoom(sha string, size int64) ([]string, error) {
	free, err := c.freeSpace(c.dir)
	if err != nil {
		c.log.Warn("free space of the song cache unknown", "err", err)
		return nil, nil
	}
	need := size + cacheFreeMargin - free
	if need <= 0 {
		return nil, nil
	}
	var keep map[string]bool
	if c.keep != nil {
		keep = c.keep()
	}
	deleted, freed, err := c.evictUntil(keep, func(_, freed int64) bool { return freed >= need })
	if err != nil {
		return deleted, err
	}
	if freed < need {
		return deleted, fmt.Errorf("%w: song %s needs %d bytes and %d kept free, %d are free after evicting %d songs",
			errNoRoom, sha, size, cacheFreeMargin, free+freed, len(deleted))
	}
	return deleted, nil
}

// evictUntil deletes songs, least recently used first, never one in keep,
// until done(bytes of songs left, bytes deleted) holds, and says which it
// deleted and how many bytes. A song not used in this process counts as
// used when its file was last written.
func (c *cache) evictUntil(keep map[string]bool, done func(total, freed int64) bool) ([]string, int64, error) {
	entries, err := os.ReadDir(filepath.Join(c.dir, "songs"))
	if err != nil {
		return nil, 0, err
	}
	type song struct {
		sha  string
		size int64
		used time.Time
	}
	var songs []song
	var total int64
	c.mu.Lock()
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		used, ok := c.lastUse[e.Name()]
		if !ok {
			used = info.ModTime()
		}
		songs = append(songs, song{e.Name(), info.Size(), used})
		total += info.Size()
	}
	c.mu.Unlock()
	slices.SortFunc(songs, func(a, b song) int { return a.used.Compare(b.used) })
	var deleted []string
	var freed int64
	for _, s := range songs {
		if done(total, freed) {
			break
		}
		if keep[s.sha] {
			continue
		}
		if err := c.drop(s.sha); err != nil {
			return deleted, freed, err
		}
		total -= s.size
		freed += s.size
		deleted = append(deleted, s.sha)
	}
	return deleted, freed, nil
}

// noRoomReason is why the last fetch found no room on the disk, "" if it
// found room (reported in the speaker's status).
func (c *cache) noRoomReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.noRoom
}

// noteRoom records whether a fetch found room: err is its outcome.
func (c *cache) noteRoom(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.noRoom
	switch {
	case err == nil:
		c.noRoom = ""
	case errors.Is(err, errNoRoom), errors.Is(err, syscall.ENOSPC):
		c.noRoom = err.Error()
	}
	if c.noRoom != was {
		wake(c.statusWake) // the status reports it
	}
}

// drop deletes a song from the cache. A player that has the file open
// reads on: the data stays until it closes it.
func (c *cache) drop(sha string) error {
	c.mu.Lock()
	delete(c.verified, sha)
	delete(c.mp3, sha)
	delete(c.lastUse, sha)
	c.mu.Unlock()
	if err := os.Remove(c.path(sha)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// recheck hashes a song's file again, after it failed to play, and says
// whether it is intact. A file damaged on disk since it was verified, or
// gone, is dropped, so that ensure fetches the song anew.
func (c *cache) recheck(sha string) (bool, error) {
	if got, err := hashFile(c.path(sha)); err == nil && got == sha {
		return true, nil
	}
	return false, c.drop(sha)
}

// sources says where songs can be fetched: base URLs tried in order (GET
// base+sha256), with token as the bearer token to each.
type sources struct {
	bases []string
	token string
}

// ensure makes sha available: it verifies a file already there, or fetches
// it from the first of src that serves it intact. startFrac is where in the
// song (0-1) playback will begin: a fetch fetches that part first.
func (c *cache) ensure(ctx context.Context, src sources, sha string, startFrac float64) error {
	if !validHash(sha) {
		return fmt.Errorf("song %q: not a sha256", sha)
	}
	if _, ok := c.Lookup(sha); ok {
		return nil
	}
	if got, err := hashFile(c.path(sha)); err == nil {
		if got == sha {
			c.markVerified(sha)
			return nil
		}
		os.Remove(c.path(sha)) // damaged: fetch it again
	}
	if len(src.bases) == 0 {
		return errors.New("no song server known yet")
	}
	var errs []error
	for _, base := range src.bases {
		err := c.fetch(ctx, base+sha, src.token, sha, startFrac)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		errs = append(errs, err) // refused, missing, failing or corrupt: the next source
	}
	return errors.Join(errs...)
}

// markVerified makes a song whose hash was checked playable. An MP3 is
// indexed first, here off the audio path (see mp3seek.go).
func (c *cache) markVerified(sha string) {
	index, isMP3, err := indexSongFile(c.path(sha))
	if err != nil && isMP3 {
		c.log.Warn("mp3 song cannot be indexed: it will not play", "song", sha, "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.verified[sha] = true
	if isMP3 {
		c.mp3[sha] = mp3Indexed{index, err}
	}
}

// mp3Indexed is a verified MP3's frame index, or why it has none.
type mp3Indexed struct {
	index *mp3Index
	err   error
}

// MP3Index implements songFiles: the frame index of a verified MP3 song.
func (c *cache) MP3Index(sha string) (*mp3Index, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.mp3[sha]
	if !ok {
		return nil, errors.New("not an indexed mp3 song")
	}
	return m.index, m.err
}

// Partial implements songFiles: the download of sha in progress, if any.
func (c *cache) Partial(sha string) (*download, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.downloads[sha]
	return d, ok
}

// Fetching in pieces. A fetch that starts mid-song first gets the song's
// head (the decoder needs the header), then the song from a little before
// where playback starts to the end, then the part in between.
const (
	headBytes   = 64 << 10
	chunkBytes  = 64 << 10  // written and announced at a time
	joinMargin  = 256 << 10 // fetched before the estimated start: compressed songs are not uniform
	maxSongSize = 2 << 30   // more is not a song: refuse to allocate it
)

// fetch downloads url into a temp file, readable through Partial as it
// arrives, checks its hash, syncs it and renames it into place; on any
// failure the temp file is removed and the download marked failed.
func (c *cache) fetch(ctx context.Context, url, token, sha string, startFrac float64) (err error) {
	var resp *http.Response
	if startFrac > 0 {
		resp, err = c.get(ctx, url, token, 0, headBytes)
	} else {
		resp, err = c.get(ctx, url, token, 0, -1)
	}
	if err != nil {
		return err
	}
	defer func() { resp.Body.Close() }()
	size, err := contentSize(resp)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer func() { c.noteRoom(err) }()
	if size > 0 {
		deleted, err := c.makeRoom(sha, size)
		if len(deleted) > 0 {
			c.log.Info("disk short of space: least recently used songs deleted", "songs", deleted, "for", sha, "size", size)
		}
		if err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(c.dir, "fetch-*")
	if err != nil {
		return err
	}
	dl := &download{path: tmp.Name(), size: size}
	if size >= 0 { // of unknown size, it cannot be played before it is complete
		c.mu.Lock()
		c.downloads[sha] = dl
		c.mu.Unlock()
	}
	defer func() {
		if err != nil {
			dl.finish(downloadFailed)
			tmp.Close()
			os.Remove(tmp.Name())
		}
		c.mu.Lock()
		delete(c.downloads, sha)
		c.mu.Unlock()
	}()
	if err = tmp.Truncate(max(size, 0)); err != nil { // the tail may be written first
		return err
	}
	head := size
	if resp.StatusCode == http.StatusPartialContent {
		head = min(size, headBytes)
	}
	if err = copyAt(tmp, resp.Body, 0, head, dl.setHead); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	middleEnd := size // the head reaches up to here once fetched
	if from := int64(startFrac*float64(size)) - joinMargin; head < size && from > head {
		if err = c.fetchRange(ctx, url, token, tmp, from, size, func(end int64) { dl.setTail(from, end) }); err != nil {
			return err
		}
		middleEnd = from
	}
	if head < middleEnd {
		if err = c.fetchRange(ctx, url, token, tmp, head, middleEnd, dl.setHead); err != nil {
			return err
		}
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	got, err := hashFile(tmp.Name())
	if err != nil {
		return err
	}
	if got != sha {
		return fmt.Errorf("GET %s: content hash %s does not match", url, got)
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), c.path(sha)); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Join(c.dir, "songs")); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	c.markVerified(sha)
	dl.finish(downloadVerified)
	return nil
}

// get requests bytes [from, to) of url; to < 0: the whole resource.
func (c *cache) get(ctx context.Context, url, token string, from, to int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if to >= 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to-1))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if resp.StatusCode == http.StatusPartialContent {
		var first int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &first); err != nil || first != from {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: asked for bytes from %d, got Content-Range %q", url, from, resp.Header.Get("Content-Range"))
		}
	}
	return resp, nil
}

// fetchRange writes bytes [from, to) of url into f at their offset.
func (c *cache) fetchRange(ctx context.Context, url, token string, f *os.File, from, to int64, written func(end int64)) error {
	resp, err := c.get(ctx, url, token, from, to)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return fmt.Errorf("GET %s: Range request answered with %s", url, resp.Status)
	}
	if err := copyAt(f, resp.Body, from, to, written); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// contentSize is the size of the whole resource a response is (part of).
func contentSize(resp *http.Response) (int64, error) {
	size := resp.ContentLength
	if resp.StatusCode == http.StatusPartialContent {
		cr := resp.Header.Get("Content-Range")
		_, total, _ := strings.Cut(cr, "/")
		var err error
		if size, err = strconv.ParseInt(total, 10, 64); err != nil {
			return 0, fmt.Errorf("Content-Range %q: no total size", cr)
		}
	}
	if size > maxSongSize || size < 0 && resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("song size %d unknown or over %d bytes", size, maxSongSize)
	}
	return size, nil
}

// copyAt writes body, which must hold bytes [from, to) (to < 0: up to its
// end), into f at their offset, a chunk at a time, saying after each how
// far it got.
func copyAt(f *os.File, body io.Reader, from, to int64, written func(end int64)) error {
	buf := make([]byte, chunkBytes)
	for off := from; to < 0 || off < to; {
		want := int64(len(buf))
		if to >= 0 {
			want = min(want, to-off)
		}
		n, err := io.ReadFull(body, buf[:want])
		if n > 0 {
			if _, werr := f.WriteAt(buf[:n], off); werr != nil {
				return werr
			}
			off += int64(n)
			written(off)
		}
		switch {
		case to < 0 && (err == io.EOF || err == io.ErrUnexpectedEOF):
			return nil
		case err != nil && (to < 0 || off < to):
			return fmt.Errorf("body ends at byte %d of %d: %w", off, to, err)
		}
	}
	return nil
}

// download is a song being fetched into a temp file, which the engine may
// play from while it arrives: bytes [0, head) and [tailFrom, tailTo) of it
// are written (the file's page cache is shared, so a reader sees them).
type download struct {
	path string
	size int64

	mu               sync.Mutex
	head             int64
	tailFrom, tailTo int64
	outcome          downloadOutcome
}

type downloadOutcome int

const (
	downloadRunning downloadOutcome = iota
	downloadVerified
	downloadFailed // its bytes must not be played any longer
)

func (d *download) setHead(end int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.head = end
}

func (d *download) setTail(from, end int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tailFrom, d.tailTo = from, end
}

func (d *download) finish(o downloadOutcome) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.outcome = o
}

func (d *download) result() downloadOutcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.outcome
}

// has tells whether bytes [from, to) are written (to is capped at the size).
func (d *download) has(from, to int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.outcome == downloadVerified {
		return true
	}
	from, to = max(from, d.head), min(to, d.size)
	return from >= to || from >= d.tailFrom && to <= d.tailTo
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// validHash accepts a lower-case sha256 hex, so a name from the network can
// never be a path.
func validHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
