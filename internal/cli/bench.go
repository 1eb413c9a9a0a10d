package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

func runBench(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: tutti bench sync [flags]")
	}
	switch args[0] {
	case "sync":
		return benchSync(ctx, e, args[1:])
	}
	return fmt.Errorf("unknown benchmark %q (have: sync)", args[0])
}

// lockedBuffer is a virtual device log kept in memory.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) reader() io.Reader {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.NewReader(bytes.Clone(b.buf.Bytes()))
}

// benchSync plays a timecode song on N speakers and measures from their
// virtual devices how far apart they play the same frame.
func benchSync(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench sync", "[flags]")
	speakers := fs.Int("speakers", 3, "number of speakers")
	seconds := fs.Int("seconds", 20, "seconds to measure")
	settle := fs.Duration("settle", 2*time.Second, "time after the first sound not measured")
	asJSON := fs.Bool("json", false, "print the figures as one JSON object on the last line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tutti-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	quiet := &env{stdout: e.stdout, stderr: e.stderr, log: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	logs := map[string]*lockedBuffer{}
	sys, err := startSystem(ctx, quiet, systemConfig{
		dir: dir, listen: "127.0.0.1:0", http: "127.0.0.1:0", speakers: *speakers,
		speakerLog: func(name string) io.Writer { logs[name] = &lockedBuffer{}; return logs[name] },
	})
	if err != nil {
		return err
	}
	song := generatedSong{file: "timecode.wav", seconds: *seconds + int(settle.Seconds()) + 10, sample: audiogen.Timecode}
	fmt.Fprintf(e.stdout, "sync: %d speakers, %d s, on %s/%s, %d CPUs\n", *speakers, *seconds, runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if _, err := sys.loadAndPlay(ctx, quiet, dir, []generatedSong{song}); err != nil {
		sys.stop()
		return err
	}
	select {
	case <-time.After(*settle + time.Duration(*seconds)*time.Second + 2*time.Second):
	case <-ctx.Done():
		sys.stop()
		return ctx.Err()
	}
	if err := sys.stop(); err != nil {
		return err
	}
	stats, err := measureSpread(sys.names, logs, 44100, *settle, time.Duration(*seconds)*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "skew between speakers: %s\n", stats)
	if *asJSON {
		fmt.Fprintln(e.stdout, string(protocol.Encode(map[string]any{
			"bench": "sync", "speakers": *speakers, "seconds": *seconds, "samples": stats.N,
			"skew_p50_ms": stats.P50Ms, "skew_p99_ms": stats.P99Ms, "skew_max_ms": stats.Max,
		})))
	}
	return nil
}

// measureSpread reads each speaker's log and measures the spread of the
// instants at which all of them heard the same frames, over the window that
// begins settle after the first speaker's first sound.
func measureSpread(names []string, logs map[string]*lockedBuffer, rate int, settle, window time.Duration) (playlog.Stats, error) {
	var ref []playlog.Block
	var others []*playlog.Timeline
	for i, name := range names {
		blocks, err := playlog.Read(logs[name].reader())
		if err != nil {
			return playlog.Stats{}, err
		}
		if len(blocks) == 0 {
			return playlog.Stats{}, fmt.Errorf("%s played no sound", name)
		}
		if i == 0 {
			ref = blocks
			continue
		}
		others = append(others, playlog.NewTimeline(blocks, rate))
	}
	from := ref[0].TNs + settle.Nanoseconds()
	stats := playlog.Summarize(playlog.Spread(ref, others, from, from+window.Nanoseconds()))
	if stats.N == 0 {
		return stats, fmt.Errorf("no frame was heard by all speakers")
	}
	return stats, nil
}
