package musicfolder

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dhowden/tag"

	"github.com/tutti-audio/tutti/protocol"
)

// Tags are what a song file's tags say of it.
type Tags struct {
	Song       protocol.Song // Title, Artist, Album, AlbumArtist, Track(Total), Disc(Total), Year, Genre, ReplayGain
	HasPicture bool          // the tags embed a picture
}

// ReadTags reads the tags of an MP3 (ID3v2.3/2.4, ID3v1), FLAC, Ogg Vorbis,
// Opus or M4A file, every text bounded by protocol.CleanSong. A file
// without tags, or with tags the reader cannot parse, has none: that is no
// error, since the audio may still play. Hostile tags must cost no more
// than a file without them, so a panic of the tag reader counts as none.
func ReadTags(r io.ReadSeeker) (t Tags) {
	defer func() {
		if recover() != nil {
			t = Tags{}
		}
	}()
	meta, err := tag.ReadFrom(r)
	if err != nil {
		return Tags{}
	}
	s := protocol.Song{
		Title:       meta.Title(),
		Artist:      meta.Artist(),
		Album:       meta.Album(),
		AlbumArtist: meta.AlbumArtist(),
		Year:        meta.Year(),
		Genre:       meta.Genre(),
	}
	s.Track, s.TrackTotal = meta.Track()
	s.Disc, s.DiscTotal = meta.Disc()
	s.ReplayGain = replayGain(meta.Raw())
	pic := meta.Picture()
	return Tags{Song: protocol.CleanSong(s), HasPicture: pic != nil && len(pic.Data) > 0}
}

// TitleFromName is the title of a song whose tags give none: its file name
// without the extension.
func TitleFromName(name string) string {
	base := filepath.Base(name)
	return protocol.CleanText(strings.TrimSuffix(base, filepath.Ext(base)), protocol.MaxSongText)
}

// r128Offset is what turns an R128 gain (Opus tags, relative to -23 LUFS)
// into a ReplayGain one (relative to ReplayGain's -18 LUFS reference).
const r128Offset = 5.0

// replayGain reads the ReplayGain values from a file's raw tags: Vorbis
// comments (FLAC, Ogg Vorbis, Opus), ID3v2 TXXX frames and MP4 freeform
// atoms all carry them as "replaygain_track_gain" and friends, and Opus
// files may carry R128_TRACK_GAIN/R128_ALBUM_GAIN instead. nil when the
// tags give no track gain.
func replayGain(raw map[string]any) *protocol.ReplayGain {
	values := map[string]string{}
	for key, v := range raw {
		name, text := rawText(key, v)
		name = strings.ToLower(name)
		if i := strings.LastIndex(name, ":"); i >= 0 { // MP4: ----:com.apple.iTunes:replaygain_track_gain
			name = name[i+1:]
		}
		if strings.HasPrefix(name, "replaygain_") || strings.HasPrefix(name, "r128_") {
			values[name] = text
		}
	}
	gain := func(rg, r128 string) (protocol.Gain, bool) {
		if db, err := ParseGain(values[rg]); err == nil {
			peak, _ := ParsePeak(values[strings.Replace(rg, "_gain", "_peak", 1)])
			return protocol.Gain{Db: db, Peak: peak}, true
		}
		if q, err := ParseR128(values[r128]); err == nil {
			return protocol.Gain{Db: q + r128Offset}, true
		}
		return protocol.Gain{}, false
	}
	track, ok := gain("replaygain_track_gain", "r128_track_gain")
	if !ok {
		return nil
	}
	rg := &protocol.ReplayGain{Track: track}
	if album, ok := gain("replaygain_album_gain", "r128_album_gain"); ok {
		rg.Album = &album
	}
	return rg
}

// rawText is the name and text of one raw tag value: ID3 TXXX frames are
// named by their description, and a tag's text may carry NULs around it
// (ID3v2.4 terminators, MP4's leading flags).
func rawText(key string, v any) (name, text string) {
	name = key
	switch v := v.(type) {
	case string:
		text = v
	case []byte:
		text = string(v)
	case *tag.Comm:
		name, text = v.Description, v.Text
	default:
		return name, ""
	}
	return name, strings.Trim(text, "\x00 \t")
}

// ParseGain reads a ReplayGain gain: "-6.50 dB", "+2.1dB" or a bare number.
func ParseGain(s string) (float64, error) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "db"))
	return parseFinite(s, protocol.MaxGainDb)
}

// ParsePeak reads a ReplayGain peak: a linear sample value, 1 = full scale.
func ParsePeak(s string) (float64, error) {
	return parseFinite(strings.TrimSpace(s), maxPeak)
}

// maxPeak bounds a peak: float masters may exceed full scale a little,
// several times over is garbage (protocol.CleanSong drops it too).
const maxPeak = 16

// ParseR128 reads an R128 gain tag: a signed Q7.8 integer of dB.
func ParseR128(s string) (float64, error) {
	q, err := strconv.ParseInt(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return 0, err
	}
	return float64(q) / 256, nil
}

// parseFinite parses a number within ±bound.
func parseFinite(s string, bound float64) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.Abs(v) > bound {
		return 0, fmt.Errorf("%q outside ±%v", s, bound)
	}
	return v, nil
}
