package musicfolder

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// A music folder on a network share or a removable disk is sometimes not
// there: the share not mounted (its mount point an empty folder), its
// server down (stat or listing the folder fails), the disk renamed away.
// Its files are not gone for all that: a scan that took them for removed
// would mark every song missing, and read and hash them all again once the
// folder is back. So a root that cannot be read, or that is empty while
// the index holds files in it (empty of what a scan looks at: dot files do
// not count), is unavailable: a scan leaves its files in the index as they
// are and reports it (progress, log); while one is, it is looked at every
// availabilityRecheck and scanned as soon as it is back, its unchanged
// files not read again.

// availabilityRecheck is how often an unavailable root is looked at: a
// stat and the first entries of its listing, nothing even on a share, and a
// remounted share shows within seconds.
const availabilityRecheck = 10 * time.Second

// unavailableReason says why root cannot be scanned now, "" when it can.
func (s *Scanner) unavailableReason(root string) string {
	info, err := os.Stat(root)
	switch {
	case err != nil:
		return err.Error()
	case !info.IsDir():
		return "not a folder"
	}
	shown, err := holdsShown(root)
	if err != nil {
		return fmt.Sprintf("cannot list it: %v", err)
	}
	if shown {
		return ""
	}
	indexed, err := s.opts.Index.Paths(root)
	if err != nil || len(indexed) == 0 {
		return "" // empty, and so was it: nothing to keep
	}
	return fmt.Sprintf("empty, while %d files were indexed in it (a network share not mounted?)", len(indexed))
}

// holdsShown says whether folder dir holds anything that is not hidden (a
// mount point may hold a dot file of its own while nothing is mounted on
// it). It lists dir a batch at a time, and stops at the first such entry.
func holdsShown(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(listBatch)
		for _, n := range names {
			if !hidden(n) {
				return true, nil
			}
		}
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// listBatch is how many entries of a root holdsShown reads at a time: the
// first is nearly always shown, and a batch bounds the memory of a folder
// full of dot files.
const listBatch = 64

// checkRoots finds which roots are unavailable now, logs those that went
// or came back, stops watching those that went (their watches follow a
// folder moved away, or died with an unmount), and returns the list.
func (s *Scanner) checkRoots() []protocol.UnavailableFolder {
	var list []protocol.UnavailableFolder
	for _, root := range s.opts.Roots {
		reason := s.unavailableReason(root)
		_, was := s.unavailable[root]
		switch {
		case reason != "" && !was:
			s.log.Warn("music folder unavailable: its songs are kept as they are until it is back", "root", root, "reason", reason)
			if s.watcher != nil {
				s.unwatch(root)
			}
		case reason == "" && was:
			s.log.Info("music folder available again", "root", root)
		}
		if reason == "" {
			delete(s.unavailable, root)
			continue
		}
		s.unavailable[root] = reason
		list = append(list, protocol.UnavailableFolder{Root: root, Reason: reason})
	}
	return list
}

// isUnavailable says whether the last check found root unavailable.
func (s *Scanner) isUnavailable(root string) bool {
	_, ok := s.unavailable[root]
	return ok
}

// armRecheck has the unavailable roots looked at again in
// availabilityRecheck, if there are any.
func (s *Scanner) armRecheck() {
	if len(s.unavailable) > 0 {
		s.recheck.Reset(availabilityRecheck)
	} else {
		s.recheck.Stop()
	}
}

// backAgain says whether one of the unavailable roots is back.
func (s *Scanner) backAgain() bool {
	for root := range s.unavailable {
		if s.unavailableReason(root) == "" {
			return true
		}
	}
	return false
}

// forgetDroppedWatches forgets the folders whose watch the kernel dropped
// (an unmount drops them without an event), so the next walk watches them
// again.
func (s *Scanner) forgetDroppedWatches() {
	if s.watcher == nil {
		return
	}
	live := map[string]bool{}
	for _, p := range s.watcher.WatchList() {
		live[p] = true
	}
	for d := range s.watched {
		if !live[d] {
			delete(s.watched, d)
		}
	}
}
