package musicfolder

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/protocol"
)

// waitScan waits for a finished scan whose report satisfies ok, and
// returns it.
func waitScan(t *testing.T, progress <-chan protocol.ScanProgress, ok func(protocol.ScanProgress) bool) protocol.ScanProgress {
	t.Helper()
	var last protocol.ScanProgress
	deadline := time.After(30 * time.Second)
	for {
		select {
		case p := <-progress:
			if p.Done {
				last = p
				if ok(p) {
					return p
				}
			}
		case <-deadline:
			t.Fatalf("no scan as awaited in 30 s; last %+v", last)
		}
	}
}

// unavailableAs is a condition of waitScan: root alone unavailable, for a
// reason that holds why.
func unavailableAs(root, why string) func(protocol.ScanProgress) bool {
	return func(p protocol.ScanProgress) bool {
		return len(p.Unavailable) == 1 && p.Unavailable[0].Root == root && strings.Contains(p.Unavailable[0].Reason, why)
	}
}

// TestUnavailableRootKeepsItsFilesAndComesBackUnread: a music folder
// renamed away and replaced by an empty folder (a share unmounted from its
// mount point), then gone altogether, is reported unavailable and its
// files stay in the index untouched; the other folder is scanned as ever.
// Brought back, it is scanned on its own within availabilityRecheck and
// none of its files is read again.
func TestUnavailableRootKeepsItsFilesAndComesBackUnread(t *testing.T) {
	dir := t.TempDir()
	root, away, other := filepath.Join(dir, "nas"), filepath.Join(dir, "away"), filepath.Join(dir, "local")
	for _, p := range []string{"nas/A/Album/01.flac", "nas/A/Album/02.mp3", "nas/B/x.ogg", "local/y.wav"} {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		song(t, full, 0.3, musicgen.Tags{Title: p})
	}
	index := newMemIndex()
	local := clock.NewManual(time.Unix(1000, 0))
	progress := scanning(t, Options{Roots: []string{root, other}, Index: index, Clock: local, Rescan: time.Hour})
	if p := waitDone(t, progress); p.Seen != 4 || p.Files != 4 || len(p.Unavailable) != 0 {
		t.Fatalf("first scan %+v", p)
	}
	indexed := index.paths()
	for len(index.changes) > 0 {
		<-index.changes
	}
	scanner := rescanOf[t.Name()]

	// A file added to the other folder meanwhile is read as ever.
	added := filepath.Join(other, "z.flac")
	song(t, added, 0.3, musicgen.Tags{Title: "z"})
	// Renamed away: the watch sees the folder go, and a scan follows.
	if err := os.Rename(root, away); err != nil {
		t.Fatal(err)
	}
	waitScan(t, progress, unavailableAs(root, "no such file"))
	// An empty folder in its place, as a mount point without its share
	// (but for a dot file of its own).
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, ".mountpoint"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	scanner.Rescan()
	p := waitScan(t, progress, unavailableAs(root, "empty, while 3 files were indexed"))
	if p.Seen != 2 {
		t.Errorf("scan with the share unmounted: %+v, want the other folder's 2 files seen", p)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	scanner.Rescan()
	waitScan(t, progress, unavailableAs(root, "no such file"))
	want := slices.Sorted(slices.Values(append(indexed, added)))
	if got := index.paths(); !slices.Equal(got, want) {
		t.Fatalf("index while the folder is unavailable:\n%v\nwant\n%v", got, want)
	}
	for len(index.changes) > 0 {
		if c := <-index.changes; isBelow(c.path, root) {
			t.Errorf("the index changed while the folder was unavailable: %+v", c)
		}
	}

	// Back: looked at again after availabilityRecheck, not before.
	if err := os.Rename(away, root); err != nil {
		t.Fatal(err)
	}
	local.Advance(availabilityRecheck - time.Second)
	select {
	case p := <-progress:
		t.Fatalf("scanned before the recheck was due: %+v", p)
	case <-time.After(100 * time.Millisecond):
	}
	local.Advance(time.Second)
	p = waitDone(t, progress)
	if len(p.Unavailable) != 0 || p.Seen != 5 || p.Files != 0 {
		t.Errorf("scan once the folder is back: %+v, want 5 files seen, none read", p)
	}
	if len(index.changes) != 0 {
		t.Errorf("the index changed when the folder came back: %+v", <-index.changes)
	}
}
