package speaker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

	err = c.ensure(ctx, url, sha)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("tampered download: err %v, want a hash mismatch", err)
	}
	if _, ok := c.Lookup(sha); ok {
		t.Fatal("tampered song marked cached")
	}
	checkNoTempFiles(t, dir)

	missing := strings.Repeat("ab", 32)
	if err := c.ensure(ctx, url, missing); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing song: err %v, want 404", err)
	}
	if err := c.ensure(ctx, url, "../../etc/passwd"); err == nil {
		t.Fatal("path as song hash accepted")
	}

	serveGood = true
	if err := c.ensure(ctx, url, sha); err != nil {
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
	if err := c2.ensure(ctx, url, sha); err == nil {
		t.Fatal("damaged cached file trusted")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("damaged file kept: %v", err)
	}
	serveGood = true
	if err := c2.ensure(ctx, url, sha); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	c3, _ := newCache(dir, nil)
	if err := c3.ensure(ctx, "", sha); err != nil {
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
