//go:build bench

package cli

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

// wifiToxic delays every chunk of a TCP stream the way a busy home Wi-Fi
// delays packets: a floor, a long-tailed (log-normal) queueing delay, and
// now and then a spike of tens of milliseconds (a retransmission burst,
// a channel scan). Chunks keep their order, so a spike also holds up what
// follows it, as it does in TCP. Applied to both directions, the defaults
// give a round trip of about 6 ms median, 30 ms at p99, and spikes of about
// 130 ms (measured in the sync benchmark's output).
//
// toxiproxy's own latency toxic draws uniform jitter, which cannot make a
// long tail with spikes; hence this one.
type wifiToxic struct {
	FloorMs     float64 `json:"floor_ms"`     // minimum one-way delay
	MedianMs    float64 `json:"median_ms"`    // median of the log-normal part
	Sigma       float64 `json:"sigma"`        // its spread (log scale)
	SpikeChance float64 `json:"spike_chance"` // per chunk
	SpikeMs     float64 `json:"spike_ms"`     // one-way spike, +-10 %: a round trip with one is ~130 ms
}

var wifiDefaults = wifiToxic{FloorMs: 1, MedianMs: 1.35, Sigma: 1.0, SpikeChance: 0.002, SpikeMs: 125}

func init() {
	// toxiproxy finds toxics by name in its own registry.
	toxics.Register("tutti_wifi", new(wifiToxic))
}

func (t *wifiToxic) delay() time.Duration {
	ms := t.FloorMs + t.MedianMs*math.Exp(t.Sigma*rand.NormFloat64())
	if rand.Float64() < t.SpikeChance {
		ms += t.SpikeMs * (0.9 + 0.2*rand.Float64())
	}
	return time.Duration(ms * float64(time.Millisecond))
}

func (t *wifiToxic) GetBufferSize() int { return 1024 }

// Pipe forwards chunks in order, each no earlier than its own delay after
// it arrived; it follows toxiproxy's latency toxic.
func (t *wifiToxic) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			wait := t.delay() - time.Since(c.Timestamp)
			select {
			case <-time.After(wait):
				stub.Output <- c
			case <-stub.Interrupt:
				stub.Output <- c // never drop data
				return
			}
		}
	}
}

// wifiNet puts a Wi-Fi-like link between each client and the broker: one
// in-process toxiproxy proxy per client, so each has its own queue.
type wifiNet struct {
	server *toxiproxy.ApiServer
	toxic  wifiToxic

	mu      sync.Mutex
	proxies []*toxiproxy.Proxy
}

func newWifiNet(toxic wifiToxic) *wifiNet {
	return &wifiNet{server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()), toxic: toxic}
}

// proxy starts a proxy to upstream (host:port) and returns the broker URL
// that goes through it; it fits systemConfig.speakerBroker.
func (w *wifiNet) proxy(name, upstream string) (string, error) {
	p := toxiproxy.NewProxy(w.server, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return "", fmt.Errorf("toxiproxy for %s: %w", name, err)
	}
	w.mu.Lock()
	w.proxies = append(w.proxies, p)
	w.mu.Unlock()
	for _, dir := range []string{"upstream", "downstream"} {
		spec := fmt.Sprintf(`{"name":"wifi_%s","type":"tutti_wifi","stream":%q,"toxicity":1,"attributes":%s}`, dir, dir, protocol.Encode(w.toxic))
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
			return "", fmt.Errorf("toxiproxy toxic: %w", err)
		}
	}
	return "tcp://" + p.Listen, nil
}

// close stops every proxy and closes their connections.
func (w *wifiNet) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.proxies {
		p.Stop()
	}
	w.proxies = nil
}

// measureRTT times n MQTT round trips (publish, then receive the same
// message back from the broker) through a proxy of its own, and returns
// them: the network a speaker sees, as the benchmark actually made it.
func (w *wifiNet) measureRTT(ctx context.Context, brokerAddr string, n int) (durations, error) {
	url, err := w.proxy("rtt-probe", brokerAddr)
	if err != nil {
		return nil, err
	}
	topic := protocol.DefaultReplyTopic + "/bench-rtt-" + randomID()
	echo := make(chan struct{}, 1)
	c := mqtt.NewClient(mqttclient.Options(url, "tutti-bench-rtt-"+randomID(), "", "").SetAutoReconnect(false).SetOrderMatters(false))
	if err := wait(ctx, c.Connect(), 10*time.Second); err != nil {
		return nil, fmt.Errorf("connect through the proxy: %w", err)
	}
	defer c.Disconnect(100)
	if err := wait(ctx, c.Subscribe(topic, 0, func(mqtt.Client, mqtt.Message) { echo <- struct{}{} }), 10*time.Second); err != nil {
		return nil, err
	}
	var rtts durations
	for range n {
		start := time.Now()
		c.Publish(topic, 0, false, []byte("ping"))
		select {
		case <-echo:
			rtts = append(rtts, time.Since(start))
		case <-time.After(5 * time.Second):
			return nil, fmt.Errorf("round trip through the proxy lost")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return rtts, nil
}
