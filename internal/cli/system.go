package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/broker"
	"github.com/tutti-audio/tutti/controller"
	"github.com/tutti-audio/tutti/homeassistant"
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
	// namePrefix goes before the speakers' names (speaker1, speaker2...),
	// so that systems on one broker one after the other do not share names.
	namePrefix string
	// hubURL, if set, is a broker with a controller already running
	// elsewhere: only the speakers are started, against it.
	hubURL string
	// lead is the controller's lead time; 0 means the controller's default.
	lead time.Duration
	// sessions the controller creates; nil means the default session.
	sessions []string
	// speakerLog, if set, receives each virtual device's block log.
	speakerLog func(name string) io.Writer
	// speakerSession, if set, names the session speaker i follows.
	speakerSession func(i int) string
	// fault, if set, gives speaker i a wrong clock: offset from real time
	// and a rate error, which its virtual DAC's crystal shares.
	fault func(i int) clockFault
	// speakerBroker, if set, gives the broker URL speaker name dials
	// instead of the broker's own (a fault-injecting proxy).
	speakerBroker func(name, brokerAddr string) (string, error)
	// onState, if set, sees every session state a speaker accepts.
	onState func(name string, st protocol.SessionState)
	// block is the virtual devices' block in frames; 0 means their default.
	block int
	// homeAssistant runs the Home Assistant bridge beside the controller.
	homeAssistant bool
}

// clockFault is how wrong a speaker's clock is.
type clockFault struct {
	offset time.Duration
	ppm    float64
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
	sys := &system{brokerURL: cfg.hubURL, broker: &errgroup.Group{}, stopBroker: func() {}}
	var c *controller.Controller
	if cfg.hubURL == "" {
		b, err := broker.New(broker.Options{Addr: cfg.listen, DataDir: filepath.Join(cfg.dir, "broker"), AllowAnonymous: true,
			AnswerClock: true, Logger: e.log.With("role", "broker")})
		if err != nil {
			return nil, err
		}
		sys.brokerURL = "tcp://" + b.Addr()
		c, err = controller.New(controller.Options{
			BrokerURL: sys.brokerURL, DataDir: filepath.Join(cfg.dir, "controller"), HTTPAddr: cfg.http,
			Lead: cfg.lead, Sessions: cfg.sessions, ClockFromBroker: true, Open: true, Logger: e.log.With("role", "controller"),
		})
		if err != nil {
			b.Close()
			return nil, err
		}
		sys.songsURL = c.SongsURL()
		brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
		sys.broker, brokerCtx = errgroup.WithContext(brokerCtx)
		sys.stopBroker = stopBroker
		sys.broker.Go(func() error { return b.Run(brokerCtx) })
	}
	clientsCtx, stopClients := context.WithCancel(ctx)
	g, ctx := errgroup.WithContext(clientsCtx)
	sys.clients, sys.clientsCtx, sys.stopClients = g, ctx, stopClients
	if c != nil {
		g.Go(func() error { return c.Run(ctx) })
	}
	if cfg.homeAssistant && cfg.hubURL == "" {
		bridge, err := homeassistant.New(homeassistant.Options{BrokerURL: sys.brokerURL, Version: version(), Logger: e.log.With("role", "homeassistant")})
		if err != nil {
			sys.stop()
			return nil, err
		}
		g.Go(func() error { return bridge.Run(ctx) })
	}
	for i := range cfg.speakers {
		sys.names = append(sys.names, cfg.namePrefix+speakerName(i))
		s, err := sys.newSpeaker(e, cfg, i)
		if err != nil {
			sys.stop()
			return nil, err
		}
		g.Go(func() error {
			// A speaker asked to restart (from Home Assistant, say)
			// starts again, as a supervisor restarts a speaker process.
			for {
				err := s.Run(ctx)
				if !errors.Is(err, speaker.ErrRestart) {
					return err
				}
				if s, err = sys.newSpeaker(e, cfg, i); err != nil {
					return err
				}
			}
		})
	}
	return sys, nil
}

// newSpeaker makes speaker i of cfg.
func (sys *system) newSpeaker(e *env, cfg systemConfig, i int) (*speaker.Speaker, error) {
	name := cfg.namePrefix + speakerName(i)
	out := speaker.VirtualOptions{Block: cfg.block}
	opts := speaker.Options{
		Name: name, BrokerURL: sys.brokerURL, CacheDir: filepath.Join(cfg.dir, name), PeerAddr: "127.0.0.1:0",
		Logger: e.log.With("role", "speaker"),
	}
	if cfg.speakerLog != nil {
		out.Log = cfg.speakerLog(name)
	}
	if cfg.speakerSession != nil {
		opts.Session = cfg.speakerSession(i)
	}
	if cfg.fault != nil {
		f := cfg.fault(i)
		opts.Clock = speaker.NewFaultClock(f.offset, f.ppm)
		out.PPM = f.ppm
	}
	if cfg.speakerBroker != nil {
		u, err := cfg.speakerBroker(name, strings.TrimPrefix(sys.brokerURL, "tcp://"))
		if err != nil {
			return nil, err
		}
		opts.BrokerURL = u
	}
	if cfg.onState != nil {
		opts.OnState = func(st protocol.SessionState) { cfg.onState(name, st) }
	}
	opts.Output = speaker.NewVirtualOutput(out)
	return speaker.New(opts)
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
	server, err := c.songServer(ctx) // the controller listens for commands from then on
	if err != nil {
		return nil, err
	}
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
		song, _, err := upload(ctx, server, path, true, e)
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
