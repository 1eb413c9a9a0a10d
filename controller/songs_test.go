package controller

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/certs"
	"github.com/tutti-audio/tutti/protocol"
)

func newTestLibrary(t *testing.T) *library {
	t.Helper()
	dir := t.TempDir()
	st := openTestStore(t, dir)
	t.Cleanup(func() { st.Close() })
	lib := &library{store: st, songsDir: filepath.Join(dir, "songs"), tmpDir: filepath.Join(dir, "tmp"),
		maxSize: DefaultMaxSongSize, now: func() int64 { return 1 }}
	for _, d := range []string{lib.songsDir, lib.tmpDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return lib
}

// testToken is the fetch token of newTestSongServer; authz is its header value.
const (
	testToken = "test-token"
	authz     = "Bearer " + testToken
)

func newTestSongServer(t *testing.T) (*httptest.Server, *library, *fetchTokens) {
	lib := newTestLibrary(t)
	tokens := &fetchTokens{}
	tokens.set(testToken)
	srv := httptest.NewServer(newSongServer(lib, slog.New(slog.DiscardHandler), tokens,
		func() bool { return true }, func(protocol.Song) {}).routes())
	t.Cleanup(srv.Close)
	return srv, lib, tokens
}

func do(t *testing.T, method, url string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: waitTimeout}).Do(req) // a hung server fails the test, not the run
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func dirEmpty(t *testing.T, dir string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries) == 0
}

func TestUploadAndServe(t *testing.T) {
	srv, lib, _ := newTestSongServer(t)
	wav := makeWAV(44100+17, 44100, 1)
	sha := hashOf(wav)
	url := srv.URL + "/songs/" + sha

	resp, body := do(t, http.MethodPut, url+"?name=My%20Tune.wav", wav, "Authorization", authz)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	var song protocol.Song
	if err := json.Unmarshal(body, &song); err != nil {
		t.Fatal(err)
	}
	// Untagged, so its loudness was measured (gain_test.go checks the figures).
	gain := song.ReplayGain
	if gain == nil || !gain.Measured {
		t.Fatalf("ReplayGain %+v, want one measured", gain)
	}
	want := protocol.Song{SHA256: sha, URI: protocol.SongURI(sha), Title: "My Tune", Format: "wav", Size: int64(len(wav)),
		Frames: 44100 + 17, SampleRate: 44100, DurationNs: protocol.FramesToNs(44100+17, 44100), ReplayGain: gain,
		AddedNs: song.AddedNs} // the library's clock
	if song != want {
		t.Fatalf("song %+v\nwant %+v", song, want)
	}
	if stored, err := lib.store.song(sha); err != nil || stored.ReplayGain == nil || *stored.ReplayGain != *gain {
		t.Fatalf("stored %+v, %v", stored, err)
	} else if stored.ReplayGain = gain; stored != want {
		t.Fatalf("stored %+v\nwant %+v", stored, want)
	}

	// The same content again: answered from the library, body not needed.
	resp, body = do(t, http.MethodPut, url, []byte("not even audio"), "Authorization", authz)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), sha) {
		t.Fatalf("duplicate upload: %d %s", resp.StatusCode, body)
	}

	resp, body = do(t, http.MethodGet, url, nil, "Authorization", authz)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, wav) || resp.Header.Get("Content-Type") != "audio/wav" {
		t.Fatalf("get: %d, %d bytes, %q", resp.StatusCode, len(body), resp.Header.Get("Content-Type"))
	}
	resp, body = do(t, http.MethodGet, url, nil, "Range", "bytes=100-199", "Authorization", authz)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, wav[100:200]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = do(t, http.MethodGet, url, nil, "Range", "bytes=-10", "Authorization", authz)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, wav[len(wav)-10:]) {
		t.Fatalf("suffix range: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = do(t, http.MethodHead, url, nil, "Authorization", authz)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(wav)) {
		t.Fatalf("head: %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	if !dirEmpty(t, lib.tmpDir) {
		t.Fatal("tmp/ not empty")
	}
}

func TestUploadRefusals(t *testing.T) {
	srv, lib, _ := newTestSongServer(t)
	wav := makeWAV(1000, 8000, 2)
	other := makeWAV(1000, 8000, 3)
	text := []byte("RIFF but not really a wave file at all, just text")
	truncated := makeWAV(1000, 8000, 4)[:30]
	for _, tc := range []struct {
		name   string
		sha    string
		body   []byte
		status int
	}{
		{"hash mismatch", hashOf(wav), other, http.StatusBadRequest},
		{"not audio", hashOf(text), text, http.StatusUnsupportedMediaType},
		{"truncated header", hashOf(truncated), truncated, http.StatusUnsupportedMediaType},
		{"empty", hashOf(nil), nil, http.StatusUnsupportedMediaType},
		{"malformed hash", "abc", wav, http.StatusBadRequest},
		{"not hex", strings.Repeat("g", 64), wav, http.StatusBadRequest},
	} {
		resp, body := do(t, http.MethodPut, srv.URL+"/songs/"+tc.sha, tc.body, "Authorization", authz)
		var e struct{ Error string }
		if resp.StatusCode != tc.status || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %s, want %d with a JSON error", tc.name, resp.StatusCode, body, tc.status)
		}
	}
	if !dirEmpty(t, lib.tmpDir) || !dirEmpty(t, lib.songsDir) {
		t.Fatal("refused uploads left files behind")
	}
	var stored []protocol.Song
	if err := lib.store.allSongs(func(s protocol.Song) { stored = append(stored, s) }); err != nil || len(stored) != 0 {
		t.Fatalf("refused uploads stored: %+v, %v", stored, err)
	}

	lib.maxSize = 100
	resp, _ := do(t, http.MethodPut, srv.URL+"/songs/"+hashOf(wav), wav, "Authorization", authz)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %d", resp.StatusCode)
	}

	for url, status := range map[string]int{
		"/songs/" + hashOf(wav): http.StatusNotFound,
		"/songs/xyz":            http.StatusBadRequest,
		"/healthz":              http.StatusOK,
	} {
		if resp, body := do(t, http.MethodGet, srv.URL+url, nil, "Authorization", authz); resp.StatusCode != status {
			t.Errorf("GET %s: %d %s, want %d", url, resp.StatusCode, body, status)
		}
	}
}

func TestResolveImport(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	for _, p := range []string{filepath.Join(root, "a", "song.wav"), filepath.Join(outside, "secret.wav")} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	os.Symlink(filepath.Join(outside, "secret.wav"), filepath.Join(root, "link.wav"))
	os.Symlink(outside, filepath.Join(root, "linkdir"))
	os.Symlink(filepath.Join(root, "a", "song.wav"), filepath.Join(root, "inside.wav"))
	root, _ = filepath.EvalSymlinks(root)

	for _, ok := range []string{"a/song.wav", filepath.Join(root, "a", "song.wav"), "a/../a/song.wav", "inside.wav"} {
		if _, err := resolveImport(root, ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"../" + filepath.Base(outside) + "/secret.wav", filepath.Join(outside, "secret.wav"),
		"link.wav", "linkdir/secret.wav", "a/../../x", "missing.wav", "a/\x00"} {
		if _, err := resolveImport(root, bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := resolveImport("", "a/song.wav"); err == nil {
		t.Error("loaded a path without an import directory")
	}
}

func TestSongServerNeedsToken(t *testing.T) {
	srv, _, tokens := newTestSongServer(t)
	wav := makeWAV(1000, 8000, 9)
	url := srv.URL + "/songs/" + hashOf(wav)
	bearer := func(token string) []string { return []string{"Authorization", "Bearer " + token} }
	for _, tc := range []struct {
		what   string
		method string
		url    string
		header []string
	}{
		{"PUT without token", http.MethodPut, url, nil},
		{"PUT with a wrong token", http.MethodPut, url, bearer("nope")},
		{"PUT with an empty token", http.MethodPut, url, bearer("")},
		{"PUT with another scheme", http.MethodPut, url, []string{"Authorization", "Basic " + testToken}},
	} {
		if resp, body := do(t, tc.method, tc.url, wav, tc.header...); resp.StatusCode != http.StatusUnauthorized ||
			resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %s", tc.what, resp.StatusCode, body)
		}
	}
	if resp, body := do(t, http.MethodPut, url, wav, bearer(testToken)...); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload with the token: %d %s", resp.StatusCode, body)
	}

	status := func(method, url string, header ...string) int {
		resp, _ := do(t, method, url, nil, header...)
		return resp.StatusCode
	}
	check := func(when string, valid map[string]bool) {
		t.Helper()
		for token, ok := range valid {
			want := http.StatusUnauthorized
			if ok {
				want = http.StatusOK
			}
			if got := status(http.MethodGet, url, bearer(token)...); got != want {
				t.Errorf("%s: GET with %q: %d, want %d", when, token, got, want)
			}
			if got := status(http.MethodHead, url, bearer(token)...); got != want {
				t.Errorf("%s: HEAD with %q: %d, want %d", when, token, got, want)
			}
			if got := status(http.MethodGet, url+"?token="+token); got != want {
				t.Errorf("%s: GET ?token=%s: %d, want %d", when, token, got, want)
			}
		}
	}
	check("first token", map[string]bool{testToken: true, "": false, "wrong": false})
	if got := status(http.MethodGet, url); got != http.StatusUnauthorized {
		t.Errorf("GET without token: %d", got)
	}
	tokens.set("second")
	check("one rotation", map[string]bool{testToken: true, "second": true, "wrong": false})
	tokens.set("third")
	check("two rotations", map[string]bool{testToken: false, "second": true, "third": true})
	if got := status(http.MethodGet, srv.URL+"/healthz"); got != http.StatusOK {
		t.Errorf("healthz needs no token: %d", got)
	}
}

// TestSongServerOverTLS: with ServeTLS the song server speaks HTTPS; a client
// trusting the CA downloads, one that does not fails the handshake.
func TestSongServerOverTLS(t *testing.T) {
	files, err := certs.Ensure(t.TempDir(), certs.DefaultHosts())
	if err != nil {
		t.Fatal(err)
	}
	serve, err := certs.ServerConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := certs.ClientConfig(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	broker := startBroker(t)
	c, _ := startController(t, Options{BrokerURL: broker, DataDir: t.TempDir(), Open: true, ServeTLS: serve})
	if !strings.HasPrefix(c.SongsURL(), "https://") {
		t.Fatalf("songs URL %s", c.SongsURL())
	}
	wav := makeWAV(800, 8000, 9)
	req, _ := http.NewRequest(http.MethodPut, c.SongsURL()+hashOf(wav), bytes.NewReader(wav))
	req.Header.Set("Authorization", "Bearer "+c.tokens.get())
	client := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{TLSClientConfig: trust}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload over TLS: %s", resp.Status)
	}
	if _, err := (&http.Client{Timeout: waitTimeout}).Get(c.SongsURL() + hashOf(wav)); err == nil {
		t.Error("a client that does not trust the CA got through")
	}
}
