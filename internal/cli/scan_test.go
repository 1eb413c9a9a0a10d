package cli

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/controller"
	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/internal/testbroker"
)

// TestScanShowsProgressUntilDone runs `tutti scan` against a controller
// with a music folder: not on a terminal, it prints a line per report and
// ends when the scan it started is done. A second folder, a share
// unmounted since the first scan, is shown unavailable.
func TestScanShowsProgressUntilDone(t *testing.T) {
	music, nas := t.TempDir(), filepath.Join(t.TempDir(), "nas")
	for i, title := range []string{"One", "Two", "Three"} {
		path := filepath.Join(music, "Album", title+".flac")
		if title == "Three" {
			path = filepath.Join(nas, title+".flac")
		}
		if err := musicgen.Encode(path, musicgen.FLAC, musicgen.Tags{Title: title, Track: i + 1}, 0.5, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	_, broker := testbroker.Start(t, nil)
	c, err := controller.New(controller.Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), MusicDirs: []string{music, nas},
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	var out, errs bytes.Buffer
	// Until the controller holds the lease, the scan command is not obeyed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out.Reset()
		errs.Reset()
		scanCtx, scanCancel := context.WithTimeout(ctx, 20*time.Second)
		code := Main(scanCtx, []string{"scan", "--broker", broker, "--timeout", "2s"}, &out, &errs)
		scanCancel()
		if code == 0 || time.Now().After(deadline) {
			if code != 0 {
				t.Fatalf("tutti scan: exit %d\n%s%s", code, out.String(), errs.String())
			}
			break
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "scan done: 3 files in the music folders, 0 new or changed read") {
		t.Errorf("output:\n%s", out.String())
	}
	if !strings.HasPrefix(lines[0], "scanning: ") {
		t.Errorf("no progress line before the end:\n%s", out.String())
	}

	if err := os.Rename(nas, nas+"-away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(nas, 0o755); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := Main(ctx, []string{"scan", "--broker", broker, "--timeout", "2s"}, &out, &errs); code != 0 {
		t.Fatalf("tutti scan: exit %d\n%s%s", code, out.String(), errs.String())
	}
	want := "music folder unavailable: " + nas + " (empty, while 1 files were indexed in it"
	if !strings.Contains(out.String(), "scan done: 2 files") || !strings.Contains(out.String(), want) {
		t.Errorf("output with the share unmounted:\n%s\nwant a line starting %q", out.String(), want)
	}
}
