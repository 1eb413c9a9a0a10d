package speaker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheFetchVerifies(t *testing.T) {
	good := []byte("the real song")
	sum := sha256.Sum256(good)
	sha := hex.EncodeToString(sum[:])
	serveGood := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/songs/"+sha {
			http.NotFound(w, r)
			return
		}
		if serveGood {
			w.Write(good)
		} else {
			w.Write([]byte("tampered song"))
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	c, err := newCache(dir, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	url := srv.URL + "/songs/"

	err = c.ensure(ctx, sources{bases: []string{url}}, sha, 0)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("tampered download: err %v, want a hash mismatch", err)
	}
	if _, ok := c.Lookup(sha); ok {
		t.Fatal("tampered song marked cached")
	}
	checkNoTempFiles(t, dir)

	missing := strings.Repeat("ab", 32)
	if err := c.ensure(ctx, sources{bases: []string{url}}, missing, 0); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing song: err %v, want 404", err)
	}
	if err := c.ensure(ctx, sources{bases: []string{url}}, "../../etc/passwd", 0); err == nil {
		t.Fatal("path as song hash accepted")
	}

	serveGood = true
	if err := c.ensure(ctx, sources{bases: []string{url}}, sha, 0); err != nil {
		t.Fatal(err)
	}
	path, ok := c.Lookup(sha)
	if b, err := os.ReadFile(path); !ok || err != nil || string(b) != string(good) {
		t.Fatalf("cached song: %q, %v, %v", b, ok, err)
	}
	checkNoTempFiles(t, dir)

	// A later process verifies what it finds on disk, and refetches it when damaged.
	os.WriteFile(path, []byte("bit rot"), 0o644)
	serveGood = false
	c2, _ := newCache(dir, srv.Client())
	if err := c2.ensure(ctx, sources{bases: []string{url}}, sha, 0); err == nil {
		t.Fatal("damaged cached file trusted")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("damaged file kept: %v", err)
	}
	serveGood = true
	if err := c2.ensure(ctx, sources{bases: []string{url}}, sha, 0); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	c3, _ := newCache(dir, nil)
	if err := c3.ensure(ctx, sources{}, sha, 0); err != nil {
		t.Fatalf("intact cached file not reused without a server: %v", err)
	}
}

func checkNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	tmps, _ := filepath.Glob(filepath.Join(dir, "fetch-*"))
	if len(tmps) > 0 {
		t.Fatalf("temp files left: %v", tmps)
	}
}

// TestCacheFetchFromTheMiddle: a fetch that starts mid-song gets the head,
// then from a little before the start to the end, then the middle, and
// verifies the whole; a server that ignores Range still works.
func TestCacheFetchFromTheMiddle(t *testing.T) {
	song := make([]byte, 1<<20+12345)
	for i := range song {
		song[i] = byte(i * 7 / 3)
	}
	sum := sha256.Sum256(song)
	sha := hex.EncodeToString(sum[:])
	var mu sync.Mutex
	var ranges []string
	ignoreRange := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		ignore := ignoreRange
		mu.Unlock()
		if ignore {
			w.Write(song)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(song))
	}))
	defer srv.Close()
	for _, ignore := range []bool{false, true} {
		mu.Lock()
		ignoreRange, ranges = ignore, nil
		mu.Unlock()
		dir := t.TempDir()
		c, err := newCache(dir, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ensure(context.Background(), sources{bases: []string{srv.URL + "/"}}, sha, 0.75); err != nil {
			t.Fatal(err)
		}
		path, ok := c.Lookup(sha)
		if b, err := os.ReadFile(path); !ok || err != nil || !bytes.Equal(b, song) {
			t.Fatalf("ignore range %v: cached song differs (%v, %v)", ignore, ok, err)
		}
		if _, ok := c.Partial(sha); ok {
			t.Error("download still listed after it completed")
		}
		checkNoTempFiles(t, dir)
		from := int64(0.75*float64(len(song))) - joinMargin
		want := []string{"bytes=0-65535", fmt.Sprintf("bytes=%d-%d", from, len(song)-1), fmt.Sprintf("bytes=65536-%d", from-1)}
		if ignore {
			want = want[:1]
		}
		mu.Lock()
		if !slices.Equal(ranges, want) {
			t.Errorf("ignore range %v: requests %q, want %q", ignore, ranges, want)
		}
		mu.Unlock()
	}
}

// TestDownloadHas checks the byte ranges a download reports as written.
func TestDownloadHas(t *testing.T) {
	d := &download{size: 1000}
	d.setHead(100)
	d.setTail(600, 800)
	for _, c := range []struct {
		from, to int64
		want     bool
	}{
		{0, 100, true}, {0, 101, false}, {50, 100, true}, {600, 800, true}, {650, 700, true},
		{599, 700, false}, {700, 801, false}, {900, 2000, false}, {1000, 2000, true},
	} {
		if got := d.has(c.from, c.to); got != c.want {
			t.Errorf("has(%d, %d) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
	d.setHead(650) // the middle arrives: one range with the tail
	if !d.has(0, 800) || d.has(0, 801) {
		t.Error("head and tail not joined")
	}
	d.finish(downloadVerified)
	if !d.has(0, 2000) {
		t.Error("verified download incomplete")
	}
}

// TestCacheEvictsLeastRecentlyUsed: over its cap the cache deletes the songs
// used longest ago, but never one it is told to keep (the current or next),
// and forgets that they were verified.
func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c, err := newCache(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.maxBytes = 3000
	var shas []string
	for i := range 5 {
		sha := fmt.Sprintf("%064x", i+1)
		if err := os.WriteFile(c.path(sha), make([]byte, 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		c.markVerified(sha)
		shas = append(shas, sha)
	}
	// Use order, oldest first: 3, 0, 4, 1, 2. Song 3 is the current one.
	for _, i := range []int{3, 0, 4, 1, 2} {
		c.Lookup(shas[i])
		time.Sleep(2 * time.Millisecond)
	}
	deleted, err := c.evict(map[string]bool{shas[3]: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 2 || deleted[0] != shas[0] || deleted[1] != shas[4] {
		t.Errorf("deleted %v, want songs 0 and 4 (the least recently used but the kept 3)", deleted)
	}
	for i, sha := range shas {
		_, verified := c.Lookup(sha)
		_, statErr := os.Stat(c.path(sha))
		if gone := i == 0 || i == 4; verified == gone || (statErr == nil) == gone {
			t.Errorf("song %d: verified %v, file err %v", i, verified, statErr)
		}
	}
	if again, _ := c.evict(nil); len(again) != 0 {
		t.Errorf("within the cap, evict deleted %v", again)
	}
}

// TestCacheMakesRoomByFreeSpace: far below its cap, the cache deletes the
// songs used longest ago (never a kept one) until a song about to be
// fetched fits on the disk with the margin to spare, and says there is no
// room when deleting every other song is not enough.
func TestCacheMakesRoomByFreeSpace(t *testing.T) {
	dir := t.TempDir()
	c, err := newCache(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.maxBytes = 1 << 40
	// The disk: the margin, 4000 bytes, and what other files hold.
	var others atomic.Int64
	c.freeSpace = func(string) (int64, error) {
		entries, err := os.ReadDir(filepath.Join(dir, "songs"))
		return cacheFreeMargin + 4000 - int64(len(entries))*1000 - others.Load(), err
	}
	var shas []string
	for i := range 3 {
		sha := fmt.Sprintf("%064x", i+1)
		if err := os.WriteFile(c.path(sha), make([]byte, 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		c.markVerified(sha)
		shas = append(shas, sha)
		c.Lookup(sha)
		time.Sleep(2 * time.Millisecond)
	}
	c.keep = func() map[string]bool { return map[string]bool{shas[0]: true} }

	// 1000 free: a song of 1000 fits; one of 2500 takes songs 1 and 2.
	if deleted, err := c.makeRoom("new", 1000); err != nil || len(deleted) != 0 {
		t.Fatalf("room for a song that fits: deleted %v, %v", deleted, err)
	}
	deleted, err := c.makeRoom("new", 2500)
	if err != nil || len(deleted) != 2 || deleted[0] != shas[1] || deleted[1] != shas[2] {
		t.Fatalf("room for 2500 bytes: deleted %v, %v; want songs 1 and 2, song 0 kept", deleted, err)
	}
	// Other files take 2500 of the 3000 free: song 0 is kept, no room.
	others.Store(2500)
	if _, err := c.makeRoom("new", 1000); !errors.Is(err, errNoRoom) {
		t.Fatalf("a disk full of other files: %v, want errNoRoom", err)
	}
	if _, err := os.Stat(c.path(shas[0])); err != nil {
		t.Errorf("the kept song was deleted: %v", err)
	}
}
