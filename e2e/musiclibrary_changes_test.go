package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/protocol"
)

// fileChangeBar is how soon a file added, moved, changed or deleted must
// show in the library. The controller reads a file once its size and time
// stayed put for 2 s (a copy in progress is not read half-way), and drops
// one that went 2.5 s later unless it turned up elsewhere (a move): the
// rest leaves room for a loaded machine.
const fileChangeBar = 5 * time.Second

// fileChange is one operation on a file of the music folder, and how the
// library shows it.
type fileChange struct {
	what  string
	do    func() error
	shows func() bool
	at    time.Time     // when the file operation was done
	took  time.Duration // from then to the reply that showed it; 0: not yet
}

// checkFileChanges adds a song file, moves one to another folder, retags
// one and deletes one (a song queued through a saved playlist), one right
// after the other, and times each from its file operation to the reply
// that shows it in the library.
func (run *libraryRun) checkFileChanges() {
	t, r, lib := run.t, run.r, run.lib
	songsURL := songsURL(t, r)
	// A song added is made elsewhere and moved in, as a finished copy lands.
	added := &libSong{dir: "Sketches", name: addedName, format: musicgen.MP3, seconds: 1,
		tags: musicgen.Tags{Title: addedName, Artist: "Sketches", Album: "Sketches"}}
	staging := t.TempDir()
	if err := lib.make(added, staging); err != nil {
		t.Fatal(err)
	}
	moved, draft, deleted := lib.song(t, movedName), lib.song(t, draftTitle), lib.song(t, deletedTitle)
	movedTo := *moved
	movedTo.dir = "Sketches"
	// record is the library's record of sha; known is false while it has none.
	record := func(sha string) (song protocol.Song, known bool) {
		rep := r.library(fmt.Sprintf(`"cmd":"lookup","song":%q`, sha))
		if !rep.OK && strings.HasPrefix(rep.Error, "unknown song") {
			return song, false
		}
		return resultOf[protocol.Song](t, rep), true
	}
	movedMissing := false
	changes := []*fileChange{
		{what: "added", do: func() error { return os.Rename(added.path(staging), added.path(lib.dir)) },
			shows: func() bool { song, ok := record(added.sha); return ok && !song.Missing }},
		{what: "moved to another folder", do: func() error { return os.Rename(moved.path(lib.dir), movedTo.path(lib.dir)) },
			shows: func() bool {
				// The same song, never missing meanwhile, now with the
				// cover of the folder it is in.
				if song, ok := record(moved.sha); !ok || song.Missing {
					movedMissing = true
				}
				// Until the moved file is read, its song is not served.
				picture, _, err := get(protocol.ArtURL(songsURL, moved.sha))
				return err == nil && string(picture) == string(lib.cover(t, &movedTo))
			}},
		{what: "retagged", do: func() error {
			out, err := exec.Command("metaflac", "--remove-tag=TITLE", "--set-tag=TITLE="+retaggedTitle, draft.path(lib.dir)).CombinedOutput()
			if err != nil {
				return fmt.Errorf("metaflac: %v %s", err, out)
			}
			return nil
		}, shows: func() bool {
			// A file changed is another song, found by its new title.
			found := resultOf[protocol.SearchResult](t, r.library(fmt.Sprintf(`"cmd":"search","query":%q`, retaggedTitle)))
			return found.Total == 1 && found.Songs[0].Title == retaggedTitle
		}},
		{what: "deleted", do: func() error { return os.Remove(deleted.path(lib.dir)) },
			shows: func() bool { song, ok := record(deleted.sha); return ok && song.Missing }},
	}
	for _, c := range changes {
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		c.at = time.Now()
	}
	shown := pollLibrary(4*fileChangeBar, func() bool {
		done := true
		for _, c := range changes {
			if c.took == 0 && c.shows() {
				c.took = time.Since(c.at)
			}
			done = done && c.took != 0
		}
		return done
	})
	for _, c := range changes {
		if c.took == 0 {
			t.Errorf("file %s: not shown in the library after %v", c.what, 4*fileChangeBar)
			continue
		}
		t.Logf("file %s: shown in the library after %.2f s", c.what, c.took.Seconds())
		if c.took > fileChangeBar {
			t.Errorf("file %s: shown after %.2f s, over the %v bar", c.what, c.took.Seconds(), fileChangeBar)
		}
	}
	if movedMissing {
		t.Error("the moved song showed as missing on its way")
	}
	if !shown {
		t.FailNow()
	}
	// The song of the file before it was retagged has no file left.
	if old, _ := record(draft.sha); !old.Missing {
		t.Errorf("the song of the file before it was retagged: %+v, want missing", old)
	}
}

// libraryPoll is how often a check asks the library again: the few
// requests each time asks stay under the controller's limit of 20
// commands a second to one topic, and time what they wait for to a
// quarter of a second.
const libraryPoll = 250 * time.Millisecond

// pollLibrary asks cond every libraryPoll until it holds or timeout
// passes, and says whether it held.
func pollLibrary(timeout time.Duration, cond func() bool) bool {
	tick := time.NewTicker(libraryPoll)
	defer tick.Stop()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}
