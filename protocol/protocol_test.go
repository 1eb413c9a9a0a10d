package protocol

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTopics(t *testing.T) {
	golden := map[string]string{
		SessionStateTopic("home"):   "tutti/session/home/state",
		PlaylistTopic("home"):       "tutti/session/home/playlist",
		SessionCommandTopic("home"): "tutti/session/home/cmd",
		SpeakerStatusTopic("k1"):    "tutti/speaker/k1/status",
		ClockRequestTopic("k1"):     "tutti/speaker/k1/clock/req",
		ClockResponseTopic("k1"):    "tutti/speaker/k1/clock/resp",
		ControllerStatusTopic:       "tutti/controller/status",
		LibraryCommandTopic:         "tutti/library/cmd",
		LeaseTopic:                  "tutti/controller/lease",
		AckTopic("k1"):              "tutti/speaker/k1/ack",
		LibrarySongTopic("ab12"):    "tutti/library/song/ab12",
		SavedPlaylistTopic("mix"):   "tutti/library/playlist/mix",
	}
	for got, want := range golden {
		if got != want {
			t.Errorf("topic %q, want %q", got, want)
		}
	}
	if id, ok := SpeakerFromTopic("tutti/speaker/k1/clock/req"); !ok || id != "k1" {
		t.Errorf("SpeakerFromTopic: %q %v", id, ok)
	}
	if _, ok := SpeakerFromTopic("tutti/speaker/+/status"); ok {
		t.Error("a wildcard level read as a speaker id")
	}
	sha := strings.Repeat("ab", 32)
	if got, ok := SongFromTopic(LibrarySongTopic(sha)); !ok || got != sha {
		t.Errorf("SongFromTopic: %q %v", got, ok)
	}
	for _, bad := range []string{LibrarySongTopic(strings.ToUpper(sha)), LibrarySongTopic("ab"), LibrarySongTopic(sha) + "/x"} {
		if _, ok := SongFromTopic(bad); ok {
			t.Errorf("SongFromTopic(%q) accepted", bad)
		}
	}
	if id, ok := SavedPlaylistFromTopic(SavedPlaylistTopic("Road_Trip-2")); !ok || id != "Road_Trip-2" {
		t.Errorf("SavedPlaylistFromTopic: %q %v", id, ok)
	}
	for _, bad := range []string{SavedPlaylistTopic(""), SavedPlaylistTopic("a/b"), SavedPlaylistTopic("+"), LibrarySongTopic(sha)} {
		if _, ok := SavedPlaylistFromTopic(bad); ok {
			t.Errorf("SavedPlaylistFromTopic(%q) accepted", bad)
		}
	}
	if s, ok := SessionFromTopic("tutti/session/living-room/cmd"); !ok || s != "living-room" {
		t.Errorf("SessionFromTopic: %q %v", s, ok)
	}
}

func TestValidName(t *testing.T) {
	for _, good := range []string{"home", "k1", "living-room", "a_b", "0"} {
		if err := ValidName(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	for _, bad := range []string{"", "Home", "a/b", "+", "#", "-x", "a b", strings.Repeat("a", 65)} {
		if ValidName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDecodeRequest(t *testing.T) {
	cases := []struct {
		payload string
		wantErr string
		check   func(Request) bool
	}{
		{`{"cmd":"play"}`, "", func(r Request) bool { return r.Cmd == "play" }},
		{`{"v":1,"cmd":"seek","position":"1:23.5","req_id":"7","reply_to":"x/y"}`, "",
			func(r Request) bool { return time.Duration(*r.Position) == 83500*time.Millisecond && r.ReqID == "7" }},
		{`{"cmd":"seek","position":90}`, "", func(r Request) bool { return time.Duration(*r.Position) == 90*time.Second }},
		{`{"cmd":"volume","volume":40}`, "", func(r Request) bool { return *r.Volume == 40 }},
		{`{"cmd":`, "malformed", nil},
		{`not json`, "malformed", nil},
		{`{"cmd":"dance","req_id":"1"}`, "unknown command", func(r Request) bool { return r.ReqID == "1" }},
		{`{"cmd":"volume","volume":"loud","req_id":"2","reply_to":"r"}`, "malformed", func(r Request) bool { return r.ReqID == "2" && r.ReplyTo == "r" && r.Cmd == "volume" }},
		{`{"cmd":"play","colour":"red"}`, "unknown field", nil},
		{`{"v":2,"cmd":"play"}`, "unsupported version", nil},
		{`{"req_id":"3"}`, "missing cmd", nil},
		{`{"cmd":"play"} {"cmd":"pause"}`, "trailing", nil},
		{`{"cmd":"seek","position":"-1"}`, "position", nil},
		{`{"cmd":"seek","position":"1:75"}`, "position", nil},
	}
	for _, c := range cases {
		req, err := DecodeRequest([]byte(c.payload), SessionCommands)
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%s: error %v, want %q", c.payload, err, c.wantErr)
		}
		if c.check != nil && !c.check(req) {
			t.Errorf("%s: decoded %+v", c.payload, req)
		}
	}
	if _, err := DecodeRequest([]byte(`{"cmd":"search"}`), SessionCommands); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("library command on a session topic: %v", err)
	}
	if _, err := DecodeRequest([]byte(`{"cmd":"play","query":"`+strings.Repeat("x", MaxPayload)+`"}`), SessionCommands); err == nil {
		t.Error("oversized request accepted")
	}
}

func TestDecodeChecksVersion(t *testing.T) {
	st, err := Decode[SessionState](Encode(SessionState{V: 1, Session: "home", State: Playing, Anchor: Anchor{AtNs: 5, Index: 1}}))
	if err != nil || st.Anchor.AtNs != 5 {
		t.Fatalf("round trip: %+v %v", st, err)
	}
	if _, err := Decode[SessionState]([]byte(`{"v":2}`)); err == nil {
		t.Error("version 2 accepted")
	}
	if _, err := Decode[Playlist]([]byte(`{"v":1,"future_field":true,"entries":[]}`)); err != nil {
		t.Errorf("unknown field in a state message refused: %v", err)
	}
}

func TestFramesAndNanoseconds(t *testing.T) {
	e := Entry{Frames: 44100*180 + 7, SampleRate: 44100}
	if got := e.DurationNs(); got != 180_000_000_000+7_000_000_000/44100 {
		t.Errorf("duration %d", got)
	}
	for _, frames := range []int64{0, 1, 44099, 44100, 1 << 40} {
		if got := NsToFrames(FramesToNs(frames, 48000), 48000); got != frames && got != frames-1 {
			t.Errorf("frames %d -> %d", frames, got)
		}
	}
}

func TestSongRef(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	for ref, want := range map[string]time.Duration{sha: 0, "tutti:song:" + sha: 0, "tutti:song:" + strings.ToUpper(sha) + "#1:23": 83 * time.Second} {
		got, off, err := ParseSongRef(ref)
		if err != nil || got != sha || off != want {
			t.Errorf("%s: %s %v %v", ref, got, off, err)
		}
	}
	for _, bad := range []string{"", "tutti:song:xyz", sha + "0", "tutti:song:" + sha + "#x", "../../etc/passwd"} {
		if _, _, err := ParseSongRef(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if FormatPosition(3723*time.Second) != "1:02:03" || FormatPosition(83*time.Second) != "1:23" {
		t.Error("FormatPosition")
	}
}

// FuzzDecodeRequest: no input crashes the parser, and what it accepts
// re-encodes to a request it accepts again.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"cmd":"play"}`, `{"cmd":"seek","position":"1:23"}`, `{"cmd":"volume","volume":3}`, `{"cmd":"enqueue","song":"x","index":2}`, `{`, `[]`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(b, SessionCommands)
		if err != nil {
			return
		}
		if _, err := DecodeRequest(Encode(req), SessionCommands); err != nil {
			t.Fatalf("re-encoded %+v refused: %v", req, err)
		}
	})
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"1:23", "83.5", "1:02:03", "", ":", "1e308"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParsePosition(s); err == nil && d < 0 {
			t.Fatalf("%q parsed to negative %v", s, d)
		}
	})
}

func TestSupersedes(t *testing.T) {
	cases := []struct {
		term, seq, oldTerm, oldSeq uint64
		want                       bool
	}{
		{1, 5, 1, 4, true},
		{1, 4, 1, 4, false}, // a duplicate
		{1, 3, 1, 4, false},
		{2, 1, 1, 9, true},   // a new term wins whatever its seq
		{1, 99, 2, 1, false}, // a deposed controller is fenced off
	}
	for _, c := range cases {
		if got := Supersedes(c.term, c.seq, c.oldTerm, c.oldSeq); got != c.want {
			t.Errorf("Supersedes(%d,%d over %d,%d) = %v", c.term, c.seq, c.oldTerm, c.oldSeq, got)
		}
	}
}

func TestPlaylistHash(t *testing.T) {
	a := Playlist{Entries: []Entry{{ID: "e1", Song: "aa", Frames: 10, SampleRate: 44100}, {ID: "e2", Song: "bb", Frames: 20, SampleRate: 44100}}}
	b := Playlist{Version: 7, Term: 3, Entries: slices.Clone(a.Entries)} // version and term are not content
	if a.Hash() != b.Hash() {
		t.Error("equal entries hash differently")
	}
	b.Entries[0], b.Entries[1] = b.Entries[1], b.Entries[0]
	if a.Hash() == b.Hash() {
		t.Error("reordered entries hash the same")
	}
	if (Playlist{}).Hash() == a.Hash() || len(a.Hash()) != 32 {
		t.Errorf("hash %q", a.Hash())
	}
}

func TestCommandTopic(t *testing.T) {
	cases := []struct{ topic, plain, user string }{
		{"tutti/session/home/cmd", "tutti/session/home/cmd", ""},
		{"tutti/session/home/cmd/alice", "tutti/session/home/cmd", "alice"},
		{"tutti/library/cmd", LibraryCommandTopic, ""},
		{UserTopic(LibraryCommandTopic, "bob"), LibraryCommandTopic, "bob"},
		{UserTopic(SessionsCommandTopic, "admin"), SessionsCommandTopic, "admin"},
	}
	for _, c := range cases {
		plain, user, ok := CommandTopic(c.topic)
		if !ok || plain != c.plain || user != c.user {
			t.Errorf("CommandTopic(%q) = %q, %q, %v", c.topic, plain, user, ok)
		}
	}
	for _, bad := range []string{"tutti/session/home/cmd/Alice", "tutti/session/home/cmd/a/b", "tutti/session/home/state", "tutti/library/cmd/", "x"} {
		if _, _, ok := CommandTopic(bad); ok {
			t.Errorf("CommandTopic(%q) accepted", bad)
		}
	}
}

func TestAllows(t *testing.T) {
	if !Allows([]string{"*"}, "anyone") || !Allows([]string{"a", "b"}, "b") || Allows([]string{"a"}, "b") || Allows(nil, "a") {
		t.Error("Allows")
	}
}

// FuzzDecodeMessages: no payload crashes the decoders of the messages
// roles receive, and what one accepts survives a round trip.
func FuzzDecodeMessages(f *testing.F) {
	for _, m := range []any{
		SessionState{V: 1, Session: "home", Term: 2, Seq: 7, State: Playing, Anchor: Anchor{AtNs: 1, Index: 0, Entry: "e1", Playing: true}},
		Playlist{V: 1, Session: "home", Version: 3, Entries: []Entry{{ID: "e1", Song: strings.Repeat("ab", 32), Frames: 44100, SampleRate: 44100}}},
		Lease{V: 1, Term: 3, Holder: "x", TTLMs: 1500, FetchToken: "t"},
		Ack{V: 1, Session: "home", Term: 1, Seq: 2},
		SpeakerStatus{V: 1, ID: "k1", Online: true, PeerURL: "http://127.0.0.1:1/songs/"},
		Assignment{V: 1, Speaker: "k1", Session: "home", Volume: 80},
		SessionInfo{V: 1, Session: "home", Title: "Home", ACL: Everyone},
		ClockResponse{V: 1, ID: 1, T1: 1, T2: 2, T3: 3},
		ClockBase{V: 1, SharedNs: 2, WallNs: 1},
	} {
		f.Add(Encode(m))
	}
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"entries":[{"frames":-1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip[SessionState](t, b)
		roundTrip[Playlist](t, b)
		roundTrip[Lease](t, b)
		roundTrip[Ack](t, b)
		roundTrip[SpeakerStatus](t, b)
		roundTrip[Assignment](t, b)
		roundTrip[SessionInfo](t, b)
		roundTrip[ControllerStatus](t, b)
		roundTrip[ClockRequest](t, b)
		roundTrip[ClockResponse](t, b)
		roundTrip[ClockBase](t, b)
	})
}

// roundTrip decodes b as a T and, if that works, checks the re-encoded
// message decodes too.
func roundTrip[T any, P interface {
	*T
	version() int
}](t *testing.T, b []byte) {
	t.Helper()
	m, err := Decode[T, P](b)
	if err != nil {
		return
	}
	if _, err := Decode[T, P](Encode(m)); err != nil {
		t.Fatalf("%T re-encoded is refused: %v", m, err)
	}
}

// FuzzReplyTopic: whatever a request names, its reply goes below the
// asker's own reply topic, to a plain topic name: the reply_to itself when
// accepted, the asker's default topic when refused.
func FuzzReplyTopic(f *testing.F) {
	for _, seed := range [][2]string{
		{"", ""}, {"tutti/reply/alice/cli-1", "alice"}, {"tutti/reply/bob", "alice"}, {"tutti/reply", ""},
		{"tutti/reply/#", "alice"}, {"x/+", ""}, {"tutti/reply/alice\x00", "alice"}, {"tutti/reply/alicex", "alice"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, replyTo, user string) {
		if ValidName(user) != nil {
			user = "" // the controller knows only valid names as signers
		}
		own := UserReplyTopic(user)
		got, err := ReplyTopic(replyTo, user)
		switch {
		case got != own && !strings.HasPrefix(got, own+"/"):
			t.Errorf("ReplyTopic(%q, %q) = %q: outside %s", replyTo, user, got, own)
		case strings.ContainsAny(got, "+#\x00") || CheckTopicSize(got) != nil:
			t.Errorf("ReplyTopic(%q, %q) = %q: not a plain topic name", replyTo, user, got)
		case err == nil && replyTo != "" && got != replyTo:
			t.Errorf("ReplyTopic(%q, %q) = %q: accepted, yet elsewhere", replyTo, user, got)
		case err != nil && got != own:
			t.Errorf("ReplyTopic(%q, %q) = %q, %v: refused, yet not on %s", replyTo, user, got, err, own)
		}
	})
}

func TestReplyTopic(t *testing.T) {
	for _, tc := range []struct {
		in, user, want string
		ok             bool
	}{
		// Anonymous requests (a demo broker): anywhere below tutti/reply.
		{"", "", DefaultReplyTopic, true},
		{"tutti/reply", "", "tutti/reply", true},
		{"tutti/reply/ha-1", "", "tutti/reply/ha-1", true},
		{"me/replies", "", DefaultReplyTopic, false},
		{"tutti/replyx", "", DefaultReplyTopic, false},
		{"tutti/session/home/state", "", DefaultReplyTopic, false},
		{"me/#", "", DefaultReplyTopic, false},
		{"me/+/x", "", DefaultReplyTopic, false},
		{"$SYS/x", "", DefaultReplyTopic, false},
		{"a\x00b", "", DefaultReplyTopic, false},
		{"tutti/reply/" + strings.Repeat("a", 1025), "", DefaultReplyTopic, false},
		// Signed requests: only below the signer's own reply topic.
		{"", "alice", "tutti/reply/alice", true},
		{"tutti/reply/alice", "alice", "tutti/reply/alice", true},
		{"tutti/reply/alice/cli-1", "alice", "tutti/reply/alice/cli-1", true},
		{"tutti/reply", "alice", "tutti/reply/alice", false},
		{"tutti/reply/bob", "alice", "tutti/reply/alice", false},
		{"tutti/reply/bob/cli-1", "alice", "tutti/reply/alice", false},
		{"tutti/reply/alicex", "alice", "tutti/reply/alice", false},
		{"alice/replies", "alice", "tutti/reply/alice", false},
		{"tutti/reply/alice/#", "alice", "tutti/reply/alice", false},
	} {
		got, err := ReplyTopic(tc.in, tc.user)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ReplyTopic(%.30q, %q) = %q, %v; want %q, ok %v", tc.in, tc.user, got, err, tc.want, tc.ok)
		}
	}
	if got := UserReplyTopic(""); got != DefaultReplyTopic {
		t.Errorf("UserReplyTopic of anonymous = %q", got)
	}
}
