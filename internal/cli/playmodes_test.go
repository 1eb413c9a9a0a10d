package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

func TestPlayModeRequests(t *testing.T) {
	reqs, err := buildRequests(protocol.CmdRepeat, []string{"one"})
	if err != nil || reqs[0].Mode != "one" {
		t.Errorf("repeat one: %+v, %v", reqs, err)
	}
	reqs, err = buildRequests(protocol.CmdFade, []string{"2.5"})
	if err != nil || reqs[0].Seconds == nil || *reqs[0].Seconds != 2.5 {
		t.Errorf("crossfade 2.5: %+v, %v", reqs, err)
	}
	for _, args := range [][]string{{}, {"one", "all"}} {
		if _, err := buildRequests(protocol.CmdRepeat, args); err == nil {
			t.Errorf("repeat %v accepted", args)
		}
	}
	for _, arg := range []string{"two", "NaN", "Inf"} {
		if _, err := buildRequests(protocol.CmdFade, []string{arg}); err == nil {
			t.Errorf("crossfade %s accepted", arg)
		}
	}
}

// TestStatusShowsPlayModes: the status names the repeat, shuffle and
// crossfade, and marks the entry fading in as current during a crossfade.
func TestStatusShowsPlayModes(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pl := protocol.Playlist{V: 1, Session: "home", Version: 2, Repeat: protocol.RepeatAll, Shuffle: true, CrossfadeMs: 2500, Entries: []protocol.Entry{
		{ID: "e1", Title: "First", Frames: 10 * 44100, SampleRate: 44100},
		{ID: "e2", Title: "Second", Frames: 20 * 44100, SampleRate: 44100},
	}}
	st := statusResult{Playlist: pl, State: protocol.SessionState{V: 1, Session: "home", State: protocol.Playing, Volume: 80, PlaylistVersion: 2,
		Anchor: protocol.Anchor{AtNs: at.UnixNano(), Index: 1, Entry: "e2", Playing: true}}}
	var out bytes.Buffer
	// 19 s into the second entry: the first fades in again (repeat all), 1.5 s in.
	printStatus(&out, st, at.Add(19*time.Second))
	text := out.String()
	if !strings.Contains(text, "session home: playing, volume 80, repeat all, shuffle on, crossfade 2.5 s") {
		t.Errorf("status line:\n%s", text)
	}
	if !strings.Contains(text, "▶  0 e1    First  0:01 / 0:10") {
		t.Errorf("current entry not the one fading in:\n%s", text)
	}
	out.Reset()
	st.Playlist.Repeat, st.Playlist.Shuffle, st.Playlist.CrossfadeMs = protocol.RepeatOff, false, 0
	printStatus(&out, st, at)
	if !strings.Contains(out.String(), "repeat off, shuffle off, crossfade off") {
		t.Errorf("status line:\n%s", out.String())
	}
}
