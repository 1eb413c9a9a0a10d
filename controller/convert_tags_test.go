package controller

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/protocol"
)

// TestM4AsOfOneAudioPlayWithTheirOwnTags: two M4A files of the same audio
// and different tags (a song on its album and on a compilation) convert to
// one FLAC; each plays as that FLAC with its own title, artist and
// ReplayGain, not those of the one converted last.
func TestM4AsOfOneAudioPlayWithTheirOwnTags(t *testing.T) {
	lib := newTestLibrary(t)
	cv := startConverter(t, lib, "ffmpeg", DefaultMaxConvertedBytes, time.Now)
	dir := t.TempDir()
	tune := audiogen.Tune(3, 44100)
	gain := func(db float64) *float64 { return &db }
	var srcs []protocol.Song
	for i, tags := range []musicgen.Tags{
		{Title: "Blue", Artist: "Joni Mitchell", Album: "Blue", TrackGainDb: gain(-2)},
		{Title: "Blue (live)", Artist: "Various Artists", Album: "Jazz Moods", TrackGainDb: gain(-7.5)},
	} {
		path := filepath.Join(dir, tags.Album+".m4a")
		if err := musicgen.Encode(path, musicgen.ALAC, tags, 1, "", tune); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		src, _, err := lib.add(f, "", filepath.Base(path))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if src.Title != tags.Title || src.ReplayGain == nil {
			t.Fatalf("M4A %d: record %+v, want its tags", i, src)
		}
		srcs = append(srcs, src)
	}
	if srcs[0].SHA256 == srcs[1].SHA256 {
		t.Fatal("the two files are the same")
	}
	flacs := []string{convertNow(t, cv, srcs[0]).SHA256, convertNow(t, cv, srcs[1]).SHA256}
	if flacs[0] != flacs[1] {
		t.Fatalf("the same audio converted to two FLACs: %v", flacs)
	}
	for _, src := range srcs {
		got, ok := cv.converted(src)
		if !ok || got.SHA256 != flacs[0] || got.Format != "flac" {
			t.Fatalf("%s plays as %+v (converted: %v), want the FLAC %s", src.Title, got, ok, flacs[0])
		}
		if got.Title != src.Title || got.Artist != src.Artist || !reflect.DeepEqual(got.ReplayGain, src.ReplayGain) {
			t.Errorf("%s plays as %q by %q with %+v; want its own tags and %+v", src.Title, got.Title, got.Artist, got.ReplayGain, src.ReplayGain)
		}
	}
}
