// Package musicgen makes music libraries for tests and benchmarks: songs in
// every format tutti plays, tagged as a household's files are, made by
// Debian's own encoders (flac, lame, oggenc, opusenc, ffmpeg, AtomicParsley),
// and large libraries made fast by retagging a few encoded files.
package musicgen

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/tutti-audio/tutti/audiogen"
)

// Tags are what a generated song's file says of it.
type Tags struct {
	Title, Artist, Album, AlbumArtist, Genre string
	Track, TrackTotal, Disc, DiscTotal, Year int
	TrackGainDb                              *float64 // REPLAYGAIN_TRACK_GAIN (R128_TRACK_GAIN for Opus); nil for none
}

// Formats Encode makes, by the name of the encoder's output.
const (
	FLAC = "flac"
	MP3  = "mp3"
	Ogg  = "ogg"
	Opus = "opus"
	AAC  = "m4a-aac"  // AAC-LC in M4A
	ALAC = "m4a-alac" // ALAC in M4A
	WAV  = "wav"
)

// AllFormats are the formats a household's library holds.
var AllFormats = []string{FLAC, MP3, Ogg, Opus, AAC, ALAC, WAV}

// Ext is the file name extension of format.
func Ext(format string) string {
	switch format {
	case AAC, ALAC:
		return ".m4a"
	}
	return "." + format
}

// Encode writes a song of seconds at 44.1 kHz (48 kHz for Opus, which has
// no other rate) to path in format, tagged with t and, when cover is not "",
// embedding that JPEG or PNG file. sample gives its frames (nil: a tune
// chosen by t.Track).
func Encode(path, format string, t Tags, seconds float64, cover string, sample func(int64) audiogen.Frame) error {
	rate := 44100
	if sample == nil {
		sample = audiogen.Tune(t.Track+len(t.Title), rate)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	wav := path + ".src.wav"
	f, err := os.Create(wav)
	if err != nil {
		return err
	}
	err = audiogen.WriteWAV(f, rate, int64(seconds*float64(rate)), sample)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	defer os.Remove(wav)
	if err != nil {
		return err
	}
	if format == WAV {
		return os.Rename(wav, path)
	}
	for _, cmd := range commands(path, wav, format, t, cover) {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %v: %s", cmd, err, out)
		}
	}
	return nil
}

// commands are the encoder runs that make path from wav.
func commands(path, wav, format string, t Tags, cover string) [][]string {
	num := func(n, total int) string {
		if total > 0 {
			return fmt.Sprintf("%d/%d", n, total)
		}
		return strconv.Itoa(n)
	}
	gain := func() string { return fmt.Sprintf("%.2f dB", *t.TrackGainDb) }
	// Vorbis comments, as flac, oggenc and opusenc take them.
	comments := [][2]string{{"TITLE", t.Title}, {"ARTIST", t.Artist}, {"ALBUM", t.Album}, {"ALBUMARTIST", t.AlbumArtist},
		{"GENRE", t.Genre}}
	if t.Track > 0 {
		comments = append(comments, [2]string{"TRACKNUMBER", strconv.Itoa(t.Track)}, [2]string{"TRACKTOTAL", strconv.Itoa(t.TrackTotal)})
	}
	if t.Disc > 0 {
		comments = append(comments, [2]string{"DISCNUMBER", strconv.Itoa(t.Disc)}, [2]string{"DISCTOTAL", strconv.Itoa(t.DiscTotal)})
	}
	if t.Year > 0 {
		comments = append(comments, [2]string{"DATE", strconv.Itoa(t.Year)})
	}
	if t.TrackGainDb != nil && format != Opus {
		comments = append(comments, [2]string{"REPLAYGAIN_TRACK_GAIN", gain()})
	}
	var tagArgs []string
	for _, c := range comments {
		if c[1] == "" || c[1] == "0" {
			continue
		}
		switch format {
		case FLAC:
			tagArgs = append(tagArgs, "--tag="+c[0]+"="+c[1])
		case Ogg, Opus:
			flag := "-c"
			if format == Opus {
				flag = "--comment"
			}
			tagArgs = append(tagArgs, flag, c[0]+"="+c[1])
		}
	}
	switch format {
	case FLAC:
		args := append([]string{"flac", "--silent", "-f", "-o", path}, tagArgs...)
		if cover != "" {
			args = append(args, "--picture="+cover)
		}
		return [][]string{append(args, wav)}
	case MP3:
		args := []string{"lame", "--quiet", "-b", "192", "--tt", t.Title, "--ta", t.Artist, "--tl", t.Album}
		if t.Track > 0 {
			args = append(args, "--tn", num(t.Track, t.TrackTotal))
		}
		if t.Year > 0 {
			args = append(args, "--ty", strconv.Itoa(t.Year))
		}
		if t.Genre != "" {
			args = append(args, "--tg", t.Genre)
		}
		if t.AlbumArtist != "" {
			args = append(args, "--tv", "TPE2="+t.AlbumArtist)
		}
		if t.Disc > 0 {
			args = append(args, "--tv", "TPOS="+num(t.Disc, t.DiscTotal))
		}
		if t.TrackGainDb != nil {
			args = append(args, "--tv", "TXXX=REPLAYGAIN_TRACK_GAIN="+gain())
		}
		if cover != "" {
			args = append(args, "--ti", cover)
		}
		return [][]string{append(args, wav, path)}
	case Ogg:
		return [][]string{append(append([]string{"oggenc", "--quiet", "-o", path}, tagArgs...), wav)}
	case Opus:
		args := append([]string{"opusenc", "--quiet"}, tagArgs...)
		if t.TrackGainDb != nil {
			// R128 gains are Q7.8 dB relative to -23 LUFS; ReplayGain's
			// reference is 5 dB louder.
			args = append(args, "--comment", fmt.Sprintf("R128_TRACK_GAIN=%d", int((*t.TrackGainDb-5)*256)))
		}
		if cover != "" {
			args = append(args, "--picture", cover)
		}
		return [][]string{append(args, wav, path)}
	case AAC, ALAC:
		codec := []string{"-c:a", "aac", "-b:a", "160k"}
		if format == ALAC {
			codec = []string{"-c:a", "alac"}
		}
		args := append([]string{"ffmpeg", "-loglevel", "error", "-y", "-i", wav}, codec...)
		for _, m := range [][2]string{{"title", t.Title}, {"artist", t.Artist}, {"album", t.Album},
			{"album_artist", t.AlbumArtist}, {"genre", t.Genre}} {
			if m[1] != "" {
				args = append(args, "-metadata", m[0]+"="+m[1])
			}
		}
		if t.Track > 0 {
			args = append(args, "-metadata", "track="+num(t.Track, t.TrackTotal))
		}
		if t.Disc > 0 {
			args = append(args, "-metadata", "disc="+num(t.Disc, t.DiscTotal))
		}
		if t.Year > 0 {
			args = append(args, "-metadata", "date="+strconv.Itoa(t.Year))
		}
		cmds := [][]string{append(args, "-f", "mp4", path)}
		// ffmpeg writes no ReplayGain atoms into MP4, nor (from a file) a
		// cover: AtomicParsley does both, in place.
		var ap []string
		if t.TrackGainDb != nil {
			ap = append(ap, "--rDNSatom", gain(), "name=replaygain_track_gain", "domain=com.apple.iTunes")
		}
		if cover != "" {
			ap = append(ap, "--artwork", cover)
		}
		if ap != nil {
			cmds = append(cmds, append([]string{"AtomicParsley", path}, append(ap, "--overWrite")...))
		}
		return cmds
	}
	panic("musicgen: unknown format " + format)
}
