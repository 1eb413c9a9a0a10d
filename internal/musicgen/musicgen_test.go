package musicgen

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhowden/tag"
)

// TestEncodeTagsEveryFormat checks that every format's file carries the tags
// it was made with, as the library's tag reader sees them.
func TestEncodeTagsEveryFormat(t *testing.T) {
	dir := t.TempDir()
	cover := filepath.Join(dir, "cover.jpg")
	if err := WriteCover(cover, 1); err != nil {
		t.Fatal(err)
	}
	gain := -6.5
	tags := Tags{Title: "Blue in Green", Artist: "Miles Davis", Album: "Kind of Blue", AlbumArtist: "Miles Davis Sextet",
		Genre: "Jazz", Track: 3, TrackTotal: 5, Disc: 1, DiscTotal: 2, Year: 1959, TrackGainDb: &gain}
	for _, format := range AllFormats {
		path := filepath.Join(dir, "x", format+Ext(format))
		if err := Encode(path, format, tags, 1, cover, nil); err != nil {
			t.Fatal(err)
		}
		if format == WAV {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := tag.ReadFrom(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		track, total := m.Track()
		disc, discs := m.Disc()
		if m.Title() != tags.Title || m.Artist() != tags.Artist || m.Album() != tags.Album || m.AlbumArtist() != tags.AlbumArtist ||
			m.Genre() != tags.Genre || m.Year() != tags.Year || track != 3 || total != 5 || disc != 1 || discs != 2 {
			t.Errorf("%s: %q %q %q %q %q %d %d/%d %d/%d", format, m.Title(), m.Artist(), m.Album(), m.AlbumArtist(),
				m.Genre(), m.Year(), track, total, disc, discs)
		}
		if m.Picture() == nil && format != Ogg {
			t.Errorf("%s: no cover", format)
		}
		found := false
		for k, v := range m.Raw() {
			s := strings.ToLower(k + " " + strings.ToValidUTF8(strings.ReplaceAll(fmt.Sprint(v), "\x00", ""), ""))
			found = found || strings.Contains(s, "replaygain_track_gain") || strings.Contains(s, "r128_track_gain")
		}
		if !found {
			t.Errorf("%s: no track gain among %v", format, m.Raw())
		}
	}
}

// TestRetaggedLibrary checks that retagged copies carry their own tags,
// differ in their bytes, and still decode.
func TestRetaggedLibrary(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRetagger(t.TempDir(), 2)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := r.WriteLibrary(dir, 30)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(b)] {
			t.Fatalf("%s: the same bytes as another song", path)
		}
		seen[string(b)] = true
		m, err := tag.ReadFrom(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if track, _ := m.Track(); track != i%10+1 || m.Album() != fmt.Sprintf("Album %d", i/10) || m.Artist() != "Artist 0" {
			t.Errorf("%s: track %d, album %q, artist %q", path, track, m.Album(), m.Artist())
		}
	}
	for _, path := range []string{paths[0], paths[10]} {
		cmd := exec.Command("flac", "-t", "-s", path)
		if strings.HasSuffix(path, ".mp3") {
			cmd = exec.Command("lame", "--quiet", "--decode", path, filepath.Join(t.TempDir(), "out.wav"))
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s does not decode: %v %s", path, err, out)
		}
	}
}
