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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"

	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

// Timing of the speaker's background work.
const (
	probeBurst = 10 // clock probes right after connecting
	// DefaultCacheMax suits an SD card: about 25 hours of MP3 or 2 of WAV.
	DefaultCacheMax = 1 << 30
	// DefaultGrace outlasts a broker restart and a controller failover
	// (a few seconds), during which speakers play on from the timeline.
	DefaultGrace = 10 * time.Second
	// syncSamples is how many probe answers the speaker waits for before it
	// plays: the very first ones, sent while the connection warms up, tend
	// to have long round trips and so off estimates.
	syncSamples = 4
	// syncErrorBound is the clock error the speaker wants before it plays
	// (and after it muted for clockUncertain); it settles for up to
	// clockUncertain only after syncPatience of probing brought nothing
	// better (a network whose best round trip is over 4 ms). See clockGate.
	syncErrorBound = 2 * time.Millisecond
	syncPatience   = 1500 * time.Millisecond
	// clockUncertain is the error bound beyond which a playing speaker
	// mutes, and which it never plays with. A working network keeps the
	// bound under syncErrorBound, so only a fault crosses it, and the gap
	// keeps a bound near either from flapping; two speakers each within
	// 5 ms of the shared clock are within 10 ms of each other, about where
	// the delay between two rooms starts to sound like an echo.
	clockUncertain     = 5 * time.Millisecond
	probeBurstInterval = 20 * time.Millisecond
	// probeInterval keeps probing brisk: on a jittery network few probes
	// come near the minimum round trip, and the clock fit needs many (Wi-Fi
	// skew p99 0.7-1.2 ms at 500 ms, 0.35-0.55 ms at 200 ms).
	probeInterval = 200 * time.Millisecond
	// After the burst, probes come faster for a while: the clock model
	// needs some seconds of samples before it trusts a drift.
	probeFastInterval = 100 * time.Millisecond
	probeFastFor      = 10 * time.Second
	// clockJumpLog is how far the clock estimate must move at once to be
	// logged (at debug level).
	clockJumpLog    = 500 * time.Microsecond
	statusInterval  = 2 * time.Second
	statusCheck     = 100 * time.Millisecond // how soon a state change is published
	fetchCheck      = 100 * time.Millisecond
	fetchBackoffMax = 10 * time.Second
	// repairInterval is how often a speaker whose session state and
	// playlist do not match re-reads them from the broker.
	repairInterval = 500 * time.Millisecond
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
	Volume             int   // own volume 1-100 until an assignment sets it; 0 means the default, 100
	Clock              Clock // nil = real time
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
}

// Speaker is one speaker process's role.
type Speaker struct {
	name     string
	opts     Options
	clock    Clock
	log      *slog.Logger
	instance string
	output   Output
	eng      *engine
	cache    *cache
	client   mqtt.Client
	peerIdle time.Duration // the cache server's idle timeout: peerIdleTimeout, shorter in tests

	probeID     atomic.Uint64 // id of the last clock probe sent
	burstLeft   atomic.Int64  // probes still to send at the burst rate
	fastUntil   atomic.Int64  // until this real instant (Unix ns), probe at probeFastInterval
	probeWake   chan struct{}
	fetchWake   chan struct{}
	statusWake  chan struct{}
	sessionWake chan struct{} // the session to subscribe changed (see sessionLoop)
	connected   atomic.Bool   // a new connection, with no session subscribed yet

	mu sync.Mutex
	// session is the session the speaker plays ("" = none): Options.Session
	// until an assignment says otherwise. ownVolume is its own volume.
	session     string
	ownVolume   int
	estimator   clocksync.Estimator
	lastModel   clocksync.Model
	rtts        rttWindow
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
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
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
	eng := newEngine(opts.Output.SampleRate(), opts.Volume, c, log)
	eng.grace = opts.Grace
	eng.calibration = calibration
	fetchWake := make(chan struct{}, 1)
	eng.fetchWake = fetchWake
	s := &Speaker{
		name: opts.Name, session: opts.Session, opts: opts, clock: opts.Clock, log: log,
		instance: hex.EncodeToString(instance), output: opts.Output,
		ownVolume:   opts.Volume,
		eng:         eng,
		cache:       c,
		probeWake:   make(chan struct{}, 1),
		fetchWake:   fetchWake,
		statusWake:  make(chan struct{}, 1),
		sessionWake: make(chan struct{}, 1),
		peers:       map[string]string{},
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
	s.burstLeft.Store(probeBurst)
	s.fastUntil.Store(time.Now().Add(probeFastFor).UnixNano())
	s.wake(s.probeWake)
	s.wake(s.statusWake)
}

func unsubscribe(c mqtt.Client, topics ...string) error {
	tok := c.Unsubscribe(topics...)
	if !tok.WaitTimeout(5 * time.Second) {
		return errors.New("no answer from the broker")
	}
	return tok.Error()
}

// currentSession is the session the speaker plays ("" = none).
func (s *Speaker) currentSession() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.session
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

func (s *Speaker) onClockResponse(b []byte) error {
	t4 := s.clock.Now().UnixNano()
	resp, err := protocol.Decode[protocol.ClockResponse](b)
	if err != nil {
		return err
	}
	if last := s.probeID.Load(); resp.ID == 0 || resp.ID > last || last-resp.ID > 100 {
		return fmt.Errorf("clock response to unknown probe %d", resp.ID)
	}
	sample, err := clocksync.NewSample(resp.T1, resp.T2, resp.T3, t4)
	if err != nil {
		return err
	}
	s.eng.heard(t4)
	s.mu.Lock()
	s.estimator.Add(sample)
	s.rtts.add(sample.RTT)
	model, errBound, _ := s.estimator.Model()
	n := s.estimator.Len()
	moved := time.Duration(model.At(t4) - s.lastModel.At(t4))
	s.lastModel = model
	// Under mu: the engine gets the estimates in order (handlers run
	// concurrently).
	playing := s.eng.setClock(clockEstimate{model: model, bound: errBound, samples: n, at: t4})
	s.mu.Unlock()
	if moved.Abs() > clockJumpLog && n > 1 {
		s.log.Debug("clock estimate moved", "by", moved, "samples", n, "rtt", sample.RTT, "err_bound", errBound, "playing", playing)
	}
	return nil
}

// onState applies a state of session, unless the speaker no longer plays
// that session (a message sent before it moved).
func (s *Speaker) onState(session string, b []byte) error {
	if len(b) == 0 {
		return nil // retained state cleared
	}
	st, err := protocol.Decode[protocol.SessionState](b)
	if err != nil {
		return err
	}
	if st.Volume < 0 || st.Volume > 100 {
		return fmt.Errorf("session volume %d out of 0-100", st.Volume)
	}
	if st.Session != "" && st.Session != session {
		return fmt.Errorf("state of session %q on the topic of %q", st.Session, session)
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	if session != s.session {
		s.mu.Unlock()
		return nil
	}
	err = s.fence.state(st.Term, st.Seq)
	s.mu.Unlock()
	if err == errStale {
		return nil
	}
	if err != nil {
		return err
	}
	s.eng.addState(st)
	s.mu.Lock()
	s.acks.applied(st)
	s.mu.Unlock()
	s.sendAcks()
	if s.opts.OnState != nil {
		s.opts.OnState(st)
	}
	s.wake(s.fetchWake)
	return nil
}

// onPlaylist takes a playlist of session, unless the speaker no longer
// plays that session.
func (s *Speaker) onPlaylist(session string, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	pl, err := protocol.Decode[protocol.Playlist](b)
	if err != nil {
		return err
	}
	if pl.Session != "" && pl.Session != session {
		return fmt.Errorf("playlist of session %q on the topic of %q", pl.Session, session)
	}
	for _, e := range pl.Entries {
		if !validHash(e.Song) || e.SampleRate <= 0 || e.Frames < 0 {
			return fmt.Errorf("playlist %d: bad entry %q (song %q, %d frames at %d Hz)", pl.Version, e.ID, e.Song, e.Frames, e.SampleRate)
		}
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	if session != s.session {
		s.mu.Unlock()
		return nil
	}
	err = s.fence.playlist(pl.Term)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.eng.setPlaylist(pl)
	s.sendAcks()
	s.wake(s.fetchWake)
	return nil
}

func (s *Speaker) onControllerStatus(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	cs, err := protocol.Decode[protocol.ControllerStatus](b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	taken := s.fence.controllerStatus(cs.Term, cs.SongsURL)
	s.mu.Unlock()
	if taken {
		s.wake(s.fetchWake)
	}
	return nil
}

func (s *Speaker) onLease(b []byte) error {
	if len(b) == 0 {
		return nil // retained claim cleared
	}
	l, err := protocol.Decode[protocol.Lease](b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	current, seen := s.fence.lease(l), s.fence.leaseTerm
	s.mu.Unlock()
	if !current {
		return fmt.Errorf("lease of term %d from a deposed controller (term %d seen)", l.Term, seen)
	}
	s.wake(s.fetchWake)
	return nil
}

// onAssignment follows the speaker's assignment: a move to another session
// (or to none) or a change of its own volume.
func (s *Speaker) onAssignment(b []byte) error {
	if len(b) == 0 {
		return nil // assignment cleared: the speaker plays on what it plays
	}
	a, err := protocol.Decode[protocol.Assignment](b)
	if err != nil {
		return err
	}
	if a.Speaker != s.name {
		return fmt.Errorf("assignment of speaker %q on the topic of %q", a.Speaker, s.name)
	}
	if a.Session != "" {
		if err := protocol.ValidName(a.Session); err != nil {
			return fmt.Errorf("assignment: session: %w", err)
		}
	}
	if a.Volume < 0 || a.Volume > 100 {
		return fmt.Errorf("assignment: volume %d out of 0-100", a.Volume)
	}
	s.applyMu.Lock() // no state or playlist is applied halfway through a move
	defer s.applyMu.Unlock()
	s.mu.Lock()
	if err := s.fence.assignment(a.Term); err != nil {
		s.mu.Unlock()
		return err
	}
	from, moved := s.session, a.Session != s.session
	s.ownVolume = a.Volume
	if moved {
		// Terms and seqs are the new session's own, and so are the acks.
		s.session = a.Session
		s.fence.newSession()
		s.acks = acks{}
	}
	s.mu.Unlock()
	s.eng.setOwnVolume(a.Volume)
	if moved {
		s.eng.follow(a.Session != "")
		s.log.Info("assigned to another session", "from", from, "to", a.Session, "volume", a.Volume)
		s.wake(s.sessionWake)
	}
	s.wake(s.statusWake)
	return nil
}

// sessionLoop keeps the subscriptions to the state and playlist of the
// session the speaker plays: after a connect and after a move it subscribes
// them (and unsubscribes the old session's), retrying until the broker
// takes them. While they do not match (the engine is muted meanwhile) it
// re-reads them: unsubscribing and subscribing again makes the broker send
// the retained pair anew.
func (s *Speaker) sessionLoop(ctx context.Context, client mqtt.Client) {
	ticker := time.NewTicker(repairInterval)
	defer ticker.Stop()
	subscribed := "" // the session whose topics are subscribed
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-s.sessionWake:
		}
		if !client.IsConnectionOpen() {
			continue
		}
		if s.connected.Swap(false) {
			subscribed = "" // a clean session starts with no subscriptions
		}
		want := s.currentSession()
		switch {
		case want != subscribed:
			if subscribed != "" {
				if err := unsubscribe(client, sessionTopics(subscribed)...); err != nil {
					s.log.Warn("leaving a session: unsubscribe failed", "session", subscribed, "err", err)
				}
				subscribed = ""
			}
			if want == "" {
				continue
			}
			if err := s.subscribeSession(client, want); err != nil {
				s.log.Error("subscribing to the session failed; silent until it works", "session", want, "err", err)
				continue
			}
			subscribed = want
		case want != "" && s.eng.mismatched():
			s.log.Warn("session state and playlist do not match; muted, re-reading them from the broker")
			if err := unsubscribe(client, sessionTopics(want)...); err != nil {
				s.log.Warn("re-reading the session: unsubscribe failed", "err", err)
				continue
			}
			if err := s.subscribeSession(client, want); err != nil {
				s.log.Error("re-reading the session: subscribe failed", "err", err)
				subscribed = ""
			}
		}
	}
}

func (s *Speaker) subscribeSession(client mqtt.Client, session string) error {
	subs := map[string]byte{}
	for _, topic := range sessionTopics(session) {
		subs[topic] = 1
	}
	return mqttclient.Subscribe(client, subs, s.onMessage, 5*time.Second)
}

// sessionTopics are the topics a speaker plays session from: the retained
// state and playlist, and the announcements.
func sessionTopics(session string) []string {
	return []string{protocol.SessionStateTopic(session), protocol.PlaylistTopic(session), protocol.AnnounceTopic(session)}
}

// sendAcks acknowledges the applied session states whose playlist the
// engine now holds.
func (s *Speaker) sendAcks() {
	s.mu.Lock()
	due := s.acks.due(s.eng.holdsPlaylist)
	session := s.session
	s.mu.Unlock()
	for _, st := range due {
		s.publishAck(protocol.Ack{V: protocol.Version, Session: session, Term: st.Term, Seq: st.Seq})
	}
}

// publishAck sends an ack without waiting for the broker (handlers must
// not block). An ack lost to a dropped connection only costs the command
// its quorum, which the controller reports.
func (s *Speaker) publishAck(a protocol.Ack) {
	tok := s.client.Publish(protocol.AckTopic(s.name), 1, false, protocol.Encode(a))
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			s.log.Warn("ack not sent", "ack", a, "err", err)
		}
	default:
	}
}

func (s *Speaker) wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// probeLoop sends clock probes: a burst after each connect, then a steady pace.
func (s *Speaker) probeLoop(ctx context.Context, client mqtt.Client) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.probeWake:
			timer.Stop()
		}
		if client.IsConnectionOpen() {
			req := protocol.ClockRequest{V: protocol.Version, ID: s.probeID.Add(1), T1: s.clock.Now().UnixNano()}
			client.Publish(protocol.ClockRequestTopic(s.name), 0, false, protocol.Encode(req))
		}
		next := probeInterval
		switch {
		case s.burstLeft.Add(-1) >= 0:
			next = probeBurstInterval
		case time.Now().UnixNano() < s.fastUntil.Load():
			next = probeFastInterval
		}
		timer.Reset(next)
	}
}

// statusMessage is the speaker's current status.
func (s *Speaker) statusMessage() protocol.SpeakerStatus {
	pb := s.eng.status()
	s.mu.Lock()
	model, errBound, synced := s.estimator.Model()
	rttMin, rttP99 := s.rtts.stats()
	peerURL, session, volume, calibration := s.peerURL, s.session, s.ownVolume, s.calibration
	s.mu.Unlock()
	st := protocol.SpeakerStatus{
		V: protocol.Version, ID: s.name, Online: true, Instance: s.instance, Session: session,
		State: pb.State, Song: pb.Song, PositionNs: pb.PositionNs, Volume: volume,
		// The controller schedules a lead time ahead of it: a block is
		// rendered this long before it is heard.
		LatencyNs: int64(max(0, s.output.Latency()+calibration)),
		Output:    s.output.Name(), Error: pb.Error, PeerURL: peerURL, CalibrationNs: int64(calibration),
		CacheNoRoom: s.cache.noRoomReason(),
	}
	if synced {
		st.ClockOffsetNs = model.At(s.clock.Now().UnixNano())
		st.ClockErrorNs = int64(errBound)
		st.ClockDriftPPM = -model.Drift * 1e6 // the model's drift is d(shared-local)/d(local)
		st.ClockRTTNs, st.RTTP99Ns = int64(rttMin), int64(rttP99)
	}
	return st
}

// statusLoop publishes the status on every change of state, song or error,
// and every statusInterval.
func (s *Speaker) statusLoop(ctx context.Context, client mqtt.Client) {
	ticker := time.NewTicker(statusCheck)
	defer ticker.Stop()
	var last protocol.SpeakerStatus
	var lastAt time.Time
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-s.statusWake:
			forced = true
		}
		if !client.IsConnectionOpen() {
			continue
		}
		st := s.statusMessage()
		changed := st.State != last.State || st.Song != last.Song || st.Error != last.Error ||
			st.Session != last.Session || st.Volume != last.Volume || st.CalibrationNs != last.CalibrationNs ||
			st.CacheNoRoom != last.CacheNoRoom
		if !forced && !changed && time.Since(lastAt) < statusInterval {
			continue
		}
		tok := client.Publish(protocol.SpeakerStatusTopic(s.name), 1, true, protocol.Encode(st))
		if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			last, lastAt = st, time.Now()
		}
	}
}

// fetchLoop keeps the songs the timeline needs next in the cache, most
// urgent first, retrying failures with backoff, and fetches again those
// whose cached file turned out damaged; when it has none to fetch, it
// replicates the songs the controller announced.
func (s *Speaker) fetchLoop(ctx context.Context) {
	ticker := time.NewTicker(fetchCheck)
	defer ticker.Stop()
	failures := backoff{}
	damage := backoff{} // of songs whose cached file was damaged
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-s.fetchWake:
		}
		s.checkDamaged(damage)
		src := s.songSources()
		now, synced := s.sharedNow()
		if len(src.bases) == 0 && synced {
			s.wantPeers()
		}
		if len(src.bases) == 0 || !synced {
			// Wait for the controller's lease or status (or peers), and for
			// the first clock answer: where a song is due now decides what to
			// fetch first.
			continue
		}
		for _, w := range s.eng.wanted(now) {
			sha := w.sha
			if _, ok := s.cache.Lookup(sha); ok || failures.waiting(sha) {
				continue
			}
			start := time.Now()
			if err := s.cache.ensure(ctx, src, sha, w.startFrac); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("song fetch failed; will retry", "song", sha, "attempt", failures.failed(sha), "err", err)
				s.wantPeers()
				continue
			}
			failures.succeeded(sha)
			s.log.Info("song cached", "song", sha, "took", time.Since(start).Round(time.Millisecond))
			s.evictFor(now)
		}
		if !s.fetchUrgent(failures) {
			s.replicate(ctx, src, ticker.C, failures)
		}
	}
}

// sharedNow is the shared clock now, once the clock is synchronised.
func (s *Speaker) sharedNow() (int64, bool) {
	s.mu.Lock()
	model, _, synced := s.estimator.Model()
	s.mu.Unlock()
	return model.Shared(s.clock.Now().UnixNano()), synced
}

// fetchUrgent tells whether the timeline wants a song that is not cached
// and not waiting for a retry.
func (s *Speaker) fetchUrgent(failures backoff) bool {
	now, synced := s.sharedNow()
	if !synced {
		return false
	}
	for _, w := range s.eng.wanted(now) {
		if _, ok := s.cache.Lookup(w.sha); !ok && !failures.waiting(w.sha) {
			return true
		}
	}
	return false
}

// backoff spaces out the retries of failed fetches, by song.
type backoff map[string]failure

type failure struct {
	count int
	retry time.Time
}

func (b backoff) waiting(sha string) bool { return time.Now().Before(b[sha].retry) }

// failed notes a failure and says how many there were in a row.
func (b backoff) failed(sha string) int {
	f := b[sha]
	f.count++
	f.retry = time.Now().Add(min(fetchBackoffMax, 100*time.Millisecond<<min(f.count, 10)))
	b[sha] = f
	return f.count
}

func (b backoff) succeeded(sha string) { delete(b, sha) }

// evictFor keeps the cache within its cap, sparing the songs the timeline
// wants at shared instant now.
func (s *Speaker) evictFor(now int64) {
	deleted, err := s.cache.evict(s.wantedSongs(now))
	if err != nil {
		s.log.Warn("song cache eviction failed", "err", err)
	}
	if len(deleted) > 0 {
		s.log.Info("song cache full: least recently used songs deleted", "songs", deleted, "cap_bytes", s.cache.maxBytes)
	}
}

// wantedSongs is the set of songs the timeline wants at shared instant now.
func (s *Speaker) wantedSongs(now int64) map[string]bool {
	wanted := map[string]bool{}
	for _, w := range s.eng.wanted(now) {
		wanted[w.sha] = true
	}
	return wanted
}

// rttWindow keeps the round trips of the recent clock probes: their minimum
// and 99th percentile go into the status, and the controller sizes the lead
// time of commands by the latter.
type rttWindow struct {
	rtts []time.Duration
	next int
}

const rttWindowSize = 128

func (w *rttWindow) add(rtt time.Duration) {
	if len(w.rtts) < rttWindowSize {
		w.rtts = append(w.rtts, rtt)
		return
	}
	w.rtts[w.next] = rtt
	w.next = (w.next + 1) % rttWindowSize
}

func (w *rttWindow) stats() (lowest, p99 time.Duration) {
	if len(w.rtts) == 0 {
		return 0, 0
	}
	sorted := slices.Clone(w.rtts)
	slices.Sort(sorted)
	return sorted[0], sorted[(len(sorted)*99+99)/100-1]
}
