package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/playlog"
)

// TestFormats uploads FLAC, MP3 and Ogg Vorbis files made by Debian's own
// encoders and plays each on a speaker: FLAC is lossless, so its timecode
// must come out to the frame; the lossy ones must at least sound.
func TestFormats(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker()
	s.startController()
	s.startSpeaker("s1")
	const first = 7_000_000
	dir := t.TempDir()
	order := []string{musicgen.FLAC, musicgen.MP3, musicgen.Ogg}
	var paths, shas []string
	for _, format := range order {
		path := filepath.Join(dir, "tc"+musicgen.Ext(format))
		if err := musicgen.Encode(path, format, musicgen.Tags{}, 6, "", func(i int64) audiogen.Frame { return audiogen.Timecode(first + i) }); err != nil {
			t.Fatal(err)
		}
		sha, _, err := hashOf(path)
		if err != nil {
			t.Fatal(err)
		}
		paths, shas = append(paths, path), append(shas, sha)
	}
	s.load(paths...)
	r := newRemote(t, s.brokerPort)
	for i, sha := range shas {
		song := r.lookup(sha)
		t.Logf("%s: %+v", order[i], song)
		if song.Format != order[i] || song.SampleRate != 44100 {
			t.Errorf("%s: format %q at %d Hz", paths[i], song.Format, song.SampleRate)
		}
		// Lossy encoders pad: their decoded length is a little longer.
		if song.Frames < 6*44100 || song.Frames > 6*44100+44100/2 || order[i] == musicgen.FLAC && song.Frames != 6*44100 {
			t.Errorf("%s: %d frames, want %d", order[i], song.Frames, 6*44100)
		}
		r.enqueue(sha)
	}
	// The speaker fetches the current song and the next; later ones come
	// as playback moves on.
	s.waitCached([]string{"s1"}, shas[0], shas[1])

	starts := make([]int64, len(order))
	for i := range order {
		starts[i] = stateOf(t, r.cmd(fmt.Sprintf(`"cmd":"play","index":%d`, i))).Anchor.AtNs
		time.Sleep(1500 * time.Millisecond)
	}
	stateOf(t, r.cmd(`"cmd":"pause"`))
	time.Sleep(300 * time.Millisecond)
	s.speakers["s1"].stop(syscallTERM)

	// FLAC: every block continues the one before, from the song's start.
	var flac []playlog.Block
	for _, b := range s.blocks("s1") {
		if b.TNs >= starts[0] && b.TNs < starts[1] && b.Frame >= first {
			flac = append(flac, b)
		}
	}
	if len(flac) == 0 {
		t.Fatal("FLAC: no timecode heard")
	}
	block := flac[0].Frames // the device's, as its log says
	if heard := len(flac) * block; heard < 44100 {
		t.Fatalf("FLAC: only %d blocks of %d frames of timecode heard, want a second", len(flac), block)
	}
	if d := flac[0].Frame - first; d < 0 || d > int64(block) {
		t.Errorf("FLAC started at frame %d of the song", d)
	}
	for i := 1; i < len(flac); i++ {
		// Steering the speed makes a block's first frame fall between
		// frames: one frame either way is playing on.
		if want := flac[i-1].Frame + int64(flac[i-1].Frames); abs(flac[i].Frame-want) > 1 && flac[i-1].Frames == block {
			t.Errorf("FLAC block %d: frame %d, want %d", i, flac[i].Frame, want)
			break
		}
	}
	// MP3 and Ogg Vorbis: sound, not silence, while they play.
	lines := readLines(t, s.logs["s1"])
	for i, format := range order[1:] {
		from, to := starts[i+1]+int64(100*time.Millisecond), starts[i+1]+int64(1400*time.Millisecond)
		total, sound, frames := 0, 0, 0
		for _, l := range lines {
			if l.TNs >= from && l.TNs < to && !l.Underrun {
				total++
				frames += l.Frames
				if l.Sound > 0 {
					sound++
				}
			}
		}
		// A second of the 1.3 s heard, nine blocks in ten with sound.
		if frames < 44100 || sound < total*9/10 {
			t.Errorf("%s: %d of %d blocks (%d frames) with sound", format, sound, total, frames)
		}
	}
}

func readLines(t *testing.T, path string) []playlog.Line {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []playlog.Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l playlog.Line
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			lines = append(lines, l)
		}
	}
	return lines
}
