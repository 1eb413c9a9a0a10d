package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// describe prints requests compactly: command, song's start, at, index,
// playlist, title.
func describe(reqs []protocol.Request) string {
	var out []string
	for _, r := range reqs {
		s := r.Cmd
		if r.Song != "" {
			s += " " + strings.TrimPrefix(r.Song, "tutti:")[:min(len(strings.TrimPrefix(r.Song, "tutti:")), 10)]
		}
		if r.At != "" {
			s += " at=" + r.At
		}
		if r.Index != nil {
			s += fmt.Sprint(" index=", *r.Index)
		}
		if r.Entry != "" {
			s += " entry=" + r.Entry
		}
		if r.To != nil {
			s += fmt.Sprint(" to=", *r.To)
		}
		if r.On != nil {
			s += fmt.Sprint(" on=", *r.On)
		}
		if r.Playlist != "" {
			s += " playlist=" + r.Playlist
		}
		if r.Title != "" {
			s += " title=" + r.Title
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

// TestQueueCommandLines: the queue's and saved playlists' command lines
// and flags build the requests they say, songs landing in the order given.
func TestQueueCommandLines(t *testing.T) {
	a, b, c := "tutti:album:000000000000000a", "tutti:playlist:mix", "tutti:song:"+strings.Repeat("cd", 32)
	for _, tc := range []struct {
		cmd   string
		args  string
		flags queueFlags
		want  string
	}{
		{"enqueue", a + " " + b, queueFlags{index: -1}, "enqueue album:0000; enqueue playlist:m"},
		{"enqueue", a + " " + b + " " + c, queueFlags{next: true, index: -1},
			"enqueue song:cdcdc at=next; enqueue playlist:m at=next; enqueue album:0000 at=next"},
		{"enqueue", a + " " + b + " " + c, queueFlags{now: true, index: -1},
			"enqueue album:0000 at=now; enqueue song:cdcdc at=next; enqueue playlist:m at=next"},
		{"move", "3 0", queueFlags{index: -1}, "move index=3 to=0"},
		{"move", "e7 2", queueFlags{index: -1}, "move entry=e7 to=2"},
		{"shuffle", "off", queueFlags{index: -1}, "shuffle on=false"},
		{"playlist", "mix", queueFlags{index: -1}, "playlist playlist=mix"},
		{"playlist", "show create", queueFlags{index: -1}, "playlist playlist=create"},
		{"playlist", "create Road  Trip", queueFlags{index: -1}, "playlist_create title=Road Trip"},
		{"playlist", "rename mix Summer mix", queueFlags{index: -1}, "playlist_rename playlist=mix title=Summer mix"},
		{"playlist", "add mix " + a + " " + c, queueFlags{index: 2}, "playlist_add album:0000 index=2 playlist=mix; playlist_add song:cdcdc index=3 playlist=mix"},
		{"playlist", "remove mix 4", queueFlags{index: -1}, "playlist_remove index=4 playlist=mix"},
		{"playlist", "delete tutti:playlist:mix", queueFlags{index: -1}, "playlist_delete playlist=tutti:playlist:mix"},
	} {
		reqs, err := buildRequests(tc.cmd, strings.Fields(tc.args))
		if err == nil {
			reqs, err = tc.flags.place(reqs)
		}
		if got := describe(reqs); err != nil || got != tc.want {
			t.Errorf("%s %s %+v: %q, %v\nwant %q", tc.cmd, tc.args, tc.flags, got, err, tc.want)
		}
	}
	for _, bad := range []struct{ cmd, args string }{
		{"move", "3"}, {"move", "3 x"}, {"shuffle", "yes"}, {"shuffle", ""}, {"playlist", ""}, {"playlist", "create"},
		{"playlist", "add mix"}, {"playlist", "remove mix x"}, {"playlist", "a b"}, {"enqueue", "tutti:album:xyz"},
	} {
		if reqs, err := buildRequests(bad.cmd, strings.Fields(bad.args)); err == nil {
			t.Errorf("%s %s built %s", bad.cmd, bad.args, describe(reqs))
		}
	}
	if _, err := (queueFlags{next: true, now: true}).place([]protocol.Request{{Cmd: protocol.CmdEnqueue}}); err == nil {
		t.Error("--next and --now together accepted")
	}
}
