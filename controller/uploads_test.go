package controller

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/keepalive"
	"github.com/tutti-audio/tutti/protocol"
)

// fakeBody hands out chunk bytes per Read, advancing the fake clock by
// step each time, or fails with err once it has run out of reads.
type fakeBody struct {
	chunk int
	reads int
	err   error
	step  time.Duration
	now   *time.Time
}

func (b *fakeBody) Read(p []byte) (int, error) {
	if b.reads == 0 {
		return 0, b.err
	}
	b.reads--
	*b.now = b.now.Add(b.step)
	return copy(p, bytes.Repeat([]byte{1}, min(b.chunk, len(p)))), nil
}

// TestPaceReader: an upload must bring its minimum rate in every window;
// each window moves the read deadline on, and a read that hits it is too
// slow. Deterministic: a fake clock.
func TestPaceReader(t *testing.T) {
	const window, rate = 10 * time.Second, 1000 // 10,000 bytes per window
	for _, tc := range []struct {
		name    string
		body    fakeBody
		wantErr error
	}{
		// 5,000 bytes/s in 100-byte reads: never too slow; ends with EOF.
		{"fast", fakeBody{chunk: 100, reads: 2000, err: io.EOF, step: 20 * time.Millisecond}, io.EOF},
		// 200 bytes/s (a slowloris): cut off at the first window's end.
		{"trickle", fakeBody{chunk: 40, reads: 1000, err: io.EOF, step: 200 * time.Millisecond}, errUploadTooSlow},
		// The connection's read deadline passed while the client sent nothing.
		{"stalled", fakeBody{chunk: 100, reads: 3, err: os.ErrDeadlineExceeded, step: time.Second}, errUploadTooSlow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			tc.body.now = &now
			var deadlines []time.Time
			p := newPaceReader(&tc.body, func(d time.Time) error { deadlines = append(deadlines, d); return nil },
				func() time.Time { return now }, window, rate)
			n, err := io.Copy(io.Discard, p)
			if !errors.Is(err, tc.wantErr) && !(tc.wantErr == io.EOF && err == nil) {
				t.Fatalf("after %d bytes: %v, want %v", n, err, tc.wantErr)
			}
			if deadlines[0] != time.Unix(1000, 0).Add(2*window) {
				t.Errorf("first deadline %v", deadlines[0])
			}
			if tc.wantErr == io.EOF {
				if last := deadlines[len(deadlines)-1]; !last.IsZero() {
					t.Errorf("read deadline left at %v after the body", last)
				}
				deadlines = deadlines[:len(deadlines)-1]
			}
			for i := 1; i < len(deadlines); i++ {
				if gap := deadlines[i].Sub(deadlines[i-1]); gap < window || gap > window+time.Second {
					t.Errorf("deadline %d moved on by %v, want about a window", i, gap)
				}
			}
			if tc.name == "trickle" && n > 2400 {
				t.Errorf("trickle read %d bytes before it was cut off", n)
			}
		})
	}
}

// trickle is a request body that sends a few bytes every interval until
// stop is closed: 200 bytes a second, a slowloris.
func trickle(stop <-chan struct{}) io.Reader {
	r, w := io.Pipe()
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				w.CloseWithError(errors.New("test over"))
				return
			case <-tick.C:
				if _, err := w.Write(bytes.Repeat([]byte{0}, 40)); err != nil {
					return
				}
			}
		}
	}()
	return r
}

// TestSlowUploadsCutOff: 20 uploads trickling at 200 B/s. Four get a slot
// and are cut off with 408 within two pace windows, the others are refused
// at once with 503 (and one without a token with 401); no temporary file
// stays. Downloads are served while
// the attack runs, and uploads are taken again once it is over.
func TestSlowUploadsCutOff(t *testing.T) {
	lib := newTestLibrary(t)
	tokens := &fetchTokens{}
	tokens.set(testToken)
	ss := newSongServer(lib, slog.New(slog.DiscardHandler), tokens, func() bool { return true }, func(protocol.Song) {})
	ss.uploadWindow = 500 * time.Millisecond
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = ss.server(slog.New(slog.DiscardHandler))
	srv.Start()
	t.Cleanup(srv.Close)
	wav := makeWAV(8000, 8000, 3)
	if resp, body := do(t, http.MethodPut, srv.URL+"/songs/"+hashOf(wav), wav, "Authorization", authz); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload before: %d %s", resp.StatusCode, body)
	}

	const attackers = 20
	stop := make(chan struct{})
	defer close(stop)
	statuses := make(chan int, attackers)
	var wg sync.WaitGroup
	for range attackers {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPut, srv.URL+"/songs/"+hashOf([]byte("never sent")), trickle(stop))
			req.Header.Set("Authorization", authz)
			resp, err := (&http.Client{Timeout: waitTimeout}).Do(req)
			if err != nil {
				t.Errorf("slow upload: %v", err)
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	// While they trickle, the library is served.
	for range 5 {
		if resp, _ := do(t, http.MethodGet, srv.URL+"/songs/"+hashOf(wav), nil, "Authorization", authz); resp.StatusCode != http.StatusOK {
			t.Fatalf("download during the attack: %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// One without a token is refused at once, its body unread.
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/songs/"+hashOf([]byte("never sent")), trickle(stop))
	if resp, err := (&http.Client{Timeout: waitTimeout}).Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("slow upload without a token: %v %v", resp, err)
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusRequestTimeout] != maxConcurrentUploads || count[http.StatusServiceUnavailable] != attackers-maxConcurrentUploads {
		t.Fatalf("statuses %v, want %d × 408 and the rest 503", count, maxConcurrentUploads)
	}
	if !dirEmpty(t, lib.tmpDir) {
		t.Error("slow uploads left temporary files")
	}
	other := makeWAV(8000, 8000, 4)
	if resp, body := do(t, http.MethodPut, srv.URL+"/songs/"+hashOf(other), other, "Authorization", authz); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload after: %d %s", resp.StatusCode, body)
	}
}

// silentConnections opens n TCP connections to addr that send half a
// request line and then nothing, and waits until the server has closed
// them all; it returns how long that took.
func silentConnections(t *testing.T, addr string, n int) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte("GET /songs/"))
		wg.Go(func() {
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(waitTimeout))
			if _, err := io.Copy(io.Discard, conn); err != nil {
				t.Errorf("a silent connection was not closed by the server: %v", err)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// TestSongServerClosesSilentConnections: connections that never finish
// their request are closed after songHeaderTimeout, while downloads go on.
func TestSongServerClosesSilentConnections(t *testing.T) {
	broker := startBroker(t)
	c, _ := startController(t, Options{BrokerURL: broker, DataDir: t.TempDir(), Open: true})
	song := upload(t, c, makeWAV(8000, 8000, 7), "song")
	done := make(chan time.Duration)
	go func() { done <- silentConnections(t, c.listener.Addr().String(), 50) }()
	for {
		select {
		case took := <-done:
			if took < songHeaderTimeout || took > songHeaderTimeout+5*time.Second {
				t.Errorf("silent connections closed after %v, want about %v", took, songHeaderTimeout)
			}
			return
		case <-time.After(500 * time.Millisecond):
			if resp, _ := do(t, http.MethodGet, c.SongsURL()+song.SHA256, nil, "Authorization", "Bearer "+c.tokens.get()); resp.StatusCode != http.StatusOK {
				t.Fatalf("download while connections hang: %d", resp.StatusCode)
			}
		}
	}
}

// TestSongServerClosesIdleConnections: a keep-alive connection left idle
// after a complete request and response is closed after the idle timeout,
// shortened here.
func TestSongServerClosesIdleConnections(t *testing.T) {
	ss := newSongServer(newTestLibrary(t), slog.New(slog.DiscardHandler), &fetchTokens{}, func() bool { return true }, func(protocol.Song) {})
	ss.idleTimeout = 300 * time.Millisecond
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = ss.server(slog.New(slog.DiscardHandler))
	srv.Start()
	t.Cleanup(srv.Close)

	status, closedAfter, err := keepalive.IdleFor(srv.Listener.Addr().String(), "/healthz", waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK {
		t.Errorf("status %d, want %d", status, http.StatusOK)
	}
	if closedAfter < ss.idleTimeout || closedAfter > ss.idleTimeout+5*time.Second {
		t.Errorf("idle connection closed %v after the request, want about %v", closedAfter, ss.idleTimeout)
	}
}
