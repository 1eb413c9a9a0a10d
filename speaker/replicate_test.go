package speaker

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// countingSongs serves songs like the controller does and counts the
// requests for each.
type countingSongs struct {
	songs map[string][]byte

	mu       sync.Mutex
	requests map[string]int
	auth     []string // Authorization headers seen
}

func (s *countingSongs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.requests == nil {
		s.requests = map[string]int{}
	}
	s.requests[r.URL.Path]++
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	s.mu.Unlock()
	b, ok := s.songs[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

func (s *countingSongs) count(sha string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[sha]
}

func (s *countingSongs) authSeen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.auth)
}

func (c *testController) announce(song protocol.Song) {
	if err := c.broker.Publish(protocol.LibrarySongTopic(song.SHA256), protocol.Encode(song), false, 1); err != nil {
		c.t.Fatal(err)
	}
}

// songAcks counts speaker id's acks of song sha.
func (c *testController) songAcks(id, sha string) int {
	n := 0
	for _, a := range c.acksOf(id) {
		if a.Song == sha {
			n++
		}
	}
	return n
}

func TestSpeakerReplicatesAnnouncedSongs(t *testing.T) {
	songX, shaX := timecodeWAV(t, testRate, 0)
	songY, shaY := timecodeWAV(t, testRate, 5000)
	server := &countingSongs{songs: map[string][]byte{shaX: songX, shaY: songY}}
	c := newTestControllerServing(t, server)
	c.retain(protocol.LeaseTopic, protocol.Lease{V: 1, Term: 1, Holder: "c1", SongsURL: c.songs.URL + "/songs/", FetchToken: "tok1"})
	// The library's retained record of Y is no request to replicate it.
	c.retain(protocol.LibrarySongTopic(shaY), protocol.Song{SHA256: shaY, Size: int64(len(songY))})
	startSpeaker(t, c, "den", nil)
	testwait.For(t, "the speaker online", 10*time.Second, func() bool { return c.status("den").Online })

	// Garbage is logged and ignored.
	for _, junk := range []string{"{not json", `{"sha256":"` + shaY + `"}`, `{"sha256":"../../etc/passwd"}`, `{"sha256":7}`} {
		if err := c.broker.Publish(protocol.LibrarySongTopic(shaX), []byte(junk), false, 1); err != nil {
			t.Fatal(err)
		}
	}
	// A song larger than the cache is not fetched.
	huge := strings.Repeat("ab", 32)
	c.announce(protocol.Song{SHA256: huge, Size: 2 * DefaultCacheMax})

	c.announce(protocol.Song{SHA256: shaX, Size: int64(len(songX))})
	testwait.For(t, "the ack of song X", 10*time.Second, func() bool { return c.songAcks("den", shaX) == 1 })
	if n := server.count(shaX); n != 1 {
		t.Errorf("song X fetched %d times, want once", n)
	}
	if auth := server.authSeen(); !slices.Contains(auth, "Bearer tok1") {
		t.Errorf("fetch without the lease's token: %q", auth)
	}

	// A cached song is acked at once.
	announced := time.Now()
	c.announce(protocol.Song{SHA256: shaX, Size: int64(len(songX))})
	testwait.For(t, "the second ack of song X", 5*time.Second, func() bool { return c.songAcks("den", shaX) == 2 })
	if took := time.Since(announced); took > time.Second {
		t.Errorf("ack of a cached song took %v", took)
	}
	if n := server.count(shaX); n != 1 {
		t.Errorf("cached song X fetched again (%d requests)", n)
	}
	if n, acks := server.count(shaY)+server.count(huge), c.songAcks("den", shaY)+c.songAcks("den", huge); n != 0 || acks != 0 {
		t.Errorf("retained or oversized announcements fetched (%d requests) or acked (%d acks)", n, acks)
	}
}
