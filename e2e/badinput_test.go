package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// TestBadInputChangesNothing sends what a careless or hostile remote would,
// over mosquitto_pub and HTTP, and checks that each gets a clear error and
// that the library, playlist and session state are as before.
func TestBadInputChangesNothing(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker()
	s.startController()
	path, sha := timecodeSong(t, "a.wav", 5, 0)
	s.load(path)
	r := newRemote(t, s.brokerPort)
	r.enqueue(sha)
	before := r.cmd(`"cmd":"status"`)
	session := protocol.SessionCommandTopic(protocol.DefaultSession)

	for _, c := range []struct {
		what, topic, payload, wantErr string
	}{
		{"malformed JSON", session, `{"cmd":"play",`, "malformed"},
		{"not JSON at all", session, `play please`, "malformed"},
		{"unknown command", session, `{"cmd":"dance","req_id":"u1","reply_to":"tutti/reply/e2e"}`, "unknown command"},
		{"library command on a session topic", session, `{"cmd":"search","query":"a","req_id":"u2","reply_to":"tutti/reply/e2e"}`, "unknown command"},
		{"wrong type", session, `{"cmd":"volume","volume":"loud","req_id":"u3","reply_to":"tutti/reply/e2e"}`, "malformed"},
		{"volume out of range", session, `{"cmd":"volume","volume":400,"req_id":"u4","reply_to":"tutti/reply/e2e"}`, "volume"},
		{"unknown song", session, `{"cmd":"enqueue","song":"` + strings.Repeat("0", 64) + `","req_id":"u5","reply_to":"tutti/reply/e2e"}`, "unknown song"},
		{"not a song reference", session, `{"cmd":"enqueue","song":"../../etc/passwd","req_id":"u6","reply_to":"tutti/reply/e2e"}`, "sha256"},
		{"index out of range", session, `{"cmd":"dequeue","index":7,"req_id":"u7","reply_to":"tutti/reply/e2e"}`, "index"},
		{"seek past the end", session, `{"cmd":"seek","position":"9:00","req_id":"u8","reply_to":"tutti/reply/e2e"}`, ""},
		{"unknown session", protocol.SessionCommandTopic("attic"), `{"cmd":"play","req_id":"u9","reply_to":"tutti/reply/e2e"}`, "session"},
		{"reply_to into the state topic", session, `{"cmd":"status","req_id":"u10","reply_to":"tutti/session/home/state"}`, "reply_to"},
		{"unknown song lookup", protocol.LibraryCommandTopic, `{"cmd":"lookup","song":"` + strings.Repeat("1", 64) + `","req_id":"u11","reply_to":"tutti/reply/e2e"}`, "unknown song"},
		{"load a path with no import directory", protocol.LibraryCommandTopic, `{"cmd":"load","path":"/etc/passwd","req_id":"u12","reply_to":"tutti/reply/e2e"}`, ""},
	} {
		rep := r.raw(c.topic, c.payload)
		if rep.OK || !strings.Contains(rep.Error, c.wantErr) {
			t.Errorf("%s: reply ok=%v error %q, want an error about %q", c.what, rep.OK, rep.Error, c.wantErr)
		} else {
			t.Logf("%s: %s", c.what, rep.Error)
		}
	}

	// Uploads: not audio, and a body whose hash is not the one named.
	songs, token := songsURL(t, r), r.fetchToken()
	junk := []byte("this is not audio, only words pretending to be a song")
	junkSum := sha256.Sum256(junk)
	if code, body := put(t, songs+hex.EncodeToString(junkSum[:]), "", junk); code != http.StatusUnauthorized {
		t.Errorf("upload without the token: %d %s, want 401", code, body)
	}
	if code, body := put(t, songs+hex.EncodeToString(junkSum[:]), token, junk); code != http.StatusUnsupportedMediaType {
		t.Errorf("non-audio upload: %d %s, want 415", code, body)
	}
	otherSum := sha256.Sum256([]byte("something else"))
	if code, body := put(t, songs+hex.EncodeToString(otherSum[:]), token, junk); code != http.StatusBadRequest {
		t.Errorf("hash mismatch upload: %d %s, want 400", code, body)
	}
	for _, sum := range [][32]byte{junkSum, otherSum} {
		if rep := r.request(protocol.LibraryCommandTopic, fmt.Sprintf(`"cmd":"lookup","song":%q`, hex.EncodeToString(sum[:]))); rep.OK {
			t.Errorf("a refused upload is in the library: %s", rep.Result)
		}
	}

	after := r.cmd(`"cmd":"status"`)
	if !bytes.Equal(stripSpeakers(t, before.Result), stripSpeakers(t, after.Result)) {
		t.Errorf("bad input changed the session:\nbefore %s\nafter  %s", before.Result, after.Result)
	}
	if rep := r.request(protocol.LibraryCommandTopic, fmt.Sprintf(`"cmd":"lookup","song":%q`, sha)); !rep.OK {
		t.Errorf("the song loaded before is gone: %s", rep.Error)
	}
}

// stripSpeakers keeps state and playlist of a status result.
func stripSpeakers(t *testing.T, result json.RawMessage) []byte {
	var st map[string]json.RawMessage
	if err := json.Unmarshal(result, &st); err != nil {
		t.Fatal(err)
	}
	delete(st, "speakers")
	b, _ := json.Marshal(st)
	return b
}

func songsURL(t *testing.T, r *remote) string {
	var st protocol.ControllerStatus
	if err := json.Unmarshal(r.retained(protocol.ControllerStatusTopic), &st); err != nil || st.SongsURL == "" {
		t.Fatalf("controller status: %+v %v", st, err)
	}
	return st.SongsURL
}

// fetchToken is the token the song servers want now, from the retained lease.
func (r *remote) fetchToken() string {
	r.t.Helper()
	var l protocol.Lease
	if err := json.Unmarshal(r.retained(protocol.LeaseTopic), &l); err != nil || l.FetchToken == "" {
		r.t.Fatalf("lease: %+v %v", l, err)
	}
	return l.FetchToken
}

// songRequest sends an HTTP request to a song server with token (none if "").
func songRequest(t *testing.T, method, url, token string, body io.Reader) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return http.DefaultClient.Do(req)
}

func put(t *testing.T, url, token string, body []byte) (int, string) {
	resp, err := songRequest(t, http.MethodPut, url, token, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}
