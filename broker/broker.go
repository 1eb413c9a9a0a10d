// Package broker is tutti's embedded MQTT broker: mochi-mqtt with retained
// messages persisted in a bolt file (store.go), tutti's users and topic ACLs
// (acl.go, with per-session rights from sessions.go), a packet size limit,
// topic and payload limits (limits.go), a retained quota per user
// (quota.go), a publish rate limit per user (ratelimit.go), caps on the
// subscriptions of a client and of a user (subscriptions.go), arbitration of
// the controllers' lease (lease.go), and optionally MQTT over TLS.
// Connections must log in within a few seconds and are capped
// (connlimit.go), password checks are throttled (logins.go), client ids
// belong to users (clientids.go), and a changed password ends the
// connections that used the old one (revocation.go).
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/protocol"
)

// Options configures a Broker. The zero value of each field but Addr and
// UsersFile is a sensible default.
type Options struct {
	Addr           string // TCP listen address, e.g. "127.0.0.1:1883"; "127.0.0.1:0" picks a port
	DataDir        string // directory for persisted retained messages (a bolt file inside); "" = memory only
	UsersFile      string // TOML users file; may be "" only with AllowAnonymous
	AllowAnonymous bool   // demo mode: anonymous clients get full rights; logs a loud warning at start
	MaxPacketSize  int    // bytes; 0 = 1 MiB default
	// AnswerClock makes the broker the time master: it answers speakers'
	// clock probes (see clock.go). Then no controller may answer them.
	AnswerClock bool
	// NoLeaseArbiter turns off the lease arbitration and term fencing of
	// lease.go: the broker then passes lease claims and stale state like any
	// MQTT broker.
	NoLeaseArbiter bool
	// PublishRate and PublishBurst limit each client's publishes (a token
	// bucket, see ratelimit.go): 0 = DefaultPublishRate messages a second
	// and DefaultPublishBurst at once; a negative PublishRate turns the
	// limit off. Controllers and anonymous demo clients have no limit.
	PublishRate  float64
	PublishBurst int
	// TLSAddr, if not "", is a second listen address, for MQTT over TLS
	// with the certificate of TLS (which it then requires; see package
	// certs).
	TLSAddr string
	TLS     *tls.Config
	// MaxConnections caps the connections of both listeners together: 0 =
	// DefaultMaxConnections, or half the process's file limit if lower.
	// Half of them at most may be not logged in yet (see connlimit.go).
	MaxConnections int
	// Clock is the wall clock: it times lease expiries, publish limits and
	// login throttling, seeds the shared clock and paces the check of the
	// wall clock against it (clock.go); nil = real time.
	Clock  clock.Clock
	Logger *slog.Logger // nil = slog.Default()

	// HomeAssistantPrefix is Home Assistant's MQTT discovery prefix ("" =
	// protocol.HomeAssistantPrefix): below it only admins and controllers
	// (the bridge) may write, and Home Assistant its own status; members
	// may not read it.
	HomeAssistantPrefix string
}

// DefaultMaxPacketSize is the packet size limit when Options.MaxPacketSize is 0.
const DefaultMaxPacketSize = 1 << 20

// Broker is an MQTT broker listening on a TCP address, and optionally on a
// second one for MQTT over TLS.
type Broker struct {
	server     *mqtt.Server
	tcp        *listeners.Net
	tls        *listeners.Net // nil without Options.TLSAddr
	limits     *connLimiter
	revocation *revocation
	master     *timeMaster // nil without Options.AnswerClock
	logger     *slog.Logger

	mu      sync.Mutex // orders Serve and Close of the mochi server
	started bool
	closed  bool
	done    chan struct{} // closed by Close
}

// New checks opts, loads the users, opens the store and binds the TCP
// listener, so that Addr is known before Run.
func New(opts Options) (*Broker, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if opts.Addr == "" {
		return nil, errors.New("broker: no listen address")
	}
	if opts.UsersFile == "" && !opts.AllowAnonymous {
		return nil, errors.New("broker: no users file, and anonymous access is off: no client could connect")
	}
	if opts.TLSAddr != "" && opts.TLS == nil {
		return nil, errors.New("broker: a TLS address but no TLS configuration")
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	maxConns, err := connectionCap(opts.MaxConnections)
	if err != nil {
		return nil, err
	}
	users, err := newUserDirectory(opts.UsersFile, logger)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	limits := newConnLimiter(maxConns, opts.Clock, logger)
	var master *timeMaster
	if opts.AnswerClock {
		master = newTimeMaster(opts.Clock, logger)
	}
	server, revocation, err := newServer(opts, users, limits, master, logger)
	if err != nil {
		return nil, err
	}
	b := &Broker{server: server, limits: limits, revocation: revocation, master: master, logger: logger, done: make(chan struct{})}
	if b.tcp, err = b.listen("tcp", opts.Addr, nil); err != nil {
		server.Close() // closes the store
		return nil, err
	}
	if opts.TLSAddr != "" {
		if b.tls, err = b.listen("tls", opts.TLSAddr, opts.TLS); err != nil {
			server.Close() // closes the listeners and the store
			return nil, err
		}
	}
	if opts.AllowAnonymous {
		logger.Warn("MQTT BROKER IN DEMO MODE: anonymous clients have full access; never use this on a shared network", "addr", b.tcp.Address())
	}
	logger.Info("mqtt broker listening", "addr", b.tcp.Address(), "tls_addr", b.TLSAddr(), "users", users.count(), "store", opts.DataDir,
		"max_connections", maxConns)
	return b, nil
}

// listen binds addr and adds it to the server as listener id, its
// connections limited by b.limits, and over TLS if conf is not nil.
func (b *Broker) listen(id, addr string, conf *tls.Config) (*listeners.Net, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen on %s: %w", addr, err)
	}
	ln = &limitedListener{Listener: ln, limits: b.limits, logger: b.logger}
	if conf != nil {
		ln = tls.NewListener(ln, conf)
	}
	l := listeners.NewNet(id, ln)
	if err := b.server.AddListener(l); err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: listener %s: %w", id, err)
	}
	return l, nil
}

// newServer builds the mochi server with tutti's capabilities and hooks,
// without listeners; with a time master (Options.AnswerClock), it starts
// its clock from the stored base and lets it answer clock probes.
func newServer(opts Options, users *userDirectory, limits *connLimiter, master *timeMaster, logger *slog.Logger) (*mqtt.Server, *revocation, error) {
	maxPacket := opts.MaxPacketSize
	switch {
	case maxPacket < 0:
		return nil, nil, fmt.Errorf("broker: negative MaxPacketSize %d", maxPacket)
	case maxPacket == 0:
		maxPacket = DefaultMaxPacketSize
	}
	caps := mqtt.NewDefaultServerCapabilities()
	// 0 means never: mochi only enforces this limit when it is > 0
	// (clearExpiredRetainedMessages, Client.ClearExpiredInflights), and sets
	// a packet's Expiry only from a non-zero limit or a client's own MQTT 5
	// message expiry (processPublish, publishToSubscribers). With the default
	// of 24 h, retained state of 3.1.1 clients vanished after a day.
	// TestRetainedNeverExpire checks it over 25 h of fake time.
	caps.MaximumMessageExpiryInterval = 0
	// mochi refuses a packet whose announced size exceeds this before it
	// allocates it (Client.ReadFixedHeader), and drops the connection.
	caps.MaximumPacketSize = uint32(maxPacket)

	server := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(mochiLogHandler{logger.Handler()}).With("component", "mqtt"),
		// mochi refreshes $SYS every second by default, and with a store
		// that is one fsync a second: needless wear of a Pi's SD card for
		// diagnostics nobody in tutti reads.
		SysTopicResendInterval: sysTopicInterval,
		InlineClient:           opts.AnswerClock,
	})
	clock := clock.Or(opts.Clock)
	var limiter *publishLimiter
	switch rate, burst := opts.PublishRate, opts.PublishBurst; {
	case rate < 0:
	case burst < 0:
		return nil, nil, fmt.Errorf("broker: negative PublishBurst %d", burst)
	default:
		if rate == 0 {
			rate = DefaultPublishRate
		}
		if burst == 0 {
			burst = DefaultPublishBurst
		}
		limiter = newPublishLimiter(rate, burst, clock, logger)
	}
	refusals := newRefusalLog(clock, logger)
	// Added first: no other hook sees a publish over the size limits.
	if err := server.AddHook(&limitsHook{refusals: refusals}, nil); err != nil {
		return nil, nil, fmt.Errorf("broker: limits hook: %w", err)
	}
	if err := server.AddHook(newSubscriptionCap(refusals), nil); err != nil {
		return nil, nil, fmt.Errorf("broker: subscription cap: %w", err)
	}
	sessions := newSessionDirectory()
	haPrefix := opts.HomeAssistantPrefix
	switch {
	case haPrefix == "":
		haPrefix = protocol.HomeAssistantPrefix
	case strings.ContainsAny(haPrefix, "+#") || strings.HasPrefix(haPrefix, "/") || strings.HasSuffix(haPrefix, "/") || inTutti(haPrefix):
		return nil, nil, fmt.Errorf("broker: Home Assistant prefix %q must be a topic without wildcards or outer slashes, outside %s/", haPrefix, protocol.Root)
	}
	auth := &authHook{users: users, logins: newLogins(users, clock, logger), allowAnonymous: opts.AllowAnonymous, clients: server.Clients, sessions: sessions,
		speakerCmds: newSpeakerCommands(clock), haPrefix: haPrefix, limiter: limiter, refusals: refusals, logger: logger}
	if err := server.AddHook(auth, nil); err != nil {
		return nil, nil, fmt.Errorf("broker: auth hook: %w", err)
	}
	if err := server.AddHook(&connectionHook{limits: limits}, nil); err != nil {
		return nil, nil, fmt.Errorf("broker: connection hook: %w", err)
	}
	revocation := newRevocation(users, server.Clients, logger)
	if err := server.AddHook(revocation, nil); err != nil {
		return nil, nil, fmt.Errorf("broker: revocation hook: %w", err)
	}
	// mochi loads the retained messages only in Serve, once clients may
	// already publish: the lease arbiter, the session directory and the
	// retained quota read them before.
	var retained []storage.Message
	if opts.DataDir != "" {
		if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("broker: data dir: %w", err)
		}
		path := filepath.Join(opts.DataDir, storeFile)
		store, err := openStore(path, logger)
		if err != nil {
			return nil, nil, fmt.Errorf("broker: open store %s: %w", path, err)
		}
		if err := server.AddHook(store, nil); err != nil {
			store.Stop()
			return nil, nil, fmt.Errorf("broker: store hook: %w", err)
		}
		retained = store.loaded
	}
	if !opts.NoLeaseArbiter {
		// Added after the auth hook, whose OnPublish runs first: a claim
		// the ACL refuses never reaches the arbiter.
		if err := server.AddHook(newLeaseArbiter(opts.Clock, logger, storedPayload(retained, protocol.LeaseTopic)), nil); err != nil {
			server.Close()
			return nil, nil, fmt.Errorf("broker: lease arbiter: %w", err)
		}
	}
	if err := server.AddHook(newRetainedQuota(retained, users, refusals, logger), nil); err != nil {
		server.Close()
		return nil, nil, fmt.Errorf("broker: retained quota: %w", err)
	}
	sessions.restore(retained, logger)
	if master != nil {
		master.start(storedPayload(retained, protocol.ClockBaseTopic))
		if err := server.AddHook(&clockBaseGuard{logger: logger}, nil); err != nil {
			server.Close()
			return nil, nil, fmt.Errorf("broker: clock base guard: %w", err)
		}
		if err := server.Subscribe(protocol.ClockRequestFilter, clockSubscriptionID, answerClock(server, master, logger)); err != nil {
			server.Close()
			return nil, nil, fmt.Errorf("broker: clock responder: %w", err)
		}
	}
	// Added last: it records only what no other hook dropped.
	if err := server.AddHook(&sessionTracker{sessions: sessions, logger: logger}, nil); err != nil {
		server.Close()
		return nil, nil, fmt.Errorf("broker: session tracker: %w", err)
	}
	return server, revocation, nil
}

// storedPayload returns the payload retained on topic among the retained
// messages, or nil if there is none.
func storedPayload(retained []storage.Message, topic string) []byte {
	for _, m := range retained {
		if m.TopicName == topic {
			return m.Payload
		}
	}
	return nil
}

// sysTopicInterval is how often, in seconds, mochi refreshes the $SYS topics.
const sysTopicInterval = 60

// Addr returns the address the broker listens on, e.g. "127.0.0.1:40123".
func (b *Broker) Addr() string { return b.tcp.Address() }

// TLSAddr returns the address the broker listens on for MQTT over TLS, ""
// without Options.TLSAddr.
func (b *Broker) TLSAddr() string {
	if b.tls == nil {
		return ""
	}
	return b.tls.Address()
}

// Run serves clients until ctx is done or Close is called, then closes the
// broker. It returns nil when stopped that way.
func (b *Broker) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.started || b.closed {
		b.mu.Unlock()
		return errors.New("broker: Run called twice or after Close")
	}
	b.started = true
	// Serve loads the store, starts mochi's housekeeping loop and the
	// accept loop, and returns.
	err := b.server.Serve()
	b.mu.Unlock()
	if err != nil {
		b.Close()
		return fmt.Errorf("broker: %w", err)
	}
	watching, stopWatching := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		b.revocation.watch(watching)
	}()
	b.watchWallClock(ctx)
	stopWatching()
	<-watched
	return b.Close()
}

// watchWallClock publishes the time master's clock base, and again whenever
// the wall clock steps, until ctx is done or the broker closes. Without
// Options.AnswerClock it only waits.
func (b *Broker) watchWallClock(ctx context.Context) {
	var tick <-chan time.Time
	if b.master != nil {
		b.master.publishBase(b.server)
		ticker := b.master.wall.NewTicker(wallCheckInterval)
		defer ticker.Stop()
		tick = ticker.C()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.done:
			return
		case <-tick:
			b.master.publishBase(b.server)
		}
	}
}

// Close disconnects every client, stops listening and closes the store. It
// waits for the client connections to end. Calling it again does nothing.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	close(b.done)
	// mochi's Close waits for every connection, also those that have not
	// sent CONNECT yet: they are closed first.
	b.limits.close()
	// mochi's Close never fails; the store's close error is only logged by mochi.
	b.server.Close()
	b.logger.Info("mqtt broker stopped", "addr", b.tcp.Address())
	return nil
}

// mochiLogHandler passes on only mochi's errors: at warn it logs every
// client that drops its connection, with the whole packet in flight, which
// buries tutti's own lines. tutti logs refusals itself (authHook).
type mochiLogHandler struct{ slog.Handler }

func (h mochiLogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelError && h.Handler.Enabled(ctx, level)
}

func (h mochiLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return mochiLogHandler{h.Handler.WithAttrs(attrs)}
}

func (h mochiLogHandler) WithGroup(name string) slog.Handler {
	return mochiLogHandler{h.Handler.WithGroup(name)}
}
