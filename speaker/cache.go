package speaker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
)

// cache is the verified song store: CacheDir/songs/<sha256>, written through
// temp files in CacheDir. A file is trusted only after its hash was checked
// in this process (on download, or on first use of a file left by an earlier
// run), so a file damaged on disk is caught before it plays.
type cache struct {
	dir    string
	client *http.Client

	mu       sync.Mutex
	verified map[string]bool
}

func newCache(dir string, client *http.Client) (*cache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "songs"), 0o755); err != nil {
		return nil, fmt.Errorf("song cache: %w", err)
	}
	return &cache{dir: dir, client: client, verified: map[string]bool{}}, nil
}

func (c *cache) path(sha string) string { return filepath.Join(c.dir, "songs", sha) }

// Lookup implements songFiles: only verified songs are found.
func (c *cache) Lookup(sha string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.path(sha), c.verified[sha]
}

// ensure makes sha available: it verifies a file already there, or fetches
// it from songsURL.
func (c *cache) ensure(ctx context.Context, songsURL, sha string) error {
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
	if songsURL == "" {
		return errors.New("no song server known yet")
	}
	if err := c.fetch(ctx, songsURL+sha, sha); err != nil {
		return err
	}
	c.markVerified(sha)
	return nil
}

func (c *cache) markVerified(sha string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.verified[sha] = true
}

// fetch downloads url into a temp file, checks its hash, syncs it and
// renames it into place; on any failure the temp file is removed.
func (c *cache) fetch(ctx context.Context, url, sha string) (err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	tmp, err := os.CreateTemp(c.dir, "fetch-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	if _, err = io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return fmt.Errorf("GET %s: content hash %s does not match", url, got)
	}
	if err = tmp.Sync(); err != nil {
		return err
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
	return nil
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
