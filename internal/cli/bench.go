//go:build bench

package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/broker"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// benchCommands is the bench command of tutti-bench, the build of tutti
// with its benchmarks (make build: go build -tags bench); the product
// binary leaves them and their dependencies (plotting, the Wi-Fi proxy)
// out, see nobench.go.
func benchCommands() []command {
	return []command{{"bench", "run a benchmark (sync, latency, start, cost, scale, failover, library)", runBench}}
}

// benchmark is one `tutti-bench bench NAME`.
type benchmark struct {
	name, summary string
	run           func(ctx context.Context, b *bench, args []string) error
}

func benchmarks() []benchmark {
	return []benchmark{
		{"sync", "skew between speakers with wrong clocks, optionally over Wi-Fi-like jitter", benchSync},
		{"latency", "command (play/pause/next/seek) to the changed sound on every speaker", benchLatency},
		{"start", "command to first sound of an uncached 5 MB song", benchStart},
		{"cost", "CPU and memory of one speaker process playing FLAC and MP3", benchCost},
		{"scale", "command fan-out to 100 speakers in one session and 20 sessions x 5", benchScale},
		{"failover", "kill -9 of the controller holding the lease while speakers play", benchFailover},
		{"library", "a music folder of 20,000 songs: scan beside sha256sum, rescan, search and browse, memory", benchLibrary},
	}
}

func runBench(ctx context.Context, e *env, args []string) error {
	var names []string
	for _, b := range benchmarks() {
		names = append(names, b.name)
		if len(args) > 0 && args[0] == b.name {
			return b.run(ctx, &bench{env: e, name: b.name}, args[1:])
		}
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stderr, "Usage: tutti-bench bench NAME [flags] (tutti-bench bench NAME -h for its flags)")
		for _, b := range benchmarks() {
			fmt.Fprintf(e.stderr, "  %-8s %s\n", b.name, b.summary)
		}
		return flag.ErrHelp
	}
	return fmt.Errorf("unknown benchmark %q (have: %s)", args[0], strings.Join(names, ", "))
}

// bench is what every benchmark shares: its output, a quiet logger for the
// parts it starts, and its --json flag.
type bench struct {
	*env
	name   string
	asJSON bool
}

// flags makes the benchmark's flag set with the flags all of them have.
func (b *bench) flags() *flag.FlagSet {
	fs := newFlags(b.env, "bench "+b.name, "[flags]")
	fs.BoolVar(&b.asJSON, "json", false, "print the figures as one JSON object on the last line")
	return fs
}

// quiet is the env given to the parts a benchmark starts: warnings only.
func (b *bench) quiet() *env {
	return &env{stdout: b.stdout, stderr: b.stderr, log: slog.New(slog.NewTextHandler(b.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
}

// header prints what runs where.
func (b *bench) header(format string, args ...any) {
	host, _ := os.Hostname()
	fmt.Fprintf(b.stdout, "bench %s: %s\n", b.name, fmt.Sprintf(format, args...))
	fmt.Fprintf(b.stdout, "machine: %s, %s/%s, %d CPUs, %s, %s\n", host, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel(), time.Now().Format(time.DateTime))
}

// result prints the figures as the last line, if --json.
func (b *bench) result(fields map[string]any) {
	if b.asJSON {
		fields["bench"] = b.name
		fmt.Fprintln(b.stdout, string(protocol.Encode(fields)))
	}
}

func cpuModel() string {
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(info), "\n") {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
		}
	}
	return "unknown CPU"
}

// startBenchBroker runs an embedded broker in this process on a free
// loopback port, open to anyone and answering clock probes, its data in
// dir; stop ends it.
func startBenchBroker(ctx context.Context, dir string, quiet *env) (url string, stop func(), err error) {
	brk, err := broker.New(broker.Options{Addr: "127.0.0.1:0", DataDir: dir, AllowAnonymous: true,
		AnswerClock: true, Logger: quiet.log.With("role", "broker")})
	if err != nil {
		return "", nil, err
	}
	brokerCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- brk.Run(brokerCtx) }()
	return "tcp://" + brk.Addr(), func() { cancel(); <-done }, nil
}

// tempDir makes a benchmark's scratch directory; the caller removes it.
func tempDir() (string, error) { return os.MkdirTemp("", "tutti-bench-") }

// deviceLog is a virtual device's log kept in memory, parsed as it grows.
type deviceLog struct {
	mu     sync.Mutex
	buf    bytes.Buffer // what is not parsed yet
	parser playlog.Reader
	blocks []playlog.Block // timecoded blocks so far
}

func (l *deviceLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// read returns the timecoded blocks logged so far, parsing only what is new.
func (l *deviceLog) read() ([]playlog.Block, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	end := bytes.LastIndexByte(l.buf.Bytes(), '\n') + 1 // whole lines only
	blocks, err := l.parser.Read(bytes.NewReader(l.buf.Next(end)))
	if err != nil {
		return nil, err
	}
	l.blocks = append(l.blocks, blocks...)
	return l.blocks[:len(l.blocks):len(l.blocks)], nil
}

// deviceLogs are the in-memory logs of a system's virtual devices.
type deviceLogs struct {
	mu   sync.Mutex
	logs map[string]*deviceLog
}

func newDeviceLogs() *deviceLogs { return &deviceLogs{logs: map[string]*deviceLog{}} }

// writer is a systemConfig.speakerLog.
func (d *deviceLogs) writer(name string) io.Writer {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.logs[name] = &deviceLog{}
	return d.logs[name]
}

// blocks returns the timecoded blocks speaker name has heard so far.
func (d *deviceLogs) blocks(name string) ([]playlog.Block, error) {
	d.mu.Lock()
	l := d.logs[name]
	d.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("no device log for %s", name)
	}
	return l.read()
}

// whenAllHeard polls the logs until find returns an instant for every
// speaker, and returns the latest of those instants. find gets a speaker's
// name and blocks and says when the awaited sound was heard, if it was.
func (d *deviceLogs) whenAllHeard(ctx context.Context, names []string, timeout time.Duration, find func(name string, blocks []playlog.Block) (int64, bool)) (int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		latest, missing := int64(0), ""
		for _, name := range names {
			blocks, err := d.blocks(name)
			if err != nil {
				return 0, err
			}
			t, ok := find(name, blocks)
			if !ok {
				missing = name
				break
			}
			latest = max(latest, t)
		}
		if missing == "" {
			return latest, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s did not play the expected sound within %s", missing, timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// commander publishes requests as mosquitto_pub would (QoS 1, a reply_to
// topic in the payload) and collects the replies.
type commander struct {
	conn    mqtt.Client
	replyTo string
	songs   songServer // the controller's, for uploads

	mu      sync.Mutex
	waiting map[string]chan receivedReply
}

// sentRequest is a published request: when it was published and where its
// reply will arrive.
type sentRequest struct {
	req   protocol.Request
	at    time.Time
	reply chan receivedReply
}

type receivedReply struct {
	protocol.Reply
	at time.Time
}

// dialCommander connects to the broker, retrying while it comes up, and
// waits for the controller to listen.
func dialCommander(ctx context.Context, brokerURL string) (*commander, error) {
	id := randomID()
	c := &commander{replyTo: protocol.DefaultReplyTopic + "/bench-" + id, waiting: map[string]chan receivedReply{}}
	c.conn = mqtt.NewClient(mqttclient.Options(brokerURL, "tutti-bench-"+id, "", "").SetAutoReconnect(false).SetOrderMatters(false))
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; {
		if err = wait(ctx, c.conn.Connect(), 5*time.Second); err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", brokerURL, err)
	}
	sub := c.conn.Subscribe(c.replyTo, 1, func(_ mqtt.Client, m mqtt.Message) {
		at := time.Now()
		r, err := protocol.Decode[protocol.Reply](m.Payload())
		if err != nil {
			return
		}
		c.mu.Lock()
		ch := c.waiting[r.ReqID]
		delete(c.waiting, r.ReqID)
		c.mu.Unlock()
		if ch != nil {
			ch <- receivedReply{Reply: r, at: at}
		}
	})
	if err := wait(ctx, sub, 5*time.Second); err != nil {
		c.close()
		return nil, fmt.Errorf("subscribe to replies: %w", err)
	}
	if c.songs, err = awaitController(ctx, c.conn, 15*time.Second); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *commander) close() { c.conn.Disconnect(100) }

// send publishes req on topic without waiting for the reply; the request's
// instant is taken just before the publish.
func (c *commander) send(ctx context.Context, topic string, req protocol.Request) (sentRequest, error) {
	req.V, req.ReqID, req.ReplyTo = protocol.Version, randomID(), c.replyTo
	s := sentRequest{req: req, reply: make(chan receivedReply, 1)}
	c.mu.Lock()
	c.waiting[req.ReqID] = s.reply
	c.mu.Unlock()
	payload := protocol.Encode(req)
	s.at = time.Now()
	if err := wait(ctx, c.conn.Publish(topic, 1, false, payload), 5*time.Second); err != nil {
		return s, fmt.Errorf("publish %s: %w", req.Cmd, err)
	}
	return s, nil
}

// await waits for the reply to s and fails unless it is ok.
func (s sentRequest) await(ctx context.Context) (receivedReply, error) {
	select {
	case r := <-s.reply:
		if !r.OK {
			return r, fmt.Errorf("%s refused: %s", s.req.Cmd, r.Error)
		}
		return r, nil
	case <-time.After(10 * time.Second):
		return receivedReply{}, fmt.Errorf("no reply to %s within 10s", s.req.Cmd)
	case <-ctx.Done():
		return receivedReply{}, ctx.Err()
	}
}

// do sends req and waits for its ok reply.
func (c *commander) do(ctx context.Context, topic string, req protocol.Request) (receivedReply, error) {
	s, err := c.send(ctx, topic, req)
	if err != nil {
		return receivedReply{}, err
	}
	return s.await(ctx)
}

// durations collects measured durations and summarises them.
type durations []time.Duration

func (d durations) stats() playlog.Stats {
	ns := make([]int64, len(d))
	for i, x := range d {
		ns[i] = int64(x)
	}
	return playlog.Summarize(ns)
}

// parseList splits a comma list and parses each item.
func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, item := range strings.Split(s, ",") {
		v, err := parse(strings.TrimSpace(item))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// sortedNames returns a map's keys in order.
func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
