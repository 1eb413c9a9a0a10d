package speaker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/keepalive"
)

// TestPeerServerClosesSilentConnections: connections to a speaker's cache
// server that never finish their request are closed after peerHeaderTimeout,
// while peers' downloads go on.
func TestPeerServerClosesSilentConnections(t *testing.T) {
	_, _, sha, peerURL := peerHoldingSong(t)
	u, err := url.Parse(peerURL)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	var wg sync.WaitGroup
	for range 50 {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte("GET /songs/"))
		wg.Go(func() {
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(3 * peerHeaderTimeout))
			if _, err := io.Copy(io.Discard, conn); err != nil {
				t.Errorf("a silent connection was not closed by the speaker: %v", err)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			if took := time.Since(start); took < peerHeaderTimeout || took > peerHeaderTimeout+5*time.Second {
				t.Errorf("silent connections closed after %v, want about %v", took, peerHeaderTimeout)
			}
			return
		case <-time.After(500 * time.Millisecond):
			if status, _ := peerGet(t, "HEAD", peerURL+sha, "tok1", ""); status != http.StatusOK {
				t.Fatalf("peer download while connections hang: %d", status)
			}
		}
	}
}

// TestPeerServerClosesIdleConnections: a keep-alive connection to a
// speaker's cache server, left idle after a complete request and response
// (a refused one: no token), is closed after the idle timeout, shortened
// here.
func TestPeerServerClosesIdleConnections(t *testing.T) {
	sp, err := New(Options{Name: "b", BrokerURL: "tcp://127.0.0.1:1", CacheDir: t.TempDir(),
		Output: NewVirtualOutput(VirtualOptions{}), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	sp.peerIdle = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := sp.peerServer()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})

	status, closedAfter, err := keepalive.IdleFor(ln.Addr().String(), "/songs/"+strings.Repeat("ab", 32), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusUnauthorized {
		t.Errorf("status %d, want %d", status, http.StatusUnauthorized)
	}
	if closedAfter < sp.peerIdle || closedAfter > sp.peerIdle+5*time.Second {
		t.Errorf("idle connection closed %v after the request, want about %v", closedAfter, sp.peerIdle)
	}
}
