package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tutti-audio/tutti/audiogen"
)

// TestLibraryAbuse: over real processes outside demo mode, a member
// uploads audio bombs (refused with a clear error) while another member's
// commands are answered; a song named with terminal escapes is listed
// without them; a member may not remove a song, an admin does, and it
// leaves the library.
func TestLibraryAbuse(t *testing.T) {
	s := newSecureSystem(t)
	s.waitController()

	// Bombs: 25 minutes of constant 65535-frame blocks in 18 KB each, the
	// header silent about their length.
	var bombs []string
	for i := range 3 {
		var b bytes.Buffer
		if err := audiogen.WriteBlockFLAC(&b, 44100, 1000+i, 65535); err != nil {
			t.Fatal(err)
		}
		data := b.Bytes()
		data[21] &= 0xF0 // the 36-bit frame count: unknown
		clear(data[22:26])
		path := filepath.Join(t.TempDir(), "bomb.flac")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		bombs = append(bombs, path)
	}
	var wg sync.WaitGroup
	for _, path := range bombs {
		wg.Go(func() {
			out, err := s.tutti("alice", "load", path)
			if err == nil || !strings.Contains(out, "frames per byte") {
				t.Errorf("bomb upload: %v %s", err, out)
			}
		})
	}
	for range 5 {
		s.mustTutti("bob", "status")
	}
	wg.Wait()

	// A name with terminal escapes.
	path, sha := timecodeSong(t, "\x1b]0;pwned\x07\x1b[2Jevil.wav", 2, 0)
	s.mustTutti("alice", "load", "--quiet", path)
	out := s.mustTutti("bob", "search", "pwned")
	if !strings.Contains(out, sha) || strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, "songs 1-1 of 1") {
		t.Errorf("search output: %q", out)
	}

	// Removal: admins only.
	if out, err := s.tutti("bob", "remove", sha); err == nil || !strings.Contains(out, "only admins") {
		t.Errorf("bob removed a song: %v %s", err, out)
	}
	s.mustTutti("admin", "remove", sha)
	if out := s.mustTutti("bob", "search", "pwned"); strings.Contains(out, sha) {
		t.Errorf("the removed song is still found: %s", out)
	}
}
