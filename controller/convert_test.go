package controller

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopxl/beep/v2/flac"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// makeM4A encodes seconds of the demo tune at 44.1 kHz with ffmpeg's
// codec ("aac", "alac", or "alac24": 24-bit samples) into an M4A and
// returns its bytes and the tune's frames.
func makeM4A(t testing.TB, codec string, seconds float64) ([]byte, []audiogen.Frame) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is missing (scripts/deps.sh installs it)")
	}
	dir := t.TempDir()
	n := int64(seconds * 44100)
	tune := audiogen.Tune(2, 44100)
	frames := make([]audiogen.Frame, n)
	for i := range frames {
		frames[i] = tune(int64(i))
	}
	wav := filepath.Join(dir, "in.wav")
	f, err := os.Create(wav)
	if err != nil {
		t.Fatal(err)
	}
	if err := audiogen.WriteWAV(f, 44100, n, func(i int64) audiogen.Frame { return frames[i] }); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "song.m4a")
	args := []string{"-nostdin", "-loglevel", "error", "-i", wav}
	switch codec {
	case "aac":
		args = append(args, "-c:a", "aac", "-b:a", "160k")
	case "alac":
		args = append(args, "-c:a", "alac")
	case "alac24":
		args = append(args, "-c:a", "alac", "-sample_fmt", "s32p")
	}
	if b, err := exec.Command("ffmpeg", append(args, out)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b, frames
}

// startConverter runs a converter over lib until the test ends.
func startConverter(t *testing.T, lib *library, ffmpeg string, maxBytes int64, now func() time.Time) *converter {
	t.Helper()
	cv := newConverter(lib, slog.New(slog.DiscardHandler), ffmpeg, maxBytes, now)
	lib.convertible = cv.available
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { cv.run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return cv
}

// convertNow converts src and waits for it.
func convertNow(t *testing.T, cv *converter, src protocol.Song) protocol.Song {
	t.Helper()
	conv, err := cv.start(src)
	if err != nil {
		t.Fatal(err)
	}
	<-conv.done
	if conv.err != nil {
		t.Fatal(conv.err)
	}
	return conv.song
}

// flacFrames decodes a FLAC song file to 16-bit frames.
func flacFrames(t *testing.T, path string) []audiogen.Frame {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, _, err := flac.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []audiogen.Frame
	buf := make([][2]float64, 4096)
	for {
		n, ok := s.Stream(buf)
		for _, x := range buf[:n] {
			out = append(out, audiogen.Frame{L: int16(math.Round(x[0] * 32768)), R: int16(math.Round(x[1] * 32768))})
		}
		if !ok {
			break
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ffmpegDecode is ffmpeg's own decode of an M4A to 16-bit frames.
func ffmpegDecode(t *testing.T, m4a []byte) []audiogen.Frame {
	t.Helper()
	path := filepath.Join(t.TempDir(), "song.m4a")
	if err := os.WriteFile(path, m4a, 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-i", path, "-f", "s16le", "-ac", "2", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	out := make([]audiogen.Frame, len(raw)/4)
	for i := range out {
		out[i] = audiogen.Frame{L: int16(binary.LittleEndian.Uint16(raw[4*i:])), R: int16(binary.LittleEndian.Uint16(raw[4*i+2:]))}
	}
	return out
}

// TestConvertM4A uploads an ALAC and an AAC M4A and converts each: the
// M4A keeps its record, now with the conversion's exact length and a link
// to a FLAC song whose samples are the source's bit for bit (ALAC) or
// ffmpeg's own decode of the AAC; converting again gives the same bytes;
// the FLAC stays out of search. A 24-bit ALAC stays 24-bit.
func TestConvertM4A(t *testing.T) {
	for _, codec := range []string{"alac", "alac24", "aac"} {
		t.Run(codec, func(t *testing.T) {
			lib := newTestLibrary(t)
			cv := startConverter(t, lib, "ffmpeg", DefaultMaxConvertedBytes, time.Now)
			m4a, source := makeM4A(t, codec, 4.3)
			src, created, err := lib.add(bytes.NewReader(m4a), "", "tune.m4a")
			if err != nil || !created {
				t.Fatalf("upload: created %v, %v", created, err)
			}
			if src.Format != "m4a" || src.SampleRate != 44100 || src.Frames < int64(len(source)) {
				t.Fatalf("M4A record %+v: want m4a at 44100 Hz, its header's length", src)
			}
			song := convertNow(t, cv, src)
			if song.Format != "flac" || song.SHA256 == src.SHA256 || song.Title != src.Title {
				t.Fatalf("converted song %+v", song)
			}
			raw, err := os.ReadFile(lib.songPath(song.SHA256))
			if err != nil {
				t.Fatal(err)
			}
			// STREAMINFO's bits per sample, less one, straddle bytes 20-21.
			bits := int(raw[20]&1)<<4 | int(raw[21]>>4) + 1
			if wantBits := map[string]int{"alac": 16, "alac24": 24, "aac": 16}[codec]; bits != wantBits {
				t.Errorf("the FLAC holds %d-bit samples, want %d", bits, wantBits)
			}
			got := flacFrames(t, lib.songPath(song.SHA256))
			if int64(len(got)) != song.Frames {
				t.Fatalf("the FLAC decodes to %d frames, its record says %d", len(got), song.Frames)
			}
			want := source
			if codec == "aac" {
				want = ffmpegDecode(t, m4a)
			}
			if len(got) != len(want) {
				t.Fatalf("the FLAC holds %d frames, want %d", len(got), len(want))
			}
			for i := range got {
				if codec != "aac" && got[i] != want[i] ||
					codec == "aac" && (abs(int(got[i].L)-int(want[i].L)) > 1 || abs(int(got[i].R)-int(want[i].R)) > 1) {
					t.Fatalf("frame %d: %v, want %v", i, got[i], want[i])
				}
			}

			m4aRecord, err := lib.store.song(src.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if m4aRecord.Frames != song.Frames || m4aRecord.Format != "m4a" {
				t.Errorf("the M4A's record after conversion: %+v, want %d frames", m4aRecord, song.Frames)
			}
			if again, ok := cv.converted(src); !ok || again.SHA256 != song.SHA256 {
				t.Errorf("converted again: %v %+v, want the same song", ok, again)
			}
			page, _, err := lib.store.searchSongs(strings.Fields(src.Title), 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) != 1 || page[0].SHA256 != src.SHA256 {
				t.Errorf("search lists %+v, want the M4A only", page)
			}

			// Deterministic: a second conversion writes the same bytes.
			again := filepath.Join(t.TempDir(), "again.flac")
			if err := cv.ffmpegToFLAC(context.Background(), lib.songPath(src.SHA256), again); err != nil {
				t.Fatal(err)
			}
			b1, _ := os.ReadFile(lib.songPath(song.SHA256))
			b2, _ := os.ReadFile(again)
			if !bytes.Equal(b1, b2) {
				t.Error("two conversions of one M4A differ")
			}
		})
	}
}

func abs(x int) int { return max(x, -x) }

// TestConvertWithoutFFmpeg: a controller without ffmpeg refuses M4A
// uploads with a clear error, and still takes other songs.
func TestConvertWithoutFFmpeg(t *testing.T) {
	lib := newTestLibrary(t)
	cv := startConverter(t, lib, filepath.Join(t.TempDir(), "no-ffmpeg"), DefaultMaxConvertedBytes, time.Now)
	m4a, _ := makeM4A(t, "alac", 0.5)
	_, _, err := lib.add(bytes.NewReader(m4a), "", "tune.m4a")
	if !errors.Is(err, errNotAudio) || !bytes.Contains([]byte(err.Error()), []byte("ffmpeg")) {
		t.Fatalf("M4A upload without ffmpeg: %v, want a refusal naming ffmpeg", err)
	}
	if _, err := cv.start(protocol.Song{SHA256: "x", Format: "m4a"}); !errors.Is(err, errNoFFmpeg) {
		t.Errorf("conversion without ffmpeg: %v", err)
	}
	if _, _, err := lib.add(bytes.NewReader(makeWAV(8000, 8000, 1)), "", "a.wav"); err != nil {
		t.Errorf("a WAV upload without ffmpeg: %v", err)
	}
}

// TestConvertedSongsBounded: past the disk bound, converted songs go least
// recently used first, except those a playlist names and those used
// lately; their M4A converts again when wanted.
func TestConvertedSongsBounded(t *testing.T) {
	lib := newTestLibrary(t)
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cv := startConverter(t, lib, "ffmpeg", 1, clock) // every song is over the bound
	if _, err := lib.store.createSession(protocol.DefaultSession, "", protocol.Everyone); err != nil {
		t.Fatal(err)
	}
	var srcs, songs []protocol.Song
	for i, codec := range []string{"alac", "alac", "aac"} {
		m4a, _ := makeM4A(t, codec, 0.5+float64(i)/10)
		src, _, err := lib.add(bytes.NewReader(m4a), "", "tune.m4a")
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
		songs = append(songs, convertNow(t, cv, src))
		if i == 1 { // a playlist entry names the second song
			if _, err := lib.store.db.Exec(`INSERT INTO entries (session, position, id, song) VALUES (?, 0, 'e1', ?)`,
				protocol.DefaultSession, songs[1].SHA256); err != nil {
				t.Fatal(err)
			}
		}
		advance(convertedKeep + time.Minute)
	}
	cv.prune()
	for i, want := range []bool{false, true, false} {
		if got := lib.holds(songs[i].SHA256); got != want {
			t.Errorf("converted song %d kept: %v, want %v", i, got, want)
		}
	}
	if _, ok := cv.converted(srcs[0]); ok {
		t.Error("a dropped conversion still counts as converted")
	}
	if again := convertNow(t, cv, srcs[0]); again.SHA256 != songs[0].SHA256 {
		t.Errorf("converted again to %s, first %s", again.SHA256, songs[0].SHA256)
	}
}

// TestEnqueueWaitsForConversion: enqueueing an M4A not converted yet is
// answered once its FLAC is made, with an entry naming the FLAC; meanwhile
// the session loop answers others' commands at once.
func TestEnqueueWaitsForConversion(t *testing.T) {
	broker := startBroker(t)
	c, _ := startController(t, Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Sessions: []string{"home"}})
	tc := newTestClient(t, broker, "tutti/reply", "tutti/reply/#")
	other := newTestClient(t, broker, "tutti/reply/other")
	// Into the library directly, not announced: nothing converts it ahead.
	m4a, _ := makeM4A(t, "aac", 60)
	src, _, err := c.lib.add(bytes.NewReader(m4a), "", "tune.m4a")
	if err != nil {
		t.Fatal(err)
	}
	tc.publish(protocol.SessionCommandTopic("home"), []byte(`{"v":1,"cmd":"enqueue","song":"`+src.SHA256+`","req_id":"q1","reply_to":"tutti/reply"}`))
	testwait.For(t, "the conversion to start", waitTimeout, func() bool {
		c.converter.mu.Lock()
		defer c.converter.mu.Unlock()
		return c.converter.running[src.SHA256] != nil
	})
	reply := other.request(protocol.SessionCommandTopic("home"), "tutti/reply/other", "s1",
		`{"v":1,"cmd":"status","req_id":"s1","reply_to":"tutti/reply/other"}`)
	c.converter.mu.Lock()
	stillConverting := c.converter.running[src.SHA256] != nil
	c.converter.mu.Unlock()
	if !reply.OK || !stillConverting {
		t.Errorf("status during the conversion: %+v, answered before it ended: %v", reply, stillConverting)
	}
	var res commandResult
	tc.next(protocol.DefaultReplyTopic, func(b []byte) bool {
		var r protocol.Reply
		if json.Unmarshal(b, &r) != nil || r.ReqID != "q1" {
			return false
		}
		if !r.OK || json.Unmarshal(r.Result, &res) != nil {
			t.Fatalf("enqueue of an M4A: %+v", r)
		}
		return true
	})
	flac, ok := c.converter.converted(src)
	if !ok {
		t.Fatal("no conversion after the enqueue's reply")
	}
	reply = other.request(protocol.SessionCommandTopic("home"), "tutti/reply/other", "s2",
		`{"v":1,"cmd":"status","req_id":"s2","reply_to":"tutti/reply/other"}`)
	var status statusResult
	if !reply.OK || json.Unmarshal(reply.Result, &status) != nil {
		t.Fatalf("status: %+v", reply)
	}
	entries := status.Playlist.Entries
	if res.Entry == "" || len(entries) != 1 || entries[0].Song != flac.SHA256 || entries[0].Frames != flac.Frames || entries[0].Title != src.Title {
		t.Errorf("entry %q, playlist %+v: want one entry of the FLAC %s", res.Entry, entries, flac.SHA256)
	}

	// Removing the M4A removes its conversion and the entries naming it.
	reply = other.request(protocol.LibraryCommandTopic, "tutti/reply/other", "r1",
		`{"v":1,"cmd":"remove","song":"`+src.SHA256+`","req_id":"r1","reply_to":"tutti/reply/other"}`)
	var removed removeResult
	if !reply.OK || json.Unmarshal(reply.Result, &removed) != nil || removed.Dropped != 1 {
		t.Fatalf("remove the M4A: %+v", reply)
	}
	if c.lib.holds(flac.SHA256) || c.lib.holds(src.SHA256) {
		t.Error("the M4A's files outlive its removal")
	}
	if _, err := c.store.song(flac.SHA256); err == nil {
		t.Error("the conversion's record outlives the M4A's removal")
	}
}

// TestFFmpegTakesNamesAsFiles: a file whose name looks like an ffmpeg
// protocol or option is read as the file it is (relative names: nothing
// before them tells a path).
func TestFFmpegTakesNamesAsFiles(t *testing.T) {
	lib := newTestLibrary(t)
	cv := startConverter(t, lib, "ffmpeg", DefaultMaxConvertedBytes, time.Now)
	m4a, source := makeM4A(t, "alac", 0.5)
	t.Chdir(t.TempDir())
	for _, in := range []string{"concat:a.m4a|b.m4a", "-y", "http:host", "pipe:0"} {
		if err := os.WriteFile(in, m4a, 0o644); err != nil {
			t.Fatal(err)
		}
		out := "out.flac"
		if err := cv.ffmpegToFLAC(context.Background(), in, out); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := flacFrames(t, out); len(got) != len(source) {
			t.Errorf("%q: %d frames converted, want %d", in, len(got), len(source))
		}
	}
}
