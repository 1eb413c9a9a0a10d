package speaker

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tutti-audio/tutti/audiogen"
)

// encodeTune writes seconds of a 44.1 kHz song of sample as WAV and encodes
// it with the command enc makes of (wav, out); it returns out.
func encodeTune(t testing.TB, seconds int, sample func(int64) audiogen.Frame, ext string, enc func(wav, out string) []string) string {
	t.Helper()
	dir := t.TempDir()
	wav := filepath.Join(dir, "in.wav")
	f, err := os.Create(wav)
	if err != nil {
		t.Fatal(err)
	}
	err = audiogen.WriteWAV(f, 44100, int64(seconds)*44100, sample)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out."+ext)
	args := enc(wav, out)
	if b, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", args[0], err, b)
	}
	return out
}

var tuneEncoders = map[string]func(wav, out string) []string{
	"flac": func(wav, out string) []string { return []string{"flac", "--silent", "--force", "-o", out, wav} },
	"mp3":  func(wav, out string) []string { return []string{"lame", "--quiet", "-b", "192", wav, out} },
	"ogg":  func(wav, out string) []string { return []string{"oggenc", "--quiet", "-o", out, wav} },
	"opus": func(wav, out string) []string { return []string{"opusenc", "--quiet", "--bitrate", "128", wav, out} },
}

func BenchmarkPlayerRead(b *testing.B) {
	for _, format := range []string{"flac", "mp3", "ogg", "opus"} {
		for _, outHz := range []int{44100, 48000} {
			b.Run(format+"/"+strconv.Itoa(outHz), func(b *testing.B) {
				path := encodeTune(b, 20, audiogen.Tune(3, 44100), format, tuneEncoders[format])
				files := newTestIndexer(b, path)
				buf := make([][2]float64, outHz/100)
				var p *songPlayer
				want := 0.0
				b.ResetTimer()
				for range b.N {
					if p == nil {
						var err error
						if p, err = openSong("x", path, nil, files, outHz, 0, subframe); err != nil {
							b.Fatal(err)
						}
						want = 0
					}
					if err := p.read(buf, want, 100, 1<<62); err != nil {
						b.Fatal(err)
					}
					want += float64(len(buf))
					if want > 15*float64(outHz) {
						p.close()
						p = nil
					}
				}
			})
		}
	}
}

func newTestIndexer(t testing.TB, path string) func(string) (*mp3Index, error) {
	return func(string) (*mp3Index, error) {
		index, _, err := indexSongFile(path)
		return index, err
	}
}
