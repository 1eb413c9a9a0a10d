package protocol

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseLink(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	album := AlbumID("The Band", "Greatest  Hits")
	for _, tc := range []struct {
		ref  string
		want Link
		err  bool
	}{
		{ref: sha, want: Link{Kind: LinkSong, ID: sha}},
		{ref: "tutti:song:" + strings.ToUpper(sha) + "#1:05", want: Link{Kind: LinkSong, ID: sha, Offset: 65 * time.Second}},
		{ref: AlbumURI(album), want: Link{Kind: LinkAlbum, ID: album}},
		{ref: ArtistURI(ArtistID("x")), want: Link{Kind: LinkArtist, ID: ArtistID("x")}},
		{ref: " tutti:playlist:road-trip_2 ", want: Link{Kind: LinkPlaylist, ID: "road-trip_2"}},
		{ref: "tutti:album:ABCDEF0123456789", err: true},
		{ref: "tutti:album:abc", err: true},
		{ref: "tutti:playlist:", err: true},
		{ref: "tutti:playlist:a/b", err: true},
		{ref: "tutti:playlist:" + strings.Repeat("a", 65), err: true},
		{ref: "tutti:session:home", err: true},
		{ref: "album:" + album, err: true},
		{ref: "", err: true},
	} {
		got, err := ParseLink(tc.ref)
		if (err != nil) != tc.err || !tc.err && got != tc.want {
			t.Errorf("ParseLink(%q) = %+v, %v; want %+v (error %v)", tc.ref, got, err, tc.want, tc.err)
		}
	}
}

func TestAlbumIDIgnoresCaseAndSpacing(t *testing.T) {
	if AlbumID("The Band", "Greatest Hits") != AlbumID(" the  band", "GREATEST hits ") {
		t.Error("the same album spelled apart gets two ids")
	}
	if AlbumID("A", "B C") == AlbumID("A B", "C") {
		t.Error("artist and album run together")
	}
}

func FuzzParseLink(f *testing.F) {
	f.Add("tutti:album:0123456789abcdef")
	f.Add("tutti:song:" + strings.Repeat("0", 64) + "#1:00")
	f.Fuzz(func(t *testing.T, ref string) {
		l, err := ParseLink(ref)
		if err != nil {
			return
		}
		back, err := ParseLink(l.String())
		if err != nil || back.Kind != l.Kind || back.ID != l.ID {
			t.Fatalf("%q parsed as %+v, which reads back as %+v, %v", ref, l, back, err)
		}
	})
}

func TestCleanSongBoundsNumbersAndGains(t *testing.T) {
	s := CleanSong(Song{Track: -1, TrackTotal: 100000, Disc: 2, Year: 12345, Genre: strings.Repeat("g", 100),
		ReplayGain: &ReplayGain{Track: Gain{Db: -120}}})
	if s.Track != 0 || s.TrackTotal != 0 || s.Disc != 2 || s.Year != 0 || len(s.Genre) != MaxGenreText || s.ReplayGain != nil {
		t.Errorf("cleaned: %+v", s)
	}
	g := &ReplayGain{Track: Gain{Db: -6, Peak: 0.9}, Album: &Gain{Db: math.Inf(1)}}
	if CleanSong(Song{ReplayGain: g}).ReplayGain != nil {
		t.Error("an infinite album gain was kept")
	}
}
