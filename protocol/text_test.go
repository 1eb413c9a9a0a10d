package protocol

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"  Blue  Moon ", "Blue Moon"},
		{"\x1b]0;pwned\x07title\x1b[2J", "]0;pwned title [2J"},
		{"line\nbreak\ttab", "line break tab"},
		{"evil\u202Etxt.exe", "evil txt.exe"},
		{"bad \xff\xfe utf8", "bad \uFFFD utf8"},
		{strings.Repeat("é", 200), strings.Repeat("é", 128)}, // 256 bytes, on a character boundary
	} {
		if got := CleanText(tc.in, MaxSongText); got != tc.want {
			t.Errorf("CleanText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzCleanText(f *testing.F) {
	for _, seed := range []string{"", "a b", "\x1b[31mred", "\xff", "é\u202E", strings.Repeat("x ", 200)} {
		f.Add(seed, 16)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		max = max%300 + 1
		if max < 1 {
			max = -max + 1
		}
		got := CleanText(s, max)
		switch {
		case len(got) > max:
			t.Fatalf("%d bytes, max %d", len(got), max)
		case !utf8.ValidString(got):
			t.Fatalf("invalid UTF-8 %q", got)
		case strings.TrimSpace(got) != got || strings.Contains(got, "  "):
			t.Fatalf("spaces not collapsed: %q", got)
		case strings.ContainsFunc(got, func(r rune) bool {
			return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r != ' ' && unicode.IsSpace(r)
		}):
			t.Fatalf("control or bidi characters in %q", got)
		}
		if CleanText(got, max) != got {
			t.Fatalf("not idempotent: %q", got)
		}
	})
}
