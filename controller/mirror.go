package controller

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// songMirror copies song files from the lease holder's song server while we
// are a standby, so the library's files survive the holder's host. Each file
// goes through library.add, which checks its hash.
type songMirror struct {
	lib    *library
	log    *slog.Logger
	client *http.Client

	mu       sync.Mutex
	url      string          // holder's SongsURL; "" while we hold the lease
	token    string          // holder's fetch token
	wanted   map[string]bool // songs to fetch
	failures map[string]int  // consecutive failures, for backoff
	wake     chan struct{}
}

func newSongMirror(lib *library, log *slog.Logger, tlsConf *tls.Config) *songMirror {
	client := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	return &songMirror{lib: lib, log: log, client: client,
		wanted: map[string]bool{}, failures: map[string]int{}, wake: make(chan struct{}, 1)}
}

// setSource names the holder's song server; "" stops fetching.
func (m *songMirror) setSource(url, token string) {
	m.mu.Lock()
	changed := url != m.url
	m.url, m.token = url, token
	m.mu.Unlock()
	if changed {
		m.poke()
	}
}

// want asks for a song's file unless we hold it.
func (m *songMirror) want(sha string) {
	if m.lib.holds(sha) {
		return
	}
	m.mu.Lock()
	m.wanted[sha] = true
	m.mu.Unlock()
	m.poke()
}

func (m *songMirror) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run fetches wanted songs one at a time until ctx is done.
func (m *songMirror) run(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		sha, url, token := m.next()
		if sha != "" && url != "" {
			err := m.fetch(ctx, url, token, sha)
			m.mu.Lock()
			if err == nil {
				delete(m.wanted, sha)
				delete(m.failures, sha)
			} else {
				m.failures[sha]++
			}
			m.mu.Unlock()
			if err == nil {
				continue
			}
			if ctx.Err() == nil {
				m.log.Warn("mirroring a song failed; will retry", "sha256", sha, "err", err)
			}
			retry.Reset(time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-retry.C:
		}
	}
}

// next picks the wanted song that failed least.
func (m *songMirror) next() (sha, url, token string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	best := -1
	for s := range m.wanted {
		if m.lib.holds(s) {
			delete(m.wanted, s)
			continue
		}
		if f := m.failures[s]; best < 0 || f < best {
			sha, best = s, f
		}
	}
	return sha, m.url, m.token
}

func (m *songMirror) fetch(ctx context.Context, url, token, sha string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+sha, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url+sha, resp.Status)
	}
	if _, _, err := m.lib.add(resp.Body, sha, ""); err != nil {
		return err
	}
	m.log.Debug("song mirrored", "sha256", sha)
	return nil
}
