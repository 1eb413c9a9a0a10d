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
		"join kitchen", "create den Den", "grant den alice,bob * -", "search blue moon", "seek -1", "volume x"} {
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
		}
	})
}
