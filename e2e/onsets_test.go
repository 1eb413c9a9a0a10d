package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/playlog"
)

// Songs in lossy formats carry no timecode a log could read, so the sync
// of their playback is measured by their onsets: a burst of sound every
// burstPeriod after digital silence, which the codecs keep silent. Every
// speaker decodes the same bytes, so each onset lies at the same frame of
// the song on every speaker, and the instants they play it apart are the
// skew. The onsets are read from the samples a speaker's pipe output
// wrote, frame by frame: a codec's pre-echo sounds in scattered frames
// just before a burst, and a block's summary (its first and last silent
// frames) would place such an onset by where the device's blocks happen
// to begin.
const (
	burstPeriod = 750 * time.Millisecond
	burstOn     = 150 * time.Millisecond // of sound, then silence to the period's end
	// minSilence before sound makes an onset: well under the 600 ms of
	// silence between bursts, well over a codec's tail after a burst
	// (an Opus file sounds on for about 250 ms).
	minSilence = 200 * time.Millisecond
)

// burstSound is the frames of a burst song. In a lossless format the
// bursts carry timecode, frame first+i at frame i, so that what a speaker
// played also says which song it was; in a lossy one, a 440 Hz tone.
func burstSound(first int64, lossless bool) func(i int64) audiogen.Frame {
	period, on := int64(burstPeriod.Seconds()*rate), int64(burstOn.Seconds()*rate)
	return func(i int64) audiogen.Frame {
		switch {
		case i%period >= on:
			return audiogen.Frame{}
		case lossless:
			return audiogen.Timecode(first + i)
		}
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/rate))
		return audiogen.Frame{L: v, R: v}
	}
}

// onsets are the instants at which speaker name's output played sound
// after at least minSilence of silence, between from and to.
func (s *system) onsets(name string, from, to int64) []int64 {
	var out []int64
	silentFrom := int64(0) // when the silence that runs began; 0: sound
	s.walkPCM(name, func(at int64, f audiogen.Frame) {
		if f == (audiogen.Frame{}) {
			if silentFrom == 0 {
				silentFrom = at
			}
			return
		}
		if silentFrom != 0 && at-silentFrom >= int64(minSilence) && at >= from && at < to {
			out = append(out, at)
		}
		silentFrom = 0
	})
	return out
}

// playStartBurst is how far into the first song a burst counts as the
// play command's start rather than playback: how soon each speaker sounds
// after play is the start benchmark's; a speaker whose process is not
// scheduled in time at the start (a loaded machine) starts into the burst
// late, which says nothing of how a codec keeps sync once playing.
const playStartBurst = 100 * time.Millisecond

// onsetSpreads are, for each onset the first of names heard between from
// and to that every other speaker heard too (within 100 ms), how far apart
// the speakers heard it. heard holds each speaker's onsets. An onset near
// which a speaker's process stalled (its device logged an underrun) is
// logged and left out.
func onsetSpreads(t *testing.T, s *system, names []string, heard map[string][]int64, from, to int64) []int64 {
	var spreads []int64
	for _, at := range heard[names[0]] {
		if at < from || at >= to {
			continue
		}
		all := []int64{at}
		for _, n := range names[1:] {
			if o, ok := nearest(heard[n], at, int64(100*time.Millisecond)); ok {
				all = append(all, o)
			}
		}
		if len(all) != len(names) {
			continue
		}
		spread := slices.Max(all) - slices.Min(all)
		if spread > int64(skewBar) {
			if n, ok := stalled(t, s, names, at); ok {
				t.Logf("onset at %d: speakers %.3f ms apart: %s's process stalled (its device underran), not counted", at, float64(spread)/1e6, n)
				continue
			}
			t.Logf("onset at %d: heard at %v", at, all)
		}
		spreads = append(spreads, spread)
	}
	return spreads
}

// nearest is the instant in list closest to at, if within tolerance.
func nearest(list []int64, at, tolerance int64) (int64, bool) {
	best, found := int64(0), false
	for _, x := range list {
		if abs(x-at) <= tolerance && (!found || abs(x-at) < abs(best-at)) {
			best, found = x, true
		}
	}
	return best, found
}

// stalled names a speaker whose device logged an underrun within 100 ms of
// at: a loaded machine held its process back.
func stalled(t *testing.T, s *system, names []string, at int64) (string, bool) {
	for _, n := range names {
		f, err := os.Open(s.logs[n])
		if err != nil {
			t.Fatal(err)
		}
		underruns, err := playlog.Underruns(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range underruns {
			if abs(u-at) <= int64(100*time.Millisecond) {
				return n, true
			}
		}
	}
	return "", false
}

// Pre-echo before a burst does not move its onset, whichever blocks it
// falls in: two speakers whose blocks begin at different frames, one with
// a block ending among the blips, hear the onset at the same instant, the
// first blip's.
func TestOnsetsLeaveOutBlockBoundaries(t *testing.T) {
	const frames = 882 // 20 ms blocks
	at := func(frame int) int64 { return 1e9 + int64(frame)*1e9/rate }
	// A song: silence, then blips of pre-echo (frames [blipFrom, blipTo)
	// sound, every other one silent) shortly before the burst, sound from
	// burstAt on for 150 ms.
	const blipFrom, blipTo, burstAt = rate - 130, rate - 100, rate
	sound := func(f int) bool {
		return f >= blipFrom && f < blipTo && f%2 == 0 || f >= burstAt && f < burstAt+rate*15/100
	}
	s := newSystem(t)
	for _, offset := range []int{0, burstAt - 115 - frames, blipFrom + 1 - frames, 17} {
		name := fmt.Sprint("s", offset)
		s.logs[name] = filepath.Join(s.dir, name+".blocks")
		var log bytes.Buffer
		var pcm []byte
		for start := offset % frames; start+frames <= 2*rate; start += frames {
			line, err := json.Marshal(playlog.Line{TNs: at(start), Frames: frames, Rate: rate})
			if err != nil {
				t.Fatal(err)
			}
			log.Write(append(line, '\n'))
			for f := start; f < start+frames; f++ {
				v := uint16(0)
				if sound(f) {
					v = 1000
				}
				pcm = binary.LittleEndian.AppendUint16(binary.LittleEndian.AppendUint16(pcm, v), v)
			}
		}
		if err := os.WriteFile(s.logs[name], log.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.pcmPath(name), pcm, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, want := s.onsets(name, 0, 1e10), at(blipFrom); len(got) != 1 || abs(got[0]-want) > 1000 {
			t.Errorf("blocks from frame %d: onsets %v, want [%d]", offset, got, want)
		}
	}
}
