package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tutti-audio/tutti/broker"
	"github.com/tutti-audio/tutti/certs"
	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/controller"
	"github.com/tutti-audio/tutti/musicfolder"
	"github.com/tutti-audio/tutti/protocol"
	"github.com/tutti-audio/tutti/speaker"
)

// mqttFlags are the flags of every command that connects to a broker.
type mqttFlags struct {
	broker, user, password, passwordFile, ca string
}

func (m *mqttFlags) register(fs *flag.FlagSet, defaultUser string) {
	fs.StringVar(&m.broker, "broker", envOr("TUTTI_BROKER", "tcp://127.0.0.1:1883"), "MQTT broker URL (env TUTTI_BROKER); tls://host:8883 for MQTT over TLS")
	fs.StringVar(&m.ca, "ca", envOr("TUTTI_CA", ""), "CA certificate to trust for tls:// brokers and https:// song servers (the hub's certs/ca.pem; env TUTTI_CA)")
	fs.StringVar(&m.user, "user", envOr("TUTTI_USER", defaultUser), "MQTT user name (env TUTTI_USER)")
	fs.StringVar(&m.password, "password", "", "MQTT password (prefer env TUTTI_PASSWORD or --password-file)")
	fs.StringVar(&m.passwordFile, "password-file", "", "file holding the MQTT password")
}

// credentials returns the user name and the password from the flag, the
// file or the environment. Without a password the client connects
// anonymously, which only a demo broker accepts.
func (m *mqttFlags) credentials() (user, password string, err error) {
	switch {
	case m.password != "":
		password = m.password
	case m.passwordFile != "":
		b, err := os.ReadFile(m.passwordFile)
		if err != nil {
			return "", "", fmt.Errorf("password file: %w", err)
		}
		password = string(trimNewline(b))
	default:
		password = os.Getenv("TUTTI_PASSWORD")
	}
	if password == "" {
		return "", "", nil
	}
	return m.user, password, nil
}

// usersRoles looks users' roles up in the broker's users file, reading it
// again when it changed, as the broker does.
func usersRoles(path string, log *slog.Logger) func(user string) string {
	var mu sync.Mutex
	var loaded time.Time
	roles := map[string]string{}
	return func(user string) string {
		mu.Lock()
		defer mu.Unlock()
		if info, err := os.Stat(path); err == nil && !info.ModTime().Equal(loaded) {
			users, err := broker.LoadUsers(path)
			if err != nil {
				log.Error("users file not read; keeping the roles read before", "err", err)
			} else {
				loaded = info.ModTime()
				clear(roles)
				for _, u := range users {
					roles[u.Name] = u.Role
				}
			}
		}
		return roles[user]
	}
}

// tls is the client TLS configuration: trusting --ca, or the system's
// roots without it.
func (m *mqttFlags) tls() (*tls.Config, error) {
	if m.ca == "" {
		return nil, nil
	}
	return certs.ClientConfig(m.ca)
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// certFlags say where a server's TLS certificate comes from: your own
// (--tls-cert, --tls-key), or one made on first run, with its CA, in --certs.
type certFlags struct {
	dir, hosts, cert, key string
}

func (c *certFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.dir, "certs", "", "directory of the TLS CA and server certificate, made on first run (default: certs/ in the data directory)")
	fs.StringVar(&c.hosts, "tls-hosts", "", "comma list of the host names and addresses the made certificate is for (default: localhost, this host's name, loopback)")
	fs.StringVar(&c.cert, "tls-cert", "", "your own server certificate (PEM) instead of a made one; with --tls-key")
	fs.StringVar(&c.key, "tls-key", "", "the private key of --tls-cert (PEM)")
}

// files returns the certificate to serve with: the given one, or one made
// (on first run) or loaded in the certs directory, defaultDir if unset.
func (c *certFlags) files(defaultDir string) (certs.Files, error) {
	if c.cert != "" || c.key != "" {
		if c.cert == "" || c.key == "" {
			return certs.Files{}, errors.New("--tls-cert and --tls-key go together")
		}
		return certs.Files{Cert: c.cert, Key: c.key}, nil
	}
	dir := c.dir
	if dir == "" {
		dir = defaultDir
	}
	hosts := certs.DefaultHosts()
	if c.hosts != "" {
		hosts = strings.Split(c.hosts, ",")
	}
	return certs.Ensure(dir, hosts)
}

type brokerFlags struct {
	listen, data, users, tlsListen string
	haPrefix                       string // Home Assistant's discovery prefix, which members may not use
	certs                          certFlags
	demo, answerClock              bool
}

func (b *brokerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.listen, "listen", "127.0.0.1:1883", "MQTT listen address")
	fs.StringVar(&b.tlsListen, "tls-listen", "", "also serve MQTT over TLS here (e.g. 0.0.0.0:8883), with the certificate of --certs or --tls-cert")
	b.certs.register(fs)
	fs.StringVar(&b.users, "users", "", "users file (TOML, see tutti user add)")
	fs.BoolVar(&b.demo, "demo", false, "demo mode: allow anonymous clients with full rights (never on a shared network)")
}

func (b *brokerFlags) options(e *env) (broker.Options, error) {
	o := broker.Options{Addr: b.listen, DataDir: b.data, UsersFile: b.users, AllowAnonymous: b.demo,
		AnswerClock: b.answerClock, HomeAssistantPrefix: b.haPrefix, Logger: e.log.With("role", "broker")}
	if b.tlsListen == "" {
		return o, nil
	}
	files, err := b.certs.files(filepath.Join(filepath.Dir(b.data), "certs"))
	if err != nil {
		return o, err
	}
	o.TLSAddr = b.tlsListen
	o.TLS, err = certs.ServerConfig(files)
	e.log.Info("MQTT over TLS", "listen", b.tlsListen, "ca_for_clients", files.CA)
	return o, err
}

type controllerFlags struct {
	name, data, http, publicURL, importDir, sessions, users string
	newSpeakerSession                                       string
	music                                                   stringList
	certs                                                   certFlags
	lead, leaseTTL, musicRescan                             time.Duration
	clockFromBroker, open, https                            bool
}

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string { return fmt.Sprint([]string(*l)) }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func (c *controllerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.http, "http", "127.0.0.1:8080", "song server listen address")
	fs.StringVar(&c.publicURL, "public-url", "", "song server base URL as speakers reach it (default: from --http)")
	fs.StringVar(&c.importDir, "import", "", "directory that `load {path}` may read from (empty: path loads disabled)")
	fs.Var(&c.music, "music", "a music folder to index in place, read-only (repeat for several; local disk or a NAS mount)")
	fs.DurationVar(&c.musicRescan, "music-rescan", musicfolder.DefaultRescan, "how often the music folders are rescanned, for network mounts that send no change events")
	fs.DurationVar(&c.lead, "lead", 0, "how far ahead scheduled commands take effect (0: adapt to the speakers' reported latency)")
	fs.StringVar(&c.sessions, "sessions", protocol.DefaultSession, "comma list of the sessions (zones) to create if missing")
	fs.StringVar(&c.newSpeakerSession, "new-speaker-session", "", "session a speaker seen for the first time joins, whatever it asks for, unless the asked session's join list names it (default: the first of --sessions; "+controller.NoSession+": none)")
	fs.StringVar(&c.name, "name", envOr("TUTTI_CONTROLLER", "controller"), "this controller's name, shown in the lease and status (env TUTTI_CONTROLLER)")
	fs.DurationVar(&c.leaseTTL, "lease-ttl", controller.DefaultLeaseTTL, "how long the lease lives without renewal: standby controllers take over after it")
	fs.BoolVar(&c.https, "https", false, "serve songs over HTTPS, with the certificate in --certs (clients trust its CA with --ca)")
}

// registerAccess adds the flags that say who may do what; the hub takes
// them from its broker flags instead.
func (c *controllerFlags) registerAccess(fs *flag.FlagSet) {
	fs.BoolVar(&c.open, "open", false, "obey anonymous (unsigned) requests as an admin's: only with a demo broker that lets anonymous clients in")
	fs.StringVar(&c.users, "users", "", "the broker's users file, for the users' roles (admins may create, delete and grant sessions)")
}

func (c *controllerFlags) options(e *env, m mqttFlags, user, password string) (controller.Options, error) {
	var roles func(string) string
	if c.users != "" {
		roles = usersRoles(c.users, e.log)
	}
	clientTLS, err := m.tls()
	if err != nil {
		return controller.Options{}, err
	}
	var serveTLS *tls.Config
	if c.https {
		files, err := c.certs.files(filepath.Join(filepath.Dir(c.data), "certs"))
		if err != nil {
			return controller.Options{}, err
		}
		if serveTLS, err = certs.ServerConfig(files); err != nil {
			return controller.Options{}, err
		}
		if clientTLS == nil && files.CA != "" { // its own CA, for the other controllers' song servers
			if clientTLS, err = certs.ClientConfig(files.CA); err != nil {
				return controller.Options{}, err
			}
		}
	}
	return controller.Options{
		TLS: clientTLS, ServeTLS: serveTLS,
		BrokerURL: m.broker, Username: user, Password: password, Name: c.name, LeaseTTL: c.leaseTTL,
		Open: c.open, Roles: roles,
		DataDir: c.data, HTTPAddr: c.http, PublicURL: c.publicURL, ImportDir: c.importDir, Lead: c.lead,
		MusicDirs: c.music, MusicRescan: c.musicRescan,
		Sessions: strings.Split(c.sessions, ","), NewSpeakerSession: c.newSpeakerSession, ClockFromBroker: c.clockFromBroker, Logger: e.log.With("role", "controller"),
	}, nil
}

func runBroker(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "broker", "[flags]")
	var bf brokerFlags
	bf.register(fs)
	fs.StringVar(&bf.data, "data", "tutti-data/broker", "directory for the broker's persisted retained messages")
	fs.BoolVar(&bf.answerClock, "clock", false, "be the time master: answer speakers' clock probes (run controllers with --clock-from-broker)")
	fs.StringVar(&bf.haPrefix, "ha-prefix", protocol.HomeAssistantPrefix, "Home Assistant's MQTT discovery prefix, where only admins, controllers (the bridge) and Home Assistant's status may write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts, err := bf.options(e)
	if err != nil {
		return err
	}
	b, err := broker.New(opts)
	if err != nil {
		return err
	}
	e.log.Info("broker listening", "addr", b.Addr())
	return b.Run(ctx)
}

func runController(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "controller", "[flags]")
	var m mqttFlags
	var cf controllerFlags
	m.register(fs, "controller")
	cf.register(fs)
	cf.registerAccess(fs)
	fs.StringVar(&cf.data, "data", "tutti-data/controller", "directory for the library database and song files")
	cf.certs.register(fs)
	fs.BoolVar(&cf.clockFromBroker, "clock-from-broker", false, "the broker (tutti broker --clock, on this machine's clock) is the time master: answer no clock probes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	user, password, err := m.credentials()
	if err != nil {
		return err
	}
	opts, err := cf.options(e, m, user, password)
	if err != nil {
		return err
	}
	c, err := controller.New(opts)
	if err != nil {
		return err
	}
	e.log.Info("controller serving songs", "url", c.SongsURL())
	return c.Run(ctx)
}

// runHub runs the broker and the controller in one process; the controller
// reaches the broker over loopback like any client.
func runHub(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "hub", "[flags]")
	var bf brokerFlags
	var cf controllerFlags
	var m mqttFlags
	bf.register(fs)
	cf.register(fs)
	fs.StringVar(&m.user, "user", envOr("TUTTI_USER", "controller"), "the controller's MQTT user name")
	fs.StringVar(&m.passwordFile, "password-file", "", "file holding the controller's MQTT password (or env TUTTI_PASSWORD)")
	data := fs.String("data", "tutti-data", "data directory (broker/ and controller/ inside)")
	var hf bridgeFlags
	hf.register(fs, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	bf.data, cf.data = filepath.Join(*data, "broker"), filepath.Join(*data, "controller")
	bf.haPrefix = hf.prefix
	cf.open, cf.users, cf.certs = bf.demo, bf.users, bf.certs
	// The broker is the time master: its clock stays when controllers change.
	bf.answerClock, cf.clockFromBroker = true, true
	opts, err := bf.options(e)
	if err != nil {
		return err
	}
	b, err := broker.New(opts)
	if err != nil {
		return err
	}
	m.broker = "tcp://" + b.Addr()
	user, password, err := m.credentials()
	if err != nil {
		b.Close()
		return err
	}
	copts, err := cf.options(e, m, user, password)
	if err != nil {
		b.Close()
		return err
	}
	c, err := controller.New(copts)
	if err != nil {
		b.Close()
		return err
	}
	// The bridge signs its requests as the controller's user: an admin.
	bridge, err := hf.bridge(m.broker, user, password, e.log)
	if err != nil {
		b.Close()
		return err
	}
	e.log.Info("hub up", "mqtt", m.broker, "songs", c.SongsURL(), "homeassistant", hf.enabled)
	// The broker outlives the controller, which announces on its way out
	// that it is offline; a failing broker stops the controller.
	controllerCtx, stopController := context.WithCancel(ctx)
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	brokerDone := make(chan error, 1)
	go func() {
		brokerDone <- b.Run(brokerCtx)
		stopController()
	}()
	bridgeDone := make(chan error, 1)
	if bridge != nil {
		go func() { bridgeDone <- bridge.Run(controllerCtx) }()
	} else {
		bridgeDone <- nil
	}
	err = c.Run(controllerCtx)
	stopController()
	if herr := <-bridgeDone; err == nil {
		err = herr
	}
	stopBroker()
	if berr := <-brokerDone; err == nil {
		err = berr
	}
	return err
}

func runSpeaker(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "speaker", "[flags]")
	var m mqttFlags
	m.register(fs, "")
	name := fs.String("name", envOr("TUTTI_SPEAKER", ""), "speaker name (a-z 0-9 _ -); also its MQTT user name by default")
	session := fs.String("session", envOr("TUTTI_SESSION", protocol.DefaultSession), "session to follow")
	cache := fs.String("cache", "", "song cache directory (default tutti-data/speaker-NAME)")
	var of outputFlags
	of.register(fs)
	volume := fs.Int("volume", 100, "own volume 0-100 (scaled by the session volume)")
	grace := fs.Duration("grace", speaker.DefaultGrace, "play on this long without hearing the time master, then go silent until it is back")
	cacheMB := fs.Int64("cache-mb", speaker.DefaultCacheMax>>20, "song cache cap in MiB (least recently used songs go first, never the current or next)")
	peerAddr := fs.String("peer-addr", ":0", "where to serve the song cache to other speakers (peer fetch; \"\" = do not serve)")
	peerURL := fs.String("peer-url", "", "URL other speakers reach the cache server at (default: from --peer-addr and the route to the broker)")
	bitExact := fs.Bool("bit-exact", false, "play the song's frames bit for bit between corrections, placed by whole frames (up to half a frame, 11 µs at 44.1 kHz, off the timeline); default: placed to the fraction of a frame")
	faultOffset := fs.Duration("fault-clock-offset", 0, "tests and demos: make the local clock this far off real time")
	faultPPM := fs.Float64("fault-ppm", 0, "tests and demos: make the local clock and the virtual or pipe output's crystal run this many ppm fast (negative: slow; one crystal drives both)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	of.ppm = *faultPPM
	if err := protocol.ValidName(*name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	// A speaker is one real-time pipeline woken every 10 ms: on one P the Go
	// runtime spends far less on idle threads spinning and waking each other
	// (MP3 playback 5.7-6.5 % of a core with two Ps, 4.7-5.8 % with one, on
	// the reference machine). GOMAXPROCS in the environment still decides.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(speakerGCPercent)
	}
	if m.user == "" {
		m.user = *name
	}
	if *cache == "" {
		*cache = "tutti-data/speaker-" + *name
	}
	user, password, err := m.credentials()
	if err != nil {
		return err
	}
	tlsConf, err := m.tls()
	if err != nil {
		return err
	}
	out, closeOut, err := of.open(e)
	if err != nil {
		return err
	}
	closeOut = sync.OnceFunc(closeOut) // also closed before a restart
	defer closeOut()
	var clock clock.Clock
	if *faultOffset != 0 || *faultPPM != 0 {
		clock = speaker.NewFaultClock(*faultOffset, *faultPPM)
	}
	s, err := speaker.New(speaker.Options{
		Name: *name, Session: *session, BrokerURL: m.broker, Username: user, Password: password,
		CacheDir: *cache, Output: out, Volume: *volume, Calibration: of.calibration, Grace: *grace, CacheMax: *cacheMB << 20, PeerAddr: *peerAddr, PeerURL: *peerURL, TLS: tlsConf, BitExact: *bitExact,
		Clock: clock, Logger: e.log.With("role", "speaker"),
	})
	if err != nil {
		return err
	}
	err = s.Run(ctx)
	if errors.Is(err, speaker.ErrRestart) {
		// Asked to restart: this process becomes a fresh one, with the same
		// arguments and pid (a supervisor such as systemd sees no exit).
		closeOut()
		return restartProcess(e)
	}
	return err
}

// speakerGCPercent is the speaker's GOGC. A playing speaker keeps a small
// live heap and makes garbage at a steady trickle (the decoders' buffers
// of each frame); collecting when the heap has grown by half rather than
// doubled keeps about 1.5 MB less resident (anonymous memory 5.0 MB
// instead of 6.6 MB playing MP3, `tutti-bench bench cost`) for no CPU the
// benchmark can tell apart.
const speakerGCPercent = 50

// restartProcess replaces this process with a new run of the same
// command line; it returns only if that fails.
func restartProcess(e *env) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	e.log.Info("restarting", "exe", exe)
	return fmt.Errorf("restart: %w", syscall.Exec(exe, os.Args, os.Environ()))
}

// outputFlags choose and configure a speaker's audio output.
type outputFlags struct {
	kind, logPath, pipePath, alsaDevice string
	rate                                int
	latency, calibration                time.Duration
	ppm                                 float64 // crystal error of the virtual or pipe output
}

func (o *outputFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.kind, "output", "alsa", "audio output: alsa (the sound card), virtual (a paced virtual DAC that logs what it plays), pipe (raw s16le stereo PCM)")
	fs.StringVar(&o.logPath, "virtual-log", "", "virtual and pipe outputs: file to log each block heard (JSON lines)")
	fs.StringVar(&o.pipePath, "pipe", "-", "pipe output: file or FIFO to write PCM to (- = stdout)")
	fs.IntVar(&o.rate, "rate", 0, "output sample rate (default: alsa, the device's native rate, 48 or 44.1 kHz; virtual and pipe, 44100)")
	fs.DurationVar(&o.latency, "latency", 40*time.Millisecond, "virtual and pipe outputs: from filling a block to hearing it (the block is written a block period after it is filled; at least 2 blocks of 20 ms)")
	fs.DurationVar(&o.calibration, "calibration", 0, "extra output latency of this speaker's hardware beyond what the output reports (a calibration set later with the calibrate command, e.g. from Home Assistant, overrides it)")
	fs.StringVar(&o.alsaDevice, "alsa-device", "default", "alsa output: the ALSA PCM to play to (e.g. hw:0,0, plughw:1,0)")
}

func (o *outputFlags) open(e *env) (speaker.Output, func(), error) {
	noop := func() {}
	if o.rate == 0 && o.kind != "alsa" {
		o.rate = 44100
	}
	switch o.kind {
	case "alsa":
		rate := o.rate
		if rate == 0 {
			native, err := speaker.NativeRate(o.alsaDevice)
			if err != nil {
				// Opening the device for playback will say what is wrong.
				e.log.Warn("cannot read the device's native rate; using 44100 Hz", "err", err)
				native = 44100
			}
			rate = native
		}
		return speaker.NewALSAOutput(speaker.ALSAOptions{Device: o.alsaDevice, Rate: rate, Logger: e.log}), noop, nil
	case "virtual", "pipe":
		var log io.Writer
		closeLog := func() {}
		if o.logPath != "" {
			f, err := os.OpenFile(o.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return nil, nil, err
			}
			log, closeLog = f, func() { f.Close() }
		}
		out, closeOut, err := o.openPaced(e, log)
		if err != nil {
			closeLog()
			return nil, nil, err
		}
		return out, func() { closeOut(); closeLog() }, nil
	}
	return nil, nil, errors.New("--output: want alsa, virtual or pipe")
}

// openPaced opens the virtual or pipe output, logging to log if not nil.
func (o *outputFlags) openPaced(e *env, log io.Writer) (speaker.Output, func(), error) {
	if o.kind == "virtual" {
		return speaker.NewVirtualOutput(speaker.VirtualOptions{Rate: o.rate, Latency: o.latency, PPM: o.ppm, Log: log, Logger: e.log}), func() {}, nil
	}
	opts := speaker.PipeOptions{W: e.stdout, Rate: o.rate, Latency: o.latency, PPM: o.ppm, Log: log, Logger: e.log}
	if o.pipePath == "-" {
		return speaker.NewPipeOutput(opts), func() {}, nil
	}
	f, err := os.OpenFile(o.pipePath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, err
	}
	opts.W = f
	return speaker.NewPipeOutput(opts), func() { f.Close() }, nil
}
