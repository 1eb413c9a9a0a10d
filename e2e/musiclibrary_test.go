package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/internal/testwait"
)

// TestMusicLibrary points a hub's controller (--music) at a library of
// generated songs in nested folders, in every format tutti plays, tagged
// and with covers as a household's files are, and checks over real
// processes, with three speakers, what the library promises:
//   - every song indexed with its tags, ReplayGain and cover (embedded, or
//     the folder's cover.jpg), read back over MQTT and from the song server;
//   - browse from artists to albums to tracks in disc and track order, and
//     search ranking a title match first;
//   - a file added, moved to another folder, retagged and deleted each
//     shows in the library within 5 s;
//   - the albums of every format, shuffled, then a saved playlist one of
//     whose files was deleted, played on the three speakers: each format's
//     bursts within the skew bar, the shuffled order heard alike by all,
//     the missing song skipped by all;
//   - ReplayGain in track mode changing the level at the outputs by the
//     tags' gain, the limiter keeping a positive gain from clipping;
//   - a crossfade in sync on every speaker.
func TestMusicLibrary(t *testing.T) {
	lib := newMusicLibrary(t)
	s := newSystem(t)
	s.startTuttiBroker()
	s.controller = s.startNamedController("controller", "--music", lib.dir)
	for _, n := range speakerNames {
		s.startPipeSpeaker(n)
	}
	run := &libraryRun{t: t, s: s, r: newRemote(t, s.brokerPort), lib: lib}
	for _, phase := range []struct {
		name string
		run  func()
	}{
		{"scan", run.scan},
		{"tags and covers", run.checkIndexed},
		{"browse and search", run.checkBrowse},
		{"queue", run.queueAlbums},
		{"file changes", run.checkFileChanges},
		{"albums in sync, shuffled, the missing song skipped", run.playAlbums},
		{"ReplayGain at the outputs", run.playReplayGain},
		{"crossfade in sync", run.playCrossfade},
	} {
		start := time.Now()
		phase.run()
		t.Logf("%s: %.1f s", phase.name, time.Since(start).Seconds())
	}
}

// speakerNames are the speakers of TestMusicLibrary.
var speakerNames = []string{"s1", "s2", "s3"}

// libraryRun is TestMusicLibrary's library and processes.
type libraryRun struct {
	t   *testing.T
	s   *system
	r   *remote
	lib *musicLibrary
	mix string // the saved playlist queued, whose second song's file is deleted
}

// musicLibrary is the generated music folder.
type musicLibrary struct {
	dir    string         // the music folder
	covers string         // where the cover pictures to embed are
	songs  []*libSong     // as made
	folder map[string]int // the cover.jpg in each folder (below dir): its seed
}

// libSong is one song file of the library.
type libSong struct {
	dir, name string        // its folder below the music folder; its file name without extension
	format    string        // musicgen's
	tags      musicgen.Tags // a WAV file carries none (its Title and Track only name it)
	cover     int           // seed of the embedded cover picture; 0: none
	seconds   float64
	// number is a burst song's: in a lossless format its timecode runs
	// from number*songBFirst. 0: the song is not a burst song.
	number int
	sound  func(i int64) audiogen.Frame // nil: musicgen's tune
	sha    string                       // of the file
}

func (g *libSong) path(root string) string {
	return filepath.Join(root, g.dir, g.name+musicgen.Ext(g.format))
}

// lossless says whether the format gives the speakers the file's samples
// as they are (ALAC through the controller's FLAC).
func lossless(format string) bool {
	return format == musicgen.FLAC || format == musicgen.WAV || format == musicgen.ALAC
}

// burstSeconds is the length of a burst song: two bursts, the last with
// the silence after it.
const burstSeconds = 1.5

// The songs named by the checks.
const (
	deletedTitle  = "Freddie Freeloader" // its file is deleted
	movedName     = "Hum"                // moved from Demos to Sketches
	draftTitle    = "Draft"              // retagged as retaggedTitle
	retaggedTitle = "Final Take"
	addedName     = "New Idea" // added
	searchWord    = "blue"     // one song's title; other songs' artist and album
)

// librarySongs is the library, by albums: one of burst songs in each format
// (Kind of Blue on two discs, Jazz Moods a compilation), the level test
// tones, the crossfade test tones, and the sketches the file changes alter.
func librarySongs() []*libSong {
	gain := func(db float64) *float64 { return &db }
	type album struct {
		dir, format string
		tags        musicgen.Tags // the album's: Artist, Album, AlbumArtist, Genre, Year, DiscTotal, TrackTotal
		cover       int
		songs       []musicgen.Tags // each song's Title, Track, Disc (and Artist in a compilation)
	}
	albums := []album{
		{"Miles Davis/Kind of Blue/Disc 1", musicgen.FLAC, musicgen.Tags{Artist: "Miles Davis", Album: "Kind of Blue", Genre: "Jazz", Year: 1959, DiscTotal: 2, TrackTotal: 2, TrackGainDb: gain(-3.25)}, 1,
			[]musicgen.Tags{{Title: "So What", Track: 1, Disc: 1}, {Title: deletedTitle, Track: 2, Disc: 1}}},
		{"Miles Davis/Kind of Blue/Disc 2", musicgen.FLAC, musicgen.Tags{Artist: "Miles Davis", Album: "Kind of Blue", Genre: "Jazz", Year: 1959, DiscTotal: 2, TrackTotal: 1, TrackGainDb: gain(-2.75)}, 1,
			[]musicgen.Tags{{Title: "Flamenco Sketches", Track: 1, Disc: 2}}},
		{"Miles Davis/Milestones", musicgen.MP3, musicgen.Tags{Artist: "Miles Davis", Album: "Milestones", Genre: "Jazz", Year: 1958, DiscTotal: 1, TrackTotal: 2, TrackGainDb: gain(-4.5)}, 2,
			[]musicgen.Tags{{Title: "Milestones", Track: 1, Disc: 1}, {Title: "Straight, No Chaser", Track: 2, Disc: 1}}},
		{"Blue Notes/Night Lights", musicgen.Ogg, musicgen.Tags{Artist: "Blue Notes", Album: "Night Lights", Genre: "Ambient", Year: 2001, DiscTotal: 1, TrackTotal: 2, TrackGainDb: gain(-1.25)}, 0,
			[]musicgen.Tags{{Title: "Nocturne", Track: 1, Disc: 1}, {Title: "Lullaby", Track: 2, Disc: 1}}},
		{"Nina Simone/Pastel Blues", musicgen.Opus, musicgen.Tags{Artist: "Nina Simone", Album: "Pastel Blues", Genre: "Soul", Year: 1965, DiscTotal: 1, TrackTotal: 2, TrackGainDb: gain(-5.5)}, 4,
			[]musicgen.Tags{{Title: "Sinnerman", Track: 1, Disc: 1}, {Title: "Be My Husband", Track: 2, Disc: 1}}},
		{"Compilations/Jazz Moods", musicgen.AAC, musicgen.Tags{AlbumArtist: "Various Artists", Album: "Jazz Moods", Genre: "Jazz", Year: 1999, DiscTotal: 1, TrackTotal: 2, TrackGainDb: gain(-2)}, 5,
			[]musicgen.Tags{{Title: "Blue", Artist: "Joni Mitchell", Track: 1, Disc: 1}, {Title: "Take Five", Artist: "Dave Brubeck", Track: 2, Disc: 1}}},
		{"Nina Simone/I Put a Spell on You", musicgen.ALAC, musicgen.Tags{Artist: "Nina Simone", Album: "I Put a Spell on You", Genre: "Soul", Year: 1965, DiscTotal: 1, TrackTotal: 2, TrackGainDb: gain(-0.5)}, 6,
			[]musicgen.Tags{{Title: "Feeling Good", Track: 1, Disc: 1}, {Title: "Ne Me Quitte Pas", Track: 2, Disc: 1}}},
		{"Field Recordings", musicgen.WAV, musicgen.Tags{}, 0,
			[]musicgen.Tags{{Title: "Rain", Track: 1}, {Title: "Wind", Track: 2}}},
	}
	var songs []*libSong
	for _, a := range albums {
		for _, st := range a.songs {
			tags := a.tags
			tags.Title, tags.Track, tags.Disc = st.Title, st.Track, st.Disc
			if st.Artist != "" {
				tags.Artist = st.Artist
			}
			number := len(songs) + 1
			songs = append(songs, &libSong{dir: a.dir, name: fmt.Sprintf("%02d %s", st.Track, st.Title), format: a.format,
				tags: tags, cover: a.cover, seconds: burstSeconds, number: number,
				sound: burstSound(int64(number)*songBFirst, lossless(a.format))})
		}
	}
	tones := musicgen.Tags{Artist: "Test Tones", Album: "Levels", TrackTotal: 2}
	minus6, plus12 := tones, tones
	minus6.Title, minus6.Track, minus6.TrackGainDb = "Minus Six", 1, gain(-6)
	plus12.Title, plus12.Track, plus12.TrackGainDb = "Plus Twelve", 2, gain(12)
	fades := musicgen.Tags{Artist: "Test Tones", Album: "Crossfades", TrackTotal: 2}
	right, left := fades, fades
	right.Title, right.Track = "Right", 1
	left.Title, left.Track = "Left", 2
	return append(songs,
		&libSong{dir: "Test Tones/Levels", name: "Minus Six", format: musicgen.FLAC, tags: minus6, seconds: levelSeconds, sound: squareWave(loudAmp, 0)},
		&libSong{dir: "Test Tones/Levels", name: "Plus Twelve", format: musicgen.FLAC, tags: plus12, seconds: levelSeconds, sound: squareWave(quietAmp, rate/2)},
		&libSong{dir: "Test Tones/Crossfades", name: "Right", format: musicgen.FLAC, tags: right, seconds: xfSeconds, sound: constant(audiogen.Frame{R: xfLevel})},
		&libSong{dir: "Test Tones/Crossfades", name: "Left", format: musicgen.FLAC, tags: left, seconds: xfSeconds, sound: constant(audiogen.Frame{L: xfLevel})},
		&libSong{dir: "Demos", name: movedName, format: musicgen.Ogg, tags: musicgen.Tags{Title: movedName, Artist: "Sketches", Album: "Demos"}, seconds: 1},
		&libSong{dir: "Sketches", name: draftTitle, format: musicgen.FLAC, tags: musicgen.Tags{Title: draftTitle, Artist: "Sketches", Album: "Sketches"}, seconds: 1},
	)
}

// libraryFolderCovers are the cover.jpg pictures of the library's folders,
// by their seeds: Kind of Blue's disc 1 embeds another, which wins; the
// Ogg and WAV songs embed none.
var libraryFolderCovers = map[string]int{
	"Miles Davis/Kind of Blue/Disc 1": 11,
	"Blue Notes/Night Lights":         3,
	"Field Recordings":                7,
	"Demos":                           9,
	"Sketches":                        8,
}

// newMusicLibrary makes the library in a new music folder, two songs at a
// time (the encoders take a core each).
func newMusicLibrary(t *testing.T) *musicLibrary {
	lib := &musicLibrary{dir: filepath.Join(t.TempDir(), "music"), covers: t.TempDir(), songs: librarySongs(), folder: libraryFolderCovers}
	for dir, seed := range lib.folder {
		if err := os.MkdirAll(filepath.Join(lib.dir, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := musicgen.WriteCover(filepath.Join(lib.dir, dir, "cover.jpg"), seed); err != nil {
			t.Fatal(err)
		}
	}
	for _, song := range lib.songs {
		if song.cover != 0 {
			if err := musicgen.WriteCover(lib.coverFile(song.cover), song.cover); err != nil {
				t.Fatal(err)
			}
		}
	}
	var g errgroup.Group
	g.SetLimit(2)
	for _, song := range lib.songs {
		g.Go(func() error { return lib.make(song, lib.dir) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return lib
}

// make writes song's file below root and notes its hash.
func (lib *musicLibrary) make(song *libSong, root string) error {
	cover := ""
	if song.cover != 0 {
		cover = lib.coverFile(song.cover)
	}
	path := song.path(root)
	if err := musicgen.Encode(path, song.format, song.tags, song.seconds, cover, song.sound); err != nil {
		return err
	}
	sha, _, err := hashOf(path)
	song.sha = sha
	return err
}

// coverFile is the picture of seed, to embed.
func (lib *musicLibrary) coverFile(seed int) string {
	return filepath.Join(lib.covers, fmt.Sprintf("cover-%d.jpg", seed))
}

// song is the song titled title.
func (lib *musicLibrary) song(t *testing.T, title string) *libSong {
	t.Helper()
	for _, g := range lib.songs {
		if g.tags.Title == title {
			return g
		}
	}
	t.Fatalf("no song %q in the library", title)
	return nil
}

// scan waits for the controller's scan of the music folder, as a person
// does with tutti scan, which reports the folder's files. It is refused
// until the controller holds the lease.
func (run *libraryRun) scan() {
	var out string
	testwait.For(run.t, "tutti scan to succeed", 20*time.Second, func() bool {
		var err error
		out, err = run.s.tryCLI("scan")
		return err == nil
	})
	if want := fmt.Sprintf("scan done: %d files in the music folders", len(run.lib.songs)); !containsLine(out, want) {
		run.t.Fatalf("tutti scan said %q, want a line starting %q", out, want)
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
