package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// playlistSubcommands are the words after `tutti playlist` that name what
// to do; any other word is a playlist to show.
var playlistSubcommands = map[string]string{
	"show":   protocol.CmdPlaylistShow,
	"create": protocol.CmdPlaylistCreate,
	"rename": protocol.CmdPlaylistRename,
	"delete": protocol.CmdPlaylistDelete,
	"add":    protocol.CmdPlaylistAdd,
	"remove": protocol.CmdPlaylistRemove,
}

// playlistRequests builds the saved-playlist requests: for `tutti playlist`
// (cmd CmdPlaylistShow) the first word may name another command.
func playlistRequests(cmd string, args []string) ([]protocol.Request, error) {
	if sub, ok := playlistSubcommands[first(args)]; ok && cmd == protocol.CmdPlaylistShow {
		cmd, args = sub, args[1:]
	}
	req := protocol.Request{Cmd: cmd}
	wrong := fmt.Errorf("playlist: %s", clientUsage[protocol.CmdPlaylistShow])
	switch cmd {
	case protocol.CmdPlaylistCreate:
		if len(args) == 0 {
			return nil, errors.New("playlist create: give its title")
		}
		req.Title = strings.Join(args, " ")
		return []protocol.Request{req}, nil
	case protocol.CmdPlaylistRename:
		if len(args) < 2 {
			return nil, wrong
		}
		req.Title = strings.Join(args[1:], " ")
	case protocol.CmdPlaylistAdd:
		if len(args) < 2 {
			return nil, wrong
		}
		var reqs []protocol.Request
		for _, a := range args[1:] {
			song, err := linkRef(a)
			if err != nil {
				return nil, err
			}
			reqs = append(reqs, protocol.Request{Cmd: cmd, Playlist: args[0], Song: song})
		}
		return reqs, nil
	case protocol.CmdPlaylistRemove:
		if len(args) != 2 {
			return nil, wrong
		}
		i, err := strconv.Atoi(args[1])
		if err != nil {
			return nil, fmt.Errorf("playlist remove: index %q is not a number", args[1])
		}
		req.Index = &i
	default: // show, delete
		if len(args) != 1 {
			return nil, wrong
		}
	}
	if args[0] == "" {
		return nil, wrong
	}
	req.Playlist = args[0]
	return []protocol.Request{req}, nil
}

func first(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// summarizePlaylists prints the results of playlists and playlist as
// lines; ok is false for other results. Titles come from other users: they
// are cleaned before they reach the terminal.
func summarizePlaylists(result json.RawMessage) (text string, ok bool) {
	var shape map[string]json.RawMessage
	if json.Unmarshal(result, &shape) != nil {
		return "", false
	}
	var b strings.Builder
	switch {
	case shape["playlists"] != nil:
		var page protocol.SavedPlaylistsPage
		if json.Unmarshal(result, &page) != nil {
			return "", false
		}
		fmt.Fprintf(&b, "playlists %d-%d of %d", min(page.Offset+1, page.Total), page.Offset+len(page.Playlists), page.Total)
		for _, p := range page.Playlists {
			fmt.Fprintf(&b, "\n  %s  %s (%d songs)", protocol.CleanText(p.URI, 100), protocol.CleanText(p.Title, protocol.MaxSongText), p.Songs)
		}
		more(&b, page.Offset+len(page.Playlists), page.Total, len(page.Playlists))
	case shape["playlist"] != nil && shape["songs"] != nil:
		var page protocol.SavedPlaylistPage
		if json.Unmarshal(result, &page) != nil {
			return "", false
		}
		p := page.Playlist
		fmt.Fprintf(&b, "%s  %s: songs %d-%d of %d", protocol.CleanText(p.URI, 100), protocol.CleanText(p.Title, protocol.MaxSongText),
			min(page.Offset+1, p.Songs), page.Offset+len(page.Songs), p.Songs)
		for _, s := range page.Songs {
			song := protocol.CleanSong(s.Song)
			if song.Missing {
				fmt.Fprintf(&b, "\n  %3d  %s  (missing)", s.Index, protocol.CleanText(song.URI, 100))
				continue
			}
			fmt.Fprintf(&b, "\n  %3d  %s  %s - %s (%s)", s.Index, song.URI, song.Artist, song.Title,
				protocol.FormatPosition(time.Duration(song.DurationNs)))
		}
		more(&b, page.Offset+len(page.Songs), p.Songs, len(page.Songs))
	default:
		return "", false
	}
	return b.String(), true
}

// more says where the next page starts, if there is one.
func more(b *strings.Builder, next, total, shown int) {
	if next < total && shown > 0 {
		fmt.Fprintf(b, "\n  (more: --offset %d)", next)
	}
}
