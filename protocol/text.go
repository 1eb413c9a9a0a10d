package protocol

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxSongText bounds a song's title, artist and album, in bytes: long
// enough for any real title (classical ones run to ~150 characters), short
// enough that a search reply of a page of songs stays far below MaxPayload.
const MaxSongText = 256

// CleanText makes user-supplied text safe to store, send and print: invalid
// UTF-8 becomes U+FFFD, control characters (terminal escapes, newlines) and
// bidirectional overrides (which make text display as something else)
// become spaces, runs of spaces one, and the result is trimmed and cut to
// at most maxBytes on a character boundary.
func CleanText(s string, maxBytes int) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			if b.Len()+1+utf8.RuneLen(r) > maxBytes {
				break
			}
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+utf8.RuneLen(r) > maxBytes {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
