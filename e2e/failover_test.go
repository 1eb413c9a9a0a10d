package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// topicWatch records every message of a topic as it arrives, through a
// long-running mosquitto_sub.
type topicWatch struct {
	mu   sync.Mutex
	msgs []watchedMsg
}

type watchedMsg struct {
	at      time.Time
	payload []byte
}

func watchTopic(t *testing.T, port, topic string, extra ...string) *topicWatch {
	w := &topicWatch{}
	mosquittoSub(t, port, topic, func(line []byte) {
		w.mu.Lock()
		w.msgs = append(w.msgs, watchedMsg{time.Now(), append([]byte(nil), line...)})
		w.mu.Unlock()
	}, extra...)
	return w
}

// lease returns the first lease seen with a term above term, and when.
func (w *topicWatch) lease(term uint64) (protocol.Lease, time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		if l, err := protocol.Decode[protocol.Lease](m.payload); err == nil && l.Term > term {
			return l, m.at, true
		}
	}
	return protocol.Lease{}, time.Time{}, false
}

// from says whether a SpeakerStatus of speaker id was seen.
func (w *topicWatch) from(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		if st, err := protocol.Decode[protocol.SpeakerStatus](m.payload); err == nil && st.ID == id && st.Online {
			return true
		}
	}
	return false
}

// enqueueOnThree loads a timecode song of the given length, enqueues it
// (checking the reply's quorum) and waits until s1, s2 and s3 cached it.
func enqueueOnThree(t *testing.T, s *system, r *remote, seconds int) string {
	t.Helper()
	path, sha := timecodeSong(t, "a.wav", seconds, 0)
	s.load(path)
	if acked, n := ackedResult(t, r.cmd(fmt.Sprintf(`"cmd":"enqueue","song":%q`, sha))); n != 3 || acked < 2 {
		t.Fatalf("enqueue acked by %d of %d speakers", acked, n)
	}
	s.waitCached([]string{"s1", "s2", "s3"}, sha)
	return sha
}

// ackedResult decodes the quorum part of a command's reply.
func ackedResult(t *testing.T, rep protocol.Reply) (acked, speakers int) {
	t.Helper()
	if !rep.OK {
		t.Fatalf("%s refused: %s", rep.Cmd, rep.Error)
	}
	var res struct{ Acked, Speakers int }
	if err := json.Unmarshal(rep.Result, &res); err != nil {
		t.Fatal(err)
	}
	return res.Acked, res.Speakers
}

func TestFailoverEmbeddedBroker(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker()
	killLeaseHolder(t, s)
}

func TestFailoverMosquitto(t *testing.T) {
	s := newSystem(t)
	s.startMosquitto()
	killLeaseHolder(t, s)
}

// killLeaseHolder plays on three speakers with two controllers, kills -9
// the one holding the lease, then one speaker, and checks that the music
// never stopped nor drifted apart, that nothing acknowledged was lost, and
// that the deposed controller, back, does not take over.
func killLeaseHolder(t *testing.T, s *system) {
	leases := watchTopic(t, s.brokerPort, protocol.LeaseTopic)
	c1 := s.startNamedController("c1")
	testwait.For(t, "c1 to hold the lease", 10*time.Second, func() bool { _, _, ok := leases.lease(0); return ok })
	first, _, _ := leases.lease(0)
	if first.Name != "c1" {
		t.Fatalf("first lease holder %q", first.Name)
	}
	c2 := s.startNamedController("c2")
	for _, n := range []string{"s1", "s2", "s3"} {
		s.startSpeaker(n)
	}
	r := newRemote(t, s.brokerPort)
	sha := enqueueOnThree(t, s, r, 60)
	// The standby mirrors the song file too.
	token := r.fetchToken()
	testwait.For(t, "c2 to mirror the song", 20*time.Second, func() bool {
		resp, err := songRequest(t, http.MethodGet, c2.songsURL+sha, token, nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	play := stateOf(t, r.cmd(`"cmd":"play"`))
	time.Sleep(3 * time.Second)
	// An entry acknowledged just before the kill survives it.
	if acked, _ := ackedResult(t, r.cmd(fmt.Sprintf(`"cmd":"enqueue","song":%q`, sha))); acked < 2 {
		t.Fatalf("second enqueue acked by %d", acked)
	}

	killed := time.Now()
	c1.stop(syscall.SIGKILL)
	testwait.For(t, "a standby to take over", 5*time.Second, func() bool { _, _, ok := leases.lease(first.Term); return ok })
	next, at, _ := leases.lease(first.Term)
	takeover := at.Sub(killed)
	t.Logf("takeover %v after kill -9 (term %d -> %d, %s)", takeover, first.Term, next.Term, next.Name)
	if next.Name != "c2" || takeover > 2*time.Second {
		t.Errorf("takeover by %q after %v; want c2 within 2s", next.Name, takeover)
	}
	var status struct {
		State    protocol.SessionState `json:"state"`
		Playlist protocol.Playlist     `json:"playlist"`
	}
	rep := r.cmd(`"cmd":"status"`)
	if json.Unmarshal(rep.Result, &status); !rep.OK || len(status.Playlist.Entries) != 2 || status.State.State != protocol.Playing ||
		status.State.Term != next.Term || status.State.Anchor.AtNs-status.State.Anchor.PositionNs != play.Anchor.AtNs-play.Anchor.PositionNs {
		t.Fatalf("status from the new holder: %s", rep.Result)
	}

	// The deposed controller comes back: it stays a standby, and commands
	// get exactly one reply, from the holder.
	s.startNamedController("c1")
	time.Sleep(3 * time.Second)
	if l, _, ok := leases.lease(next.Term); ok {
		t.Fatalf("the lease moved again to %q (term %d) when c1 returned", l.Name, l.Term)
	}
	before := r.count()
	vol := r.cmd(`"cmd":"volume","volume":90`)
	time.Sleep(time.Second)
	if got := r.count() - before; got != 1 {
		t.Errorf("%d replies to one command with two controllers up", got)
	}
	if st := stateOf(t, vol); st.Term != next.Term {
		t.Errorf("volume answered under term %d, want %d", st.Term, next.Term)
	}

	// f = 1 of 3 speakers killed: playback and quorum go on.
	s.speakers["s3"].stop(syscall.SIGKILL)
	time.Sleep(500 * time.Millisecond)
	if acked, n := ackedResult(t, r.cmd(`"cmd":"volume","volume":80`)); acked != 2 || n != 3 {
		t.Errorf("with s3 dead: acked by %d of %d, want 2 of 3", acked, n)
	}
	time.Sleep(time.Second)
	s.speakers["s1"].stop(syscall.SIGTERM)
	s.speakers["s2"].stop(syscall.SIGTERM)

	// The music went on through the kill: no gap, no skew.
	k := killed.UnixNano()
	from, to := k-int64(2*time.Second), k+int64(4*time.Second)
	blocks := map[string][]playlog.Block{}
	for _, n := range []string{"s1", "s2", "s3"} {
		blocks[n] = s.blocks(n)
		s.checkGap(n, from, to, "from 2 s before to 4 s after the kill")
	}
	stats := playlog.Summarize(playlog.Spread(blocks["s1"], []*playlog.Timeline{
		playlog.NewTimeline(blocks["s2"], rate), playlog.NewTimeline(blocks["s3"], rate)}, from, to))
	t.Logf("skew through the failover: %s", stats)
	if compared(blocks["s1"], stats.N) < 3*time.Second || stats.P99Ms > float64(skewBar)/1e6 {
		t.Errorf("skew through the failover: %s (bar %v)", stats, skewBar)
	}
}

// TestBrokerRestartDuringPlayback kills the broker (-9) while three speakers
// play and starts it again: the music goes on, everyone reconnects, and the
// state is intact.
func TestBrokerRestartDuringPlayback(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker()
	s.startController()
	for _, n := range []string{"s1", "s2", "s3"} {
		s.startSpeaker(n)
	}
	r := newRemote(t, s.brokerPort)
	enqueueOnThree(t, s, r, 40)
	play := stateOf(t, r.cmd(`"cmd":"play"`))
	time.Sleep(3 * time.Second)

	killed := time.Now()
	s.broker.stop(syscall.SIGKILL)
	time.Sleep(time.Second)
	s.startTuttiBroker()
	r = newRemote(t, s.brokerPort)
	// Everyone is back when each speaker published a fresh status (-R: not
	// the retained ones) and the controller answers.
	statuses := watchTopic(t, s.brokerPort, protocol.SpeakerStatusFilter, "-R")
	testwait.For(t, "the speakers to reconnect", 20*time.Second, func() bool {
		return statuses.from("s1") && statuses.from("s2") && statuses.from("s3")
	})
	testwait.For(t, "the controller to answer after the restart", 20*time.Second, func() bool {
		rep, ok := r.requestWithin(protocol.SessionCommandTopic(protocol.DefaultSession), `"cmd":"status"`, time.Second)
		return ok && rep.OK
	})
	pause := stateOf(t, r.cmd(`"cmd":"pause"`))
	t.Logf("all three speakers back and the controller answering %v after the broker was killed", time.Since(killed))
	time.Sleep(500 * time.Millisecond)
	for _, p := range s.speakers {
		p.stop(syscall.SIGTERM)
	}
	if pause.Anchor.PositionNs <= 4*int64(time.Second) || pause.Term < play.Term {
		t.Errorf("state after the restart: %+v", pause)
	}
	k := killed.UnixNano()
	for _, n := range []string{"s1", "s2", "s3"} {
		blocks := s.blocks(n)
		s.checkGap(n, k-int64(time.Second), k+int64(2*time.Second), "while the broker restarted")
		frame, at, ok := playlog.LastSound(blocks, rate, pause.Anchor.AtNs+int64(50*time.Millisecond))
		if d := frame - protocol.NsToFrames(pause.Anchor.PositionNs, rate); !ok || d < -3 || d > 2 || abs(at-pause.Anchor.AtNs) > int64(skewBar) {
			t.Errorf("%s stopped at frame %d (%.3f ms from the pause instant), want the pause position", n, frame, float64(at-pause.Anchor.AtNs)/1e6)
		}
	}
}

// TestPartitionedSpeaker cuts one speaker's network (a fault-injecting
// proxy drops everything both ways): it goes silent after its grace period
// while the others play on, and rejoins in sync once the network heals.
func TestPartitionedSpeaker(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker()
	s.startController()
	proxy := toxiproxy.NewProxy(toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()), "s3", "127.0.0.1:0", "127.0.0.1:"+s.brokerPort)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	grace := 2 * time.Second
	s.startSpeaker("s1")
	s.startSpeaker("s2")
	s.startSpeaker("s3", "--broker", "tcp://"+proxy.Listen, "--grace", grace.String())
	r := newRemote(t, s.brokerPort)
	enqueueOnThree(t, s, r, 60)
	stateOf(t, r.cmd(`"cmd":"play"`))
	time.Sleep(3 * time.Second)

	cut := time.Now()
	for _, dir := range []string{"upstream", "downstream"} {
		spec := fmt.Sprintf(`{"name":"cut_%s","type":"timeout","stream":%q,"toxicity":1,"attributes":{"timeout":0}}`, dir, dir)
		if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(grace + 3*time.Second)
	// Healed: the dropped bytes broke the old connections; fresh ones work.
	healed := time.Now()
	proxy.Toxics.RemoveToxic(context.Background(), "cut_upstream")
	proxy.Toxics.RemoveToxic(context.Background(), "cut_downstream")
	proxy.Stop()
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second)
	for _, p := range s.speakers {
		p.stop(syscall.SIGTERM)
	}

	s3 := s.blocks("s3")
	_, lastAt, _ := playlog.LastSound(s3, rate, healed.UnixNano())
	silentAfter := time.Duration(lastAt - cut.UnixNano())
	t.Logf("s3 went silent %v after the cut (grace %v)", silentAfter, grace)
	if silentAfter < grace-500*time.Millisecond || silentAfter > grace+time.Second {
		t.Errorf("s3 went silent %v after the cut; want about its grace period %v", silentAfter, grace)
	}
	rejoined := firstSoundAfter(s3, healed.UnixNano())
	if rejoined.TNs == 0 {
		t.Fatal("s3 never played again after the network healed")
	}
	t.Logf("s3 played again %v after the network healed", time.Duration(rejoined.TNs-healed.UnixNano()))
	others := []*playlog.Timeline{playlog.NewTimeline(s.blocks("s1"), rate), playlog.NewTimeline(s.blocks("s2"), rate)}
	// The others never stopped; s3 is in sync again from soon after it rejoined.
	for _, n := range []string{"s1", "s2"} {
		s.checkGap(n, cut.UnixNano(), healed.UnixNano()+int64(3*time.Second), "while s3 was cut off")
	}
	stats := playlog.Summarize(playlog.Spread(s3, others, rejoined.TNs+int64(500*time.Millisecond), rejoined.TNs+int64(4*time.Second)))
	t.Logf("skew after s3 rejoined: %s", stats)
	if compared(s3, stats.N) < time.Second || stats.P99Ms > float64(skewBar)/1e6 {
		t.Errorf("skew after s3 rejoined: %s (bar %v)", stats, skewBar)
	}
}

// TestSongsFromPeersWithoutController kills the only controller (-9) while
// two speakers play: a third speaker started afterwards, with an empty
// cache, gets the song from the other two and plays in sync (the broker is
// the time master, so the clock lives on).
func TestSongsFromPeersWithoutController(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker("--clock")
	s.controller = s.startNamedController("controller", "--clock-from-broker")
	s.startSpeaker("s1")
	s.startSpeaker("s2")
	path, sha := timecodeSong(t, "a.wav", 60, 0)
	s.load(path)
	r := newRemote(t, s.brokerPort)
	r.cmd(fmt.Sprintf(`"cmd":"enqueue","song":%q`, sha))
	s.waitCached([]string{"s1", "s2"}, sha)
	stateOf(t, r.cmd(`"cmd":"play"`))
	time.Sleep(2 * time.Second)
	s.controller.stop(syscall.SIGKILL)

	started := time.Now()
	s.startSpeaker("s3")
	testwait.For(t, "s3 to get the song from a peer", 20*time.Second, func() bool { return cached(s, "s3", sha) })
	t.Logf("s3 cached the song from a peer %v after it started", time.Since(started))
	time.Sleep(4 * time.Second)
	for _, p := range s.speakers {
		p.stop(syscall.SIGTERM)
	}
	s3 := s.blocks("s3")
	if len(s3) == 0 {
		t.Fatal("s3 played nothing")
	}
	others := []*playlog.Timeline{playlog.NewTimeline(s.blocks("s1"), rate), playlog.NewTimeline(s.blocks("s2"), rate)}
	stats := playlog.Summarize(playlog.Spread(s3, others, s3[0].TNs+int64(500*time.Millisecond), s3[len(s3)-1].TNs))
	t.Logf("s3 against s1 and s2: %s", stats)
	if compared(s3, stats.N) < time.Second || stats.P99Ms > float64(skewBar)/1e6 {
		t.Errorf("s3 against s1 and s2: %s (bar %v)", stats, skewBar)
	}
}

// TestKillDuringUpload kills the controller (-9) in the middle of an
// upload: after a restart the song is not in the library, nothing partial
// is left, and the upload then succeeds.
func TestKillDuringUpload(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker()
	s.startController()
	path, sha := timecodeSong(t, "big.wav", 60, 0) // ~10 MB
	song, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	url := s.controller.songsURL + sha
	testwait.For(t, "the song server", 10*time.Second, func() bool {
		resp, err := http.Get(strings.TrimSuffix(s.controller.songsURL, "songs/") + "healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	r := newRemote(t, s.brokerPort)
	testwait.For(t, "the controller to hold the lease", 10*time.Second, func() bool {
		rep, ok := r.requestWithin(protocol.SessionCommandTopic(protocol.DefaultSession), `"cmd":"status"`, time.Second)
		return ok && rep.OK
	})

	token := r.fetchToken()
	body, feed := io.Pipe()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPut, url, body)
		req.ContentLength = int64(len(song))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if _, err := feed.Write(song[:len(song)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // half is on the controller's disk
	s.controller.stop(syscall.SIGKILL)
	feed.CloseWithError(io.ErrUnexpectedEOF)
	if err := <-done; err == nil {
		t.Error("the interrupted upload reported success")
	}

	s.startController()
	testwait.For(t, "the restarted controller", 20*time.Second, func() bool {
		rep, ok := r.requestWithin(protocol.SessionCommandTopic(protocol.DefaultSession), `"cmd":"status"`, time.Second)
		return ok && rep.OK
	})
	if rep := r.request(protocol.LibraryCommandTopic, fmt.Sprintf(`"cmd":"lookup","song":%q`, sha)); rep.OK {
		t.Errorf("a half-uploaded song is in the library: %s", rep.Result)
	}
	// The restarted controller serves songs on a port of its own.
	if resp, err := songRequest(t, http.MethodGet, s.controller.songsURL+sha, r.fetchToken(), nil); err != nil {
		t.Error(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of the half-uploaded song: %s", resp.Status)
	}
	for _, dir := range []string{"tmp", "songs"} {
		entries, _ := os.ReadDir(filepath.Join(s.dir, "controller", dir))
		if len(entries) != 0 {
			t.Errorf("controller %s/ holds %d files after the interrupted upload", dir, len(entries))
		}
	}
	s.load(path)
	if rep := r.request(protocol.LibraryCommandTopic, fmt.Sprintf(`"cmd":"lookup","song":%q`, sha)); !rep.OK {
		t.Errorf("the upload after the restart: %s", rep.Error)
	}
}
