package speaker

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// peerGet requests url with a bearer token ("" = none) and an optional
// Range, and returns the status and body.
func peerGet(t *testing.T, method, url, token, rangeHeader string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// peerHoldingSong starts speaker b with a cache server (token "tok1") and
// has it fetch a song from the controller: the setup of the peer tests.
func peerHoldingSong(t *testing.T) (c *testController, song []byte, sha, peerURL string) {
	t.Helper()
	song, sha = timecodeWAV(t, testRate, 0)
	c = newTestController(t, map[string][]byte{sha: song})
	c.retain(protocol.LeaseTopic, protocol.Lease{V: 1, Term: 1, Holder: "c1", SongsURL: c.songs.URL + "/songs/", FetchToken: "tok1"})
	startSpeakerWith(t, c, "b", nil, func(o *Options) { o.PeerAddr = "127.0.0.1:0" })
	testwait.For(t, "speaker b online", 10*time.Second, func() bool { return c.status("b").PeerURL != "" })
	c.announce(protocol.Song{SHA256: sha, Size: int64(len(song))})
	testwait.For(t, "speaker b to hold the song", 10*time.Second, func() bool { return c.songAcks("b", sha) == 1 })
	return c, song, sha, c.status("b").PeerURL
}

// TestPeerFetch: with the controller's song server gone, a speaker fetches
// a song from another speaker's cache, skipping a peer that serves corrupt
// bytes; the cache is served only to bearers of the lease's fetch token.
func TestPeerFetch(t *testing.T) {
	c, song, sha, peerURL := peerHoldingSong(t)

	// The cache over HTTP.
	for _, tc := range []struct {
		method, path, token, rangeHeader string
		status                           int
		body                             []byte
	}{
		{"GET", sha, "", "", http.StatusUnauthorized, nil},
		{"GET", sha, "wrong", "", http.StatusUnauthorized, nil},
		{"GET", strings.Repeat("cd", 32), "tok1", "", http.StatusNotFound, nil},
		{"GET", "not-a-hash", "tok1", "", http.StatusNotFound, nil},
		{"GET", sha, "tok1", "", http.StatusOK, song},
		{"HEAD", sha, "tok1", "", http.StatusOK, nil},
		{"GET", sha, "tok1", "bytes=100-199", http.StatusPartialContent, song[100:200]},
	} {
		status, body := peerGet(t, tc.method, peerURL+tc.path, tc.token, tc.rangeHeader)
		if status != tc.status || tc.body != nil && !bytes.Equal(body, tc.body) {
			t.Errorf("%s %s with token %q, range %q: %d and %d bytes, want %d and %d bytes",
				tc.method, tc.path, tc.token, tc.rangeHeader, status, len(body), tc.status, len(tc.body))
		}
	}
	// A new term's token works, and the previous one still does (a download
	// in flight must not break); the one before that no longer.
	c.retain(protocol.LeaseTopic, protocol.Lease{V: 1, Term: 2, Holder: "c2", SongsURL: c.songs.URL + "/songs/", FetchToken: "tok2"})
	testwait.For(t, "the token of term 2", 5*time.Second, func() bool { s, _ := peerGet(t, "HEAD", peerURL+sha, "tok2", ""); return s == http.StatusOK })
	if s, _ := peerGet(t, "HEAD", peerURL+sha, "tok1", ""); s != http.StatusOK {
		t.Errorf("previous term's token: %d", s)
	}
	c.retain(protocol.LeaseTopic, protocol.Lease{V: 1, Term: 3, Holder: "c3", SongsURL: c.songs.URL + "/songs/", FetchToken: "tok3"})
	testwait.For(t, "the token of term 3", 5*time.Second, func() bool { s, _ := peerGet(t, "HEAD", peerURL+sha, "tok3", ""); return s == http.StatusOK })
	if s, _ := peerGet(t, "HEAD", peerURL+sha, "tok1", ""); s != http.StatusUnauthorized {
		t.Errorf("token two terms old: %d, want 401", s)
	}

	// The controller's host goes away; a peer "a" serves corrupt bytes.
	c.songs.Close()
	corrupt := &countingSongs{songs: map[string][]byte{sha: append(bytes.Clone(song[:len(song)-1]), song[len(song)-1]^0xff)}}
	bad := httptest.NewServer(http.StripPrefix("/songs/", corrupt))
	t.Cleanup(bad.Close)
	c.retain(protocol.SpeakerStatusTopic("a"), protocol.SpeakerStatus{V: 1, ID: "a", Online: true, Instance: "x", PeerURL: bad.URL + "/songs/"})
	// Speaker c tries the controller, then a, then b (ids after its own, wrapping).
	startSpeaker(t, c, "c", nil)
	testwait.For(t, "speaker c online", 10*time.Second, func() bool { return c.status("c").Online })
	c.announce(protocol.Song{SHA256: sha, Size: int64(len(song))})
	testwait.For(t, "speaker c to hold the song", 15*time.Second, func() bool { return c.songAcks("c", sha) == 1 })
	if corrupt.count(sha) == 0 {
		t.Error("the corrupt peer was never asked")
	}
	if auth := corrupt.authSeen(); len(auth) == 0 || auth[0] != "Bearer tok3" {
		t.Errorf("peer asked with %q, want the current token", auth)
	}
	if n := c.songAcks("b", sha); n != 2 {
		t.Errorf("speaker b acked the song %d times, want 2 (it had it cached)", n)
	}
}

func TestDefaultPeerURL(t *testing.T) {
	got := defaultPeerURL(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7654}, "tcp://127.0.0.1:1883")
	if got != "http://127.0.0.1:7654/songs/" {
		t.Errorf("bound to loopback: %s", got)
	}
	// Bound to all interfaces: the address that routes to the broker.
	got = defaultPeerURL(&net.TCPAddr{IP: net.IPv6unspecified, Port: 7654}, "tcp://127.0.0.1:1883")
	if got != "http://127.0.0.1:7654/songs/" {
		t.Errorf("all interfaces, broker on loopback: %s", got)
	}
}
