// Package e2e tests tutti end to end: the real binary's processes over
// loopback, driven by the real mosquitto_pub and read with mosquitto_sub.
package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// tuttiBin is the binary under test, built once by TestMain.
var tuttiBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tutti-e2e-")
	if err != nil {
		panic(err)
	}
	tuttiBin = filepath.Join(dir, "tutti")
	build := exec.Command("go", "build", "-tags", "sqlite_fts5", "-o", tuttiBin, "../cmd/tutti")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building tutti:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a child process whose output goes to a log file that is shown
// when the test fails.
type proc struct {
	name     string
	cmd      *exec.Cmd
	log      string
	done     chan struct{}
	songsURL string // a controller's song server, where it said it listens
}

func start(t *testing.T, name string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); logFile.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(string(b), "\n")
			t.Logf("--- last lines of %s:\n%s", name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	return p
}

// listenTimeout bounds how long a child may take to say where it listens:
// the broker of the secure tests makes its certificates first, seconds on a
// loaded machine.
const listenTimeout = 20 * time.Second

// logged waits until p logs a line with message msg and returns the value
// of key in that line. The tutti commands log the addresses they listen on,
// so the tests start them on port 0 and read the port they got: no port is
// chosen before the child holds it, and none can be taken in between. It
// fails the test if p exits first.
func (p *proc) logged(t *testing.T, msg, key string) string {
	t.Helper()
	var value string
	found, exited := false, false
	testwait.Until(listenTimeout, func() bool {
		exited = p.exited() // before reading: the lines it wrote before exiting are read
		b, _ := os.ReadFile(p.log)
		value, found = logValue(string(b), msg, key)
		return found || exited
	})
	if !found {
		t.Fatalf("%s never logged %q with %s (exited: %v)", p.name, msg, key, exited)
	}
	return value
}

// logValue finds the first whole line of log, as slog's text handler
// writes it, whose message is msg (one with spaces, which slog quotes), and
// returns the value of key in it. A last line without its newline may be
// still being written: it is left for the next read.
func logValue(log, msg, key string) (string, bool) {
	for line := range strings.Lines(log) {
		if !strings.HasSuffix(line, "\n") || !strings.Contains(line, " msg="+strconv.Quote(msg)+" ") {
			continue
		}
		_, rest, ok := strings.Cut(line, " "+key+"=")
		if !ok {
			continue
		}
		if quoted, err := strconv.QuotedPrefix(rest); err == nil {
			value, err := strconv.Unquote(quoted)
			return value, err == nil
		}
		value, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
		return value, true
	}
	return "", false
}

// portOf is the port of a host:port address.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return port
}

// exited says whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop signals the process and waits for it to exit.
func (p *proc) stop(sig syscall.Signal) {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// remote drives tutti the way a person with mosquitto_pub does, and reads
// every reply with one long-running mosquitto_sub.
type remote struct {
	t          *testing.T
	host, port string
	mu         sync.Mutex
	replies    []protocol.Reply
	nextID     int
}

// mosquittoSub runs mosquitto_sub on topic (QoS 1, extra flags last) until
// the test ends, handing each message line to onLine as it arrives.
func mosquittoSub(t *testing.T, port, topic string, onLine func([]byte), extra ...string) {
	t.Helper()
	sub := exec.Command("mosquitto_sub", append([]string{"-h", "127.0.0.1", "-p", port, "-q", "1", "-t", topic}, extra...)...)
	out, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	t.Cleanup(func() { sub.Process.Kill(); sub.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			onLine(sc.Bytes())
		}
	}()
}

func newRemote(t *testing.T, port string) *remote {
	r := &remote{t: t, host: "127.0.0.1", port: port}
	mosquittoSub(t, port, protocol.DefaultReplyTopic+"/#", func(line []byte) {
		var rep protocol.Reply
		if json.Unmarshal(line, &rep) == nil {
			r.mu.Lock()
			r.replies = append(r.replies, rep)
			r.mu.Unlock()
		}
	})
	// mosquitto_sub says nothing when it has subscribed: publish probes
	// until one comes back.
	testwait.For(t, "mosquitto_sub to subscribe", 10*time.Second, func() bool {
		r.pub(protocol.DefaultReplyTopic+"/probe", `{"v":1,"ok":true,"cmd":"probe","req_id":"probe"}`)
		time.Sleep(100 * time.Millisecond)
		_, ok := r.find("probe")
		return ok
	})
	return r
}

// pub publishes one message with mosquitto_pub.
func (r *remote) pub(topic, payload string) {
	out, err := exec.Command("mosquitto_pub", "-h", r.host, "-p", r.port, "-q", "1", "-t", topic, "-m", payload).CombinedOutput()
	if err != nil {
		r.t.Fatalf("mosquitto_pub %s %s: %v %s", topic, payload, err, out)
	}
}

func (r *remote) find(reqID string) (protocol.Reply, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rep := range r.replies {
		if rep.ReqID == reqID {
			return rep, true
		}
	}
	return protocol.Reply{}, false
}

// received lists the request ids of the replies received so far.
func (r *remote) received() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, rep := range r.replies {
		ids = append(ids, rep.ReqID)
	}
	return fmt.Sprint(ids)
}

func (r *remote) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.replies)
}

// cmd sends a session command (fields is the JSON object's inside, without
// braces) and returns its reply.
func (r *remote) cmd(fields string) protocol.Reply {
	r.t.Helper()
	return r.request(protocol.SessionCommandTopic(protocol.DefaultSession), fields)
}

func (r *remote) request(topic, fields string) protocol.Reply {
	r.t.Helper()
	rep, ok := r.requestWithin(topic, fields, 10*time.Second)
	if !ok {
		r.t.Fatalf("no reply to %s within 10s; replies received: %s", fields, r.received())
	}
	return rep
}

// requestWithin sends a request and waits up to timeout for its reply.
func (r *remote) requestWithin(topic, fields string, timeout time.Duration) (protocol.Reply, bool) {
	r.t.Helper()
	r.nextID++
	id := fmt.Sprintf("e2e-%d", r.nextID)
	payload := fmt.Sprintf(`{"v":1,"req_id":%q,"reply_to":%q,%s}`, id, protocol.DefaultReplyTopic+"/e2e", fields)
	r.pub(topic, payload)
	var rep protocol.Reply
	found := testwait.Until(timeout, func() bool {
		var ok bool
		rep, ok = r.find(id)
		return ok
	})
	return rep, found
}

// resultOf decodes the result of a request that must have succeeded.
func resultOf[T any](t *testing.T, rep protocol.Reply) T {
	t.Helper()
	var v T
	if !rep.OK {
		t.Fatalf("%s: %s", rep.Cmd, rep.Error)
	}
	if err := json.Unmarshal(rep.Result, &v); err != nil {
		t.Fatalf("%s: result %s: %v", rep.Cmd, rep.Result, err)
	}
	return v
}

// library sends a library command and returns its reply.
func (r *remote) library(fields string) protocol.Reply {
	r.t.Helper()
	return r.request(protocol.LibraryCommandTopic, fields)
}

// lookup is the library's record of song (a hash or a song link).
func (r *remote) lookup(song string) protocol.Song {
	r.t.Helper()
	return resultOf[protocol.Song](r.t, r.library(fmt.Sprintf(`"cmd":"lookup","song":%q`, song)))
}

// enqueue adds songs (hashes or links, each standing for its songs) to the
// end of session home's playlist.
func (r *remote) enqueue(songs ...string) {
	r.t.Helper()
	for _, song := range songs {
		if rep := r.cmd(fmt.Sprintf(`"cmd":"enqueue","song":%q`, song)); !rep.OK {
			r.t.Fatalf("enqueue %s: %s", song, rep.Error)
		}
	}
}

// playlist is session home's retained playlist.
func (r *remote) playlist() protocol.Playlist {
	r.t.Helper()
	pl, err := protocol.Decode[protocol.Playlist](r.retained(protocol.PlaylistTopic(protocol.DefaultSession)))
	if err != nil {
		r.t.Fatal(err)
	}
	return pl
}

// waitStopped waits until session home, played as play says, has played
// its playlist to the end and stopped.
func (r *remote) waitStopped(play protocol.SessionState, timeout time.Duration) {
	r.t.Helper()
	testwait.For(r.t, "the playlist to play to its end", timeout, func() bool {
		st, err := protocol.Decode[protocol.SessionState](r.retained(protocol.SessionStateTopic(protocol.DefaultSession)))
		return err == nil && st.Seq > play.Seq && st.State == protocol.Stopped
	})
}

// raw publishes a payload as is and returns the next reply that arrives.
func (r *remote) raw(topic, payload string) protocol.Reply {
	r.t.Helper()
	n := r.count()
	r.pub(topic, payload)
	testwait.For(r.t, "a reply to "+payload, 10*time.Second, func() bool { return r.count() > n })
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replies[n]
}

// retained reads the retained message of topic with mosquitto_sub.
func (r *remote) retained(topic string) []byte {
	r.t.Helper()
	out, err := exec.Command("mosquitto_sub", "-h", r.host, "-p", r.port, "-t", topic, "-C", "1", "-W", "5").Output()
	if err != nil {
		r.t.Fatalf("mosquitto_sub %s: %v", topic, err)
	}
	return bytes.TrimSpace(out)
}

const syscallTERM = syscall.SIGTERM

func hashOf(path string) (string, int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), int64(len(b)), nil
}

// timecodeSong writes a timecode WAV whose frame numbers start at first.
func timecodeSong(t *testing.T, name string, seconds int, first int64) (path, sha string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), name)
	var buf bytes.Buffer
	if err := audiogen.WriteWAV(&buf, 44100, int64(seconds)*44100, func(i int64) audiogen.Frame { return audiogen.Timecode(first + i) }); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return path, hex.EncodeToString(sum[:])
}

func TestLogValue(t *testing.T) {
	log := `time=T level=WARN msg="MQTT BROKER IN DEMO MODE" role=broker addr=127.0.0.1:1
time=T level=INFO msg="mqtt broker listening" role=broker addr=127.0.0.1:37867 tls_addr="" users=0
time=T level=INFO msg="controller serving songs" url=http://127.0.0.1:36937/songs/
time=T level=INFO msg="being written" addr=127.0.0.1:2`
	for _, c := range []struct {
		msg, key, want string
		found          bool
	}{
		{brokerListening, "addr", "127.0.0.1:37867", true},
		{brokerListening, "tls_addr", "", true},
		{brokerListening, "url", "", false},
		{controllerListening, "url", "http://127.0.0.1:36937/songs/", true},
		{"being written", "addr", "", false},
		{"listening", "addr", "", false},
	} {
		if got, found := logValue(log, c.msg, c.key); got != c.want || found != c.found {
			t.Errorf("%q %s: %q, %v; want %q, %v", c.msg, c.key, got, found, c.want, c.found)
		}
	}
}
