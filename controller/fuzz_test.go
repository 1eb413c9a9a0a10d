package controller

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// checkSession fails unless s is a state speakers can follow.
func checkSession(t *testing.T, s session) {
	t.Helper()
	a, entries := s.State.Anchor, s.Playlist.Entries
	switch {
	case len(entries) == 0 && (a.Index != -1 || a.Entry != "" || s.State.State != protocol.Stopped):
		t.Fatalf("empty playlist, anchor %+v state %s", a, s.State.State)
	case len(entries) > 0 && (a.Index < 0 || a.Index >= len(entries) || a.Entry != entries[a.Index].ID):
		t.Fatalf("anchor %+v does not match the playlist", a)
	case len(entries) > 0 && (a.PositionNs < 0 || a.PositionNs >= entries[a.Index].DurationNs()):
		t.Fatalf("position %d outside entry %+v", a.PositionNs, entries[a.Index])
	case a.Playing != (s.State.State == protocol.Playing):
		t.Fatalf("anchor playing %v in state %s", a.Playing, s.State.State)
	case s.State.State != protocol.Playing && s.State.State != protocol.Paused && s.State.State != protocol.Stopped:
		t.Fatalf("state %q", s.State.State)
	case s.State.PlaylistVersion != s.Playlist.Version:
		t.Fatalf("state refers to playlist %d, playlist is %d", s.State.PlaylistVersion, s.Playlist.Version)
	case s.State.Volume < 0 || s.State.Volume > 100:
		t.Fatalf("volume %d", s.State.Volume)
	}
	ids := map[string]bool{}
	for _, e := range entries {
		if ids[e.ID] {
			t.Fatalf("entry id %s twice", e.ID)
		}
		ids[e.ID] = true
	}
}

func FuzzApply(f *testing.F) {
	for _, seed := range []string{
		`{"cmd":"play"}`, `{"cmd":"play","index":2,"position":"0:03.5"}`, `{"cmd":"pause"}`, `{"cmd":"next"}`,
		`{"cmd":"previous"}`, `{"cmd":"seek","position":4.25}`, `{"cmd":"enqueue","song":"x","index":1}`,
		`{"cmd":"dequeue","index":1}`, `{"cmd":"dequeue","entry":"e2"}`, `{"cmd":"clear"}`,
		`{"cmd":"volume","volume":55}`, `{"cmd":"status"}`,
		`{"cmd":"enqueue","song":"x","at":"now"}`, `{"cmd":"enqueue","song":"x","at":"next"}`,
		`{"cmd":"move","index":0,"to":2}`, `{"cmd":"move","entry":"e2","to":0}`,
		`{"cmd":"shuffle","on":true}`, `{"cmd":"shuffle","on":false}`,
	} {
		f.Add([]byte(seed), int64(12e9))
	}
	base := playingAt(newTestSession(f, 10*44100, 441001, 3*44100), 0, 1, 2*sec)
	f.Fuzz(func(t *testing.T, payload []byte, now int64) {
		now %= 1e15 // shared time stays far from overflow, as a clock does
		req, err := protocol.DecodeRequest(payload, protocol.SessionCommands)
		if err != nil {
			return
		}
		s := base
		s.Playlist.Entries = append([]protocol.Entry(nil), base.Playlist.Entries...)
		for round := range 3 { // the same request on the state it made
			next, _, err := apply(now, lead, s, req, songsOf(testSong(round, 44100+int64(round))), rand.New(rand.NewPCG(uint64(round), 1)))
			if err != nil {
				if !reflect.DeepEqual(next, s) {
					t.Fatalf("%s failed (%v) but changed the session", payload, err)
				}
				return
			}
			checkSession(t, next)
			if next.State.Seq < s.State.Seq || next.Playlist.Version < s.Playlist.Version {
				t.Fatalf("%s: versions went back", payload)
			}
			s = next
			now += 1e9
		}
	})
}

func FuzzAnalyze(f *testing.F) {
	f.Add(makeWAV(100, 8000, 1))
	f.Add(makeWAV(3, 44100, 2)[:50])
	f.Add([]byte("fLaC\x00\x00\x00\x22"))
	f.Add(blockFLAC(f, 44100, 20, 4096, false))
	f.Add(blockFLAC(f, 44100, 20, 65535, true)) // a small audio bomb
	f.Add([]byte("OggS\x00\x02\x00\x00"))
	f.Add([]byte("ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "song")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		song, err := analyze(file)
		if err == nil && (song.Frames <= 0 || song.SampleRate <= 0 || song.Format == "") {
			t.Fatalf("accepted %+v", song)
		}
	})
}
