package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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
	// A Mosquitto service (installed for the tests) or another program may
	// hold the default ports: move to the next free ones rather than fail.
	for _, a := range []*string{listen, httpAddr} {
		if free := nextFreeAddr(*a); free != *a {
			fmt.Fprintf(e.stdout, "%s is taken; using %s\n", *a, free)
			*a = free
		}
	}
	quiet := &env{stdout: e.stdout, stderr: e.stderr, log: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	meter := newSkewMeter(44100)
	sys, err := startSystem(ctx, quiet, systemConfig{dir: *dir, listen: *listen, http: *httpAddr, speakers: *speakers, homeAssistant: true,
		speakerLog: func(name string) io.Writer { return meter.logFor(name) }})
	if err != nil {
		return err
	}
	var songs []generatedSong
	for i, name := range []string{"morning", "tides", "lanterns", "northbound"} {
		songs = append(songs, generatedSong{file: fmt.Sprintf("%d-%s.wav", i+1, name), seconds: 40, sample: audiogen.Tune(i, 44100)})
	}
	loaded, err := sys.loadAndPlay(ctx, quiet, filepath.Join(*dir, "music"), songs)
	if err != nil {
		sys.stop()
		return err
	}
	for i, song := range loaded {
		meter.addSong(song.SHA256, songs[i].sample)
	}
	fmt.Fprintf(e.stdout, "tutti demo: broker %s, songs %s\n", sys.brokerURL, sys.songsURL)
	sys.goClient(func(ctx context.Context) error { return showStatus(ctx, sys, meter, e.stdout) })
	return sys.wait()
}

// showStatus subscribes to the session and speakers like any remote and
// prints what plays where and the skew the meter measures, every second.
// When the playlist has ended it starts it again, so the demo plays until
// stopped.
func showStatus(ctx context.Context, sys *system, meter *skewMeter, w io.Writer) error {
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
			meter.setTimeline(state, playlist)
		case m.Topic() == protocol.PlaylistTopic(protocol.DefaultSession):
			playlist, _ = protocol.Decode[protocol.Playlist](m.Payload())
			meter.setTimeline(state, playlist)
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
		if skew, n := meter.skew(); n >= 2 {
			fmt.Fprintf(w, "\nskew between %d speakers, measured at their virtual DACs: %.3f ms\n", n, float64(skew)/1e6)
		} else {
			fmt.Fprintln(w, "\nskew: not measured (needs two speakers playing a demo song at volume 100)")
		}
		fmt.Fprintf(w, "try: mosquitto_pub -p %s -t tutti/session/home/cmd -m '{\"cmd\":\"pause\"}'   (or play, next, seek with \"position\":\"0:30\")\n", port(sys.brokerURL))
		if st.State.State == protocol.Stopped && len(st.Playlist.Entries) > 0 {
			c.request(ctx, protocol.SessionCommandTopic(protocol.DefaultSession), protocol.Request{Cmd: protocol.CmdPlay})
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// nextFreeAddr returns addr if it can be listened on, else the first of the
// next ten ports on the same host that can.
func nextFreeAddr(addr string) string {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	first, err := strconv.Atoi(portText)
	if err != nil || first == 0 {
		return addr
	}
	for p := first; p < first+10; p++ {
		candidate := net.JoinHostPort(host, strconv.Itoa(p))
		if l, err := net.Listen("tcp", candidate); err == nil {
			l.Close()
			return candidate
		}
	}
	return addr
}

func port(url string) string {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(url, "tcp://"))
	return p
}
