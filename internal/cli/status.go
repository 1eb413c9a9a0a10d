package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// statusResult is the result of the status command.
type statusResult struct {
	State    protocol.SessionState    `json:"state"`
	Playlist protocol.Playlist        `json:"playlist"`
	Speakers []protocol.SpeakerStatus `json:"speakers"`
}

func runStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status", "[flags]")
	var f clientFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := dial(ctx, f)
	if err != nil {
		return err
	}
	defer c.close()
	r, err := c.request(ctx, protocol.SessionCommandTopic(f.session), protocol.Request{Cmd: protocol.CmdStatus})
	if err != nil {
		return err
	}
	if f.json || !r.OK {
		return printReply(e, f.json, r)
	}
	var st statusResult
	if err := json.Unmarshal(r.Result, &st); err != nil {
		return fmt.Errorf("status result: %w", err)
	}
	printStatus(e.stdout, st, time.Now())
	return nil
}

// printStatus writes the session as a person reads it at a glance. The
// position is computed from the anchor with this machine's clock, which is
// close enough for display.
func printStatus(w io.Writer, st statusResult, now time.Time) {
	s := st.State
	fmt.Fprintf(w, "session %s: %s, volume %d, %s\n", s.Session, s.State, s.Volume, playModes(st.Playlist))
	cur, pos := timelineAt(s.Anchor, st.Playlist, now.UnixNano())
	for i, en := range st.Playlist.Entries {
		mark, at := "  ", ""
		if i == cur && s.State != protocol.Stopped {
			mark = "▶ "
			at = protocol.FormatPosition(time.Duration(pos)) + " / "
		}
		fmt.Fprintf(w, "%s%2d %-5s %s  %s%s\n", mark, i, en.ID, songName(en), at, protocol.FormatPosition(time.Duration(en.DurationNs())))
	}
	if len(st.Playlist.Entries) == 0 {
		fmt.Fprintln(w, "  (playlist empty)")
	}
	titles := map[string]string{}
	for _, en := range st.Playlist.Entries {
		titles[en.Song] = songName(en)
	}
	for _, sp := range st.Speakers {
		online := "offline"
		if sp.Online {
			online = "online"
		}
		playing := ""
		if sp.Song != "" && sp.State != protocol.Stopped {
			playing = fmt.Sprintf("  %s at %s", titles[sp.Song], protocol.FormatPosition(time.Duration(sp.PositionNs)))
		}
		fmt.Fprintf(w, "speaker %-12s %-7s %-9s volume %3d  clock offset %+.3f ms ±%.3f ms  output %s%s\n",
			sp.ID, online, sp.State, sp.Volume, float64(sp.ClockOffsetNs)/1e6, float64(sp.ClockErrorNs)/1e6, sp.Output, playing)
	}
}

// songName is "artist - title", or the title alone.
func songName(en protocol.Entry) string {
	title, artist := protocol.CleanText(en.Title, protocol.MaxSongText), protocol.CleanText(en.Artist, protocol.MaxSongText)
	if artist == "" {
		return title
	}
	return artist + " - " + title
}

// timelineAt returns the entry and position the anchor gives at shared
// instant now, advancing across entries while playing (during a crossfade,
// the entry fading in); -1 when the playlist has ended.
func timelineAt(a protocol.Anchor, pl protocol.Playlist, now int64) (index int, pos int64) {
	pos = a.PositionNs
	if a.Playing && now > a.AtNs {
		pos += now - a.AtNs
	}
	tl := pl.Timeline()
	index, pos, ok := tl.Locate(a.Index, pos)
	if !ok {
		return -1, 0
	}
	return tl.Current(index, pos)
}
