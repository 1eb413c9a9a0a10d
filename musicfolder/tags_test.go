package musicfolder

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dhowden/tag"

	"github.com/gopxl/beep/v2"
	"github.com/gopxl/beep/v2/flac"
	"github.com/gopxl/beep/v2/mp3"
	"github.com/gopxl/beep/v2/vorbis"
	"github.com/gopxl/beep/v2/wav"

	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/protocol"
)

var gainDb = -6.5

var fullTags = musicgen.Tags{
	Title: "Blue in Green", Artist: "Miles Davis", Album: "Kind of Blue", AlbumArtist: "The Miles Davis Sextet",
	Genre: "Jazz", Track: 3, TrackTotal: 5, Disc: 1, DiscTotal: 2, Year: 1959, TrackGainDb: &gainDb,
}

// song makes a song of seconds at path, its format by the extension.
func song(t testing.TB, path string, seconds float64, tags musicgen.Tags) {
	t.Helper()
	format := strings.TrimPrefix(filepath.Ext(path), ".")
	if format == "m4a" {
		format = musicgen.AAC
	}
	if err := musicgen.Encode(path, format, tags, seconds, "", nil); err != nil {
		t.Fatal(err)
	}
}

func TestReadTagsOfEveryFormat(t *testing.T) {
	dir := t.TempDir()
	cover := filepath.Join(dir, "cover.jpg")
	if err := musicgen.WriteCover(cover, 1); err != nil {
		t.Fatal(err)
	}
	for _, format := range musicgen.AllFormats {
		if format == musicgen.WAV {
			continue // no tags
		}
		t.Run(format, func(t *testing.T) {
			path := filepath.Join(dir, "song-"+format+musicgen.Ext(format))
			if err := musicgen.Encode(path, format, fullTags, 1, cover, nil); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tags := ReadTags(f)
			got := tags.Song
			want := protocol.Song{Title: fullTags.Title, Artist: fullTags.Artist, Album: fullTags.Album, AlbumArtist: fullTags.AlbumArtist,
				Genre: "Jazz", Track: 3, TrackTotal: 5, Disc: 1, DiscTotal: 2, Year: 1959}
			gotRG := got.ReplayGain
			got.ReplayGain = nil
			if got != want {
				t.Errorf("tags\n got %+v\nwant %+v", got, want)
			}
			if gotRG == nil || gotRG.Track.Db != gainDb || gotRG.Album != nil {
				t.Errorf("replaygain %+v, want track %v dB", gotRG, gainDb)
			}
			if format != musicgen.Ogg && !tags.HasPicture { // oggenc embeds no pictures
				t.Error("the embedded cover is not seen")
			}
		})
	}
}

func TestReplayGainFromEveryKindOfRawTag(t *testing.T) {
	for name, tc := range map[string]struct {
		raw  map[string]any
		want *protocol.ReplayGain
	}{
		"vorbis": {map[string]any{"replaygain_track_gain": "-6.50 dB", "replaygain_track_peak": "0.912345",
			"replaygain_album_gain": "+1.25 dB", "replaygain_album_peak": "0.99"},
			&protocol.ReplayGain{Track: protocol.Gain{Db: -6.5, Peak: 0.912345}, Album: &protocol.Gain{Db: 1.25, Peak: 0.99}}},
		"id3v2.4 TXXX with terminators": {map[string]any{
			"TXXX":   &tag.Comm{Description: "REPLAYGAIN_TRACK_GAIN", Text: "-3.10 dB\x00"},
			"TXXX_0": &tag.Comm{Description: "REPLAYGAIN_ALBUM_GAIN", Text: "-2.00 dB\x00"}},
			&protocol.ReplayGain{Track: protocol.Gain{Db: -3.1}, Album: &protocol.Gain{Db: -2}}},
		"mp4 freeform": {map[string]any{"----:com.apple.iTunes:replaygain_track_gain": "\x00\x00\x00\x00-4.00 dB"},
			&protocol.ReplayGain{Track: protocol.Gain{Db: -4}}},
		"opus r128": {map[string]any{"r128_track_gain": "-1792", "r128_album_gain": "256"},
			&protocol.ReplayGain{Track: protocol.Gain{Db: -2}, Album: &protocol.Gain{Db: 6}}},
		"album only":   {map[string]any{"replaygain_album_gain": "-1 dB"}, nil},
		"garbage gain": {map[string]any{"replaygain_track_gain": "loud"}, nil},
		"out of range": {map[string]any{"replaygain_track_gain": "-300 dB"}, nil},
		"nan":          {map[string]any{"replaygain_track_gain": "NaN dB"}, nil},
	} {
		got := replayGain(tc.raw)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", name, got, tc.want)
		}
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
			song(t, path, seconds, fullTags)
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
