package controller

import (
	"errors"
	"strings"
	"testing"
)

// FuzzSearchQuery: whatever words a search is given, FTS5 takes the query
// made of them as plain words, never as its syntax, so it never fails: a
// search finds songs or none, or is refused for having no word at all.
func FuzzSearchQuery(f *testing.F) {
	st := openTestStore(f, f.TempDir())
	f.Cleanup(func() { st.Close() })
	lib := newTaggedLibrary()
	lib.addTo(f, st)
	for _, seed := range []string{`beyonce form`, `"`, `""`, `a" OR "b`, `NEAR(a b)`, `title:x`, `-x`, `^x`, `x*`, `*`, `a AND b`,
		`{title artist}: x`, `é`, "\x00", "\u0301", `a'b`, `(`, `+`, `%_`, `ǅ`, "\ufffd"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, query string) {
		words := strings.Fields(query)
		if len(words) == 0 || len(query) > maxSearchQuery {
			return
		}
		found, total, err := st.searchSongs(words, 0, 10)
		if errors.Is(err, errNoWords) {
			if _, ok := textQuery(words); ok {
				t.Fatalf("%q: refused, though it has words", query)
			}
			return
		}
		if err != nil || len(found) > total {
			t.Fatalf("%q: %d of %d, %v", query, len(found), total, err)
		}
	})
}
