package broker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/certs"
	"github.com/tutti-audio/tutti/internal/testwait"
)

// attacker is a second loopback address: on Linux all of 127/8 reaches
// the broker on 127.0.0.1, so the attack comes from its own source while
// the legitimate clients connect from 127.0.0.1.
var attacker = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}

// dialFrom opens a TCP connection to addr from the local address from.
func dialFrom(t *testing.T, from *net.TCPAddr, addr string) net.Conn {
	t.Helper()
	conn, err := (&net.Dialer{LocalAddr: from, Timeout: testWait}).Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// closedAfter waits until the broker closes conn and returns how long that
// took from start; it fails the test if conn is still open after wait.
func closedAfter(conn net.Conn, start time.Time, wait time.Duration) (time.Duration, error) {
	conn.SetReadDeadline(start.Add(wait))
	_, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return 0, errors.New("still open")
	}
	return time.Since(start), nil
}

// TestSilentConnectionsClosed opens 300 TCP connections that never send
// CONNECT, 100 TLS ones that never start the handshake and a few that
// stop halfway through a CONNECT, all from one source: the broker closes
// those beyond its cap per source at once and the others at
// ConnectTimeout, while a client from another address logs in and gets
// its messages through.
func TestSilentConnectionsClosed(t *testing.T) {
	files, serverConf := tlsFiles(t)
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, admin, bob), TLSAddr: "127.0.0.1:0", TLS: serverConf})

	start := time.Now()
	var silent []net.Conn
	for range 300 {
		silent = append(silent, dialFrom(t, attacker, b.Addr()))
	}
	for range 100 {
		silent = append(silent, dialFrom(t, attacker, b.TLSAddr()))
	}
	// A CONNECT announcing 100 bytes, of which only 2 come.
	for range 5 {
		conn := dialFrom(t, attacker, b.Addr())
		if _, err := conn.Write([]byte{0x10, 100, 0, 4}); err != nil {
			t.Fatal(err)
		}
		silent = append(silent, conn)
	}

	// Meanwhile a member logs in over TCP, an admin over TLS, and a
	// message goes from one to the other.
	loggedIn := time.Now()
	member := mustConnect(t, b, bob, "bob-phone")
	conf, err := certs.ClientConfig(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	overTLS, err := connect(t, b, admin, "alice-laptop", func(o *paho.ClientOptions) {
		o.Servers = nil
		o.AddBroker("ssl://" + b.TLSAddr()).SetTLSConfig(conf)
	})
	if err != nil {
		t.Fatalf("login over TLS during the attack: %v", err)
	}
	got := subscribe(t, overTLS, "bob/news")
	publish(t, member, "bob/news", false, "hello")
	if m := receive(t, got); m.payload != "hello" {
		t.Errorf("got %+v", m)
	}
	t.Logf("two logins and a round trip during the attack: %v", time.Since(loggedIn))

	// Every silent connection is closed: those beyond the cap at once,
	// the others at the deadline.
	var (
		mu        sync.Mutex
		atOnce    int
		slowest   time.Duration
		stillOpen int
		wg        sync.WaitGroup
	)
	for _, conn := range silent {
		wg.Go(func() {
			took, err := closedAfter(conn, start, ConnectTimeout+testWait)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				stillOpen++
			case took < ConnectTimeout/2:
				atOnce++
			}
			slowest = max(slowest, took)
		})
	}
	wg.Wait()
	if stillOpen > 0 {
		t.Fatalf("%d of %d silent connections still open %v after they were made", stillOpen, len(silent), ConnectTimeout+testWait)
	}
	if want := len(silent) - maxPendingPerSource; atOnce < want {
		t.Errorf("%d connections closed at once, want at least %d (all beyond the %d per source)", atOnce, want, maxPendingPerSource)
	}
	// The deadline is set at accept, after the dial: a busy machine may
	// take a while to get there, hence the slack.
	if slowest > ConnectTimeout+3*time.Second {
		t.Errorf("the last silent connection was closed after %v, want about %v", slowest, ConnectTimeout)
	}
	t.Logf("%d of %d closed at once, the last after %v", atOnce, len(silent), slowest)
	if !member.IsConnectionOpen() || !overTLS.IsConnectionOpen() {
		t.Error("a logged-in client lost its connection")
	}
	waitForLog(t, log, "mqtt connections refused")
}

// TestLoginBurstFromTheHub: a hundred and fifty clients of the hub's own
// (a scale test's speakers) connect from 127.0.0.1 at once; the cap per
// source does not refuse any.
func TestLoginBurstFromTheHub(t *testing.T) {
	b, _, _ := startBroker(t, Options{AllowAnonymous: true})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var refused []error
	for i := range 150 {
		wg.Go(func() {
			if _, err := connect(t, b, testUser{}, fmt.Sprint("speaker-", i)); err != nil {
				mu.Lock()
				refused = append(refused, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(refused) > 0 {
		t.Errorf("%d of 150 connections refused, the first: %v", len(refused), refused[0])
	}
}

// TestCloseEndsSilentConnections: closing the broker does not wait for
// the deadline of connections that never sent CONNECT (mochi waits for
// every connection to end).
func TestCloseEndsSilentConnections(t *testing.T) {
	b, stop, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin)})
	silent := dialFrom(t, attacker, b.Addr())
	mustConnect(t, b, admin, "alice-laptop") // the silent one has been accepted by now
	start := time.Now()
	stop()
	if took := time.Since(start); took > ConnectTimeout/2 {
		t.Errorf("Close took %v with a silent connection open", took)
	}
	if _, err := closedAfter(silent, start, testWait); err != nil {
		t.Errorf("silent connection after Close: %v", err)
	}
}

// TestConnectionCap: beyond MaxConnections, a new connection is closed at
// once; when one ends, the next gets in.
func TestConnectionCap(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin, bob), MaxConnections: 3})
	mustConnect(t, b, admin, "alice-1")
	mustConnect(t, b, admin, "alice-2")
	last := mustConnect(t, b, bob, "bob-1")
	if _, err := connect(t, b, bob, "bob-2", func(o *paho.ClientOptions) { o.SetConnectTimeout(3 * time.Second) }); err == nil {
		t.Fatal("a fourth connection got in with MaxConnections 3")
	}
	last.Disconnect(0)
	// The broker counts the connection out once it sees it close.
	var err error
	if !testwait.Until(testWait, func() bool {
		_, err = connect(t, b, bob, "bob-3", func(o *paho.ClientOptions) { o.SetConnectTimeout(3 * time.Second) })
		return err == nil
	}) {
		t.Fatalf("no connection accepted after one of three ended: %v", err)
	}
}

// TestAcceptSurvivesRunningOutOfFiles: while the process has no file
// descriptor left, accepting fails; the broker keeps trying and serves the
// waiting client once descriptors are free again (mochi on its own stops
// accepting for good at the first failure).
func TestAcceptSurvivesRunningOutOfFiles(t *testing.T) {
	b, _, log := startBroker(t, Options{UsersFile: writeUsers(t, admin)})
	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	restore := sync.OnceFunc(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
			t.Errorf("restore the file limit: %v", err)
		}
	})
	t.Cleanup(restore)

	// The kernel gives out the lowest free descriptor: with the limit just
	// above it, the client's socket is the last one the process gets, and
	// the broker's accept finds none.
	probe, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	lowest := probe.Fd()
	probe.Close()
	lowered := saved
	lowered.Cur = uint64(lowest) + 1
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("alice-late").
		SetUsername(admin.name).SetPassword(admin.password).SetProtocolVersion(4).
		SetConnectTimeout(testWait).SetAutoReconnect(false))
	tok := c.Connect()
	waitForLog(t, log, "mqtt accept failed; retrying")
	restore()
	if !tok.WaitTimeout(testWait) || tok.Error() != nil {
		t.Fatalf("the client waiting while descriptors ran out did not connect: %v", tok.Error())
	}
	c.Disconnect(0)
	mustConnect(t, b, admin, "alice-after")
}

func TestConnectionCapOption(t *testing.T) {
	if _, err := connectionCap(-1); err == nil {
		t.Error("negative MaxConnections accepted")
	}
	if got, _ := connectionCap(7); got != 7 {
		t.Errorf("MaxConnections 7 gave a cap of %d", got)
	}
	if got, _ := connectionCap(0); got < 1 || got > DefaultMaxConnections {
		t.Errorf("default cap %d, want 1 to %d", got, DefaultMaxConnections)
	}
}

func TestSourceOf(t *testing.T) {
	for remote, want := range map[string]string{
		"192.168.1.20:51000":              "192.168.1.20",
		"[::ffff:192.168.1.20]:51000":     "192.168.1.20",
		"[2001:db8:1:2:3:4:5:6]:1883":     "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:1883":     "2001:db8:1:2::/64",
		"[fe80::1%eth0]:1883":             "fe80::/64",
		"not an address":                  "not an address",
		"[2001:db8:1:3:3:4:5:6]:1883":     "2001:db8:1:3::/64",
		"127.0.0.2:40000":                 "127.0.0.2",
		"[::1]:40000":                     "::/64",
		"[2001:db8::1]:1883":              "2001:db8::/64",
		"[2001:db8:0:0:1::1]:1883":        "2001:db8::/64",
		"[2001:db8:ffff:ffff:1::1]:65535": "2001:db8:ffff:ffff::/64",
	} {
		if got := sourceOf(remote); got != want {
			t.Errorf("sourceOf(%q) = %q, want %q", remote, got, want)
		}
	}
	for remote, want := range map[string]bool{
		"127.0.0.1:40000":          true,
		"[::1]:40000":              true,
		"[::ffff:127.0.0.1]:40000": true,
		"127.0.0.2:40000":          false,
		"192.168.1.20:1883":        false,
		"[::2]:40000":              false,
		"not an address":           false,
		"[2001:db8::1]:1883":       false,
	} {
		if got := fromHubItself(remote); got != want {
			t.Errorf("fromHubItself(%q) = %v", remote, got)
		}
	}
}
