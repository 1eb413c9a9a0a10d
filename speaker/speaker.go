// Package speaker is tutti's speaker role: it follows the timeline of the
// session it is assigned to from retained MQTT state, syncs its clock with
// the time master, caches the session's songs from the song server, and
// plays them through an Output at the instants the timeline says.
package speaker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

const (
	// DefaultCacheMax suits an SD card: about 25 hours of MP3 or 2 of WAV.
	DefaultCacheMax = 1 << 30
	// DefaultGrace outlasts a broker restart and a controller failover
	// (a few seconds), during which speakers play on from the timeline.
	DefaultGrace = 10 * time.Second
)

// Options configure a Speaker.
type Options struct {
	Name string // speaker id, protocol.ValidName; also its MQTT username
	// Session is the session the speaker asks to play, default
	// protocol.DefaultSession: it plays it until its assignment (retained
	// on protocol.AssignTopic(Name)) arrives, and follows the assignment
	// from then on.
	Session            string
	BrokerURL          string // "tcp://127.0.0.1:1883"
	Username, Password string // "" for anonymous demo brokers
	CacheDir           string // verified song cache (songs/<sha256>), temp files inside
	Output             Output
	Volume             int         // own volume 1-100 until an assignment sets it; 0 means the default, 100
	Clock              clock.Clock // nil = real time; timers too
	Logger             *slog.Logger
	HTTPClient         *http.Client // for song downloads; nil = one that trusts TLS (or the system's roots)
	// TLS, if set, is trusted for a tls:// BrokerURL and for song servers
	// over HTTPS (the hub's CA).
	TLS *tls.Config
	// CacheMax caps the song cache in bytes: the least recently used songs
	// go, never the current or next one. Default DefaultCacheMax. Songs
	// also go when the disk has less free than a song needs plus a margin
	// (cacheFreeMargin), whatever the cap.
	CacheMax int64
	// FreeSpace reads how many bytes the disk holding the cache directory
	// has free; nil = statfs.
	FreeSpace func(dir string) (int64, error)
	// Grace is how long the speaker plays on while it hears nothing from the
	// time master (no clock answers: the broker or the network is away);
	// then it goes silent rather than miss a pause, until contact is back.
	// Default DefaultGrace.
	Grace time.Duration
	// OnState, if set, is called with every new session state the speaker
	// accepts, when it accepts it; benchmarks measure fan-out with it. It
	// must not block.
	OnState func(protocol.SessionState)
	// PeerAddr is where the speaker serves its verified song cache to other
	// speakers (GET/HEAD /songs/<sha256> with the lease's fetch token), so
	// that songs survive the controller's host being away: "127.0.0.1:0",
	// ":7654". "" = do not serve.
	PeerAddr string
	// PeerURL is the base other speakers fetch songs from (it ends in
	// "/songs/"), advertised in the status. Default "http://" + the bound
	// address + "/songs/"; set it when PeerAddr binds all interfaces.
	PeerURL string
	// Calibration is the output latency calibration: how much later than
	// the Output reports a block is really heard (DAC, amplifier, a
	// Bluetooth hop; negative: earlier), within ±protocol.MaxCalibrationMs.
	// Every block is rendered for its reported instant plus Calibration. A
	// calibrate command changes it and saves it in CacheDir; a saved one
	// wins over this value, since it is what the user set last: this is
	// the value until the first calibrate command.
	Calibration time.Duration
	// BitExact places the song by whole frames: between corrections the
	// output is the song's frames bit for bit, but up to half a frame
	// (11 µs at 44.1 kHz) off the timeline. By default the placement is to
	// the fraction of a frame, through a fixed cubic interpolation
	// (slide.go).
	BitExact bool
}

// Speaker is one speaker process's role.
type Speaker struct {
	name     string
	opts     Options
	clock    clock.Clock
	log      *slog.Logger
	instance string
	output   Output
	eng      *engine
	cache    *cache
	client   mqtt.Client
	peerIdle time.Duration // the cache server's idle timeout: peerIdleTimeout, shorter in tests

	probeWake   chan struct{}
	fetchWake   chan struct{}
	statusWake  chan struct{}
	sessionWake chan struct{} // the session to subscribe changed (see sessionLoop)
	connected   atomic.Bool   // a new connection, with no session subscribed yet

	// Lock order: applyMu or calibrationMu, then mu, then the engine's and
	// the cache's own locks (mu is held while the engine takes a clock
	// estimate or tells which playlist it holds). Never the other way.
	mu sync.Mutex
	// session is the session the speaker plays ("" = none): Options.Session
	// until an assignment says otherwise. ownVolume is its own volume.
	session     string
	ownVolume   int
	follower    *clocksync.Follower // the time master's clock, as we know it
	lastModel   clocksync.Model
	jittery     bool // the link the clock probes take, as the last answer judged it
	fence       fence
	acks        acks
	peers       map[string]string // other online speakers' PeerURL by id
	peersWanted atomic.Bool       // subscribed to the other speakers' statuses (see wantPeers)
	peerURL     string            // this speaker's, once it serves
	replicas    replicaQueue
	calibration time.Duration // in effect (Options.Calibration)

	calibrationMu sync.Mutex      // one calibrate command at a time
	restart       chan mqtt.Token // a restart command's reply, sent: Run stops

	// applyMu makes the session state and playlist handlers apply one
	// message at a time, in the order they pass the fence (paho runs
	// handlers concurrently).
	applyMu sync.Mutex
}

func New(opts Options) (*Speaker, error) {
	if err := protocol.ValidName(opts.Name); err != nil {
		return nil, fmt.Errorf("speaker name: %w", err)
	}
	if opts.Session == "" {
		opts.Session = protocol.DefaultSession
	}
	if err := protocol.ValidName(opts.Session); err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	if opts.BrokerURL == "" {
		return nil, errors.New("speaker: no broker URL")
	}
	if opts.Output == nil {
		return nil, errors.New("speaker: no output")
	}
	if rate := opts.Output.SampleRate(); rate <= 0 {
		return nil, fmt.Errorf("speaker: output %s has sample rate %d", opts.Output.Name(), rate)
	}
	if opts.CacheDir == "" {
		return nil, errors.New("speaker: no cache directory")
	}
	if opts.PeerURL != "" && opts.PeerAddr == "" {
		return nil, errors.New("speaker: a peer URL but no peer address to serve on")
	}
	if opts.PeerURL != "" && !strings.HasSuffix(opts.PeerURL, "/") {
		opts.PeerURL += "/"
	}
	if opts.Volume == 0 {
		opts.Volume = 100
	}
	if opts.Volume < 0 || opts.Volume > 100 {
		return nil, fmt.Errorf("speaker: volume %d out of 0-100", opts.Volume)
	}
	if err := checkCalibration(opts.Calibration); err != nil {
		return nil, fmt.Errorf("speaker: %w", err)
	}
	opts.Clock = clock.Or(opts.Clock)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: opts.TLS}}
	}
	c, err := newCache(opts.CacheDir, opts.HTTPClient)
	if err != nil {
		return nil, err
	}
	if o, ok := opts.Output.(localClockUser); ok {
		o.useLocalClock(opts.Clock)
	}
	log := opts.Logger.With("speaker", opts.Name)
	instance := make([]byte, 8)
	rand.Read(instance)
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.CacheMax <= 0 {
		opts.CacheMax = DefaultCacheMax
	}
	c.maxBytes = opts.CacheMax
	c.log = log
	if opts.FreeSpace != nil {
		c.freeSpace = opts.FreeSpace
	}
	calibration := opts.Calibration
	switch saved, ok, err := loadCalibration(opts.CacheDir); {
	case err != nil:
		log.Warn("saved calibration ignored", "err", err, "calibration", calibration)
	case ok:
		calibration = saved
	}
	place := subframe
	if opts.BitExact {
		place = wholeFrames
	}
	eng := newEngine(opts.Output.SampleRate(), opts.Volume, place, c, log)
	eng.grace = opts.Grace
	eng.calibration = calibration
	fetchWake, statusWake := make(chan struct{}, 1), make(chan struct{}, 1)
	eng.fetchWake, eng.statusWake = fetchWake, statusWake
	c.statusWake = statusWake
	s := &Speaker{
		name: opts.Name, session: opts.Session, opts: opts, clock: opts.Clock, log: log,
		instance: hex.EncodeToString(instance), output: opts.Output,
		ownVolume:   opts.Volume,
		eng:         eng,
		cache:       c,
		probeWake:   make(chan struct{}, 1),
		fetchWake:   fetchWake,
		statusWake:  statusWake,
		sessionWake: make(chan struct{}, 1),
		peers:       map[string]string{},
		follower:    clocksync.NewFollower(followConfig, clocksync.LocalNs(opts.Clock.Now().UnixNano())),
		peerIdle:    peerIdleTimeout,
		calibration: calibration,
		restart:     make(chan mqtt.Token, 1),
	}
	c.keep = func() map[string]bool {
		now, synced := s.sharedNow()
		if !synced {
			return nil // nothing is fetched before the clock is synced
		}
		return s.wantedSongs(now)
	}
	s.client = mqtt.NewClient(s.clientOptions())
	return s, nil
}

// Run connects and plays until ctx is done; it returns after all its
// goroutines ended, with the output's error if the output failed. After a
// restart command it stops the same way (its status says offline) and
// returns ErrRestart: the caller is to start the speaker again.
func (s *Speaker) Run(ctx context.Context) error {
	var peerListener net.Listener
	if s.opts.PeerAddr != "" {
		ln, err := net.Listen("tcp", s.opts.PeerAddr)
		if err != nil {
			return fmt.Errorf("speaker: serving songs to peers: %w", err)
		}
		peerListener = ln
		url := s.opts.PeerURL
		if url == "" {
			url = defaultPeerURL(ln.Addr().(*net.TCPAddr), s.opts.BrokerURL)
		}
		s.mu.Lock()
		s.peerURL = url
		s.mu.Unlock()
	}
	client := s.client
	client.Connect() // keeps retrying in the background; OnConnect does the rest

	g, gctx := errgroup.WithContext(ctx)
	if peerListener != nil {
		srv := s.peerServer()
		g.Go(func() error {
			if err := srv.Serve(peerListener); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving songs to peers: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			srv.Close() // a peer's download breaks off: it fetches from another source
			return nil
		})
	}
	g.Go(func() error {
		if err := s.output.Run(gctx, s.eng); err != nil {
			return fmt.Errorf("output %s: %w", s.output.Name(), err)
		}
		return nil
	})
	g.Go(func() error { s.probeLoop(gctx, client); return nil })
	g.Go(func() error { s.statusLoop(gctx, client); return nil })
	g.Go(func() error { s.fetchLoop(gctx); return nil })
	g.Go(func() error { s.sessionLoop(gctx, client); return nil })
	g.Go(func() error {
		select {
		case <-gctx.Done():
			return nil
		case reply := <-s.restart:
			reply.WaitTimeout(2 * time.Second) // the reply goes out first
			return ErrRestart
		}
	})
	err := g.Wait()

	if client.IsConnectionOpen() {
		offline := s.statusMessage()
		offline.Online = false
		client.Publish(protocol.SpeakerStatusTopic(s.name), 1, true, protocol.Encode(offline)).WaitTimeout(time.Second)
	}
	client.Disconnect(250)
	s.eng.close()
	return err
}

func (s *Speaker) clientOptions() *mqtt.ClientOptions {
	will := protocol.SpeakerStatus{V: protocol.Version, ID: s.name, Online: false, Instance: s.instance,
		Session: s.session, Volume: s.opts.Volume, Output: s.output.Name()}
	o := mqttclient.Options(s.opts.BrokerURL, s.name, s.opts.Username, s.opts.Password).
		SetOrderMatters(false).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetBinaryWill(protocol.SpeakerStatusTopic(s.name), protocol.Encode(will), 1, true).
		SetTLSConfig(s.opts.TLS)
	o.SetOnConnectHandler(s.onConnect)
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		s.log.Warn("broker connection lost; reconnecting", "err", err)
	})
	return o
}

// onConnect subscribes again (clean sessions lose subscriptions), has the
// session loop subscribe the session, restarts the clock probe burst and
// announces the speaker.
func (s *Speaker) onConnect(c mqtt.Client) {
	s.log.Info("connected to broker", "broker", s.opts.BrokerURL)
	subs := map[string]byte{
		protocol.AssignTopic(s.name):         1,
		protocol.ControllerStatusTopic:       1,
		protocol.LeaseTopic:                  1,
		protocol.LibrarySongFilter:           1,
		protocol.ClockResponseTopic(s.name):  0,
		protocol.SpeakerCommandTopic(s.name): 1,
	}
	if s.peersWanted.Load() {
		subs[protocol.SpeakerStatusFilter] = 1
	}
	if err := mqttclient.Subscribe(c, subs, s.onMessage, 5*time.Second); err != nil {
		s.log.Error("subscribing to the controller's topics failed; the speaker stays silent", "err", err)
	}
	s.connected.Store(true)
	s.wake(s.sessionWake)
	s.mu.Lock()
	s.follower.Reconnected(s.localNow())
	s.mu.Unlock()
	s.wake(s.probeWake)
	s.wake(s.statusWake)
}

// onMessage runs on paho's goroutines (possibly several at once): it never blocks.
func (s *Speaker) onMessage(_ mqtt.Client, m mqtt.Message) {
	var err error
	topic := m.Topic()
	speaker, fromSpeaker := protocol.SpeakerFromTopic(topic)
	session, ofSession := protocol.SessionFromTopic(topic)
	song, isSong := strings.CutPrefix(topic, protocol.LibrarySongTopic(""))
	switch {
	case topic == protocol.ClockResponseTopic(s.name):
		err = s.onClockResponse(m.Payload())
	case ofSession && topic == protocol.SessionStateTopic(session):
		err = s.onState(session, m.Payload())
	case ofSession && topic == protocol.PlaylistTopic(session):
		err = s.onPlaylist(session, m.Payload())
	case ofSession && topic == protocol.AnnounceTopic(session):
		err = s.onAnnouncement(session, m.Payload())
	case topic == protocol.AssignTopic(s.name):
		err = s.onAssignment(m.Payload())
	case topic == protocol.SpeakerCommandTopic(s.name):
		s.onCommand(m.Payload())
	case topic == protocol.ControllerStatusTopic:
		err = s.onControllerStatus(m.Payload())
	case topic == protocol.LeaseTopic:
		err = s.onLease(m.Payload())
	case fromSpeaker && topic == protocol.SpeakerStatusTopic(speaker):
		err = s.onPeerStatus(speaker, m.Payload())
	case isSong:
		err = s.onLibrarySong(song, m.Payload(), m.Retained())
	}
	if err != nil {
		s.log.Warn("ignoring message", "topic", m.Topic(), "err", err)
	}
}

func (s *Speaker) wake(ch chan struct{}) { wake(ch) }

// wake signals a loop's wake channel (capacity 1) without blocking: a
// signal already pending covers this one. A nil channel is no one's.
func wake(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
