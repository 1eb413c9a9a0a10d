package musicfolder

import (
	"bytes"
	"path/filepath"
	"strings"

	"github.com/tutti-audio/tutti/oggopus"
)

// audioExtensions are the file names a scan reads, by extension (lower
// case). Raw ADTS .aac is left out: it has no tags and no length, and every
// library keeps AAC in M4A.
var audioExtensions = map[string]bool{
	".mp3": true, ".flac": true, ".wav": true, ".ogg": true, ".oga": true,
	".opus": true, ".m4a": true, ".mp4": true,
}

// IsAudioName says whether a file name has an extension the scan reads
// as audio.
func IsAudioName(name string) bool {
	return audioExtensions[strings.ToLower(filepath.Ext(name))]
}

// playlistExtensions are the playlist files a scan reads (lower case):
// M3U, and M3U8 (the same, in UTF-8).
var playlistExtensions = map[string]bool{".m3u": true, ".m3u8": true}

// IsPlaylistName says whether a file name is that of a playlist file the
// scan reads.
func IsPlaylistName(name string) bool {
	return playlistExtensions[strings.ToLower(filepath.Ext(name))]
}

// indexed says whether a scan reads the file named name.
func indexed(name string) bool { return IsAudioName(name) || IsPlaylistName(name) }

// HeadSize is how many leading bytes DetectFormat needs: an Ogg stream's
// first page (27-byte header, one segment table entry) and its codec's
// magic.
const HeadSize = 64

// DetectFormat tells a song's format from the first bytes of its file (at
// least HeadSize of them, when it has them): "mp3", "flac", "wav", "ogg"
// (Vorbis), "opus", "m4a", or "" for anything else. Opus is an Ogg stream
// whose first packet is an Opus identification header (oggopus.Detect, as
// speakers tell it); an M4A is an ISO media file, an "ftyp" box first.
func DetectFormat(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("fLaC")):
		return "flac"
	case oggopus.Detect(head):
		return "opus"
	case bytes.HasPrefix(head, []byte("OggS")):
		return "ogg"
	case len(head) >= 12 && bytes.HasPrefix(head, []byte("RIFF")) && string(head[8:12]) == "WAVE":
		return "wav"
	case len(head) >= 12 && string(head[4:8]) == "ftyp":
		return "m4a"
	case bytes.HasPrefix(head, []byte("ID3")),
		len(head) >= 2 && head[0] == 0xFF && head[1]&0xE0 == 0xE0: // MPEG frame sync
		return "mp3"
	}
	return ""
}
