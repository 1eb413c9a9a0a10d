// Package testsongs makes small tagged songs in every format a music
// folder holds, with the encoders Debian ships (flac, lame, oggenc,
// opusenc, ffmpeg, AtomicParsley; see scripts/deps.sh), for tests.
package testsongs

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tutti-audio/tutti/audiogen"
)

// Tags are the tags a made song carries.
type Tags struct {
	Title, Artist, Album, AlbumArtist, Genre string
	Track, TrackTotal, Disc, DiscTotal, Year int
	TrackGain, TrackPeak, AlbumGain          string // ReplayGain, "" for none: "-6.50 dB", "0.912345"
	R128TrackGain                            string // Opus only: Q7.8 dB, "" for none
}

// Formats are the extensions Make accepts.
var Formats = []string{".flac", ".mp3", ".ogg", ".opus", ".m4a", ".wav"}

// Make writes a song of seconds (a tone of hz) with tags to path, its
// format by path's extension (one of Formats; WAV carries no tags).
func Make(t testing.TB, path string, seconds float64, hz int, tags Tags) {
	t.Helper()
	wav := path + ".src.wav"
	if filepath.Ext(path) == ".wav" {
		wav = path
	}
	writeTone(t, wav, int64(seconds*rate+0.5), hz)
	if wav == path {
		return
	}
	defer os.Remove(wav)
	num := func(n, total int) string {
		if total > 0 {
			return fmt.Sprintf("%d/%d", n, total)
		}
		return strconv.Itoa(n)
	}
	switch filepath.Ext(path) {
	case ".flac", ".ogg", ".opus":
		comments := map[string]string{
			"TITLE": tags.Title, "ARTIST": tags.Artist, "ALBUM": tags.Album, "ALBUMARTIST": tags.AlbumArtist,
			"GENRE": tags.Genre, "REPLAYGAIN_TRACK_GAIN": tags.TrackGain, "REPLAYGAIN_TRACK_PEAK": tags.TrackPeak,
			"REPLAYGAIN_ALBUM_GAIN": tags.AlbumGain, "R128_TRACK_GAIN": tags.R128TrackGain,
		}
		if tags.Year > 0 {
			comments["DATE"] = strconv.Itoa(tags.Year)
		}
		if tags.Track > 0 {
			comments["TRACKNUMBER"] = strconv.Itoa(tags.Track)
			comments["TRACKTOTAL"] = strconv.Itoa(tags.TrackTotal)
		}
		if tags.Disc > 0 {
			comments["DISCNUMBER"] = strconv.Itoa(tags.Disc)
			comments["DISCTOTAL"] = strconv.Itoa(tags.DiscTotal)
		}
		var args []string
		switch filepath.Ext(path) {
		case ".flac":
			args = []string{"flac", "-s", "-f", "-o", path}
		case ".ogg":
			args = []string{"oggenc", "-Q", "-o", path}
		case ".opus":
			args = []string{"opusenc", "--quiet"}
		}
		flag := "-T"
		if filepath.Ext(path) != ".flac" {
			flag = "-c"
			if filepath.Ext(path) == ".opus" {
				flag = "--comment"
			}
		}
		for k, v := range comments {
			if v != "" && v != "0" {
				args = append(args, flag, k+"="+v)
			}
		}
		args = append(args, wav)
		if filepath.Ext(path) == ".opus" {
			args = append(args, path)
		}
		run(t, args[0], args[1:]...)
	case ".mp3":
		args := []string{"--quiet", "--id3v2-only", "--tt", tags.Title, "--ta", tags.Artist, "--tl", tags.Album, "--tg", tags.Genre}
		if tags.Year > 0 {
			args = append(args, "--ty", strconv.Itoa(tags.Year))
		}
		if tags.Track > 0 {
			args = append(args, "--tn", num(tags.Track, tags.TrackTotal))
		}
		if tags.Disc > 0 {
			args = append(args, "--tv", "TPOS="+num(tags.Disc, tags.DiscTotal))
		}
		if tags.AlbumArtist != "" {
			args = append(args, "--tv", "TPE2="+tags.AlbumArtist)
		}
		for k, v := range map[string]string{"REPLAYGAIN_TRACK_GAIN": tags.TrackGain, "REPLAYGAIN_TRACK_PEAK": tags.TrackPeak, "REPLAYGAIN_ALBUM_GAIN": tags.AlbumGain} {
			if v != "" {
				args = append(args, "--tv", "TXXX="+k+"="+v)
			}
		}
		run(t, "lame", append(args, wav, path)...)
	case ".m4a":
		args := []string{"-loglevel", "error", "-y", "-i", wav, "-c:a", "aac", "-b:a", "96k",
			"-metadata", "title=" + tags.Title, "-metadata", "artist=" + tags.Artist, "-metadata", "album=" + tags.Album,
			"-metadata", "album_artist=" + tags.AlbumArtist, "-metadata", "genre=" + tags.Genre}
		if tags.Year > 0 {
			args = append(args, "-metadata", "date="+strconv.Itoa(tags.Year))
		}
		if tags.Track > 0 {
			args = append(args, "-metadata", "track="+num(tags.Track, tags.TrackTotal))
		}
		if tags.Disc > 0 {
			args = append(args, "-metadata", "disc="+num(tags.Disc, tags.DiscTotal))
		}
		run(t, "ffmpeg", append(args, path)...)
		// ffmpeg drops ReplayGain metadata writing M4A.
		for name, v := range map[string]string{"replaygain_track_gain": tags.TrackGain, "replaygain_track_peak": tags.TrackPeak, "replaygain_album_gain": tags.AlbumGain} {
			if v != "" {
				run(t, "AtomicParsley", path, "--overWrite", "--rDNSatom", v, "name="+name, "domain=com.apple.iTunes")
			}
		}
	default:
		t.Fatalf("testsongs: no encoder for %s", path)
	}
}

// rate is the made songs' sample rate.
const rate = 44100

// writeTone writes a WAV of frames frames of a stereo tone of hz.
func writeTone(t testing.TB, path string, frames int64, hz int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = audiogen.WriteWAV(f, rate, frames, func(i int64) audiogen.Frame {
		v := int16(16000 * math.Sin(2*math.Pi*float64(hz)*float64(i)/rate))
		return audiogen.Frame{L: v, R: v}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
