// Package broker is tutti's embedded MQTT broker: mochi-mqtt with retained
// messages persisted in a bolt file, tutti's users and topic ACLs (acl.go,
// with per-session rights from sessions.go), a packet size limit and a
// publish rate limit per user (ratelimit.go), arbitration of the
// controllers' lease (lease.go), and optionally MQTT over TLS.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"go.etcd.io/bbolt"

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
	Clock   Clock        // times lease expiries and publish limits; nil = real time
	Logger  *slog.Logger // nil = slog.Default()
}

// DefaultMaxPacketSize is the packet size limit when Options.MaxPacketSize is 0.
const DefaultMaxPacketSize = 1 << 20

// storeFile is the bolt file in DataDir that holds the retained messages.
const storeFile = "broker.bolt"

// Broker is an MQTT broker listening on a TCP address, and optionally on a
// second one for MQTT over TLS.
type Broker struct {
	server *mqtt.Server
	tcp    *listeners.TCP
	tls    *listeners.TCP // nil without Options.TLSAddr
	logger *slog.Logger

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
	users, err := newUserDirectory(opts.UsersFile, logger)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	server, err := newServer(opts, users, logger)
	if err != nil {
		return nil, err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: opts.Addr})
	if err := server.AddListener(tcp); err != nil {
		server.Close() // closes the store
		return nil, fmt.Errorf("broker: listen on %s: %w", opts.Addr, err)
	}
	b := &Broker{server: server, tcp: tcp, logger: logger, done: make(chan struct{})}
	if opts.TLSAddr != "" {
		b.tls = listeners.NewTCP(listeners.Config{ID: "tls", Address: opts.TLSAddr, TLSConfig: opts.TLS})
		if err := server.AddListener(b.tls); err != nil {
			server.Close() // closes the listeners and the store
			return nil, fmt.Errorf("broker: listen on %s: %w", opts.TLSAddr, err)
		}
	}
	if opts.AllowAnonymous {
		logger.Warn("MQTT BROKER IN DEMO MODE: anonymous clients have full access; never use this on a shared network", "addr", tcp.Address())
	}
	logger.Info("mqtt broker listening", "addr", tcp.Address(), "tls_addr", b.TLSAddr(), "users", users.count(), "store", opts.DataDir)
	return b, nil
}

// newServer builds the mochi server with tutti's capabilities and hooks,
// without listeners.
func newServer(opts Options, users *userDirectory, logger *slog.Logger) (*mqtt.Server, error) {
	maxPacket := opts.MaxPacketSize
	switch {
	case maxPacket < 0:
		return nil, fmt.Errorf("broker: negative MaxPacketSize %d", maxPacket)
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
	clock := opts.Clock
	if clock == nil {
		clock = realClock{}
	}
	var limiter *publishLimiter
	switch rate, burst := opts.PublishRate, opts.PublishBurst; {
	case rate < 0:
	case burst < 0:
		return nil, fmt.Errorf("broker: negative PublishBurst %d", burst)
	default:
		if rate == 0 {
			rate = DefaultPublishRate
		}
		if burst == 0 {
			burst = DefaultPublishBurst
		}
		limiter = newPublishLimiter(rate, burst, clock, logger)
	}
	sessions := newSessionDirectory()
	auth := &authHook{users: users, allowAnonymous: opts.AllowAnonymous, clients: server.Clients, sessions: sessions, limiter: limiter, logger: logger}
	if err := server.AddHook(auth, nil); err != nil {
		return nil, fmt.Errorf("broker: auth hook: %w", err)
	}
	if opts.AnswerClock {
		if err := server.Subscribe(protocol.ClockRequestFilter, clockSubscriptionID, answerClock(server, logger)); err != nil {
			return nil, fmt.Errorf("broker: clock responder: %w", err)
		}
	}
	var store *bolt.Hook
	if opts.DataDir != "" {
		store = new(bolt.Hook)
		if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("broker: data dir: %w", err)
		}
		path := filepath.Join(opts.DataDir, storeFile)
		// The bolt file is locked: a second broker on the same DataDir
		// fails here after the timeout instead of corrupting it.
		err := server.AddHook(retainedStore{store}, &bolt.Options{Path: path, Options: &bbolt.Options{Timeout: storeLockTimeout}})
		if err != nil {
			return nil, fmt.Errorf("broker: open store %s: %w", path, err)
		}
	}
	// mochi loads the retained messages only in Serve, once clients may
	// already publish: the lease arbiter and the session directory read
	// them before.
	var retained []storage.Message
	if store != nil {
		var err error
		if retained, err = store.StoredRetainedMessages(); err != nil {
			server.Close() // closes the store
			return nil, fmt.Errorf("broker: read the retained messages from the store: %w", err)
		}
	}
	if !opts.NoLeaseArbiter {
		// Added after the auth hook, whose OnPublish runs first: a claim
		// the ACL refuses never reaches the arbiter.
		if err := server.AddHook(newLeaseArbiter(opts.Clock, logger, storedLease(retained)), nil); err != nil {
			server.Close()
			return nil, fmt.Errorf("broker: lease arbiter: %w", err)
		}
	}
	sessions.restore(retained, logger)
	// Added last: it records only what no other hook dropped.
	if err := server.AddHook(&sessionTracker{sessions: sessions, logger: logger}, nil); err != nil {
		server.Close()
		return nil, fmt.Errorf("broker: session tracker: %w", err)
	}
	return server, nil
}

// storedLease returns the payload of the lease among the retained messages,
// or nil if there is none.
func storedLease(retained []storage.Message) []byte {
	for _, m := range retained {
		if m.TopicName == protocol.LeaseTopic {
			return m.Payload
		}
	}
	return nil
}

// retainedStore is mochi's bolt store limited to retained messages: session
// state, playlists, statuses and discovery configs survive a restart. It
// stores nothing else: tutti's clients use clean sessions, and stored
// in-flight copies would cost two disk commits per subscriber of every QoS 1
// message (a state change to 100 speakers: 200 commits before they all had
// it).
type retainedStore struct{ *bolt.Hook }

func (retainedStore) Provides(b byte) bool {
	return b == mqtt.OnRetainMessage || b == mqtt.OnRetainedExpired || b == mqtt.StoredRetainedMessages
}

// sysTopicInterval is how often, in seconds, mochi refreshes the $SYS topics.
const sysTopicInterval = 60

// storeLockTimeout is how long New waits for another process's lock on the
// store file.
const storeLockTimeout = 2 * time.Second

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
	select {
	case <-ctx.Done():
	case <-b.done:
	}
	return b.Close()
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
