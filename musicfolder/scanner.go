// Package musicfolder indexes music folders in place: a first scan walks
// them, a watch (inotify, through fsnotify) catches files added, changed,
// moved and removed within seconds, and a periodic rescan catches what no
// event reports (network mounts). It never writes to the folders. For each
// audio file it reads the format, tags, length and SHA-256, for each
// playlist file (M3U) its content and SHA-256, and hands them to an Index,
// which also caches them by (path, size, modification time), so an
// unchanged file is neither read nor hashed again.
package musicfolder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/protocol"
)

// Index keeps what scans found. The scanner calls it from one goroutine
// at a time.
type Index interface {
	// Lookup returns the size and modification time (Unix ns) of the file
	// at path as the index last stored it.
	Lookup(path string) (size, modNs int64, ok bool)
	// Put stores a file read from a music folder.
	Put(f File) error
	// Remove forgets the file at path, and every file below path when it
	// was a folder.
	Remove(path string) error
	// Move records that the file at from is now at to, in root, unchanged.
	Move(from, to, root string) error
	// Paths lists the files the index holds below root.
	Paths(root string) ([]string, error)
}

// Defaults of Options.
const (
	// DefaultRescan: a network mount sends no events, so a file changed
	// there shows up at the next rescan; an unchanged rescan costs one stat
	// per file, seconds for a large library, so every quarter of an hour
	// is cheap.
	DefaultRescan = 15 * time.Minute
	// DefaultSettle: a file being copied in is written to every few
	// milliseconds, even over a slow network; two seconds without a change
	// means the copy is done.
	DefaultSettle = 2 * time.Second
	// DefaultWorkers: hashing is CPU-bound at about a core per worker
	// (SHA-NI, ARMv8 SHA2), reading overlaps with it; two keep a disk
	// busy and leave the broker and the clock replies a core on small
	// machines.
	DefaultWorkers = 2
)

// Limits of what a scan walks.
const (
	// maxFiles bounds the files one scan keeps track of (about 200 bytes
	// each): a household library holds tens of thousands; past this the
	// walk stops and nothing unseen is taken for removed.
	maxFiles = 500_000
	// maxDepth bounds how deep below a root the walk goes: real libraries
	// nest artist/album/disc; deeper is a loop through bind mounts or junk.
	maxDepth = 32
	// progressInterval is how often a running scan reports its progress.
	progressInterval = 500 * time.Millisecond
)

// Options configure a Scanner. Zero values take the defaults noted.
type Options struct {
	Roots    []string      // the music folders
	Index    Index         // required
	Rescan   time.Duration // between periodic rescans; default DefaultRescan
	Settle   time.Duration // a changed file is read once it kept its size and time this long; default DefaultSettle
	Workers  int           // files read at once during a scan; default DefaultWorkers
	Clock    clock.Clock   // nil = real time
	Logger   *slog.Logger  // nil = slog.Default()
	Progress func(protocol.ScanProgress)
}

// Scanner keeps an Index in step with music folders. Create it with New,
// then Run it.
type Scanner struct {
	opts    Options
	log     *slog.Logger
	rescan  chan struct{}
	settler *settler
	gone    *vanishing
	watcher *fsnotify.Watcher // nil while running without a watch
	watched map[string]bool   // folders watched
	scans   int               // scans started
	// unavailable holds the roots the last check found unavailable, with
	// why; recheck looks at them again (availability.go).
	unavailable map[string]string
	recheck     clock.Timer
}

// New checks opts and returns a Scanner over them.
func New(opts Options) (*Scanner, error) {
	if opts.Index == nil {
		return nil, errors.New("musicfolder: an Index is required")
	}
	if opts.Rescan <= 0 {
		opts.Rescan = DefaultRescan
	}
	if opts.Settle <= 0 {
		opts.Settle = DefaultSettle
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	opts.Clock = clock.Or(opts.Clock)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Progress == nil {
		opts.Progress = func(protocol.ScanProgress) {}
	}
	roots := make([]string, 0, len(opts.Roots))
	for _, r := range opts.Roots {
		abs, err := filepath.Abs(r)
		if err != nil {
			return nil, fmt.Errorf("musicfolder: %s: %w", r, err)
		}
		roots = append(roots, abs)
	}
	opts.Roots = roots
	return &Scanner{opts: opts, log: opts.Logger, rescan: make(chan struct{}, 1), settler: newSettler(opts.Settle), gone: newVanishing(opts.Settle),
		watched: map[string]bool{}, unavailable: map[string]string{}}, nil
}

// Rescan asks for a scan of every folder now; one asked for during a scan
// runs after it.
func (s *Scanner) Rescan() {
	select {
	case s.rescan <- struct{}{}:
	default:
	}
}

// Run scans the folders, then watches them and rescans them periodically
// and on request, until ctx is done.
func (s *Scanner) Run(ctx context.Context) error {
	var events <-chan fsnotify.Event
	var watchErrors <-chan error
	if w, err := fsnotify.NewWatcher(); err != nil {
		s.log.Warn("music folders: cannot watch; changes show up at the periodic rescans", "err", err, "every", s.opts.Rescan)
	} else {
		s.watcher = w
		defer w.Close()
		events, watchErrors = w.Events, w.Errors
	}
	ticker := s.opts.Clock.NewTicker(s.opts.Rescan)
	defer ticker.Stop()
	s.recheck = s.opts.Clock.NewTimer(time.Hour)
	s.recheck.Stop()
	defer s.recheck.Stop()
	s.scanAll(ctx)
	settle := s.opts.Clock.NewTimer(time.Hour)
	defer settle.Stop()
	for {
		if at, ok := s.nextDue(); ok {
			settle.Reset(max(0, at.Sub(s.opts.Clock.Now())))
		} else {
			settle.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			s.handle(ev)
		case err := <-watchErrors:
			s.log.Warn("music folders: watch error; rescanning", "err", err)
			s.Rescan()
		case <-settle.C():
			s.readSettled()
			s.removeGone()
		case <-ticker.C():
			s.scanAll(ctx)
		case <-s.recheck.C():
			if s.backAgain() {
				s.scanAll(ctx)
			} else {
				s.armRecheck()
			}
		case <-s.rescan:
			s.scanAll(ctx)
			ticker.Reset(s.opts.Rescan)
		}
	}
}

// candidate is a file a walk found.
type candidate struct {
	root, path  string
	size, modNs int64
}

// walkResult is what a walk of one root found.
type walkResult struct {
	files  []candidate
	failed []string // folders it could not read (or did not go into): their files are not taken for removed
	ok     bool     // the root itself was read
}

// scanAll walks every root, reads the files that are new or changed, and
// removes from the index the files no longer there.
func (s *Scanner) scanAll(ctx context.Context) {
	start := s.opts.Clock.Now()
	s.scans++
	progress := protocol.ScanProgress{Number: s.scans, Scanning: true}
	s.opts.Progress(progress)
	var changed []candidate
	walks := make([]walkResult, len(s.opts.Roots))
	seen := map[string]bool{}
	s.forgetDroppedWatches()
	progress.Unavailable = s.checkRoots()
	for i, root := range s.opts.Roots {
		if s.isUnavailable(root) {
			continue // not walked: its files stay in the index as they are
		}
		walks[i] = s.walk(root, len(seen))
		for _, c := range walks[i].files {
			seen[c.path] = true
			if size, modNs, ok := s.opts.Index.Lookup(c.path); !ok || size != c.size || modNs != c.modNs {
				changed = append(changed, c)
				progress.TotalBytes += c.size
			}
		}
		progress.Seen = len(seen)
	}
	progress.Total = len(changed)
	s.opts.Progress(progress)
	s.readAll(ctx, changed, &progress)
	removed := 0
	for i, root := range s.opts.Roots {
		if ctx.Err() != nil || !walks[i].ok {
			continue
		}
		known, err := s.opts.Index.Paths(root)
		if err != nil {
			s.log.Error("music folders: cannot list the index", "root", root, "err", err)
			continue
		}
		for _, p := range known {
			if seen[p] || below(p, walks[i].failed) {
				continue
			}
			if err := s.opts.Index.Remove(p); err != nil {
				s.log.Error("music folders: cannot remove from the index", "path", p, "err", err)
				continue
			}
			removed++
		}
	}
	s.armRecheck()
	progress.Scanning, progress.Done = false, true
	s.opts.Progress(progress)
	s.log.Info("music folders scanned", "files", len(seen), "read", progress.Files, "bytes_read", progress.Bytes,
		"removed", removed, "unavailable", len(progress.Unavailable), "took", s.opts.Clock.Now().Sub(start).Round(time.Millisecond))
}

// below says whether path is below one of dirs.
func below(path string, dirs []string) bool {
	for _, d := range dirs {
		if isBelow(path, d) {
			return true
		}
	}
	return false
}

// isBelow says whether path is below dir.
func isBelow(path, dir string) bool {
	return strings.HasPrefix(path, dir) && len(path) > len(dir) && path[len(dir)] == filepath.Separator
}

// hidden says whether a file or folder is hidden: dot files, among them
// the "._" companions macOS leaves on network shares, are not music.
func hidden(name string) bool { return strings.HasPrefix(name, ".") }

// walk lists the audio files below root and watches its folders. counted
// is how many files earlier roots gave, towards maxFiles.
func (s *Scanner) walk(root string, counted int) walkResult {
	var res walkResult
	info, err := os.Stat(root)
	if err != nil || !info.IsDir() {
		s.log.Warn("music folder not readable; its songs stay as they are", "root", root, "err", err)
		return res
	}
	res.ok = true
	full := false
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			s.log.Warn("music folders: cannot read", "path", path, "err", err)
			if d == nil || d.IsDir() {
				res.failed = append(res.failed, path)
			}
			return nil
		}
		if path != root && hidden(d.Name()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if depth(root, path) > maxDepth {
				s.log.Warn("music folders: too deep, not walked", "path", path, "max_depth", maxDepth)
				res.failed = append(res.failed, path)
				return fs.SkipDir
			}
			s.watch(path)
			return nil
		}
		if !indexed(d.Name()) {
			return nil
		}
		if counted+len(res.files) >= maxFiles {
			if !full {
				s.log.Warn("music folders: too many files, the rest is not scanned", "max_files", maxFiles)
				full = true
			}
			res.failed = append(res.failed, root)
			return fs.SkipAll
		}
		info, err := fileInfo(path, d)
		if err != nil {
			s.log.Warn("music folders: skipped", "path", path, "err", err)
			return nil
		}
		res.files = append(res.files, candidate{root: root, path: path, size: info.Size(), modNs: info.ModTime().UnixNano()})
		return nil
	})
	return res
}

// fileInfo stats a file the walk found, following a symlink to a file
// (never to a folder: that could loop).
func fileInfo(path string, d fs.DirEntry) (fs.FileInfo, error) {
	if d.Type()&fs.ModeSymlink == 0 {
		info, err := d.Info()
		if err == nil && !info.Mode().IsRegular() {
			return nil, errors.New("not a regular file")
		}
		return info, err
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, errors.New("a symlink to something other than a file")
	}
	return info, nil
}

// depth is how many folders below root path is.
func depth(root, path string) int {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == "." {
		return 0
	}
	return strings.Count(rel, string(filepath.Separator)) + 1
}

// maxWatches bounds the folders watched, each an inotify watch (the
// kernel's default per-user limit is 8192 on older systems, larger on
// newer): past it, changes show up at the periodic rescans.
const maxWatches = 100_000

// watch watches a folder, once; failing that, it relies on the rescans.
func (s *Scanner) watch(dir string) {
	if s.watcher == nil || s.watched[dir] || len(s.watched) >= maxWatches {
		return
	}
	if err := s.watcher.Add(dir); err != nil {
		s.log.Warn("music folders: cannot watch a folder; its changes show up at the periodic rescans", "path", dir, "err", err)
		return
	}
	s.watched[dir] = true
}

// unwatch stops watching a folder that went (or was moved away) and the
// folders below it: a moved folder's watch would report its files under
// the old path.
func (s *Scanner) unwatch(dir string) {
	for d := range s.watched {
		if d == dir || isBelow(d, dir) {
			s.watcher.Remove(d) // an error means the kernel dropped it already
			delete(s.watched, d)
		}
	}
}

// rootOf is the music folder path is in.
func (s *Scanner) rootOf(path string) (string, bool) {
	for _, r := range s.opts.Roots {
		if isBelow(path, r) {
			return r, true
		}
	}
	return "", false
}

// handle follows one watch event: a file or folder gone, a folder added, a
// file changed.
func (s *Scanner) handle(ev fsnotify.Event) {
	path := ev.Name
	if slices.Contains(s.opts.Roots, path) {
		// The folder itself went or was renamed (a disk or share moved
		// away): the scan finds whether it is unavailable.
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			s.Rescan()
		}
		return
	}
	if hidden(filepath.Base(path)) {
		return
	}
	root, ok := s.rootOf(path)
	if !ok {
		return
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		s.settler.forget(path)
		s.unwatch(path)
		s.went(path)
		return
	}
	info, err := os.Stat(path)
	if err != nil {
		return // gone already: its Remove event follows
	}
	if info.IsDir() {
		if ev.Has(fsnotify.Create) && depth(root, path) <= maxDepth {
			s.walkNew(root, path)
		}
		return
	}
	if indexed(path) && info.Mode().IsRegular() {
		s.settler.changed(path, info.Size(), info.ModTime().UnixNano(), s.opts.Clock.Now())
	}
}

// went notes the indexed file at path, or the files below it if it was a
// folder, as gone: they leave the index unless they turn up moved.
func (s *Scanner) went(path string) {
	now := s.opts.Clock.Now()
	below, err := s.opts.Index.Paths(path)
	if err != nil {
		s.log.Error("music folders: cannot list the index", "path", path, "err", err)
	}
	for _, p := range append(below, path) {
		if size, modNs, ok := s.opts.Index.Lookup(p); ok {
			s.gone.went(p, size, modNs, now)
		}
	}
}

// removeGone removes from the index the files that went and did not turn
// up elsewhere.
func (s *Scanner) removeGone() {
	for _, p := range s.gone.due(s.opts.Clock.Now()) {
		if err := s.opts.Index.Remove(p); err != nil {
			s.log.Error("music folders: cannot remove from the index", "path", p, "err", err)
		}
	}
}

// nextDue is when a changed file is due to be read, or a file that went
// to leave the index, whichever comes first.
func (s *Scanner) nextDue() (time.Time, bool) {
	at, ok := s.settler.next()
	if g, gok := s.gone.next(); gok && (!ok || g.Before(at)) {
		at, ok = g, true
	}
	return at, ok
}

// walkNew watches a folder that appeared (made, or moved in) and the
// folders below it, and has its files read once they settle.
func (s *Scanner) walkNew(root, dir string) {
	res := s.walk(dir, 0)
	now := s.opts.Clock.Now()
	for _, c := range res.files {
		if depth(root, c.path) <= maxDepth+1 {
			s.settler.changed(c.path, c.size, c.modNs, now)
		}
	}
}

// readSettled reads the changed files that have settled.
func (s *Scanner) readSettled() {
	ready := s.settler.due(s.opts.Clock.Now(), func(path string) (int64, int64, bool) {
		info, err := os.Stat(path)
		if err != nil || !info.Mode().IsRegular() {
			return 0, 0, false
		}
		return info.Size(), info.ModTime().UnixNano(), true
	})
	buf := make([]byte, hashBufferSize)
	for _, path := range ready {
		root, ok := s.rootOf(path)
		if !ok {
			continue
		}
		info, err := os.Stat(path)
		if err != nil {
			continue // gone again
		}
		size, modNs := info.Size(), info.ModTime().UnixNano()
		if known, knownNs, ok := s.opts.Index.Lookup(path); ok && known == size && knownNs == modNs {
			continue // unchanged (touched, or a folder's walk found it known)
		}
		if from, ok := s.gone.cameBack(path, size, modNs); ok {
			if err := s.opts.Index.Move(from, path, root); err != nil {
				s.log.Error("music folders: cannot move in the index", "from", from, "to", path, "err", err)
			}
			continue
		}
		f, err := readFile(root, path, buf)
		s.store(path, f, err)
	}
}

// store puts a file read into the index, or logs why it was not read. A
// file that changed while read waits to settle again.
func (s *Scanner) store(path string, f File, err error) {
	switch {
	case errors.Is(err, errChanged):
		if info, serr := os.Stat(path); serr == nil {
			s.settler.changed(path, info.Size(), info.ModTime().UnixNano(), s.opts.Clock.Now())
		}
	case err != nil:
		// What the index holds of it, if anything, is gone from the file.
		s.log.Warn("music folders: file not indexed", "path", path, "err", err)
		if err := s.opts.Index.Remove(path); err != nil {
			s.log.Error("music folders: cannot remove from the index", "path", path, "err", err)
		}
	default:
		if err := s.opts.Index.Put(f); err != nil {
			s.log.Error("music folders: cannot index", "path", f.Path, "err", err)
		}
	}
}

// readAll reads files with the workers, storing each into the index as it
// comes, and counts them into progress.
func (s *Scanner) readAll(ctx context.Context, files []candidate, progress *protocol.ScanProgress) {
	type result struct {
		c    candidate
		file File
		err  error
	}
	jobs := make(chan candidate)
	results := make(chan result)
	var workers sync.WaitGroup
	for range s.opts.Workers {
		workers.Go(func() {
			buf := make([]byte, hashBufferSize)
			for c := range jobs {
				f, err := readFile(c.root, c.path, buf)
				select {
				case results <- result{c, f, err}:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() {
		defer close(results)
		defer workers.Wait()
		defer close(jobs)
		for _, c := range files {
			select {
			case jobs <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	reported := s.opts.Clock.Now()
	for r := range results {
		s.store(r.c.path, r.file, r.err)
		progress.Files++
		progress.Bytes += r.c.size
		if now := s.opts.Clock.Now(); now.Sub(reported) >= progressInterval {
			reported = now
			s.opts.Progress(*progress)
		}
	}
}
