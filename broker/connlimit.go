package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/clock"
)

// A connection costs the broker a file descriptor and a goroutine from the
// moment it is accepted, and mochi waits for its CONNECT packet forever: a
// device on the LAN that opens connections and sends nothing would run the
// hub out of file descriptors, the song server's included. So the broker's
// listeners close a connection that has not finished its TLS handshake and
// sent CONNECT within ConnectTimeout, and refuse connections beyond a cap
// on all connections, on those not logged in yet, and on those not logged
// in yet from one source address.

const (
	// ConnectTimeout bounds the TLS handshake and the CONNECT packet of a
	// new connection. tutti's clients send CONNECT right after connecting
	// and give up themselves after 5 s (mqttclient's connect timeout).
	// mochi replaces the deadline with the client's keepalive once it has
	// read CONNECT (Client.refreshDeadline, before the login is checked).
	ConnectTimeout = 5 * time.Second
	// DefaultMaxConnections caps all connections when Options.MaxConnections
	// is 0: a household's hub serves tens of speakers and remotes, and a
	// scale test a hundred speakers. It is lowered to half the process's
	// file limit, so that connections never take the file descriptors the
	// song server and the store need.
	DefaultMaxConnections = 1000
	// maxPendingPerSource caps the connections of one source address (an
	// IPv4 address, an IPv6 /64) that have not logged in yet: a device runs
	// a few MQTT clients, which at a broker restart reconnect at once. The
	// hub's own programs, which connect from 127.0.0.1 or ::1 (a scale
	// test's hundred speakers among them), have no such cap: a burst of
	// them may have more than this pending for a moment.
	maxPendingPerSource = 64
	// maxAcceptRetryDelay bounds the pause after a failed accept (out of
	// file descriptors, say): the listener keeps serving once they are back.
	maxAcceptRetryDelay = time.Second
)

// connLimiter counts the connections of the broker's listeners.
type connLimiter struct {
	maxTotal   int // all connections
	maxPending int // connections not logged in yet, from all sources: half of maxTotal
	clock      clock.Clock
	logger     *slog.Logger

	mu       sync.Mutex
	total    int
	pending  map[*limitedConn]string // connection -> source, until it logs in
	bySource map[string]int          // pending connections per source
	closed   bool                    // the broker is closing: refuse all
	refusals logPacer                // refusals are logged at most once a second
}

func newConnLimiter(maxTotal int, clock clock.Clock, logger *slog.Logger) *connLimiter {
	return &connLimiter{maxTotal: maxTotal, maxPending: max(1, maxTotal/2), clock: clock, logger: logger,
		pending: map[*limitedConn]string{}, bySource: map[string]int{}}
}

// connectionCap is the cap on all connections for Options.MaxConnections.
func connectionCap(requested int) (int, error) {
	switch {
	case requested < 0:
		return 0, fmt.Errorf("broker: negative MaxConnections %d", requested)
	case requested > 0:
		return requested, nil
	}
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit); err == nil && limit.Cur/2 < DefaultMaxConnections {
		return max(1, int(limit.Cur/2)), nil
	}
	return DefaultMaxConnections, nil
}

// admit counts conn in, or says why it is refused.
func (l *connLimiter) admit(conn net.Conn) (*limitedConn, string) {
	source := sourceOf(conn.RemoteAddr().String())
	l.mu.Lock()
	defer l.mu.Unlock()
	var reason string
	switch {
	case l.closed:
		reason = "the broker is closing"
	case l.total >= l.maxTotal:
		reason = fmt.Sprintf("%d connections, the most the broker takes", l.total)
	case len(l.pending) >= l.maxPending:
		reason = fmt.Sprintf("%d connections not logged in yet, the most the broker takes", len(l.pending))
	case l.bySource[source] >= maxPendingPerSource && !fromHubItself(conn.RemoteAddr().String()):
		reason = fmt.Sprintf("%d connections from %s not logged in yet, the most from one source", l.bySource[source], source)
	}
	if reason != "" {
		l.refusedLocked(reason, conn.RemoteAddr().String())
		return nil, reason
	}
	c := &limitedConn{Conn: conn, limits: l}
	l.total++
	l.pending[c] = source
	l.bySource[source]++
	return c, ""
}

// refusedLocked logs a refusal, at most once per refusalLogInterval with
// the number of refusals since the last line.
func (l *connLimiter) refusedLocked(reason, remote string) {
	if count, due := l.refusals.due(l.clock.Now()); due {
		l.logger.Warn("mqtt connections refused", "reason", reason, "remote", remote, "refused", count)
	}
}

// loggedIn stops counting c as pending.
func (l *connLimiter) loggedIn(c *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unpendLocked(c)
}

func (l *connLimiter) unpendLocked(c *limitedConn) {
	source, ok := l.pending[c]
	if !ok {
		return
	}
	delete(l.pending, c)
	if l.bySource[source]--; l.bySource[source] == 0 {
		delete(l.bySource, source)
	}
}

// release counts c out when it closes.
func (l *connLimiter) release(c *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unpendLocked(c)
	l.total--
}

// close refuses every new connection and closes those not logged in yet,
// so that the broker's Close, which waits for every connection, does not
// wait for their deadlines.
func (l *connLimiter) close() {
	l.mu.Lock()
	l.closed = true
	pending := make([]*limitedConn, 0, len(l.pending))
	for c := range l.pending {
		pending = append(pending, c)
	}
	l.mu.Unlock()
	for _, c := range pending {
		c.Close()
	}
}

// limitedConn is an accepted connection, counted until it closes.
type limitedConn struct {
	net.Conn
	limits *connLimiter
	once   sync.Once
	// login is who logged in on it, with which password hash; nil until
	// then, and for anonymous clients (see revocation.go).
	login atomic.Pointer[credential]
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.limits.release(c) })
	return err
}

// limitedListener admits the connections of a TCP listener through a
// connLimiter and gives each ConnectTimeout to log in. For MQTT over TLS
// it sits below the TLS listener, so the deadline covers the handshake.
type limitedListener struct {
	net.Listener
	limits *connLimiter
	logger *slog.Logger
}

// Accept returns the next admitted connection. It closes refused ones at
// once, and pauses after a failed accept instead of failing: mochi stops
// serving a listener for good at its first Accept error, and running out
// of file descriptors for a moment must not end the broker's service.
func (l *limitedListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !retryable(err) {
				return nil, err
			}
			delay = min(max(2*delay, 5*time.Millisecond), maxAcceptRetryDelay)
			l.logger.Warn("mqtt accept failed; retrying", "error", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c, reason := l.limits.admit(conn)
		if reason != "" {
			conn.Close()
			continue
		}
		// Both directions: a client that reads nothing (the handshake's
		// answer) is cut off too.
		if err := conn.SetDeadline(time.Now().Add(ConnectTimeout)); err != nil {
			c.Close()
			continue
		}
		return c, nil
	}
}

// retryable reports whether a failed accept may succeed later.
func retryable(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// connOf returns the limitedConn under a client's connection (a TLS one
// included), if it has one: the broker's own client has none.
func connOf(cl *mqtt.Client) (*limitedConn, bool) {
	conn := cl.Net.Conn
	if tlsConn, ok := conn.(interface{ NetConn() net.Conn }); ok {
		conn = tlsConn.NetConn()
	}
	c, ok := conn.(*limitedConn)
	return c, ok
}

// connectionHook stops counting a connection as pending once its client
// has logged in. It authenticates nobody.
type connectionHook struct {
	mqtt.HookBase
	limits *connLimiter
}

func (h *connectionHook) ID() string { return "tutti-connections" }

func (h *connectionHook) Provides(b byte) bool { return b == mqtt.OnSessionEstablish }

// OnSessionEstablish runs once the login succeeded, before the client
// takes over any older connection of its id.
func (h *connectionHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if c, ok := connOf(cl); ok {
		h.limits.loggedIn(c)
	}
}

// fromHubItself reports whether remote ("host:port") is the hub's own
// loopback address.
func fromHubItself(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	addr := ap.Addr().Unmap()
	return err == nil && (addr == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || addr == netip.IPv6Loopback())
}

// sourceOf names the source of a remote address ("host:port") for limits
// per source: the IPv4 address, or the /64 prefix of an IPv6 address (one
// host gets a whole /64 and can pick any address in it).
func sourceOf(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return remote
	}
	addr := ap.Addr().Unmap()
	if addr.Is4() {
		return addr.String()
	}
	prefix, err := addr.Prefix(64)
	if err != nil {
		return addr.String()
	}
	return prefix.String()
}
