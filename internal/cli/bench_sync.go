//go:build bench

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// benchSync plays a subframe timecode song on N speaker processes whose
// clocks are wrong in offset and rate, each with the pipe output, and
// measures from outside, by reading and timing their PCM as it leaves, how
// far apart they play the same frame. Their outputs' block logs say what
// their engines scheduled, shown beside, and their statuses what they
// believe of their clocks: together they say where the skew comes from.
func benchSync(ctx context.Context, b *bench, args []string) error {
	fs := b.flags()
	speakers := fs.Int("speakers", 3, "number of speakers")
	seconds := fs.Int("seconds", 20, "seconds to measure")
	settle := fs.Duration("settle", 5*time.Second, "time after the first sound not measured (clock offset and drift are being learned)")
	offsetList := fs.String("offsets", "0,5m,-90s", "wall-clock offsets of the speakers' clocks, cycled over the speakers")
	ppmList := fs.String("ppm", "0,100,-100", "rate errors of the speakers' clocks and DACs in ppm, cycled over the speakers")
	jitter := fs.String("jitter", "none", "network between speakers and broker: none (loopback) or wifi (toxiproxy, RTT p50 ~6 ms, p99 ~30 ms, spikes ~130 ms)")
	plotFile := fs.String("plot", "", "draw each speaker's skew to the first over time, from outside, into this PNG file")
	tutti := fs.String("tutti", tuttiBinary(), "the tutti binary to run the speakers with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	offsets, err := parseList(*offsetList, time.ParseDuration)
	if err != nil {
		return fmt.Errorf("--offsets: %w", err)
	}
	ppms, err := parseList(*ppmList, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
	if err != nil {
		return fmt.Errorf("--ppm: %w", err)
	}
	if *jitter != "none" && *jitter != "wifi" {
		return fmt.Errorf("--jitter: want none or wifi")
	}
	if *speakers < 2 || *seconds < 1 {
		return fmt.Errorf("want at least 2 speakers and 1 second")
	}
	songSeconds := *seconds + int(settle.Seconds()) + 15
	if int64(songSeconds)*pipeRate > audiogen.SubframeTimecodeFrames {
		return fmt.Errorf("--seconds and --settle: the timecode song lasts at most %d s", audiogen.SubframeTimecodeFrames/pipeRate)
	}
	dir, err := tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fault := func(i int) clockFault { return clockFault{offsets[i%len(offsets)], ppms[i%len(ppms)]} }
	b.header("%d speaker processes with pipe outputs read from outside, %d s measured after %s settling, network %s", *speakers, *seconds, *settle, *jitter)
	for i := range *speakers {
		f := fault(i)
		fmt.Fprintf(b.stdout, "  %s: clock offset %s, clock and DAC %+g ppm\n", speakerName(i), f.offset, f.ppm)
	}
	sys, err := startSystem(ctx, b.quiet(), systemConfig{dir: dir, listen: "127.0.0.1:0", http: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer sys.stop()
	brokerAddr := strings.TrimPrefix(sys.brokerURL, "tcp://")
	speakerURL := func(string) (string, error) { return sys.brokerURL, nil }
	if *jitter == "wifi" {
		wifi := newWifiNet(wifiDefaults)
		defer wifi.close()
		speakerURL = func(name string) (string, error) { return wifi.proxy(name, brokerAddr) }
		rtts, err := wifi.measureRTT(ctx, brokerAddr, 500)
		if err != nil {
			return err
		}
		spikes := 0
		for _, r := range rtts {
			if r > 100*time.Millisecond {
				spikes++
			}
		}
		fmt.Fprintf(b.stdout, "network RTT through the proxy (MQTT round trips): %s, %d over 100 ms\n", rtts.stats(), spikes)
	}
	spks, err := startPipeSpeakers(*tutti, dir, *speakers, speakerURL, fault)
	if err != nil {
		return err
	}
	defer spks.stop()
	names := spks.names()
	statuses, err := watchStatuses(ctx, sys.brokerURL, names)
	if err != nil {
		return err
	}
	defer statuses.close()

	song := generatedSong{file: "timecode.wav", seconds: songSeconds, sample: audiogen.SubframeTimecode}
	if _, err := sys.loadAndPlay(ctx, b.quiet(), dir, []generatedSong{song}); err != nil {
		return err
	}
	firstSound, err := firstSoundOf(ctx, spks, 30*time.Second)
	if err != nil {
		return err
	}
	if err := sleepCtx(ctx, time.Until(time.Unix(0, firstSound).Add(*settle))); err != nil {
		return err
	}
	cpuFrom := make([]procUsage, len(spks))
	for i, s := range spks {
		if cpuFrom[i], err = readProc(s.proc.pid()); err != nil {
			return err
		}
	}
	if err := sleepCtx(ctx, time.Duration(*seconds)*time.Second+time.Second); err != nil {
		return err
	}
	var cpu []string
	for i, s := range spks {
		u, err := readProc(s.proc.pid())
		if err != nil {
			return err
		}
		cpu = append(cpu, fmt.Sprintf("%s %.2f%%", s.name, loadBetween(cpuFrom[i], u, u.rssKB).cpuPercent))
	}
	state, err := retained[protocol.SessionState](ctx, statuses.c, protocol.SessionStateTopic(protocol.DefaultSession), protocol.Decode[protocol.SessionState])
	if err != nil {
		return err
	}
	base, err := retained(ctx, statuses.c, protocol.ClockBaseTopic, protocol.Decode[protocol.ClockBase])
	if err != nil {
		return err
	}
	traces, err := spks.traces(b.stdout)
	if err != nil {
		return err
	}

	ref := traces[0].external
	from := ref[0].TNs + settle.Nanoseconds()
	to := from + int64(*seconds)*1e9
	extSkews, engSkews, outSkews := frameSkews(traces, pipeRate, from, to)
	stats, engine, output := playlog.Summarize(extSkews), playlog.Summarize(engSkews), playlog.Summarize(outSkews)
	if stats.N == 0 {
		return fmt.Errorf("no frame was heard by all speakers")
	}
	fmt.Fprintln(b.stdout, "speakers' own view of their clocks (status):")
	for _, name := range names {
		fmt.Fprintf(b.stdout, "  %s: %s\n", name, describeClock(statuses.of(name)))
	}
	var others []*playlog.Timeline
	for _, tr := range traces[1:] {
		others = append(others, playlog.NewTimeline(tr.external, pipeRate))
	}
	series := skewSeries(ref, others, ref[0].TNs, to)
	for i, s := range series {
		fmt.Fprintf(b.stdout, "  %s vs %s after settling, from outside: %s\n", names[i+1], names[0], s.stats(from))
	}
	sharedMinusWall := base.SharedNs - base.WallNs
	fmt.Fprintln(b.stdout, "where the error comes from, per speaker (after settling):")
	for i, tr := range traces {
		fmt.Fprintf(b.stdout, "  %s: %s\n", names[i], errorSources(tr, statuses.history(names[i]), state.Anchor, sharedMinusWall, from, to))
	}
	fmt.Fprintf(b.stdout, "speaker processes' CPU while measured (of one core): %s\n", strings.Join(cpu, ", "))
	fmt.Fprintf(b.stdout, "skew of the engines' schedules (their block logs): %s\n", engine)
	fmt.Fprintf(b.stdout, "skew added by the outputs' timing (outside minus schedule): %s\n", output)
	fmt.Fprintf(b.stdout, "skew between speakers from outside (latest minus earliest per read): %s\n", stats)
	if *plotFile != "" {
		title := fmt.Sprintf("tutti sync from outside: %d speakers, offsets %s, ppm %s, network %s", *speakers, *offsetList, *ppmList, *jitter)
		if err := plotSkew(*plotFile, title, names, series, settle.Seconds()); err != nil {
			return err
		}
		fmt.Fprintf(b.stdout, "plot: %s\n", *plotFile)
	}
	result := map[string]any{
		"speakers": *speakers, "seconds": *seconds, "jitter": *jitter, "samples": stats.N,
		"skew_p50_ms": stats.P50Ms, "skew_p99_ms": stats.P99Ms, "skew_max_ms": stats.Max,
		"engine_skew_p99_ms": nil, // unknown without the block logs
	}
	if engine.N > 0 {
		result["engine_skew_p99_ms"] = engine.P99Ms
	}
	b.result(result)
	return nil
}

// firstSoundOf waits until every speaker's output began a read with the
// timecode, and returns the latest of those instants.
func firstSoundOf(ctx context.Context, spks []*pipeSpeaker, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		latest, missing := int64(0), (*pipeSpeaker)(nil)
		for _, s := range spks {
			reads := s.reads()
			if len(reads) == 0 {
				missing = s
				break
			}
			latest = max(latest, reads[0].AtNs)
		}
		if missing == nil {
			return latest, nil
		}
		if err := missing.proc.exited(); err != nil {
			return 0, err
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s played no timecode within %s:\n%s", missing.name, timeout, missing.proc.logTail())
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// retained returns the retained message on topic, decoded.
func retained[T any](ctx context.Context, c *commander, topic string, decode func([]byte) (T, error)) (T, error) {
	got := make(chan []byte, 1)
	tok := c.conn.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	})
	var msg T
	if err := wait(ctx, tok, 5*time.Second); err != nil {
		return msg, err
	}
	defer c.conn.Unsubscribe(topic)
	select {
	case b := <-got:
		return decode(b)
	case <-time.After(5 * time.Second):
		return msg, fmt.Errorf("nothing retained on %s", topic)
	case <-ctx.Done():
		return msg, ctx.Err()
	}
}

// firstBlock finds when a speaker first heard a frame at or after frame.
func firstBlock(frame int64) func(string, []playlog.Block) (int64, bool) {
	return func(_ string, blocks []playlog.Block) (int64, bool) {
		for _, bl := range blocks {
			if bl.Frame >= frame {
				return bl.TNs, true
			}
		}
		return 0, false
	}
}

// skewPoint is how much later than the reference speaker another one heard
// the frame the reference heard at tNs.
type skewPoint struct {
	tNs    int64
	skewNs int64
}

type skewTrace []skewPoint

// stats summarises the absolute skew from fromNs on.
func (tr skewTrace) stats(fromNs int64) playlog.Stats {
	var abs []int64
	for _, p := range tr {
		if p.tNs >= fromNs {
			abs = append(abs, max(p.skewNs, -p.skewNs))
		}
	}
	return playlog.Summarize(abs)
}

// skewSeries returns, for each other speaker, its skew to ref over the
// blocks ref heard in [fromNs, toNs).
func skewSeries(ref []playlog.Block, others []*playlog.Timeline, fromNs, toNs int64) []skewTrace {
	series := make([]skewTrace, len(others))
	for _, bl := range ref {
		if bl.TNs < fromNs || bl.TNs >= toNs {
			continue
		}
		for i, tl := range others {
			if t, ok := tl.HeardAt(bl.Frame, bl.TNs); ok {
				series[i] = append(series[i], skewPoint{tNs: bl.TNs, skewNs: t - bl.TNs})
			}
		}
	}
	return series
}

// statusWatch follows the speakers' retained statuses with one
// subscription each, keeping every field as sent (so that fields newer than
// this program show too).
type statusWatch struct {
	c    *commander
	mu   sync.Mutex
	st   map[string]map[string]any
	hist map[string][]statusSample
}

// statusSample is a status as received.
type statusSample struct {
	atNs   int64 // when it arrived, Unix ns
	fields map[string]any
}

func watchStatuses(ctx context.Context, brokerURL string, names []string) (*statusWatch, error) {
	c, err := dialCommander(ctx, brokerURL)
	if err != nil {
		return nil, err
	}
	w := &statusWatch{c: c, st: map[string]map[string]any{}, hist: map[string][]statusSample{}}
	for _, n := range names {
		tok := c.conn.Subscribe(protocol.SpeakerStatusTopic(n), 1, func(_ mqtt.Client, m mqtt.Message) {
			at := time.Now().UnixNano()
			var fields map[string]any
			if json.Unmarshal(m.Payload(), &fields) == nil {
				w.mu.Lock()
				w.st[n] = fields
				w.hist[n] = append(w.hist[n], statusSample{at, fields})
				w.mu.Unlock()
			}
		})
		if err := wait(ctx, tok, 5*time.Second); err != nil {
			c.close()
			return nil, err
		}
	}
	return w, nil
}

func (w *statusWatch) close() { w.c.close() }

// of returns speaker name's latest status fields (nil if none yet).
func (w *statusWatch) of(name string) map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st[name]
}

// history returns every status of speaker name received so far.
func (w *statusWatch) history(name string) []statusSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.hist[name])
}

// until polls the statuses until ready holds for every speaker.
func (w *statusWatch) until(ctx context.Context, names []string, timeout time.Duration, ready func(map[string]any) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := ""
		for _, n := range names {
			if st := w.of(n); st == nil || !ready(st) {
				missing = n
				break
			}
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (status %v)", missing, timeout, w.of(missing))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// synced says a status is of an online speaker with a clock estimate.
func synced(st map[string]any) bool {
	rtt, _ := st["clock_rtt_ns"].(float64)
	return st["online"] == true && rtt > 0
}

// describeClock prints a status's clock fields, durations in readable units.
func describeClock(fields map[string]any) string {
	if fields == nil {
		return "no status"
	}
	var s string
	for _, k := range sortedNames(fields) {
		if !strings.HasPrefix(k, "clock_") {
			continue
		}
		v := fields[k]
		if f, ok := v.(float64); ok && strings.HasSuffix(k, "_ns") {
			v = time.Duration(math.Round(f)).String()
		}
		s += fmt.Sprintf("%s=%v ", k, v)
	}
	if st, ok := fields["state"]; ok {
		s += fmt.Sprintf("state=%v", st)
	}
	return s
}
