package musicfolder

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gopxl/beep/v2"
	"github.com/gopxl/beep/v2/flac"
	"github.com/gopxl/beep/v2/mp3"
	"github.com/gopxl/beep/v2/vorbis"
	"github.com/gopxl/beep/v2/wav"

	"github.com/tutti-audio/tutti/internal/testsongs"
	"github.com/tutti-audio/tutti/protocol"
)

var fullTags = testsongs.Tags{
	Title: "Blue in Green", Artist: "Miles Davis", Album: "Kind of Blue", AlbumArtist: "The Miles Davis Sextet",
	Genre: "Jazz", Track: 3, TrackTotal: 5, Disc: 1, DiscTotal: 2, Year: 1959,
	TrackGain: "-6.50 dB", TrackPeak: "0.912345", AlbumGain: "-5.25 dB",
}

func TestReadTagsOfEveryFormat(t *testing.T) {
	dir := t.TempDir()
	for _, ext := range []string{".flac", ".mp3", ".ogg", ".opus", ".m4a"} {
		t.Run(ext, func(t *testing.T) {
			path := filepath.Join(dir, "song"+ext)
			testsongs.Make(t, path, 1, 440, fullTags)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got := ReadTags(f).Song
			want := protocol.Song{Title: fullTags.Title, Artist: fullTags.Artist, Album: fullTags.Album, AlbumArtist: fullTags.AlbumArtist,
				Genre: "Jazz", Track: 3, TrackTotal: 5, Disc: 1, DiscTotal: 2, Year: 1959}
			gotRG := got.ReplayGain
			got.ReplayGain = nil
			if got != want {
				t.Errorf("tags\n got %+v\nwant %+v", got, want)
			}
			if gotRG == nil || gotRG.Track.Db != -6.5 || gotRG.Album == nil || gotRG.Album.Db != -5.25 {
				t.Fatalf("replaygain %+v, want track -6.5 dB, album -5.25 dB", gotRG)
			}
			if gotRG.Track.Peak != 0.912345 {
				t.Errorf("track peak %v, want 0.912345", gotRG.Track.Peak)
			}
		})
	}
}

func TestOpusR128GainIsTakenRelativeToReplayGainsReference(t *testing.T) {
	path := filepath.Join(t.TempDir(), "song.opus")
	testsongs.Make(t, path, 1, 440, testsongs.Tags{Title: "x", R128TrackGain: "-1792"}) // -7 dB in Q7.8
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rg := ReadTags(f).Song.ReplayGain
	if rg == nil || rg.Track.Db != -2 || rg.Album != nil {
		t.Fatalf("replaygain %+v, want track -7+5 = -2 dB and no album gain", rg)
	}
}

func TestTitleFromNameDropsTheExtension(t *testing.T) {
	for name, want := range map[string]string{"/m/a/01 Intro.flac": "01 Intro", "x.tar.mp3": "x.tar", "bad\x00name.ogg": "bad name"} {
		if got := TitleFromName(name); got != want {
			t.Errorf("TitleFromName(%q) = %q, want %q", name, got, want)
		}
	}
}

// decodedFrames decodes all of a file as the speakers do and counts the
// frames.
func decodedFrames(t *testing.T, path, format string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var s beep.StreamSeekCloser
	switch format {
	case "mp3":
		s, _, err = mp3.Decode(f)
	case "flac":
		s, _, err = flac.Decode(f)
	case "ogg":
		s, _, err = vorbis.Decode(f)
	case "wav":
		s, _, err = wav.Decode(f)
	}
	if err != nil {
		t.Fatal(err)
	}
	buf := make([][2]float64, 4096)
	var n int64
	for {
		k, ok := s.Stream(buf)
		n += int64(k)
		if !ok {
			break
		}
	}
	return n
}

func TestHeaderLengthIsWhatTheDecoderGives(t *testing.T) {
	dir := t.TempDir()
	for _, seconds := range []float64{0.3, 1.7} {
		for _, ext := range []string{".flac", ".mp3", ".ogg", ".wav", ".opus"} {
			path := filepath.Join(dir, "song"+ext)
			testsongs.Make(t, path, seconds, 330, fullTags)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			info, _ := f.Stat()
			var head [HeadSize]byte
			n, _ := f.ReadAt(head[:], 0)
			format := DetectFormat(head[:n])
			l, err := HeaderLength(f, info.Size(), format)
			f.Close()
			if err != nil {
				t.Fatalf("%s: %v", ext, err)
			}
			var want int64
			if format == "opus" {
				// opusenc resamples to 48 kHz and marks the end so that
				// decoding gives exactly the input's length.
				want = int64(seconds*48000 + 0.5)
			} else {
				want = decodedFrames(t, path, format)
			}
			if l.Frames != want || l.Frames == 0 {
				t.Errorf("%s (%s, %v s): header length %d frames, decoder gives %d", ext, format, seconds, l.Frames, want)
			}
		}
	}
}
