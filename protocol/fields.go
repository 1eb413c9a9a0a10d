package protocol

import (
	"fmt"
	"slices"
	"strings"
)

// fieldRule is what one command takes of a Request's optional fields, by
// their JSON names.
type fieldRule struct {
	takes []string   // the fields the command accepts
	needs [][]string // each group: exactly one of its fields must be present
}

// commandFields is, for every command, the fields it takes and those it
// needs. Any other field present is an error, so a mistaken request is
// refused instead of half obeyed. The controller and the speakers check
// requests against it (CheckFields); the CLI and the bridge build theirs to
// it.
var commandFields = map[string]fieldRule{
	CmdPlay:     {takes: []string{"index", "position"}},
	CmdPause:    {},
	CmdNext:     {},
	CmdPrevious: {},
	CmdSeek:     {takes: []string{"position"}, needs: [][]string{{"position"}}},
	CmdEnqueue:  {takes: []string{"song", "index", "at"}, needs: [][]string{{"song"}}},
	CmdDequeue:  {takes: []string{"entry", "index"}, needs: [][]string{{"entry", "index"}}},
	CmdClear:    {},
	CmdVolume:   {takes: []string{"volume", "speaker"}, needs: [][]string{{"volume"}}},
	CmdStatus:   {},
	CmdJoin:     {takes: []string{"speaker"}, needs: [][]string{{"speaker"}}},
	CmdLeave:    {takes: []string{"speaker"}, needs: [][]string{{"speaker"}}},
	CmdAnnounce: {takes: []string{"text"}},
	CmdMove:     {takes: []string{"entry", "index", "to"}, needs: [][]string{{"entry", "index"}, {"to"}}},
	CmdShuffle:  {takes: []string{"on"}, needs: [][]string{{"on"}}},
	CmdRepeat:   {takes: []string{"mode"}, needs: [][]string{{"mode"}}},
	CmdFade:     {takes: []string{"seconds"}, needs: [][]string{{"seconds"}}},
	CmdGain:     {takes: []string{"mode"}, needs: [][]string{{"mode"}}},

	CmdLoad:   {takes: []string{"song", "path"}, needs: [][]string{{"song", "path"}}},
	CmdSearch: {takes: []string{"query", "offset", "limit"}, needs: [][]string{{"query"}}},
	CmdLookup: {takes: []string{"song"}, needs: [][]string{{"song"}}},
	CmdRemove: {takes: []string{"song"}, needs: [][]string{{"song"}}},

	CmdArtists: {takes: []string{"genre", "offset", "limit"}},
	CmdAlbums:  {takes: []string{"link", "genre", "offset", "limit"}},
	CmdTracks:  {takes: []string{"link", "offset", "limit"}, needs: [][]string{{"link"}}},
	CmdRecent:  {takes: []string{"offset", "limit"}},
	CmdGenres:  {takes: []string{"offset", "limit"}},
	CmdScan:    {},

	CmdPlaylists:      {takes: []string{"offset", "limit"}},
	CmdPlaylistShow:   {takes: []string{"playlist", "offset", "limit"}, needs: [][]string{{"playlist"}}},
	CmdPlaylistCreate: {takes: []string{"title"}, needs: [][]string{{"title"}}},
	CmdPlaylistRename: {takes: []string{"playlist", "title"}, needs: [][]string{{"playlist"}, {"title"}}},
	CmdPlaylistDelete: {takes: []string{"playlist"}, needs: [][]string{{"playlist"}}},
	CmdPlaylistAdd:    {takes: []string{"playlist", "song", "index"}, needs: [][]string{{"playlist"}, {"song"}}},
	CmdPlaylistRemove: {takes: []string{"playlist", "index"}, needs: [][]string{{"playlist"}, {"index"}}},

	CmdList:   {},
	CmdCreate: {takes: []string{"session", "title", "acl"}, needs: [][]string{{"session"}}},
	CmdRename: {takes: []string{"session", "title"}, needs: [][]string{{"session"}, {"title"}}},
	CmdDelete: {takes: []string{"session"}, needs: [][]string{{"session"}}},
	CmdGrant:  {takes: []string{"session", "acl"}, needs: [][]string{{"session"}, {"acl"}}},
	CmdForget: {takes: []string{"speaker"}, needs: [][]string{{"speaker"}}},

	CmdIdentify:  {},
	CmdRestart:   {},
	CmdCalibrate: {takes: []string{"calibration_ms"}, needs: [][]string{{"calibration_ms"}}},
}

// requestField is one optional field of a Request: its JSON name, and
// whether a request carries it.
type requestField struct {
	name    string
	present func(Request) bool
}

// requestFields are a Request's optional fields, in the order errors
// mention them.
var requestFields = []requestField{
	{"song", func(r Request) bool { return r.Song != "" }},
	{"path", func(r Request) bool { return r.Path != "" }},
	{"index", func(r Request) bool { return r.Index != nil }},
	{"entry", func(r Request) bool { return r.Entry != "" }},
	{"position", func(r Request) bool { return r.Position != nil }},
	{"volume", func(r Request) bool { return r.Volume != nil }},
	{"query", func(r Request) bool { return r.Query != "" }},
	{"offset", func(r Request) bool { return r.Offset != 0 }},
	{"limit", func(r Request) bool { return r.Limit != 0 }},
	{"speaker", func(r Request) bool { return r.Speaker != "" }},
	{"session", func(r Request) bool { return r.Session != "" }},
	{"title", func(r Request) bool { return r.Title != "" }},
	{"acl", func(r Request) bool { return r.ACL != nil }},
	{"text", func(r Request) bool { return r.Text != "" }},
	{"at", func(r Request) bool { return r.At != "" }},
	{"to", func(r Request) bool { return r.To != nil }},
	{"on", func(r Request) bool { return r.On != nil }},
	{"mode", func(r Request) bool { return r.Mode != "" }},
	{"seconds", func(r Request) bool { return r.Seconds != nil }},
	{"link", func(r Request) bool { return r.Link != "" }},
	{"genre", func(r Request) bool { return r.Genre != "" }},
	{"playlist", func(r Request) bool { return r.Playlist != "" }},
	{"calibration_ms", func(r Request) bool { return r.CalibrationMs != nil }},
}

// CheckFields checks that req carries the fields its command needs and no
// others (see commandFields).
func CheckFields(req Request) error {
	rule, ok := commandFields[req.Cmd]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownCommand, req.Cmd)
	}
	present := map[string]bool{}
	for _, f := range requestFields {
		if !f.present(req) {
			continue
		}
		if !slices.Contains(rule.takes, f.name) {
			return fmt.Errorf("%s takes no %s", req.Cmd, f.name)
		}
		present[f.name] = true
	}
	for _, group := range rule.needs {
		n := 0
		for _, name := range group {
			if present[name] {
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("%s needs %s", req.Cmd, strings.Join(group, " or "))
		}
		if n > 1 {
			return fmt.Errorf("%s takes only one of %s", req.Cmd, strings.Join(group, " or "))
		}
	}
	return nil
}
