//go:build bench

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/internal/musicgen"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// benchLibrary measures a music folder of many files: the first scan beside
// sha256sum over the same files (in the same run, so the machine's load
// counts alike), the rescan of the unchanged folder by a restarted
// controller, search and browse latency as a client sees it, and the
// controller's memory.
func benchLibrary(ctx context.Context, b *bench, args []string) error {
	fs := b.flags()
	files := fs.Int("files", 20000, "songs in the generated library")
	seconds := fs.Float64("song-seconds", 8, "length of each song (half FLAC, half MP3)")
	queries := fs.Int("queries", 200, "search and browse requests timed")
	tutti := fs.String("tutti", tuttiBinary(), "the tutti binary to run the controller with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *files < 10 || *seconds <= 0 || *queries < 1 {
		return fmt.Errorf("want at least 10 files, songs of some length and 1 query")
	}
	dir, err := tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.header("a music folder of %d songs of %.0f s (FLAC and MP3, Artist/Album/NN Title)", *files, *seconds)
	music := filepath.Join(dir, "music")
	r, err := musicgen.NewRetagger(dir, *seconds)
	if err != nil {
		return err
	}
	paths, err := r.WriteLibrary(music, *files)
	if err != nil {
		return err
	}
	var bytes int64
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		bytes += info.Size()
	}
	mb := float64(bytes) / 1e6
	fmt.Fprintf(b.stdout, "library: %d files, %.0f MB\n", len(paths), mb)

	// sha256sum before and after the scan: the mean is its figure.
	sum1, err := timeSHA256Sum(ctx, music)
	if err != nil {
		return err
	}

	quiet := b.quiet()
	brokerURL, stopBroker, err := startBenchBroker(ctx, filepath.Join(dir, "broker"), quiet)
	if err != nil {
		return err
	}
	defer stopBroker()

	scans, err := watchScans(ctx, brokerURL)
	if err != nil {
		return err
	}
	defer scans.close()
	startController := func() (*childProc, error) {
		return startChild("controller", *tutti, filepath.Join(dir, "controller.log"), "controller", "--broker", brokerURL,
			"--data", filepath.Join(dir, "controller"), "--http", "127.0.0.1:0", "--open", "--name", "library",
			"--music", music)
	}
	start := time.Now()
	ctrl, err := startController()
	if err != nil {
		return err
	}
	defer func() { ctrl.stop() }()
	first, err := scans.untilDone(ctx, ctrl, *files, "", 30*time.Minute)
	if err != nil {
		return fmt.Errorf("first scan: %w", err)
	}
	scan := time.Since(start)
	sum2, err := timeSHA256Sum(ctx, music)
	if err != nil {
		return err
	}
	sum := (sum1 + sum2) / 2
	scanMBs, sumMBs := mb/scan.Seconds(), mb/sum.Seconds()
	fmt.Fprintf(b.stdout, "first scan: %.1f s, %.0f files/s, %.0f MB/s; sha256sum over the same files %.1f s, %.0f MB/s (%.1f and %.1f s): scan at %.2fx\n",
		scan.Seconds(), float64(*files)/scan.Seconds(), scanMBs, sum.Seconds(), sumMBs, sum1.Seconds(), sum2.Seconds(), scanMBs/sumMBs)

	c, err := dialCommander(ctx, brokerURL)
	if err != nil {
		return err
	}
	defer c.close()
	searchLat, browseLat, err := timeQueries(ctx, c, *queries, *files)
	if err != nil {
		return err
	}
	use, err := readProc(ctrl.pid())
	if err != nil {
		return err
	}
	rssMB := float64(use.rssKB) / 1024
	fmt.Fprintf(b.stdout, "search: %s\nbrowse: %s\ncontroller RSS after the scan and the queries: %.1f MB\n", searchLat, browseLat, rssMB)

	ctrl.stop()
	start = time.Now()
	if ctrl, err = startController(); err != nil {
		return err
	}
	if _, err := scans.untilDone(ctx, ctrl, *files, first, 10*time.Minute); err != nil {
		return fmt.Errorf("rescan: %w", err)
	}
	rescan := time.Since(start)
	fmt.Fprintf(b.stdout, "rescan of the unchanged library by a restarted controller: %.2f s\n", rescan.Seconds())
	b.result(map[string]any{
		"files": *files, "library_mb": mb, "scan_s": scan.Seconds(), "scan_files_per_s": float64(*files) / scan.Seconds(),
		"scan_mb_per_s": scanMBs, "sha256sum_mb_per_s": sumMBs, "scan_ratio_sha256sum": scanMBs / sumMBs,
		"rescan_s": rescan.Seconds(), "search_p50_ms": searchLat.P50Ms, "search_p99_ms": searchLat.P99Ms,
		"browse_p50_ms": browseLat.P50Ms, "browse_p99_ms": browseLat.P99Ms, "controller_rss_mb": rssMB,
	})
	return nil
}

// timeSHA256Sum times Debian's sha256sum over every file below dir, as
// many files per process as xargs passes.
func timeSHA256Sum(ctx context.Context, dir string) (time.Duration, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, "sh", "-c", `find "$1" -type f -print0 | xargs -0 sha256sum >/dev/null`, "sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("sha256sum: %v %s", err, out)
	}
	return time.Since(start), nil
}

// timeQueries times n searches and n browse requests (artists, an artist's
// albums, an album's tracks, recently added, in turn) from the reply a
// client receives.
func timeQueries(ctx context.Context, c *commander, n, files int) (search, browse playlog.Stats, err error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s, br durations
	albums := files / 10
	for i := range n {
		words := []string{fmt.Sprintf("song %d", rng.IntN(10)+1), fmt.Sprintf("album %d", rng.IntN(albums)),
			fmt.Sprintf("artist %d", rng.IntN(albums/3+1)), "song", "alb"}
		req := protocol.Request{Cmd: protocol.CmdSearch, Query: words[i%len(words)]}
		lat, err := timeRequest(ctx, c, req)
		if err != nil {
			return search, browse, err
		}
		s = append(s, lat)
		album := rng.IntN(albums)
		artist := album / 3
		var breq protocol.Request
		switch i % 4 {
		case 0:
			breq = protocol.Request{Cmd: protocol.CmdArtists, Offset: rng.IntN(max(1, albums/3-50))}
		case 1:
			breq = protocol.Request{Cmd: protocol.CmdAlbums, Link: protocol.ArtistURI(protocol.ArtistID(fmt.Sprintf("Artist %d", artist)))}
		case 2:
			breq = protocol.Request{Cmd: protocol.CmdTracks, Link: protocol.AlbumURI(protocol.AlbumID(fmt.Sprintf("Artist %d", artist), fmt.Sprintf("Album %d", album)))}
		case 3:
			breq = protocol.Request{Cmd: protocol.CmdRecent}
		}
		if lat, err = timeRequest(ctx, c, breq); err != nil {
			return search, browse, err
		}
		br = append(br, lat)
	}
	return s.stats(), br.stats(), nil
}

// queryPace spaces the timed requests: the controller takes 20 commands a
// second from one client on one topic, and a request refused for its rate
// would time nothing.
const queryPace = 60 * time.Millisecond

// timeRequest sends a library request and times its ok reply.
func timeRequest(ctx context.Context, c *commander, req protocol.Request) (time.Duration, error) {
	time.Sleep(queryPace)
	sent, err := c.send(ctx, protocol.LibraryCommandTopic, req)
	if err != nil {
		return 0, err
	}
	r, err := sent.await(ctx)
	return r.at.Sub(sent.at), err
}

// scanWatch follows the controller's retained status for its scan's progress.
type scanWatch struct {
	conn   mqtt.Client
	status chan protocol.ControllerStatus
}

func watchScans(ctx context.Context, brokerURL string) (*scanWatch, error) {
	w := &scanWatch{status: make(chan protocol.ControllerStatus, 64)}
	w.conn = mqtt.NewClient(mqttclient.Options(brokerURL, "tutti-bench-scan-"+randomID(), "", "").SetAutoReconnect(false))
	if err := wait(ctx, w.conn.Connect(), 5*time.Second); err != nil {
		return nil, err
	}
	sub := w.conn.Subscribe(protocol.ControllerStatusTopic, 1, func(_ mqtt.Client, m mqtt.Message) {
		var st protocol.ControllerStatus
		if json.Unmarshal(m.Payload(), &st) == nil {
			select {
			case w.status <- st:
			default: // a later status follows
			}
		}
	})
	if err := wait(ctx, sub, 5*time.Second); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *scanWatch) close() { w.conn.Disconnect(100) }

// untilDone waits for a controller other than instance old to finish its
// first scan, finding files songs, and returns its instance.
func (w *scanWatch) untilDone(ctx context.Context, p *childProc, files int, old string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case st := <-w.status:
			if !st.Online || st.Instance == old || st.Scan == nil || !st.Scan.Done {
				continue
			}
			if st.Scan.Seen != files {
				return "", fmt.Errorf("the scan found %d songs of %d", st.Scan.Seen, files)
			}
			return st.Instance, nil
		case <-p.done:
			return "", p.exited()
		case <-deadline:
			return "", fmt.Errorf("no finished scan within %v (log: %s)", timeout, p.logTail())
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}
