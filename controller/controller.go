// Package controller keeps the song library, the playlists and the session
// state, serves songs over HTTP to holders of the lease's fetch token (and
// their cover art to anyone: art.go), answers the commands that arrive over
// MQTT from users allowed to send them (access.go), keeps the speakers'
// assignments to sessions, announces chimes (announce.go),
// schedules playback on the shared clock and is the time master that
// answers speakers' clock probes. Any number of controllers may run: the one
// holding the lease (lease.go) does all that; the others mirror its state
// and songs, follow its clock (timefollow.go) and take over when its lease
// ends (failover.go).
package controller

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/musicfolder"
	"github.com/tutti-audio/tutti/protocol"
)

// Options configure a Controller. Zero values take the defaults noted.
type Options struct {
	BrokerURL          string        // default "tcp://127.0.0.1:1883"
	Username, Password string        // MQTT credentials ("" for anonymous demo brokers)
	Name               string        // for people: in the lease and status; default "controller"
	ClientID           string        // default protocol.ClientID(Username, "controller", a random instance id)
	LeaseTTL           time.Duration // how long the lease lives without renewal; default DefaultLeaseTTL
	DataDir            string        // required: holds tutti.db, songs/<sha256> and tmp/
	HTTPAddr           string        // song server listen address; default "127.0.0.1:0"
	PublicURL          string        // base URL speakers reach the song server at; "" = "http://"+bound address
	ImportDir          string        // `load {path}` reads files only below it; "" disables path loads
	MusicDirs          []string      // music folders indexed in place, read-only (folders.go)
	MusicRescan        time.Duration // between rescans of MusicDirs; 0 = musicfolder.DefaultRescan
	Lead               time.Duration // how far ahead scheduled commands take effect; 0 = adapt to the speakers (leadFor)
	// ClockFromBroker says the broker is the time master (tutti's broker
	// with AnswerClock): the controller then answers no clock probes and
	// always follows the broker's clock. Otherwise the lease holder is the
	// time master, and standbys follow its clock.
	ClockFromBroker bool
	Sessions        []string // sessions to create if missing; default [protocol.DefaultSession]
	// NewSpeakerSession is the session a speaker seen for the first time is
	// assigned to, whatever session it asks for: "" = the first of
	// Sessions; NoSession = none (an admin, or a user with join rights,
	// places it with join). A speaker gets the session it asks for only when
	// that session's join list names the speaker, or with Open (the demo).
	NewSpeakerSession string
	// Open obeys anonymous requests (on the plain, unsigned command topics)
	// as if an admin sent them: the demo, on a broker that lets anybody in.
	// Otherwise only requests signed with a user name are obeyed.
	Open bool
	// Roles tells the role of a user ("admin", "controller", "member" or
	// "speaker", as in the broker's users file; anything else refuses the
	// user). It is called for every signed request, from more than one
	// goroutine. nil: every user that signs a request is a member.
	Roles       func(user string) string
	MaxSongSize int64 // largest upload or import in bytes; default DefaultMaxSongSize
	// FFmpeg converts M4A songs to FLAC (convert.go); default "ffmpeg"
	// from PATH. Without it M4A songs are refused.
	FFmpeg string
	// MaxConvertedBytes bounds the disk converted songs take; default
	// DefaultMaxConvertedBytes.
	MaxConvertedBytes int64
	// TLS, if set, is used to reach the broker (a tls:// BrokerURL) and
	// other controllers' song servers; ServeTLS, if set, serves songs over
	// HTTPS with its certificate.
	TLS, ServeTLS *tls.Config
	// Clock is the local clock: the lease, every interval and timer run on
	// it, and it advances the steady clock; nil = real time. Wall is the
	// wall clock, which seeds the steady clock and stamps the shared clock's
	// published base (protocol.ClockBase); nil = Clock. The shared clock,
	// "shared time" in every protocol field named *_ns, is the time
	// master's: our steady clock (seeded from the wall clock at start, then
	// advanced by the local clock, so steps of the wall clock do not move
	// it) as it is while no master answered us yet, or as a model that
	// follows the master maps it (timefollow.go).
	Clock, Wall clock.Clock
	Logger      *slog.Logger // nil = slog.Default()

	requestQueue  int           // the bound of each loop's queue of requests; 0 = maxQueued (tests set less)
	tokenRotation time.Duration // 0 = tokenRotation (tests set less)
}

// DefaultMaxSongSize is Options.MaxSongSize's default.
const DefaultMaxSongSize = 1 << 30

// Controller is one running controller. Create it with New, then Run it.
type Controller struct {
	opts        Options
	log         *slog.Logger
	local       clock.Clock      // Options.Clock: intervals, timers, the lease
	wall        clock.Clock      // Options.Wall
	steady      clocksync.Steady // the local clock the shared clock is mapped from
	sharedClock *timeFollower    // the time master's clock, as we know it
	store       *store
	lib         *library
	listener    net.Listener
	songsURL    string
	instance    string // random per process start, in ControllerStatus
	client      mqtt.Client

	sessions map[string]session // owned by the session loop once Run starts
	// sessionEvents holds, in arrival order, the events the session loop
	// follows (lease, statuses, mirrored state, acks), and sessionRequests
	// the session commands. The loop handles every queued event before each
	// command: a flood of commands never delays the lease (our renewals
	// coming back), and a command sent by someone who saw the lease change
	// finds the loop aware of it.
	sessionEvents   *inbox
	sessionRequests *inbox
	libraryRequests *inbox
	connected       chan struct{} // a (re)connect happened: publish all retained state
	pendingLoads    chan pending  // library loop to session loop: loads waiting for a quorum
	removals        chan removal  // library loop to session loop: songs to remove

	// Owned by the session loop.
	lease          *lease
	tokenRotatedAt time.Time // local clock: when we last replaced our fetch token, while leading
	quorum         quorum
	shuffleRand    *mathrand.Rand // the orders shuffle draws

	tokens  *fetchTokens    // the lease holder's fetch tokens, which the song server accepts
	limiter *commandLimiter // commands per user
	busyLog *sparseLog      // when a request found its queue full (overload.go)

	hold        *leaseHold    // whether we hold the lease, for the other goroutines
	otherHolder atomic.Bool   // mirrors lease.heldByOther() for the library loop
	connects    atomic.Uint64 // connections made so far: the session loop notices reconnects
	subscribed  atomic.Bool   // connected, and subscribed to the lease: only then may the lease renew or claim
	mirror      *songMirror   // standby: fetches the holder's song files
	converter   *converter    // M4A songs to FLAC

	// Music folders (folders.go): nil scanner without MusicDirs.
	scanner      *musicfolder.Scanner
	scanProgress atomic.Pointer[protocol.ScanProgress] // the last scan's, for the status
	statusWake   chan struct{}                         // the status has news to publish
	measureWake  chan struct{}                         // songs wait to be measured
	m3uWake      chan struct{}                         // M3U files wait to be imported (m3uimport.go)
	presence     *songNews                             // songs went missing or came back (missing.go)
	gainNews     *songNews                             // songs' measured gains changed (albumgain.go)
	yielder      *yielder                              // the measuring yields to commands (measurepace.go)

	handlers gate // paho runs handlers on goroutines of its own; Run waits for them

	mu          sync.Mutex
	speakers    map[string]protocol.SpeakerStatus // last status of every speaker, by id
	assignments map[string]protocol.Assignment    // every speaker's session and own volume; written by the session loop
}

// New opens the store and binds the song server's listener, so SongsURL is
// known before Run. It does not connect to MQTT yet.
func New(opts Options) (*Controller, error) {
	if opts.DataDir == "" {
		return nil, errors.New("controller: DataDir is required")
	}
	if opts.BrokerURL == "" {
		opts.BrokerURL = "tcp://127.0.0.1:1883"
	}
	instance := randomID()
	if opts.Name == "" {
		opts.Name = "controller"
	}
	if opts.ClientID == "" {
		opts.ClientID = protocol.ClientID(opts.Username, "controller", instance)
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = "127.0.0.1:0"
	}
	if opts.Lead < 0 {
		return nil, fmt.Errorf("controller: negative lead %v", opts.Lead)
	}
	if len(opts.Sessions) == 0 {
		opts.Sessions = []string{protocol.DefaultSession}
	}
	switch opts.NewSpeakerSession {
	case "":
		opts.NewSpeakerSession = opts.Sessions[0]
	case NoSession:
	default:
		if err := protocol.ValidName(opts.NewSpeakerSession); err != nil {
			return nil, fmt.Errorf("controller: new speakers' session: %w", err)
		}
	}
	opts.Clock = clock.Or(opts.Clock)
	if opts.Wall == nil {
		opts.Wall = opts.Clock
	}
	if opts.tokenRotation <= 0 {
		opts.tokenRotation = tokenRotation
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxSongSize <= 0 {
		opts.MaxSongSize = DefaultMaxSongSize
	}
	if opts.FFmpeg == "" {
		opts.FFmpeg = "ffmpeg"
	}
	if opts.MaxConvertedBytes <= 0 {
		opts.MaxConvertedBytes = DefaultMaxConvertedBytes
	}
	if opts.requestQueue <= 0 {
		opts.requestQueue = maxQueued
	}
	for _, name := range opts.Sessions {
		if err := protocol.ValidName(name); err != nil {
			return nil, fmt.Errorf("controller: session: %w", err)
		}
	}
	if opts.ImportDir != "" {
		dir, err := filepath.Abs(opts.ImportDir)
		if err == nil {
			dir, err = filepath.EvalSymlinks(dir)
		}
		if err != nil {
			return nil, fmt.Errorf("controller: import directory: %w", err)
		}
		opts.ImportDir = dir
	}

	songsDir := filepath.Join(opts.DataDir, "songs")
	tmpDir := filepath.Join(opts.DataDir, "tmp")
	// Whatever is in tmp/ is an upload a crash interrupted.
	if err := os.RemoveAll(tmpDir); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	for _, dir := range []string{songsDir, tmpDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
	}
	st, err := openStore(filepath.Join(opts.DataDir, "tutti.db"))
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	steady := clocksync.NewSteady(opts.Wall.Now().UnixNano(), opts.Clock)
	c := &Controller{
		opts:            opts,
		log:             opts.Logger,
		local:           opts.Clock,
		wall:            opts.Wall,
		steady:          steady,
		sharedClock:     newTimeFollower(instance, opts.Logger, clocksync.LocalNs(steady.Now())),
		store:           st,
		instance:        instance,
		sessionEvents:   newInbox(maxQueued),
		sessionRequests: newInbox(opts.requestQueue),
		libraryRequests: newInbox(opts.requestQueue),
		busyLog:         &sparseLog{interval: busyLogInterval},
		connected:       make(chan struct{}, 1),
		pendingLoads:    make(chan pending, 64),
		removals:        make(chan removal, 16),
		speakers:        map[string]protocol.SpeakerStatus{},
		tokens:          &fetchTokens{},
		limiter:         newCommandLimiter(),
		shuffleRand:     newShuffleRand(),
		statusWake:      make(chan struct{}, 1),
		measureWake:     make(chan struct{}, 1),
		m3uWake:         make(chan struct{}, 1),
		gainNews:        newSongNews(),
		yielder:         newYielder(opts.Clock),
		presence:        newSongNews(),
	}
	c.lib = &library{store: st, songsDir: songsDir, tmpDir: tmpDir, maxSize: opts.MaxSongSize, now: c.now, present: c.notePresence}
	c.converter = newConverter(c.lib, c.log, opts.FFmpeg, opts.MaxConvertedBytes, opts.Clock.Now)
	c.lib.convertible = c.converter.available
	c.converter.announce, c.converter.retract = c.announceConversion, c.retractSong
	if err := c.loadSessions(); err != nil {
		st.Close()
		return nil, fmt.Errorf("controller: %w", err)
	}
	if c.assignments, err = st.assignments(); err != nil {
		st.Close()
		return nil, fmt.Errorf("controller: %w", err)
	}
	var lastTerm uint64
	for _, s := range c.sessions {
		lastTerm = max(lastTerm, s.State.Term, s.Playlist.Term)
	}
	for _, a := range c.assignments {
		lastTerm = max(lastTerm, a.Term)
	}
	c.lease = newLease(instance, opts.LeaseTTL, lastTerm, opts.Clock.Now())
	c.hold = newLeaseHold(instance, opts.LeaseTTL, opts.Clock)
	c.listener, err = net.Listen("tcp", opts.HTTPAddr)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("controller: song server: %w", err)
	}
	base := strings.TrimRight(opts.PublicURL, "/")
	if base == "" {
		base = "http://" + c.listener.Addr().String()
		if opts.ServeTLS != nil {
			base = "https://" + c.listener.Addr().String()
		}
	}
	c.songsURL = base + "/songs/"
	c.mirror = newSongMirror(c.lib, c.log, opts.TLS)
	if len(opts.MusicDirs) > 0 {
		c.scanner, err = musicfolder.New(musicfolder.Options{Roots: opts.MusicDirs, Index: folderIndex{c}, Rescan: opts.MusicRescan,
			Clock: opts.Clock, Logger: c.log, Progress: c.scanProgressed})
		if err != nil {
			c.listener.Close()
			st.Close()
			return nil, fmt.Errorf("controller: %w", err)
		}
	}
	if opts.ServeTLS != nil {
		c.listener = tls.NewListener(c.listener, opts.ServeTLS)
	}
	return c, nil
}

func (c *Controller) loadSessions() error {
	for _, name := range c.opts.Sessions {
		if _, err := c.store.createSession(name, "", protocol.Everyone); err != nil {
			return err
		}
	}
	var err error
	c.sessions, err = c.store.sessions()
	return err
}

// SongsURL is the prefix of every song's URL: GET SongsURL()+sha256.
func (c *Controller) SongsURL() string { return c.songsURL }

// now is the shared clock's time, Unix ns.
func (c *Controller) now() int64 { return int64(c.sharedClock.shared(c.localNow())) }

// localNow is the steady clock now: the local instant the shared clock is
// mapped from.
func (c *Controller) localNow() clocksync.LocalNs { return clocksync.LocalNs(c.steady.Now()) }

// Run connects to the broker (retrying until ctx is done), serves songs and
// handles commands. It returns after everything it started has stopped, and
// closes the store and the listener: a Controller runs once.
func (c *Controller) Run(ctx context.Context) error {
	defer c.store.Close()
	c.client = mqtt.NewClient(c.clientOptions())
	srv := newSongServer(c.lib, c.log, c.tokens, c.holding, c.songUploaded).server(c.log)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(c.listener); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("song server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		// Downloads still running after a second are cut off: speakers and
		// standbys fetch byte ranges and resume elsewhere.
		shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			c.log.Info("song downloads cut off at shutdown", "err", err)
			srv.Close()
		}
		return nil
	})
	g.Go(func() error { return c.connect(gctx) })
	g.Go(func() error { return c.sessionLoop(gctx) })
	g.Go(func() error { return c.libraryLoop(gctx) })
	g.Go(func() error { c.mirror.run(gctx); return nil })
	g.Go(func() error { c.converter.run(gctx); return nil })
	g.Go(func() error { c.probeLoop(gctx); return nil })
	g.Go(func() error { return c.runFolders(gctx) })
	c.log.Info("controller running", "name", c.opts.Name, "broker", c.opts.BrokerURL, "songs_url", c.songsURL, "instance", c.instance)
	c.log.Info("not yet synced to the time master: the local clock is the shared clock until it answers", "clock_id", c.sharedClock.id)
	err := g.Wait()

	if c.holding() && c.client.IsConnectionOpen() {
		// Standbys take this as the end of our lease and claim at once.
		offline := protocol.ControllerStatus{V: protocol.Version, Online: false, Instance: c.instance, Name: c.opts.Name}
		c.client.Publish(protocol.ControllerStatusTopic, 1, true, protocol.Encode(offline)).WaitTimeout(time.Second)
	}
	c.client.Disconnect(250)
	c.handlers.closeAndWait()
	return err
}

func (c *Controller) clientOptions() *mqtt.ClientOptions {
	// Every controller's will goes to the shared status topic: a standby's
	// too, since it cannot change its will when it takes over. The holder
	// puts its own status back when another's will lands there.
	offline := protocol.ControllerStatus{V: protocol.Version, Online: false, Instance: c.instance, Name: c.opts.Name}
	o := mqttclient.Options(c.opts.BrokerURL, c.opts.ClientID, c.opts.Username, c.opts.Password).
		// Handlers run in arrival order, so commands keep the order they were
		// sent in; none of them blocks (see inbox), as paho requires.
		SetOrderMatters(true).
		SetBinaryWill(protocol.ControllerStatusTopic, protocol.Encode(offline), 1, true).
		SetTLSConfig(c.opts.TLS).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			c.subscribed.Store(false)
			c.log.Warn("MQTT connection lost; reconnecting", "err", err)
		})
	return o
}

// connect makes the first connection, retrying until it succeeds or ctx is
// done; paho reconnects by itself after that.
func (c *Controller) connect(ctx context.Context) error {
	retry := c.local.NewTimer(0)
	defer retry.Stop()
	for {
		token := c.client.Connect()
		select {
		case <-token.Done():
		case <-ctx.Done():
			<-token.Done() // bounded by the connect timeout; Run disconnects after
			return nil
		}
		if token.Error() == nil {
			return nil
		}
		c.log.Warn("MQTT connect failed; retrying", "broker", c.opts.BrokerURL, "err", token.Error())
		retry.Reset(time.Second)
		select {
		case <-retry.C():
		case <-ctx.Done():
			return nil
		}
	}
}

// onConnect subscribes (subscriptions do not survive a clean-session
// reconnect) and asks the session loop to publish all retained state.
func (c *Controller) onConnect(client mqtt.Client) {
	if !c.handlers.enter() {
		return
	}
	defer c.handlers.leave()
	// Commands come on the plain topics (anonymous) and on the topics
	// signed with a user name (protocol.UserTopic).
	subs := []subscription{
		{protocol.SessionCommandFilter, 1, c.queue(c.sessionRequests)},
		{protocol.UserTopic(protocol.SessionCommandFilter, "+"), 1, c.queue(c.sessionRequests)},
		{protocol.SessionsCommandTopic, 1, c.queue(c.sessionRequests)},
		{protocol.UserTopic(protocol.SessionsCommandTopic, "+"), 1, c.queue(c.sessionRequests)},
		{protocol.LibraryCommandTopic, 1, c.queue(c.libraryRequests)},
		{protocol.UserTopic(protocol.LibraryCommandTopic, "+"), 1, c.queue(c.libraryRequests)},
		{protocol.LeaseTopic, 1, c.queueEvent},
		{protocol.SpeakerStatusFilter, 1, c.noteSpeaker},
		{protocol.ControllerStatusTopic, 1, c.queueEvent},
		{protocol.SessionInfoFilter, 1, c.queueEvent},
		{protocol.SessionStateFilter, 1, c.queueEvent},
		{protocol.PlaylistFilter, 1, c.queueEvent},
		{protocol.AssignFilter, 1, c.queueEvent},
		{protocol.LibrarySongFilter, 1, c.queueEvent},
		{protocol.SavedPlaylistFilter, 1, c.queueEvent},
		{protocol.AckFilter, 1, c.queueEvent},
		{protocol.ClockResponseTopic(c.sharedClock.id), 0, c.onClockAnswer},
	}
	if !c.opts.ClockFromBroker {
		// The retained clock base first: it must be known before a
		// takeover, which the lease topic's retained messages may start.
		subs = append([]subscription{{protocol.ClockBaseTopic, 1, c.onClockBase}}, subs...)
		subs = append(subs, subscription{protocol.ClockRequestFilter, 0, c.answerClock})
	}
	for _, s := range subs {
		if err := mqttclient.Subscribe(client, map[string]byte{s.filter: s.qos}, s.handler, 5*time.Second); err != nil {
			c.log.Error("MQTT subscribe failed", "filter", s.filter, "err", err)
		}
	}
	c.connects.Add(1)
	c.subscribed.Store(true)
	c.sharedClock.connected(c.localNow())
	select {
	case c.connected <- struct{}{}:
	default: // a publish of everything is already due
	}
	c.log.Info("connected to MQTT broker", "broker", c.opts.BrokerURL)
}

// publish sends one message at QoS 1. Without a connection it does nothing:
// retained state is published again on every connect.
func (c *Controller) publish(topic string, retained bool, payload []byte) {
	if !c.client.IsConnectionOpen() {
		c.log.Warn("not connected; message not sent", "topic", topic)
		return
	}
	token := c.client.Publish(topic, 1, retained, payload)
	if !token.WaitTimeout(5 * time.Second) {
		c.log.Warn("publish not acknowledged in time", "topic", topic)
	} else if token.Error() != nil {
		c.log.Warn("publish failed", "topic", topic, "err", token.Error())
	}
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
