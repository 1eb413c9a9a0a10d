package musicgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Retagger makes many distinct song files fast from a FLAC and an MP3
// encoded once: each copy gets its own tags (Vorbis comments, an ID3v2.4
// tag), so its bytes and hash are its own while its audio is the encoded one.
type Retagger struct {
	flacHead, flacFrames []byte // fLaC and STREAMINFO; the audio frames
	mp3                  []byte // the MP3 without tags
}

// NewRetagger encodes the two songs of seconds each in dir.
func NewRetagger(dir string, seconds float64) (*Retagger, error) {
	r := &Retagger{}
	flacPath, mp3Path := filepath.Join(dir, "base.flac"), filepath.Join(dir, "base.mp3")
	if err := Encode(flacPath, FLAC, Tags{}, seconds, "", nil); err != nil {
		return nil, err
	}
	if err := Encode(mp3Path, MP3, Tags{}, seconds, "", nil); err != nil {
		return nil, err
	}
	flac, err := os.ReadFile(flacPath)
	if err != nil {
		return nil, err
	}
	if r.flacHead, r.flacFrames, err = splitFLAC(flac); err != nil {
		return nil, err
	}
	if r.mp3, err = os.ReadFile(mp3Path); err != nil {
		return nil, err
	}
	if r.mp3, err = stripID3(r.mp3); err != nil {
		return nil, err
	}
	return r, nil
}

// splitFLAC returns a FLAC's "fLaC" and STREAMINFO, and its audio frames,
// leaving out every other metadata block.
func splitFLAC(b []byte) (head, frames []byte, err error) {
	if len(b) < 42 || string(b[:4]) != "fLaC" {
		return nil, nil, errors.New("not a FLAC")
	}
	at := 4
	for {
		if at+4 > len(b) {
			return nil, nil, errors.New("FLAC metadata runs past the end")
		}
		last := b[at]&0x80 != 0
		n := int(b[at+1])<<16 | int(b[at+2])<<8 | int(b[at+3])
		at += 4 + n
		if last {
			break
		}
	}
	head = append([]byte(nil), b[:4+4+34]...)
	head[4] &^= 0x80 // STREAMINFO is no longer the last block
	return head, b[at:], nil
}

// stripID3 returns an MP3 without its leading ID3v2 tag, if any.
func stripID3(b []byte) ([]byte, error) {
	if len(b) < 10 || string(b[:3]) != "ID3" {
		return b, nil
	}
	n := int(b[6])<<21 | int(b[7])<<14 | int(b[8])<<7 | int(b[9])
	if 10+n > len(b) {
		return nil, errors.New("ID3 tag runs past the end")
	}
	return b[10+n:], nil
}

// FLAC returns a FLAC file of the base audio tagged with t.
func (r *Retagger) FLAC(t Tags) []byte {
	var c bytes.Buffer
	vendor := "musicgen"
	binary.Write(&c, binary.LittleEndian, uint32(len(vendor)))
	c.WriteString(vendor)
	var comments []string
	for _, kv := range [][2]string{{"TITLE", t.Title}, {"ARTIST", t.Artist}, {"ALBUM", t.Album}, {"ALBUMARTIST", t.AlbumArtist},
		{"GENRE", t.Genre}, {"TRACKNUMBER", itoa(t.Track)}, {"TRACKTOTAL", itoa(t.TrackTotal)}, {"DISCNUMBER", itoa(t.Disc)},
		{"DATE", itoa(t.Year)}} {
		if kv[1] != "" {
			comments = append(comments, kv[0]+"="+kv[1])
		}
	}
	if t.TrackGainDb != nil {
		comments = append(comments, fmt.Sprintf("REPLAYGAIN_TRACK_GAIN=%.2f dB", *t.TrackGainDb))
	}
	binary.Write(&c, binary.LittleEndian, uint32(len(comments)))
	for _, s := range comments {
		binary.Write(&c, binary.LittleEndian, uint32(len(s)))
		c.WriteString(s)
	}
	out := make([]byte, 0, len(r.flacHead)+4+c.Len()+len(r.flacFrames))
	out = append(out, r.flacHead...)
	out = append(out, 0x80|4, byte(c.Len()>>16), byte(c.Len()>>8), byte(c.Len())) // the last block, VORBIS_COMMENT
	out = append(out, c.Bytes()...)
	return append(out, r.flacFrames...)
}

// MP3 returns an MP3 file of the base audio tagged with t (ID3v2.4).
func (r *Retagger) MP3(t Tags) []byte {
	var frames bytes.Buffer
	for _, kv := range [][2]string{{"TIT2", t.Title}, {"TPE1", t.Artist}, {"TALB", t.Album}, {"TPE2", t.AlbumArtist},
		{"TCON", t.Genre}, {"TRCK", itoa(t.Track)}, {"TPOS", itoa(t.Disc)}, {"TDRC", itoa(t.Year)}} {
		if kv[1] == "" {
			continue
		}
		body := append([]byte{3}, kv[1]...) // UTF-8
		frames.WriteString(kv[0])
		frames.Write(syncsafe(len(body)))
		frames.Write([]byte{0, 0})
		frames.Write(body)
	}
	out := append([]byte("ID3\x04\x00\x00"), syncsafe(frames.Len())...)
	out = append(out, frames.Bytes()...)
	return append(out, r.mp3...)
}

func syncsafe(n int) []byte {
	return []byte{byte(n >> 21 & 0x7f), byte(n >> 14 & 0x7f), byte(n >> 7 & 0x7f), byte(n & 0x7f)}
}

func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// WriteLibrary writes n songs below dir as a household's library is laid
// out, Artist/Album/NN Title.ext, albums of 10 songs by artists of 3
// albums, every other album FLAC and the rest MP3; it returns their paths.
func (r *Retagger) WriteLibrary(dir string, n int) ([]string, error) {
	genres := []string{"Jazz", "Rock", "Classical", "Pop", "Folk", "Electronic"}
	var paths []string
	for i := range n {
		album, track := i/10, i%10+1
		artist := album / 3
		t := Tags{Title: fmt.Sprintf("Song %d of album %d", track, album), Artist: fmt.Sprintf("Artist %d", artist),
			Album: fmt.Sprintf("Album %d", album), Genre: genres[album%len(genres)], Track: track, TrackTotal: 10,
			Disc: 1, Year: 1960 + album%60}
		ext, data := ".mp3", []byte(nil)
		if album%2 == 0 {
			ext, data = ".flac", r.FLAC(t)
		} else {
			data = r.MP3(t)
		}
		path := filepath.Join(dir, t.Artist, t.Album, fmt.Sprintf("%02d %s%s", track, t.Title, ext))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}
