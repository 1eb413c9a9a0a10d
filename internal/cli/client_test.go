package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// FuzzBuildRequests: no command line crashes the parser, and every request
// it builds is one the controller's strict parser accepts.
func FuzzBuildRequests(f *testing.F) {
	for _, s := range []string{"seek 1:23", "volume 40", "play 2", "dequeue e3", "enqueue tutti:song:" + strings.Repeat("ab", 32),
		"join kitchen", "create den Den", "create den Den alice alice -", "create den alice * alice", "grant den alice,bob * -", "search blue moon", "search", "seek -1", "volume x",
		"move 3 0", "move e4 1", "shuffle on", "shuffle maybe", "enqueue tutti:playlist:mix tutti:album:0123456789abcdef",
		"playlist create Road Trip", "playlist add mix tutti:artist:0123456789abcdef", "playlist remove mix 2", "playlist show create",
		"playlists", "playlist_rename mix Mixed", "replaygain track", "replaygain",
		"artists", "albums", "albums tutti:artist:0123456789abcdef", "albums a b", "tracks tutti:album:0123456789abcdef", "tracks", "recent", "genres", "genres rock",
		"repeat all", "repeat", "crossfade 2.5", "crossfade NaN", "crossfade 1e400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words := strings.Fields(line)
		allowed := slices.Concat(protocol.SessionCommands, protocol.LibraryCommands, protocol.SessionsCommands)
		if len(words) == 0 || !slices.Contains(allowed, words[0]) {
			return // the CLI runs only commands it knows
		}
		reqs, err := buildRequests(words[0], words[1:])
		if err != nil {
			return
		}
		for _, r := range reqs {
			if _, err := protocol.DecodeRequest(protocol.Encode(r), allowed); err != nil {
				t.Fatalf("%q built %+v, which the controller refuses: %v", line, r, err)
			}
			if err := protocol.CheckFields(r); err != nil {
				t.Fatalf("%q built %+v, whose fields the controller refuses: %v", line, r, err)
			}
		}
	})
}

// TestCreateTakesAnACL: create reads grant's three lists after the session
// and its optional title, and sends no ACL without them.
func TestCreateTakesAnACL(t *testing.T) {
	for _, c := range []struct {
		line, session, title string
		acl                  *protocol.ACL
	}{
		{"den", "den", "", nil},
		{"den Den", "den", "Den", nil},
		{"den alice,bob * -", "den", "", &protocol.ACL{See: []string{"alice", "bob"}, Join: []string{"*"}, Control: []string{}}},
		{"den Den alice alice alice", "den", "Den", &protocol.ACL{See: []string{"alice"}, Join: []string{"alice"}, Control: []string{"alice"}}},
	} {
		reqs, err := buildRequests(protocol.CmdCreate, strings.Fields(c.line))
		if err != nil {
			t.Fatalf("create %s: %v", c.line, err)
		}
		r := reqs[0]
		if r.Session != c.session || r.Title != c.title || (r.ACL == nil) != (c.acl == nil) ||
			r.ACL != nil && !(slices.Equal(r.ACL.See, c.acl.See) && slices.Equal(r.ACL.Join, c.acl.Join) && slices.Equal(r.ACL.Control, c.acl.Control)) {
			t.Errorf("create %s built %+v (acl %+v)", c.line, r, r.ACL)
		}
	}
	for _, line := range []string{"", "den Den x", "den Den a b c d"} {
		if _, err := buildRequests(protocol.CmdCreate, strings.Fields(line)); err == nil {
			t.Errorf("create %q accepted", line)
		}
	}
}
