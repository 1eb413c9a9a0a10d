package musicfolder

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/protocol"
)

// memIndex is an Index in memory that reports every change on a channel.
type memIndex struct {
	mu      sync.Mutex
	files   map[string]File
	changes chan change
}

// change is one Put (put true) or Remove of path; a Move is a put of
// the new path, moved.
type change struct {
	put   bool
	path  string
	sha   string
	moved bool
}

func newMemIndex() *memIndex {
	return &memIndex{files: map[string]File{}, changes: make(chan change, 1000)}
}

func (m *memIndex) Lookup(path string) (int64, int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[path]
	return f.Size, f.ModNs, ok
}

func (m *memIndex) Put(f File) error {
	m.mu.Lock()
	m.files[f.Path] = f
	m.mu.Unlock()
	m.changes <- change{put: true, path: f.Path, sha: f.SHA256}
	return nil
}

func (m *memIndex) Remove(path string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.files {
		if p == path || isBelow(p, path) {
			delete(m.files, p)
			m.changes <- change{path: p}
		}
	}
	return nil
}

func (m *memIndex) Move(from, to, root string) error {
	m.mu.Lock()
	f, ok := m.files[from]
	if ok {
		delete(m.files, from)
		f.Path, f.Root = to, root
		m.files[to] = f
	}
	m.mu.Unlock()
	if ok {
		m.changes <- change{put: true, path: to, sha: f.SHA256, moved: true}
	}
	return nil
}

func (m *memIndex) Paths(root string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for p := range m.files {
		if isBelow(p, root) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (m *memIndex) get(path string) (File, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[path]
	return f, ok
}

func (m *memIndex) paths() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for p := range m.files {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// waitFor waits (at most 5 s: the watch's bar) for a change of path.
func (m *memIndex) waitFor(t *testing.T, put bool, path string) change {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case c := <-m.changes:
			if c.put == put && c.path == path {
				return c
			}
		case <-deadline:
			t.Fatalf("no %s of %s within 5 s; index holds %v", map[bool]string{true: "put", false: "remove"}[put], path, m.paths())
		}
	}
}

// scanning runs a scanner over roots until the test ends, and returns the
// progress reports it makes.
func scanning(t *testing.T, opts Options) <-chan protocol.ScanProgress {
	t.Helper()
	progress := make(chan protocol.ScanProgress, 1000)
	opts.Progress = func(p protocol.ScanProgress) { progress <- p }
	opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { rescanOf[t.Name()] = nil })
	rescanOf[t.Name()] = s
	return progress
}

// rescanOf is each running test's scanner, to ask for rescans.
var rescanOf = map[string]*Scanner{}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// waitDone waits for a scan to finish and returns its last report.
func waitDone(t *testing.T, progress <-chan protocol.ScanProgress) protocol.ScanProgress {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case p := <-progress:
			if p.Done {
				return p
			}
		case <-deadline:
			t.Fatal("scan did not finish in 30 s")
		}
	}
}

func TestScanIndexesNestedFoldersAndRescansNothingUnchanged(t *testing.T) {
	root := t.TempDir()
	paths := []string{"Artist/Album/01 One.flac", "Artist/Album/02 Two.mp3", "Other/x.ogg", "top.wav", "Deep/a/b/c/d.opus"}
	for _, p := range paths {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		song(t, full, 0.5, musicgen.Tags{Title: "Song " + p})
	}
	// Not songs: hidden files, other files, an empty file named like a song.
	os.WriteFile(filepath.Join(root, "Artist/Album/cover.jpg"), []byte("jpeg"), 0o644)
	os.WriteFile(filepath.Join(root, "Artist/._01 One.flac"), []byte("junk"), 0o644)
	os.WriteFile(filepath.Join(root, "empty.mp3"), nil, 0o644)
	index := newMemIndex()
	progress := scanning(t, Options{Roots: []string{root}, Index: index})
	p := waitDone(t, progress)
	if p.Seen != len(paths)+1 || p.Total != len(paths)+1 || p.Files != p.Total {
		t.Errorf("first scan progress %+v, want %d seen and read", p, len(paths)+1)
	}
	var want []string
	for _, rel := range paths {
		want = append(want, filepath.Join(root, rel))
	}
	sort.Strings(want)
	if got := index.paths(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("indexed\n%v\nwant\n%v", got, want)
	}
	f, _ := index.get(filepath.Join(root, "Artist/Album/01 One.flac"))
	if f.Format != "flac" || f.Length.Frames != 22050 || f.Tags.Song.Title != "Song Artist/Album/01 One.flac" || len(f.SHA256) != 64 {
		t.Errorf("flac file indexed as %+v", f)
	}
	for len(index.changes) > 0 {
		<-index.changes
	}
	rescanOf[t.Name()].Rescan()
	p = waitDone(t, progress)
	if p.Seen != len(paths)+1 || p.Total != 1 || p.Files != 1 {
		t.Errorf("unchanged rescan progress %+v: want only the unreadable empty file read again", p)
	}
	if len(index.changes) != 0 {
		t.Errorf("an unchanged rescan changed the index: %v", <-index.changes)
	}
}

func TestWatchSeesAddChangeMoveAndRemoveWithinSeconds(t *testing.T) {
	root := t.TempDir()
	album := filepath.Join(root, "Album")
	os.MkdirAll(album, 0o755)
	first := filepath.Join(album, "first.flac")
	song(t, first, 0.5, musicgen.Tags{Title: "First"})
	index := newMemIndex()
	waitDone(t, scanning(t, Options{Roots: []string{root}, Index: index, Settle: 200 * time.Millisecond}))
	index.waitFor(t, true, first)

	// Added: made elsewhere and moved in, as a copy ends.
	staged := filepath.Join(t.TempDir(), "added.mp3")
	song(t, staged, 0.5, musicgen.Tags{Title: "Added"})
	added := filepath.Join(album, "added.mp3")
	if err := os.Rename(staged, added); err != nil {
		t.Fatal(err)
	}
	addedSHA := index.waitFor(t, true, added).sha

	// Moved to another folder: the same file keeps its record, not read
	// again, and never leaves the index meanwhile.
	movedAway := filepath.Join(root, "added.mp3")
	os.Rename(added, movedAway)
	if c := index.waitFor(t, true, movedAway); !c.moved || c.sha != addedSHA {
		t.Errorf("a moved file: %+v, want it moved with hash %s", c, addedSHA)
	}
	if _, ok := index.get(added); ok {
		t.Error("the moved file's old path is still indexed")
	}
	// Renamed: read again, the same content has the same hash; its old
	// name leaves the index after the new one came.
	moved := filepath.Join(root, "moved.mp3")
	os.Rename(movedAway, moved)
	if c := index.waitFor(t, true, moved); c.sha != addedSHA || c.moved {
		t.Errorf("renamed file: %+v, was %s", c, addedSHA)
	}
	index.waitFor(t, false, movedAway)

	// Changed: rewritten in place gets its new hash.
	song(t, moved, 0.7, musicgen.Tags{Title: "Changed"})
	if c := index.waitFor(t, true, moved); c.sha == addedSHA {
		t.Error("a rewritten file kept its old hash")
	}

	// A folder renamed: its files move with it, and its new name is watched.
	renamed := filepath.Join(root, "Renamed")
	os.Rename(album, renamed)
	if c := index.waitFor(t, true, filepath.Join(renamed, "first.flac")); !c.moved {
		t.Errorf("a file of a renamed folder was read again: %+v", c)
	}
	if _, ok := index.get(first); ok {
		t.Error("the renamed folder's old path is still indexed")
	}
	later := filepath.Join(renamed, "later.ogg")
	song(t, later, 0.5, musicgen.Tags{Title: "Later"})
	index.waitFor(t, true, later)

	// Removed.
	os.Remove(moved)
	index.waitFor(t, false, moved)
	os.RemoveAll(renamed)
	index.waitFor(t, false, later)
	if got := index.paths(); len(got) != 0 {
		t.Errorf("index still holds %v", got)
	}
}

func TestAFileBeingWrittenIsReadOnceItSettles(t *testing.T) {
	root := t.TempDir()
	index := newMemIndex()
	waitDone(t, scanning(t, Options{Roots: []string{root}, Index: index, Settle: 300 * time.Millisecond}))
	src := filepath.Join(t.TempDir(), "song.flac")
	song(t, src, 1, musicgen.Tags{Title: "Slow copy"})
	data, _ := os.ReadFile(src)
	dst := filepath.Join(root, "song.flac")
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	// Written in pieces, each within the settle time of the last.
	for i := 0; i < len(data); i += len(data) / 8 {
		f.Write(data[i:min(i+len(data)/8, len(data))])
		time.Sleep(100 * time.Millisecond)
		if len(index.changes) > 0 {
			t.Fatalf("read before the copy ended: %+v", <-index.changes)
		}
	}
	f.Close()
	c := index.waitFor(t, true, dst)
	got, _ := index.get(dst)
	if got.Size != int64(len(data)) || got.Tags.Song.Title != "Slow copy" {
		t.Errorf("indexed %d bytes titled %q (sha %s), want the whole %d", got.Size, got.Tags.Song.Title, c.sha, len(data))
	}
}

func TestSettlerWaitsUntilAFileKeepsItsSizeAndTime(t *testing.T) {
	start := time.Unix(1000, 0)
	s := newSettler(2 * time.Second)
	state := map[string][2]int64{"/m/a.flac": {100, 1}}
	stat := func(p string) (int64, int64, bool) { v, ok := state[p]; return v[0], v[1], ok }
	s.changed("/m/a.flac", 100, 1, start)
	if got := s.due(start.Add(1999*time.Millisecond), stat); len(got) != 0 {
		t.Fatalf("due before the settle time: %v", got)
	}
	state["/m/a.flac"] = [2]int64{200, 2} // still growing
	if got := s.due(start.Add(2*time.Second), stat); len(got) != 0 {
		t.Fatalf("a file that changed again is due: %v", got)
	}
	if at, ok := s.next(); !ok || !at.Equal(start.Add(4*time.Second)) {
		t.Fatalf("next check at %v %v, want 4 s", at, ok)
	}
	if got := s.due(start.Add(4*time.Second), stat); len(got) != 1 {
		t.Fatalf("a settled file is not due: %v", got)
	}
	if _, ok := s.next(); ok {
		t.Error("a file returned as due is still pending")
	}
	s.changed("/m/d/x.mp3", 1, 1, start)
	s.changed("/m/dx.mp3", 1, 1, start)
	s.forget("/m/d")
	if len(s.pending) != 1 {
		t.Errorf("forgetting a folder left %v", s.pending)
	}
}

func TestPeriodicRescanRestoresWhatNoEventReported(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "song.flac")
	song(t, path, 0.5, musicgen.Tags{Title: "S"})
	index := newMemIndex()
	local := clock.NewManual(time.Unix(1000, 0))
	progress := scanning(t, Options{Roots: []string{root}, Index: index, Clock: local, Rescan: time.Minute})
	waitDone(t, progress)
	index.waitFor(t, true, path)
	// As if a network mount changed under us: the index lost the file,
	// and no event says so.
	index.Remove(path)
	index.waitFor(t, false, path)
	local.Advance(59 * time.Second)
	select {
	case p := <-progress:
		t.Fatalf("rescanned before the interval: %+v", p)
	case <-time.After(100 * time.Millisecond):
	}
	local.Advance(time.Second)
	waitDone(t, progress)
	index.waitFor(t, true, path)
}

func TestSymlinkLoopsAndOddNamesAreBounded(t *testing.T) {
	root := t.TempDir()
	odd := filepath.Join(root, "new\nline \xff\xfe é.flac")
	song(t, odd, 0.3, musicgen.Tags{})
	os.Symlink(root, filepath.Join(root, "loop"))                                   // a folder loop: not followed
	os.Symlink("b.mp3", filepath.Join(root, "a.mp3"))                               // a file loop: skipped
	os.Symlink("a.mp3", filepath.Join(root, "b.mp3"))                               //
	os.Symlink(odd, filepath.Join(root, "link.flac"))                               // a link to a song: indexed
	os.WriteFile(filepath.Join(root, "garbage.ogg"), []byte("OggS garbage"), 0o644) // unreadable audio: logged
	deep := root
	for range maxDepth + 3 {
		deep = filepath.Join(deep, "d")
	}
	os.MkdirAll(deep, 0o755)
	song(t, filepath.Join(deep, "deep.flac"), 0.3, musicgen.Tags{})
	index := newMemIndex()
	waitDone(t, scanning(t, Options{Roots: []string{root}, Index: index}))
	got := index.paths()
	want := []string{filepath.Join(root, "link.flac"), odd}
	sort.Strings(want)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("indexed %q, want %q", got, want)
	}
	a, _ := index.get(odd)
	if a.Tags.Song.Title != "" {
		t.Errorf("an untagged file's tags give title %q", a.Tags.Song.Title)
	}
	if title := TitleFromName(odd); title != "new line \ufffd é" {
		t.Errorf("title from an odd name: %q", title)
	}
}

func TestVanishingKeepsAMovedFileAndDropsAGoneOne(t *testing.T) {
	start := time.Unix(1000, 0)
	v := newVanishing(2 * time.Second)
	v.went("/m/a/song.flac", 100, 7, start)
	v.went("/m/a/other.flac", 100, 7, start)
	if _, ok := v.cameBack("/m/b/song.flac", 100, 8); ok {
		t.Error("a file with another time taken for the one moved")
	}
	if _, ok := v.cameBack("/m/b/third.flac", 100, 7); ok {
		t.Error("a file with another name taken for the one moved")
	}
	if from, ok := v.cameBack("/m/b/song.flac", 100, 7); !ok || from != "/m/a/song.flac" {
		t.Errorf("moved file: from %q %v", from, ok)
	}
	if at, ok := v.next(); !ok || !at.Equal(start.Add(2*time.Second+vanishMargin)) {
		t.Errorf("next %v %v", at, ok)
	}
	if got := v.due(start.Add(2 * time.Second)); len(got) != 0 {
		t.Errorf("due before the settle time and margin: %v", got)
	}
	if got := v.due(start.Add(3 * time.Second)); len(got) != 1 || got[0] != "/m/a/other.flac" {
		t.Errorf("due %v, want the file that did not come back", got)
	}
}

// TestPlaylistFilesAreReadWholeWithinTheirBound: a scan and the watch hand
// M3U and M3U8 files to the index with their content; one over
// MaxPlaylistSize is not indexed, and the songs beside it are.
func TestPlaylistFilesAreReadWholeWithinTheirBound(t *testing.T) {
	root := t.TempDir()
	song(t, filepath.Join(root, "a.flac"), 0.5, musicgen.Tags{Title: "A"})
	m3u := filepath.Join(root, "Lists", "Mix.M3U")
	os.MkdirAll(filepath.Dir(m3u), 0o755)
	content := "#EXTM3U\n../a.flac\n"
	os.WriteFile(m3u, []byte(content), 0o644)
	huge := filepath.Join(root, "huge.m3u8")
	os.WriteFile(huge, []byte(strings.Repeat("a.flac\n", MaxPlaylistSize/7+1)), 0o644)
	index := newMemIndex()
	waitDone(t, scanning(t, Options{Roots: []string{root}, Index: index, Settle: 200 * time.Millisecond}))
	f, ok := index.get(m3u)
	if !ok || f.Format != FormatPlaylist || string(f.Playlist) != content || len(f.SHA256) != 64 || f.Size != int64(len(content)) {
		t.Fatalf("playlist file indexed as %+v (%v)", f, ok)
	}
	if _, ok := index.get(huge); ok {
		t.Error("a playlist file over MaxPlaylistSize was indexed")
	}
	if _, ok := index.get(filepath.Join(root, "a.flac")); !ok {
		t.Error("the song beside the playlist files was not indexed")
	}
	added := filepath.Join(root, "Lists", "new.m3u8")
	os.WriteFile(added, []byte("../a.flac\n"), 0o644)
	index.waitFor(t, true, added)
	if f, _ := index.get(added); string(f.Playlist) != "../a.flac\n" {
		t.Errorf("watched playlist file indexed as %+v", f)
	}
}
