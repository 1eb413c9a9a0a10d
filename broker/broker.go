// Package broker is tutti's embedded MQTT broker: mochi-mqtt with retained
// messages persisted in a bolt file, tutti's users and topic ACLs, a packet
// size limit, and arbitration of the controllers' lease (lease.go).
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
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
	Clock          Clock        // times lease expiries; nil = real time
	Logger         *slog.Logger // nil = slog.Default()
}

// DefaultMaxPacketSize is the packet size limit when Options.MaxPacketSize is 0.
const DefaultMaxPacketSize = 1 << 20

// storeFile is the bolt file in DataDir that holds the retained messages.
const storeFile = "broker.bolt"

// Broker is an MQTT broker listening on one TCP address.
type Broker struct {
	server *mqtt.Server
	tcp    *listeners.TCP
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
	if opts.AllowAnonymous {
		logger.Warn("MQTT BROKER IN DEMO MODE: anonymous clients have full access; never use this on a shared network", "addr", tcp.Address())
	}
	logger.Info("mqtt broker listening", "addr", tcp.Address(), "users", users.count(), "store", opts.DataDir)
	return &Broker{server: server, tcp: tcp, logger: logger, done: make(chan struct{})}, nil
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
	auth := &authHook{users: users, allowAnonymous: opts.AllowAnonymous, sessions: server.Clients, logger: logger}
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
	if !opts.NoLeaseArbiter {
		// Added after the auth hook, whose OnPublish runs first: a claim
		// the ACL refuses never reaches the arbiter.
		restored, err := storedLease(store)
		if err != nil {
			server.Close() // closes the store
			return nil, fmt.Errorf("broker: read the lease from the store: %w", err)
		}
		if err := server.AddHook(newLeaseArbiter(opts.Clock, logger, restored), nil); err != nil {
			server.Close()
			return nil, fmt.Errorf("broker: lease arbiter: %w", err)
		}
	}
	return server, nil
}

// storedLease returns the payload of the lease retained in store, or nil if
// there is none (or no store). mochi loads the retained messages only in
// Serve, once clients may already publish: the arbiter reads the lease
// before.
func storedLease(store *bolt.Hook) ([]byte, error) {
	if store == nil {
		return nil, nil
	}
	retained, err := store.StoredRetainedMessages()
	if err != nil {
		return nil, err
	}
	for _, m := range retained {
		if m.TopicName == protocol.LeaseTopic {
			return m.Payload, nil
		}
	}
	return nil, nil
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
