package musicfolder

import (
	"path/filepath"
	"time"
)

// vanishing holds the indexed files that went (removed, or moved away)
// for a moment before they leave the index. A move shows as a file going
// and a file coming: one that comes under the same name, with the same
// size and modification time, is the same file moved, and keeps its
// record without being read again; and a song whose file only moved never
// shows as missing. Pure logic: the caller gives the time.
type vanishing struct {
	wait time.Duration
	gone map[string]vanished // by the path it had
}

// vanished is a file that went: its size and time, and when it leaves the
// index unless it turned up elsewhere.
type vanished struct {
	size, modNs int64
	due         time.Time
}

// vanishMargin is how much longer than the settle time a file that went
// waits: the file it was moved to is noted a moment after it went (the
// next event), and must be read first.
const vanishMargin = 500 * time.Millisecond

func newVanishing(settle time.Duration) *vanishing {
	return &vanishing{wait: settle + vanishMargin, gone: map[string]vanished{}}
}

// went notes that the file at path, indexed with size and modNs, went now.
func (v *vanishing) went(path string, size, modNs int64, now time.Time) {
	v.gone[path] = vanished{size: size, modNs: modNs, due: now.Add(v.wait)}
}

// cameBack finds the file that went and is the one now at path, moved:
// same name, size and time. It returns the path it had, and forgets it.
func (v *vanishing) cameBack(path string, size, modNs int64) (from string, ok bool) {
	name := filepath.Base(path)
	for p, g := range v.gone {
		if g.size == size && g.modNs == modNs && filepath.Base(p) == name {
			delete(v.gone, p)
			return p, true
		}
	}
	return "", false
}

// due returns the paths of the files that went and did not come back in
// time, and forgets them.
func (v *vanishing) due(now time.Time) []string {
	var out []string
	for p, g := range v.gone {
		if !now.Before(g.due) {
			out = append(out, p)
			delete(v.gone, p)
		}
	}
	return out
}

// next is when the earliest file that went is due to leave the index.
func (v *vanishing) next() (at time.Time, ok bool) {
	for _, g := range v.gone {
		if !ok || g.due.Before(at) {
			at, ok = g.due, true
		}
	}
	return at, ok
}
