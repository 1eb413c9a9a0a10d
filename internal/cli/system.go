package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/broker"
	"github.com/tutti-audio/tutti/controller"
	"github.com/tutti-audio/tutti/protocol"
	"github.com/tutti-audio/tutti/speaker"
)

// systemConfig describes a whole tutti on one machine: an anonymous demo
// broker, a controller and speakers with virtual outputs, all in this
// process but talking over loopback TCP and HTTP like separate machines.
type systemConfig struct {
	dir      string // data directory
	listen   string // broker address
	http     string // song server address
	speakers int
	// speakerLog, if set, receives each virtual device's block log.
	speakerLog func(name string) io.Writer
}

// system is a running systemConfig.
type system struct {
	brokerURL, songsURL string
	names               []string
	clients             *errgroup.Group // controller, speakers, and whatever the command adds
	clientsCtx          context.Context // ends when the start ctx ended or a client failed
	stopClients         context.CancelFunc
	broker              *errgroup.Group
	stopBroker          context.CancelFunc
}

// wait returns when the start ctx ended or a part failed, after stop.
func (sys *system) wait() error {
	<-sys.clientsCtx.Done()
	return sys.stop()
}

// goClient runs f beside the controller and speakers, stopped with them.
func (sys *system) goClient(f func(ctx context.Context) error) {
	sys.clients.Go(func() error { return f(sys.clientsCtx) })
}

// stop stops the clients first, then the broker, so that nobody logs a lost
// connection on the way out, and returns the first error.
func (sys *system) stop() error {
	sys.stopClients()
	err := sys.clients.Wait()
	sys.stopBroker()
	if berr := sys.broker.Wait(); err == nil {
		err = berr
	}
	return err
}

func speakerName(i int) string { return fmt.Sprintf("speaker%d", i+1) }

func startSystem(ctx context.Context, e *env, cfg systemConfig) (*system, error) {
	b, err := broker.New(broker.Options{Addr: cfg.listen, DataDir: filepath.Join(cfg.dir, "broker"), AllowAnonymous: true, Logger: e.log.With("role", "broker")})
	if err != nil {
		return nil, err
	}
	sys := &system{brokerURL: "tcp://" + b.Addr()}
	c, err := controller.New(controller.Options{BrokerURL: sys.brokerURL, DataDir: filepath.Join(cfg.dir, "controller"), HTTPAddr: cfg.http, Logger: e.log.With("role", "controller")})
	if err != nil {
		b.Close()
		return nil, err
	}
	sys.songsURL = c.SongsURL()
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	sys.broker, brokerCtx = errgroup.WithContext(brokerCtx)
	sys.stopBroker = stopBroker
	sys.broker.Go(func() error { return b.Run(brokerCtx) })
	clientsCtx, stopClients := context.WithCancel(ctx)
	g, ctx := errgroup.WithContext(clientsCtx)
	sys.clients, sys.clientsCtx, sys.stopClients = g, ctx, stopClients
	g.Go(func() error { return c.Run(ctx) })
	for i := range cfg.speakers {
		name := speakerName(i)
		sys.names = append(sys.names, name)
		opts := speaker.VirtualOptions{}
		if cfg.speakerLog != nil {
			opts.Log = cfg.speakerLog(name)
		}
		s, err := speaker.New(speaker.Options{
			Name: name, BrokerURL: sys.brokerURL, CacheDir: filepath.Join(cfg.dir, name),
			Output: speaker.NewVirtualOutput(opts), Logger: e.log.With("role", "speaker", "speaker", name),
		})
		if err != nil {
			sys.stopClients()
			sys.stopBroker()
			return nil, err
		}
		g.Go(func() error { return s.Run(ctx) })
	}
	return sys, nil
}

// loadAndPlay writes generated songs into dir, loads them, replaces the
// session's playlist with them and starts playing, through the same MQTT and
// HTTP paths a remote uses. It returns the library's records of the songs.
func (sys *system) loadAndPlay(ctx context.Context, e *env, dir string, songs []generatedSong) ([]protocol.Song, error) {
	f := clientFlags{timeout: 10 * time.Second, session: protocol.DefaultSession}
	f.mqtt.broker = sys.brokerURL
	var c *client
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err = dial(ctx, f); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	defer c.close()
	session := protocol.SessionCommandTopic(protocol.DefaultSession)
	if _, err := c.request(ctx, session, protocol.Request{Cmd: protocol.CmdClear}); err != nil {
		return nil, err
	}
	var loaded []protocol.Song
	for _, s := range songs {
		path := filepath.Join(dir, s.file)
		if err := writeSong(path, s); err != nil {
			return nil, err
		}
		song, _, err := upload(ctx, sys.songsURL, path, true, e)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", s.file, err)
		}
		r, err := c.request(ctx, session, protocol.Request{Cmd: protocol.CmdEnqueue, Song: song.SHA256})
		if err != nil {
			return nil, err
		}
		if !r.OK {
			return nil, fmt.Errorf("enqueue %s: %s", s.file, r.Error)
		}
		loaded = append(loaded, song)
	}
	r, err := c.request(ctx, session, protocol.Request{Cmd: protocol.CmdPlay})
	if err == nil && !r.OK {
		err = fmt.Errorf("play: %s", r.Error)
	}
	return loaded, err
}

// generatedSong is a song the demo or a benchmark makes itself.
type generatedSong struct {
	file    string
	seconds int
	sample  func(i int64) audiogen.Frame
}

func writeSong(path string, s generatedSong) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := audiogen.WriteWAV(f, 44100, int64(s.seconds)*44100, s.sample); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
