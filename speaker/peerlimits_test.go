package speaker

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// TestPeerServerClosesSilentConnections: connections to a speaker's cache
// server that never finish their request are closed after peerHeaderTimeout,
// while peers' downloads go on.
func TestPeerServerClosesSilentConnections(t *testing.T) {
	song, sha := timecodeWAV(t, testRate, 0)
	c := newTestController(t, map[string][]byte{sha: song})
	c.retain(protocol.LeaseTopic, protocol.Lease{V: 1, Term: 1, Holder: "c1", SongsURL: c.songs.URL + "/songs/", FetchToken: "tok1"})
	startSpeakerWith(t, c, "b", nil, func(o *Options) { o.PeerAddr = "127.0.0.1:0" })
	waitFor(t, "speaker b online", 10*time.Second, func() bool { return c.status("b").PeerURL != "" })
	c.announce(protocol.Song{SHA256: sha, Size: int64(len(song))})
	waitFor(t, "speaker b to hold the song", 10*time.Second, func() bool { return c.songAcks("b", sha) == 1 })
	peerURL := c.status("b").PeerURL
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
