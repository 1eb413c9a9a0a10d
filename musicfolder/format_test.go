package musicfolder

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/oggopus"
)

// opusPage is the start of an Ogg Opus file: a first page of one segment
// of 19 bytes, the OpusHead packet.
const opusPage = "OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x13OpusHead\x01\x02"

func TestDetectFormat(t *testing.T) {
	for head, want := range map[string]string{
		"ID3\x04\x00":      "mp3",
		"\xff\xfb\x90\x00": "mp3",
		"fLaC\x00\x00":     "flac",
		"OggS\x00\x02":     "ogg",
		opusPage:           "opus",
		// OpusHead elsewhere than the first packet: speakers open it as
		// Vorbis (oggopus.Detect), so it is not an Opus song.
		"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1e\x01vorbisOpusHead": "ogg",
		"RIFF\x24\x00\x00\x00WAVE":             "wav",
		"RIFF\x24\x00\x00\x00AVI ":             "",
		"\x00\x00\x00\x20ftypM4A \x00\x00\x00": "m4a",
		"\x00\x00\x00\x20ftyp":                 "", // too short to be sure
		"hello":                                "",
		"":                                     "",
	} {
		if got := DetectFormat([]byte(head)); got != want {
			t.Errorf("%q: %q, want %q", head, got, want)
		}
	}
}

// Every format a library holds is told from its first HeadSize bytes, as
// the encoders write them (tags and a cover first, where the format puts
// them first).
func TestDetectFormatOfEveryFormat(t *testing.T) {
	dir := t.TempDir()
	cover := filepath.Join(dir, "cover.jpg")
	if err := musicgen.WriteCover(cover, 1); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{musicgen.AAC: "m4a", musicgen.ALAC: "m4a"}
	for _, format := range musicgen.AllFormats {
		path := filepath.Join(dir, "song-"+format+musicgen.Ext(format))
		if err := musicgen.Encode(path, format, fullTags, 0.2, cover, nil); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		expected := format
		if w, ok := want[format]; ok {
			expected = w
		}
		if got := DetectFormat(data[:HeadSize]); got != expected {
			t.Errorf("%s: %q, want %q", format, got, expected)
		}
	}
}

// FuzzDetectFormat: any bytes give one of the formats or none, decided by
// the first HeadSize bytes alone, and Opus exactly when speakers would
// decode the file as Opus.
func FuzzDetectFormat(f *testing.F) {
	for _, seed := range []string{opusPage, "fLaC", "OggS\x00\x02", "RIFF\x24\x00\x00\x00WAVE", "ID3\x04", "\x00\x00\x00\x20ftypM4A \x00\x00\x00"} {
		f.Add([]byte(seed))
	}
	known := map[string]bool{"mp3": true, "flac": true, "wav": true, "ogg": true, "opus": true, "m4a": true, "": true}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := DetectFormat(data)
		if !known[got] {
			t.Fatalf("%q: format %q", data, got)
		}
		if head := DetectFormat(data[:min(len(data), HeadSize)]); head != got {
			t.Fatalf("%q: %q, but %q from its first %d bytes", data, got, head, HeadSize)
		}
		if (got == "opus") != oggopus.Detect(data) {
			t.Fatalf("%q: %q, oggopus.Detect %v", data, got, oggopus.Detect(data))
		}
	})
}
