package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// TestMusicFolderPlaysAndSkipsMissing points a controller process at a
// music folder of FLAC timecode songs, queues three, deletes the middle one's
// file and plays: the speaker goes from the first song straight to the
// third, never fetching the missing one, and `tutti scan` reports the folder.
func TestMusicFolderPlaysAndSkipsMissing(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker()
	music := filepath.Join(s.dir, "music")
	var shas []string
	firsts := []int64{1_000_000, 2_000_000, 3_000_000}
	var paths []string
	for i, first := range firsts {
		wav, _ := timecodeSong(t, fmt.Sprintf("tc%d.wav", i), 2, first)
		path := filepath.Join(music, "Album", fmt.Sprintf("%02d.flac", i+1))
		os.MkdirAll(filepath.Dir(path), 0o755)
		if out, err := exec.Command("flac", "--silent", "-o", path, wav).CombinedOutput(); err != nil {
			t.Fatalf("flac: %v %s", err, out)
		}
		sha, _, err := hashOf(path)
		if err != nil {
			t.Fatal(err)
		}
		shas, paths = append(shas, sha), append(paths, path)
	}
	s.controller = s.startNamedController("controller", "--music", music)
	r := newRemote(t, s.brokerPort)
	testwait.For(t, "the folder's songs in the library", 20*time.Second, func() bool {
		rep, ok := r.requestWithin(protocol.LibraryCommandTopic, fmt.Sprintf(`"cmd":"lookup","song":%q`, shas[2]), 2*time.Second)
		return ok && rep.OK
	})
	for _, sha := range shas {
		if rep := r.cmd(fmt.Sprintf(`"cmd":"enqueue","song":%q`, sha)); !rep.OK {
			t.Fatalf("enqueue: %s", rep.Error)
		}
	}
	if err := os.Remove(paths[1]); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the removed song's entry missing", 10*time.Second, func() bool {
		var pl protocol.Playlist
		return json.Unmarshal(r.retained(protocol.PlaylistTopic("home")), &pl) == nil && len(pl.Entries) == 3 &&
			pl.Entries[1].Missing && !pl.Entries[0].Missing && !pl.Entries[2].Missing
	})
	// The speaker comes now: queued, the second song would be fetched
	// before its file went.
	s.startSpeaker("s1")
	testwait.For(t, "the speaker to cache the songs to play", 20*time.Second, func() bool {
		return cached(s, "s1", shas[0]) && cached(s, "s1", shas[2])
	})
	start := stateOf(t, r.cmd(`"cmd":"play","index":0`)).Anchor.AtNs
	time.Sleep(4500 * time.Millisecond) // both songs play through
	stateOf(t, r.cmd(`"cmd":"pause"`))

	if cached(s, "s1", shas[1]) {
		t.Error("the speaker fetched the missing song")
	}
	heard := map[int]int{} // blocks of each song's timecode
	var firstOfThird int64
	for _, b := range s.blocks("s1") {
		if b.TNs < start {
			continue
		}
		for i, first := range firsts {
			if b.Frame >= first && b.Frame < first+2*44100 {
				heard[i]++
				if i == 2 && firstOfThird == 0 {
					firstOfThird = b.TNs
				}
			}
		}
	}
	if heard[0] == 0 || heard[2] == 0 || heard[1] != 0 {
		t.Fatalf("blocks heard per song: %v, want the first and third, not the missing second", heard)
	}
	// The third follows the first without the second's two seconds between.
	if gap := time.Duration(firstOfThird - start); gap > 2500*time.Millisecond {
		t.Errorf("the third song began %v after the first: the missing one was not skipped", gap)
	}

	out, err := exec.Command(tuttiBin, "scan", "--broker", s.brokerURL(), "--timeout", "5s").CombinedOutput()
	if err != nil {
		t.Fatalf("tutti scan: %v\n%s", err, out)
	}
	t.Logf("tutti scan:\n%s", out)
	if want := "scan done: 2 files in the music folders"; !containsLine(string(out), want) {
		t.Errorf("tutti scan said %q, want a line starting %q", out, want)
	}
}

// containsLine says whether text has a line starting with prefix.
func containsLine(text, prefix string) bool {
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}
