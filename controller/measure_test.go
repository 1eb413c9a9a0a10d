package controller

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tutti-audio/tutti/audiogen"
)

// BenchmarkAnalysisLoudness is what measuring the loudness adds to a song's
// analysis: 30 s of music-like audio (a chord over noise) decoded from
// each format, with and without the meter.
func BenchmarkAnalysisLoudness(b *testing.B) {
	dir := b.TempDir()
	const rate, seconds = 44100, 30
	r := rand.New(rand.NewPCG(1, 2))
	var w bytes.Buffer
	err := audiogen.WriteWAV(&w, rate, seconds*rate, func(i int64) audiogen.Frame {
		t := float64(i) / rate
		v := 0.2*math.Sin(2*math.Pi*220*t) + 0.15*math.Sin(2*math.Pi*277*t) + 0.1*math.Sin(2*math.Pi*330*t) + 0.05*(r.Float64()*2-1)
		return audiogen.Frame{L: int16(v * 32767), R: int16(v * 30000)}
	})
	if err != nil {
		b.Fatal(err)
	}
	wav := filepath.Join(dir, "song.wav")
	if err := os.WriteFile(wav, w.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	files := map[string]string{"wav": wav}
	for format, cmd := range map[string][]string{
		"flac": {"flac", "--silent", "-o", filepath.Join(dir, "song.flac"), wav},
		"mp3":  {"lame", "--quiet", "-b", "192", wav, filepath.Join(dir, "song.mp3")},
		"ogg":  {"oggenc", "--quiet", "-o", filepath.Join(dir, "song.ogg"), wav},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v %s", cmd, err, out)
		}
		files[format] = filepath.Join(dir, "song."+format)
	}
	for _, format := range []string{"wav", "flac", "mp3", "ogg"} {
		for _, measure := range []bool{false, true} {
			name := format + map[bool]string{false: "/plain", true: "/measured"}[measure]
			b.Run(name, func(b *testing.B) {
				for b.Loop() {
					f, err := os.Open(files[format])
					if err != nil {
						b.Fatal(err)
					}
					var meter *songMeter
					if measure {
						meter = new(songMeter)
					}
					if _, _, err := countFrames(f, format, meter); err != nil {
						b.Fatal(err)
					}
					f.Close()
					if measure && meter.replayGain() == nil {
						b.Fatal("nothing measured")
					}
				}
			})
		}
	}
}
