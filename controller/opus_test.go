package controller

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tutti-audio/tutti/audiogen"
)

// TestAnalyzeCountsOpusFrames: an Opus file's frames, counted by decoding
// all of it, are the frames opusdec gives (pre-skip dropped, the end
// trimmed by the last granule), at 48 kHz, for music and for narrowband
// speech.
func TestAnalyzeCountsOpusFrames(t *testing.T) {
	for _, c := range []struct {
		name string
		rate int
		opts []string
	}{
		{"celt", 44100, []string{"--bitrate", "128"}},
		{"silk", 16000, []string{"--bitrate", "8", "--framesize", "60", "--downmix-mono"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			wav := filepath.Join(dir, "in.wav")
			f, err := os.Create(wav)
			if err != nil {
				t.Fatal(err)
			}
			if err := audiogen.WriteWAV(f, c.rate, int64(c.rate)*27/10+17, audiogen.Tune(1, c.rate)); err != nil {
				t.Fatal(err)
			}
			f.Close()
			opus := filepath.Join(dir, "song.opus")
			if b, err := exec.Command("opusenc", append(append([]string{"--quiet"}, c.opts...), wav, opus)...).CombinedOutput(); err != nil {
				t.Fatalf("opusenc (opus-tools): %v: %s", err, b)
			}
			raw := filepath.Join(dir, "ref.raw")
			if b, err := exec.Command("opusdec", "--quiet", "--rate", "48000", opus, raw).CombinedOutput(); err != nil {
				t.Fatalf("opusdec: %v: %s", err, b)
			}
			st, err := os.Stat(raw)
			if err != nil {
				t.Fatal(err)
			}
			channels := int64(2)
			if c.name == "silk" {
				channels = 1
			}
			want := st.Size() / (2 * channels) // 16-bit samples

			in, err := os.Open(opus)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			song, err := analyze(in)
			if err != nil {
				t.Fatal(err)
			}
			if song.Format != "opus" || song.SampleRate != 48000 || song.Frames != want {
				t.Errorf("analyzed as %s, %d frames at %d Hz; opusdec gives %d frames at 48000 Hz",
					song.Format, song.Frames, song.SampleRate, want)
			}
		})
	}
}
