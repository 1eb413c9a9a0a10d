package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/protocol"
)

// runDemo starts a whole tutti in this process (anonymous demo broker,
// controller, three speakers with virtual outputs), generates songs, plays
// them in a loop and shows live status until interrupted.
func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo", "[flags]")
	dir := fs.String("data", "tutti-data/demo", "data directory")
	listen := fs.String("listen", "127.0.0.1:1883", "MQTT listen address (remotes and mosquitto_pub connect here)")
	httpAddr := fs.String("http", "127.0.0.1:8080", "song server listen address")
	speakers := fs.Int("speakers", 3, "number of virtual speakers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	quiet := &env{stdout: e.stdout, stderr: e.stderr, log: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	sys, err := startSystem(ctx, quiet, systemConfig{dir: *dir, listen: *listen, http: *httpAddr, speakers: *speakers})
	if err != nil {
		return err
	}
	var songs []generatedSong
	for i, name := range []string{"morning", "tides", "lanterns", "northbound"} {
		songs = append(songs, generatedSong{file: fmt.Sprintf("%d-%s.wav", i+1, name), seconds: 40, sample: audiogen.Tune(i, 44100)})
	}
	if err := sys.loadAndPlay(ctx, quiet, filepath.Join(*dir, "music"), songs); err != nil {
		sys.stop()
		return err
	}
	fmt.Fprintf(e.stdout, "tutti demo: broker %s, songs %s\n", sys.brokerURL, sys.songsURL)
	sys.goClient(func(ctx context.Context) error { return showStatus(ctx, sys, e.stdout) })
	return sys.wait()
}

// showStatus subscribes to the session and speakers like any remote and
// prints what plays where, every second. When the playlist has ended it
// starts it again, so the demo plays until stopped.
func showStatus(ctx context.Context, sys *system, w io.Writer) error {
	var mu sync.Mutex
	var state protocol.SessionState
	var playlist protocol.Playlist
	speakers := map[string]protocol.SpeakerStatus{}
	f := clientFlags{timeout: 5 * time.Second, session: protocol.DefaultSession}
	f.mqtt.broker = sys.brokerURL
	c, err := dial(ctx, f)
	if err != nil {
		return err
	}
	defer c.close()
	c.conn.Subscribe(protocol.Root+"/#", 0, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case m.Topic() == protocol.SessionStateTopic(protocol.DefaultSession):
			state, _ = protocol.Decode[protocol.SessionState](m.Payload())
		case m.Topic() == protocol.PlaylistTopic(protocol.DefaultSession):
			playlist, _ = protocol.Decode[protocol.Playlist](m.Payload())
		default:
			if id, ok := protocol.SpeakerFromTopic(m.Topic()); ok && strings.HasSuffix(m.Topic(), "/status") {
				if st, err := protocol.Decode[protocol.SpeakerStatus](m.Payload()); err == nil {
					speakers[id] = st
				}
			}
		}
	})
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		mu.Lock()
		st := statusResult{State: state, Playlist: playlist}
		for _, s := range speakers {
			st.Speakers = append(st.Speakers, s)
		}
		mu.Unlock()
		sort.Slice(st.Speakers, func(i, j int) bool { return st.Speakers[i].ID < st.Speakers[j].ID })
		if isTerminal(w) {
			fmt.Fprint(w, "\033[H\033[2J")
		}
		fmt.Fprintf(w, "tutti demo  %s   broker %s   (Ctrl-C stops)\n\n", time.Now().Format("15:04:05"), sys.brokerURL)
		printStatus(w, st, time.Now())
		fmt.Fprintf(w, "\nclock skew bound between speakers: %.3f ms (sum of the two largest clock error bounds)\n", skewBound(st.Speakers))
		fmt.Fprintln(w, "try: mosquitto_pub -t tutti/session/home/cmd -m '{\"cmd\":\"pause\"}'   (or play, next, seek with \"position\":\"0:30\")")
		if st.State.State == protocol.Stopped && len(st.Playlist.Entries) > 0 {
			c.request(ctx, protocol.SessionCommandTopic(protocol.DefaultSession), protocol.Request{Cmd: protocol.CmdPlay})
		}
	}
}

// skewBound is the worst case distance between two speakers that the clock
// estimates allow: each speaker's offset is off by at most its error bound.
func skewBound(speakers []protocol.SpeakerStatus) float64 {
	var bounds []int64
	for _, s := range speakers {
		if s.Online {
			bounds = append(bounds, s.ClockErrorNs)
		}
	}
	sort.Slice(bounds, func(i, j int) bool { return bounds[i] > bounds[j] })
	var sum int64
	for _, b := range bounds[:min(2, len(bounds))] {
		sum += b
	}
	return float64(sum) / 1e6
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
