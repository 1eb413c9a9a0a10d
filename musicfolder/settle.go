package musicfolder

import (
	"time"
)

// settler holds the files that changed until they stay put: a file being
// copied in changes size and time again and again, and is read only once
// it has kept both for the settle time. Pure logic: the caller gives the
// time and the file's state.
type settler struct {
	wait    time.Duration
	pending map[string]settling
}

// settling is a changed file's last known state and when it is due to be
// checked again.
type settling struct {
	size  int64
	modNs int64
	due   time.Time
}

func newSettler(wait time.Duration) *settler {
	return &settler{wait: wait, pending: map[string]settling{}}
}

// changed notes that path changed now; it is due after the settle time.
func (s *settler) changed(path string, size, modNs int64, now time.Time) {
	s.pending[path] = settling{size: size, modNs: modNs, due: now.Add(s.wait)}
}

// forget drops path, and every path below it when it was a folder.
func (s *settler) forget(path string) {
	for p := range s.pending {
		if p == path || isBelow(p, path) {
			delete(s.pending, p)
		}
	}
}

// due returns the paths due at now; stat tells a path's current state (ok
// false: gone). A file that changed since it was noted waits the settle
// time again; one that kept its size and time is returned and dropped.
func (s *settler) due(now time.Time, stat func(path string) (size, modNs int64, ok bool)) []string {
	var ready []string
	for path, p := range s.pending {
		if now.Before(p.due) {
			continue
		}
		size, modNs, ok := stat(path)
		switch {
		case !ok:
			delete(s.pending, path)
		case size != p.size || modNs != p.modNs:
			s.changed(path, size, modNs, now)
		default:
			delete(s.pending, path)
			ready = append(ready, path)
		}
	}
	return ready
}

// next is when the earliest pending file is due; ok is false when none is.
func (s *settler) next() (at time.Time, ok bool) {
	for _, p := range s.pending {
		if !ok || p.due.Before(at) {
			at, ok = p.due, true
		}
	}
	return at, ok
}
