//go:build bench

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// benchSync plays a timecode song on N speakers whose clocks are wrong in
// offset and rate, and measures from their virtual devices (which log in
// real time) how far apart they play the same frame.
func benchSync(ctx context.Context, b *bench, args []string) error {
	fs := b.flags()
	speakers := fs.Int("speakers", 3, "number of speakers")
	seconds := fs.Int("seconds", 20, "seconds to measure")
	settle := fs.Duration("settle", 5*time.Second, "time after the first sound not measured (clock offset and drift are being learned)")
	offsetList := fs.String("offsets", "0,5m,-90s", "wall-clock offsets of the speakers' clocks, cycled over the speakers")
	ppmList := fs.String("ppm", "0,100,-100", "rate errors of the speakers' clocks and DACs in ppm, cycled over the speakers")
	jitter := fs.String("jitter", "none", "network between speakers and broker: none (loopback) or wifi (toxiproxy, RTT p50 ~6 ms, p99 ~30 ms, spikes ~130 ms)")
	plotFile := fs.String("plot", "", "draw each speaker's skew to the first over time into this PNG file")
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
	dir, err := tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fault := func(i int) clockFault { return clockFault{offsets[i%len(offsets)], ppms[i%len(ppms)]} }
	b.header("%d speakers, %d s measured after %s settling, network %s", *speakers, *seconds, *settle, *jitter)
	for i := range *speakers {
		f := fault(i)
		fmt.Fprintf(b.stdout, "  %s: clock offset %s, clock and DAC %+g ppm\n", speakerName(i), f.offset, f.ppm)
	}
	logs := newDeviceLogs()
	cfg := systemConfig{dir: dir, listen: "127.0.0.1:0", http: "127.0.0.1:0", speakers: *speakers, speakerLog: logs.writer, fault: fault}
	var wifi *wifiNet
	if *jitter == "wifi" {
		wifi = newWifiNet(wifiDefaults)
		defer wifi.close()
		cfg.speakerBroker = wifi.proxy
	}
	sys, err := startSystem(ctx, b.quiet(), cfg)
	if err != nil {
		return err
	}
	defer sys.stop()
	if wifi != nil {
		rtts, err := wifi.measureRTT(ctx, strings.TrimPrefix(sys.brokerURL, "tcp://"), 500)
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

	song := generatedSong{file: "timecode.wav", seconds: *seconds + int(settle.Seconds()) + 15, sample: audiogen.Timecode}
	if _, err := sys.loadAndPlay(ctx, b.quiet(), dir, []generatedSong{song}); err != nil {
		return err
	}
	firstSound, err := logs.whenAllHeard(ctx, sys.names, 30*time.Second, firstBlock(0))
	if err != nil {
		return err
	}
	end := time.Unix(0, firstSound).Add(*settle + time.Duration(*seconds)*time.Second + time.Second)
	select {
	case <-time.After(time.Until(end)):
	case <-ctx.Done():
		return ctx.Err()
	}
	statuses, err := watchStatuses(ctx, sys.brokerURL, sys.names)
	if err != nil {
		return err
	}
	defer statuses.close()
	// The retained statuses arrive at once; give them a moment.
	statuses.until(ctx, sys.names, 3*time.Second, func(map[string]any) bool { return true })
	if err := sys.stop(); err != nil {
		return err
	}

	ref, others, err := readTimelines(logs, sys.names)
	if err != nil {
		return err
	}
	from := ref[0].TNs + settle.Nanoseconds()
	to := from + int64(*seconds)*1e9
	stats := playlog.Summarize(playlog.Spread(ref, others, from, to))
	if stats.N == 0 {
		return fmt.Errorf("no frame was heard by all speakers")
	}
	fmt.Fprintln(b.stdout, "speakers' own view of their clocks (status):")
	for _, name := range sys.names {
		fmt.Fprintf(b.stdout, "  %s: %s\n", name, describeClock(statuses.of(name)))
	}
	series := skewSeries(ref, others, ref[0].TNs, to)
	for i, s := range series {
		fmt.Fprintf(b.stdout, "  %s vs %s after settling: %s\n", sys.names[i+1], sys.names[0], s.stats(from))
	}
	fmt.Fprintf(b.stdout, "skew between speakers (latest minus earliest per block): %s\n", stats)
	if *plotFile != "" {
		title := fmt.Sprintf("tutti sync: %d speakers, offsets %s, ppm %s, network %s", *speakers, *offsetList, *ppmList, *jitter)
		if err := plotSkew(*plotFile, title, sys.names, series, settle.Seconds()); err != nil {
			return err
		}
		fmt.Fprintf(b.stdout, "plot: %s\n", *plotFile)
	}
	b.result(map[string]any{
		"speakers": *speakers, "seconds": *seconds, "jitter": *jitter, "samples": stats.N,
		"skew_p50_ms": stats.P50Ms, "skew_p99_ms": stats.P99Ms, "skew_max_ms": stats.Max,
	})
	return nil
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

// readTimelines reads every speaker's log: the first speaker's blocks, the
// reference, and the others' timelines.
func readTimelines(logs *deviceLogs, names []string) ([]playlog.Block, []*playlog.Timeline, error) {
	var ref []playlog.Block
	var others []*playlog.Timeline
	for i, name := range names {
		blocks, err := logs.blocks(name)
		if err != nil {
			return nil, nil, err
		}
		if len(blocks) == 0 {
			return nil, nil, fmt.Errorf("%s played no sound", name)
		}
		if i == 0 {
			ref = blocks
			continue
		}
		others = append(others, playlog.NewTimeline(blocks, 44100))
	}
	return ref, others, nil
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
	c  *commander
	mu sync.Mutex
	st map[string]map[string]any
}

func watchStatuses(ctx context.Context, brokerURL string, names []string) (*statusWatch, error) {
	c, err := dialCommander(ctx, brokerURL)
	if err != nil {
		return nil, err
	}
	w := &statusWatch{c: c, st: map[string]map[string]any{}}
	for _, n := range names {
		tok := c.conn.Subscribe(protocol.SpeakerStatusTopic(n), 1, func(_ mqtt.Client, m mqtt.Message) {
			var fields map[string]any
			if json.Unmarshal(m.Payload(), &fields) == nil {
				w.mu.Lock()
				w.st[n] = fields
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
