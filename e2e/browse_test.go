package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// TestBrowseWithCLI: over real processes, songs tagged by flac's encoder
// are browsed with the CLI from artists to albums to tracks, each step by
// a link the previous one printed; search ranks a title match first and
// folds accents; a malformed link is refused with a clear error.
func TestBrowseWithCLI(t *testing.T) {
	s := newSecureSystem(t)
	s.waitController()
	var paths []string
	for i, tags := range []struct{ title, artist, album string }{
		{"Sinnerman", "Nina Simone", "Pastel Blues"},
		{"Be My Husband", "Nina Simone", "Pastel Blues"},
		{"Feeling Good", "Nina Simone", "I Put a Spell on You"},
		{"Nina", "Cover Band", "Tributes"},
		{"Déjà Vu", "Beyoncé", "B'Day"},
	} {
		wav, _ := timecodeSong(t, "song.wav", 1, int64(i)*1_000_000)
		path := filepath.Join(t.TempDir(), "song.flac")
		cmd := exec.Command("flac", "--silent", "-T", "TITLE="+tags.title, "-T", "ARTIST="+tags.artist, "-T", "ALBUM="+tags.album, "-o", path, wav)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("flac: %v %s", err, out)
		}
		paths = append(paths, path)
	}
	s.mustTutti("alice", append([]string{"load", "--quiet"}, paths...)...)

	nina := protocol.ArtistURI(protocol.ArtistID("Nina Simone"))
	if out := s.mustTutti("bob", "artists"); !strings.Contains(out, "artists 1-3 of 3") || !strings.Contains(out, nina) {
		t.Fatalf("artists:\n%s", out)
	}
	pastel := protocol.AlbumURI(protocol.AlbumID("Nina Simone", "Pastel Blues"))
	out := s.mustTutti("bob", "albums", nina)
	if !strings.Contains(out, "albums 1-2 of 2") || !strings.Contains(out, pastel) || !strings.Contains(out, "I Put a Spell on You") {
		t.Fatalf("albums of Nina Simone:\n%s", out)
	}
	out = s.mustTutti("bob", "tracks", pastel)
	if !strings.Contains(out, "songs 1-2 of 2") || strings.Index(out, "Be My Husband") > strings.Index(out, "Sinnerman") {
		t.Fatalf("tracks of Pastel Blues:\n%s", out)
	}
	out = s.mustTutti("bob", "search", "nina")
	if !strings.Contains(out, "songs 1-4 of 4") || strings.Index(out, "Cover Band") > strings.Index(out, "Nina Simone") {
		t.Fatalf("search nina, the title match first:\n%s", out)
	}
	if out := s.mustTutti("bob", "search", "deja"); !strings.Contains(out, "Déjà Vu") {
		t.Fatalf("search deja:\n%s", out)
	}
	if out := s.mustTutti("bob", "recent", "--limit", "1"); !strings.Contains(out, "albums 1-1 of 4") || !strings.Contains(out, "(more: --offset 1)") {
		t.Fatalf("recent:\n%s", out)
	}
	if out, err := s.tutti("bob", "tracks", "tutti:album:nope"); err == nil || !strings.Contains(out, "an album id is 16 lowercase hex digits") {
		t.Fatalf("a malformed link: %v\n%s", err, out)
	}
}
