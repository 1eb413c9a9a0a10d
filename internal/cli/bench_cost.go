//go:build bench

package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// benchCost runs one real speaker process (virtual output) against an
// in-process broker and controller, plays a FLAC and then an MP3 song
// through it, and reads its CPU time and resident memory from /proc.
func benchCost(ctx context.Context, b *bench, args []string) error {
	fs := b.flags()
	window := fs.Duration("window", 15*time.Second, "how long each format is measured")
	tutti := fs.String("tutti", tuttiBinary(), "the tutti binary to run the speaker with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, tool := range []string{"flac", "lame"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the %s encoder is needed to make the test songs: apt-get install flac lame", tool)
		}
	}
	b.header("one `tutti speaker --output virtual` process playing 44.1 kHz stereo FLAC, then MP3 (192 kbit/s), %s each", *window)
	dir, err := tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The songs: generated music, encoded by the reference encoders.
	songSeconds := int((*window + 15*time.Second).Seconds())
	wav := filepath.Join(dir, "music.wav")
	if err := writeSong(wav, generatedSong{seconds: songSeconds, sample: audiogen.Tune(3, benchRate)}); err != nil {
		return err
	}
	flacPath, mp3Path := filepath.Join(dir, "music.flac"), filepath.Join(dir, "music.mp3")
	for _, enc := range [][]string{
		{"flac", "--silent", "--force", "-o", flacPath, wav},
		{"lame", "--quiet", "-b", "192", wav, mp3Path},
	} {
		if out, err := exec.CommandContext(ctx, enc[0], enc[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", enc[0], err, out)
		}
	}

	quiet := b.quiet()
	sys, err := startSystem(ctx, quiet, systemConfig{dir: dir, listen: "127.0.0.1:0", http: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer sys.stop()
	const name = "cost"
	logPath := filepath.Join(dir, "virtual.log")
	spk, err := startChild("tutti speaker", *tutti, filepath.Join(dir, "speaker.out"),
		"speaker", "--name", name, "--broker", sys.brokerURL, "--cache", filepath.Join(dir, "cache"),
		"--output", "virtual", "--virtual-log", logPath)
	if err != nil {
		return err
	}
	defer spk.stop()
	c, err := dialCommander(ctx, sys.brokerURL)
	if err != nil {
		return err
	}
	defer c.close()
	topic := protocol.SessionCommandTopic(protocol.DefaultSession)
	var songs []protocol.Song
	for _, path := range []string{flacPath, mp3Path} {
		song, _, err := upload(ctx, c.songs, path, true, quiet)
		if err != nil {
			return fmt.Errorf("upload %s: %w", filepath.Base(path), err)
		}
		if _, err := c.do(ctx, topic, protocol.Request{Cmd: protocol.CmdEnqueue, Song: song.SHA256}); err != nil {
			return err
		}
		songs = append(songs, song)
	}
	if _, err := c.do(ctx, topic, protocol.Request{Cmd: protocol.CmdPlay}); err != nil {
		return err
	}

	statuses, err := watchStatuses(ctx, sys.brokerURL, []string{name})
	if err != nil {
		return err
	}
	defer statuses.close()
	loads := map[string]procLoad{}
	for i, format := range []string{"flac", "mp3"} {
		if i > 0 {
			if _, err := c.do(ctx, topic, protocol.Request{Cmd: protocol.CmdNext}); err != nil {
				return err
			}
		}
		playing := func(st map[string]any) bool { return st["state"] == protocol.Playing && st["song"] == songs[i].SHA256 }
		if err := statuses.until(ctx, []string{name}, 30*time.Second, playing); err != nil {
			if exit := spk.exited(); exit != nil {
				return exit
			}
			return fmt.Errorf("%s: the speaker does not play: %w", format, err)
		}
		// Let the decoder and the caches warm up before measuring.
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
		start := time.Now()
		load, err := measureProc(ctx, spk.pid(), *window)
		if err != nil {
			return fmt.Errorf("reading /proc of the speaker: %w", err)
		}
		heard, underruns, err := soundIn(logPath, start, time.Now())
		if err != nil {
			return err
		}
		if heard < window.Seconds()/2 {
			return fmt.Errorf("%s: the speaker played only %.1f s of sound in %s", format, heard, *window)
		}
		loads[format] = load
		fmt.Fprintf(b.stdout, "%-4s (%.1f MB): %s; %.1f s of sound heard, %d underruns\n", format, float64(songs[i].Size)/1e6, load, heard, underruns)
	}
	worst := procLoad{}
	for _, l := range loads {
		worst.cpuPercent, worst.maxRSSMB = max(worst.cpuPercent, l.cpuPercent), max(worst.maxRSSMB, l.maxRSSMB)
	}
	fmt.Fprintf(b.stdout, "worst: %s\n", worst)
	b.result(map[string]any{
		"window_s":         window.Seconds(),
		"cpu_percent":      worst.cpuPercent,
		"rss_mb":           worst.maxRSSMB,
		"flac_cpu_percent": loads["flac"].cpuPercent, "flac_rss_mb": loads["flac"].maxRSSMB,
		"mp3_cpu_percent": loads["mp3"].cpuPercent, "mp3_rss_mb": loads["mp3"].maxRSSMB,
	})
	return nil
}

// soundIn reads a virtual device's log file and returns how many seconds of
// sound it heard between from and to, and how many underruns it logged.
func soundIn(path string, from, to time.Time) (seconds float64, underruns int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	frames := 0
	for sc.Scan() {
		var l playlog.Line
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.TNs < from.UnixNano() || l.TNs >= to.UnixNano() {
			continue
		}
		if l.Underrun {
			underruns++
		}
		frames += l.Sound
	}
	return float64(frames) / benchRate, underruns, sc.Err()
}
