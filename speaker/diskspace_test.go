package speaker

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// smallDisk returns an empty directory on a file system of size bytes and
// the speaker's reading of its free space: a tmpfs mounted for the test
// where the test may mount one (as root), read with statfs; elsewhere a
// plain directory whose free space is size minus the bytes of the files
// in it.
func smallDisk(t *testing.T, size int64) (string, func(string) (int64, error)) {
	t.Helper()
	dir := t.TempDir()
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size))
	if err == nil {
		// Registered after TempDir's removal, so it runs before it.
		t.Cleanup(func() {
			if err := syscall.Unmount(dir, 0); err != nil {
				t.Errorf("unmount the test's tmpfs: %v", err)
			}
		})
		t.Logf("a tmpfs of %d bytes", size)
		return dir, freeSpace
	}
	t.Logf("cannot mount a tmpfs (%v): free space is the size less the files' bytes", err)
	return dir, func(string) (int64, error) {
		var used int64
		err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
				used += info.Size()
			}
			return nil
		})
		return size - used, err
	}
}

// timecodeSongs makes n songs of the given seconds, song i's timecode
// starting at i million, and a test controller serving them that counts
// the requests for each.
func timecodeSongs(t *testing.T, n, seconds int) (c *testController, pl protocol.Playlist, requests *sync.Map) {
	files := map[string][]byte{}
	pl = protocol.Playlist{V: 1, Session: "home", Version: 1}
	for i := range n {
		b, sha := timecodeWAV(t, int64(seconds*testRate), int64(i)*1_000_000)
		files[sha] = b
		pl.Entries = append(pl.Entries, protocol.Entry{ID: fmt.Sprint("e", i), Song: sha, Frames: int64(seconds * testRate), SampleRate: testRate})
	}
	requests = &sync.Map{}
	c = newTestControllerServing(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		count, _ := requests.LoadOrStore(r.URL.Path, new(atomic.Int64))
		count.(*atomic.Int64).Add(1)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}))
	c.retain(protocol.PlaylistTopic("home"), pl)
	return c, pl, requests
}

// TestCacheEvictsForFreeSpace: the cache's cap (1 GiB, the default) is far
// above what its disk has free, room for three of six songs besides the
// margin. The speaker plays all six through, deleting songs it played to
// make room, and the disk never has less than the margin free.
func TestCacheEvictsForFreeSpace(t *testing.T) {
	const songs, seconds = 6, 2
	c, pl, _ := timecodeSongs(t, songs, seconds)
	songBytes := int64(44 + seconds*testRate*4)
	disk, free := smallDisk(t, cacheFreeMargin+3*songBytes+songBytes/2)
	startAt := time.Now().Add(1500 * time.Millisecond).UnixNano()
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 1, State: protocol.Playing,
		Volume: 100, PlaylistVersion: 1, Anchor: protocol.Anchor{AtNs: startAt, Entry: pl.Entries[0].ID, Playing: true}})

	var minFree atomic.Int64
	minFree.Store(1 << 62)
	watching := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			if f, err := free(disk); err == nil && f < minFree.Load() {
				minFree.Store(f)
			}
			select {
			case <-watching:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	warnings := &lockedBuffer{}
	sp := startSpeakerWith(t, c, "kitchen", nil, func(o *Options) {
		o.CacheDir, o.FreeSpace = disk, free
		o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(warnings, t.Output()), &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	end := startAt + int64(songs*seconds)*int64(time.Second)
	time.Sleep(time.Until(time.Unix(0, end)))
	st := c.status("kitchen")
	sp.stop()
	close(watching)
	<-watched

	blocks, err := playlog.Read(strings.NewReader(sp.log.String()))
	if err != nil {
		t.Fatal(err)
	}
	heard := make([]int, songs)
	for _, b := range blocks {
		if i := b.Frame / 1_000_000; i >= 0 && i < songs {
			heard[i]++
		}
	}
	underruns, err := playlog.Underruns(strings.NewReader(sp.log.String()))
	if err != nil {
		t.Fatal(err)
	}
	// Every song was fetched at the first try and played: how much of it
	// was heard depends on how often this machine stalled the process (its
	// device logs underruns), not on the disk.
	for i, n := range heard {
		if n == 0 {
			t.Errorf("song %d never heard (all: %v, %d underruns)", i, heard, len(underruns))
		}
	}
	if w := warnings.String(); strings.Contains(w, "song fetch failed") {
		t.Errorf("a fetch failed:\n%s", w)
	}
	if f := minFree.Load(); f < cacheFreeMargin {
		t.Errorf("the disk had %d bytes free at worst, below the margin of %d", f, cacheFreeMargin)
	}
	if st.CacheNoRoom != "" {
		t.Errorf("status reports no room: %q", st.CacheNoRoom)
	}
	entries, err := os.ReadDir(filepath.Join(disk, "songs"))
	if err != nil || len(entries) > 3 {
		t.Errorf("%d songs cached at the end (%v), want at most 3", len(entries), err)
	}
	t.Logf("blocks heard per song %v (%d underruns), least free %d bytes (margin %d)", heard, len(underruns), minFree.Load(), cacheFreeMargin)
}

// TestCacheFullOfOtherFiles: other files fill the cache's disk, so the song
// due cannot be fetched. The speaker says so in its status, retries with
// backoff (a few requests, not a flood), and plays as soon as the files
// are gone.
func TestCacheFullOfOtherFiles(t *testing.T) {
	const seconds = 20
	c, pl, requests := timecodeSongs(t, 1, seconds)
	songBytes := int64(44 + seconds*testRate*4)
	disk, free := smallDisk(t, cacheFreeMargin+2*songBytes)
	other := filepath.Join(disk, "other")
	if err := os.WriteFile(other, make([]byte, 3*songBytes/2), 0o600); err != nil {
		t.Fatal(err)
	}
	startAt := time.Now().Add(500 * time.Millisecond).UnixNano()
	c.retain(protocol.SessionStateTopic("home"), protocol.SessionState{V: 1, Session: "home", Seq: 1, State: protocol.Playing,
		Volume: 100, PlaylistVersion: 1, Anchor: protocol.Anchor{AtNs: startAt, Entry: pl.Entries[0].ID, Playing: true}})
	sp := startSpeakerWith(t, c, "kitchen", nil, func(o *Options) { o.CacheDir, o.FreeSpace = disk, free })

	testwait.For(t, "the status to report no room", 10*time.Second, func() bool {
		return strings.Contains(c.status("kitchen").CacheNoRoom, "no room on the disk")
	})
	t.Logf("status: %q", c.status("kitchen").CacheNoRoom)
	time.Sleep(3 * time.Second)
	count, _ := requests.Load(pl.Entries[0].Song)
	attempts := count.(*atomic.Int64).Load()
	// Backoff doubles from 200 ms: within 3 s and the wait before, a
	// handful of attempts.
	if attempts > 8 {
		t.Errorf("%d fetch attempts while the disk was full", attempts)
	}
	if st := c.status("kitchen"); st.State == protocol.Playing {
		t.Errorf("playing a song it could not fetch: %+v", st)
	}

	if err := os.Remove(other); err != nil {
		t.Fatal(err)
	}
	cleared := time.Now()
	testwait.For(t, "the speaker to play once the disk has room", fetchBackoffMax+5*time.Second, func() bool {
		st := c.status("kitchen")
		return st.State == protocol.Playing && st.CacheNoRoom == ""
	})
	t.Logf("%d fetch attempts while full; playing %v after the files went", attempts, time.Since(cleared).Round(time.Millisecond))
	sp.stop()
}
