package controller

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// conversionCluster is a music folder holding an AAC M4A (hash m4a),
// indexed by a holder a and a standby b, and a speaker's view of session
// home, whose playlist holds the M4A's entry, of the FLAC flac.
type conversionCluster struct {
	broker string
	a, b   *Controller
	stopA  func()
	tc     *testClient
	view   speakerView
	m4a    string
	flac   string
}

// newConversionCluster starts the cluster, b with ffmpeg at bFFmpeg, and
// enqueues the M4A on a; it returns once b has learnt the link and holds
// the FLAC.
func newConversionCluster(t *testing.T, bFFmpeg string) conversionCluster {
	music := t.TempDir()
	m4a, _ := makeM4A(t, "aac", 3)
	path := filepath.Join(music, "Album", "01 Tune.m4a")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, m4a, 0o644); err != nil {
		t.Fatal(err)
	}
	broker := startBroker(t)
	ttl := 600 * time.Millisecond
	cl := conversionCluster{broker: broker, m4a: hashOf(m4a)}
	cl.a, cl.stopA = startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "a", LeaseTTL: ttl,
		MusicDirs: []string{music}, Sessions: []string{"home"}})
	cl.b, _ = runController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "b", LeaseTTL: ttl,
		MusicDirs: []string{music}, Sessions: []string{"home"}, FFmpeg: bFFmpeg})
	cl.tc = newTestClient(t, broker, protocol.DefaultReplyTopic)
	cl.view = newSpeakerView(t, broker)
	for _, c := range []*Controller{cl.a, cl.b} {
		testwait.For(t, "the M4A indexed with its length", waitTimeout, func() bool {
			s, err := c.store.song(cl.m4a)
			return err == nil && s.Frames > 0
		})
	}
	testwait.For(t, "the standby to know the holder", waitTimeout, cl.b.otherHolder.Load)

	queued := cl.tc.cmd("q1", `{"cmd":"enqueue","song":"`+cl.m4a+`","req_id":"q1"}`)
	_, pl := cl.view.await(seqFrom(queued.State.Seq))
	if len(pl.Entries) != 1 || pl.Entries[0].Song == cl.m4a {
		t.Fatalf("playlist after the M4A's enqueue: %+v", pl.Entries)
	}
	cl.flac = pl.Entries[0].Song
	testwait.For(t, "the standby to learn the conversion and fetch it", waitTimeout, func() bool {
		flac, err := cl.b.store.playsAs(cl.m4a)
		return err == nil && flac == cl.flac && cl.b.lib.holdsUpload(cl.flac)
	})
	return cl
}

// failOver stops the holder and waits for b to take over.
func (cl conversionCluster) failOver(t *testing.T) {
	cl.stopA()
	testwait.For(t, "the standby to take over", waitTimeout, cl.b.holding)
}

// enqueueAndPlay enqueues the M4A on the new holder and plays that entry;
// every entry the speakers see names the first FLAC, which the new holder
// serves.
func (cl conversionCluster) enqueueAndPlay(t *testing.T) {
	t.Helper()
	reply := cl.tc.request(protocol.SessionCommandTopic("home"), protocol.DefaultReplyTopic, "q2",
		`{"cmd":"enqueue","song":"`+cl.m4a+`","req_id":"q2"}`)
	if !reply.OK {
		t.Fatalf("enqueue of the M4A on the new holder: %+v", reply)
	}
	played := cl.tc.cmd("p1", `{"cmd":"play","index":1,"req_id":"p1"}`)
	st, pl := cl.view.await(seqFrom(played.State.Seq))
	if len(pl.Entries) != 2 || pl.Entries[0].Song != cl.flac || pl.Entries[1].Song != cl.flac || st.Term != pl.Term || !st.Anchor.Playing {
		t.Fatalf("after the failover, playing %+v of %+v: want both entries of %s", st, pl.Entries, cl.flac)
	}
	resp, body := do(t, http.MethodGet, cl.b.SongsURL()+cl.flac, nil, "Authorization", "Bearer "+cl.b.tokens.get())
	if resp.StatusCode != http.StatusOK || hashOf(body) != cl.flac {
		t.Fatalf("the new holder serves the FLAC: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestStandbyPlaysAConversionAfterFailoverWithoutConverting: the standby
// learns the holder's M4A→FLAC link from the FLAC's record and fetches the
// FLAC; it has no ffmpeg, so after the holder goes it enqueues and plays
// the M4A as those bytes only through what it learnt. The FLAC stays out
// of its search, as on the holder. A standby that starts after the
// takeover, without the music folder, learns the link from the library the
// new holder published, and fetches the FLAC from it.
func TestStandbyPlaysAConversionAfterFailoverWithoutConverting(t *testing.T) {
	cl := newConversionCluster(t, filepath.Join(t.TempDir(), "no-ffmpeg"))
	page, _, err := cl.b.store.searchSongs([]string{"tune"}, 0, 10)
	if err != nil || len(page) != 1 || page[0].SHA256 != cl.m4a {
		t.Fatalf("the standby's search for the song: %+v %v, want the M4A alone", page, err)
	}
	cl.failOver(t)
	cl.enqueueAndPlay(t)

	late, _ := runController(t, Options{Open: true, BrokerURL: cl.broker, DataDir: t.TempDir(), Name: "c", LeaseTTL: 600 * time.Millisecond,
		Sessions: []string{"home"}})
	testwait.For(t, "the late standby to learn the conversion and fetch it", waitTimeout, func() bool {
		flac, err := late.store.playsAs(cl.m4a)
		return err == nil && flac == cl.flac && late.lib.holdsUpload(cl.flac)
	})
	if page, _, err := late.store.searchSongs([]string{"tune"}, 0, 10); err != nil || len(page) != 0 {
		t.Errorf("the late standby's search lists the conversion: %+v %v", page, err)
	}
}

// TestNewHolderConvertsAgainTheSameBytes: a standby that knows the link but
// lost the FLAC (the holder went before it fetched it) converts the M4A
// again when it takes over, to the same bytes: the playlist's entry plays
// as it is, and a new enqueue names the same FLAC.
func TestNewHolderConvertsAgainTheSameBytes(t *testing.T) {
	cl := newConversionCluster(t, "ffmpeg")
	if err := os.Remove(cl.b.lib.songPath(cl.flac)); err != nil {
		t.Fatal(err)
	}
	cl.failOver(t)
	testwait.For(t, "the new holder to convert the playlist's song again", waitTimeout, func() bool {
		return cl.b.lib.holdsUpload(cl.flac)
	})
	cl.enqueueAndPlay(t)
}
