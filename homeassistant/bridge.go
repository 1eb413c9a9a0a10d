package homeassistant

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	randv2 "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

// Options configure a Bridge.
type Options struct {
	BrokerURL string // e.g. tcp://127.0.0.1:1883
	// Username also signs the bridge's requests (protocol.UserTopic), so
	// the controller applies that user's rights; "" sends them unsigned.
	Username string
	Password string
	// ClientID is the MQTT client id, also the last level of the topic
	// replies come back on. Default: protocol.ClientID(Username, "ha", a
	// random suffix), which the broker keeps for Username alone.
	ClientID string
	Prefix   string // Home Assistant's discovery prefix; default DefaultPrefix
	Logger   *slog.Logger
	// BirthDelay is how long to wait after Home Assistant says it is online
	// before publishing everything again, so that a restarted Home Assistant
	// is not flooded by every bridge at once. Default: random 1-3 s.
	BirthDelay func() time.Duration
	// PublishTimeout bounds the wait for the broker to acknowledge one
	// publish. Default 5 s.
	PublishTimeout time.Duration
	// SettleDelay is how long after connecting the bridge waits for
	// tutti's retained messages before it clears discovery configs that an
	// earlier run left for devices that are gone. Default 3 s.
	SettleDelay time.Duration
	// TLS, if set, is used for a tls:// broker URL (trusting the hub's CA).
	TLS *tls.Config
	// Version is tutti's version, shown as the software version of the
	// devices and of the discovery's origin; "" leaves it out.
	Version string
}

// Bridge publishes tutti's sessions, speakers and controller as Home
// Assistant devices, kept in step with tutti's retained topics, and turns
// what Home Assistant sends on their command topics into tutti requests.
type Bridge struct {
	opts       Options
	log        *slog.Logger
	inbox      inbox
	replyTopic string // where the controller answers the bridge's requests
	requests   int    // numbers the requests, for their req_id; Run's loop only
}

// New checks opts and fills in the defaults.
func New(opts Options) (*Bridge, error) {
	if opts.BrokerURL == "" {
		return nil, errors.New("homeassistant: no broker URL")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(opts.Prefix, "+#") || strings.HasPrefix(opts.Prefix, "/") || strings.HasSuffix(opts.Prefix, "/") {
		return nil, fmt.Errorf("homeassistant: discovery prefix %q must be a topic without wildcards or outer slashes", opts.Prefix)
	}
	if opts.ClientID == "" {
		suffix := make([]byte, 4)
		rand.Read(suffix)
		opts.ClientID = protocol.ClientID(opts.Username, "ha", hex.EncodeToString(suffix))
	}
	if strings.ContainsAny(opts.ClientID, "+#/") {
		return nil, fmt.Errorf("homeassistant: client id %q must fit in one topic level", opts.ClientID)
	}
	if opts.Username != "" {
		if err := protocol.ValidName(opts.Username); err != nil {
			return nil, fmt.Errorf("homeassistant: user name signs command topics: %w", err)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BirthDelay == nil {
		opts.BirthDelay = func() time.Duration { return time.Second + randv2.N(2*time.Second) }
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 5 * time.Second
	}
	if opts.SettleDelay <= 0 {
		opts.SettleDelay = 3 * time.Second
	}
	b := &Bridge{
		opts:       opts,
		log:        opts.Logger.With("component", "homeassistant"),
		replyTopic: protocol.UserReplyTopic(opts.Username) + "/" + opts.ClientID,
	}
	b.inbox.ready = make(chan struct{}, 1)
	return b, nil
}

// haStatusTopic is where Home Assistant announces itself: "online" when it
// (re)starts, which means it needs every config again.
func (b *Bridge) haStatusTopic() string { return b.opts.Prefix + "/status" }

// configFilter matches every device config under the discovery prefix, so
// the bridge finds configs of tutti devices an earlier run left behind, and
// sees its own configs when another client changes them.
func (b *Bridge) configFilter() string { return discoveryTopic(b.opts.Prefix, "+") }

// isTuttiConfig says whether topic is a device config of tutti's.
func (b *Bridge) isTuttiConfig(topic string) bool {
	rest, ok := strings.CutPrefix(topic, b.opts.Prefix+"/device/")
	return ok && strings.HasPrefix(rest, "tutti_") && strings.HasSuffix(rest, "/config")
}

// Run connects and keeps Home Assistant's view of tutti current until ctx
// ends; then it marks the bridge offline and disconnects.
func (b *Bridge) Run(ctx context.Context) error {
	opts := mqttclient.Options(b.opts.BrokerURL, b.opts.ClientID, b.opts.Username, b.opts.Password).
		SetWill(BridgeStatusTopic, "offline", 1, true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetOnConnectHandler(b.onConnect).
		SetTLSConfig(b.opts.TLS).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			b.log.Warn("connection to the broker lost", "err", err)
		})
	client := mqtt.NewClient(opts)
	token := client.Connect()
	select {
	case <-token.Done():
		if err := token.Error(); err != nil {
			return fmt.Errorf("homeassistant: connect: %w", err)
		}
	case <-ctx.Done():
		client.Disconnect(0)
		return nil
	}
	defer client.Disconnect(250)

	m := newModel()
	published := map[string][]byte{}
	muted := map[string]int{}
	guard := newConfigGuard()
	// Corrections of configs wait until tutti's retained state has
	// arrived: until then the bridge does not know which devices exist.
	settled := false
	var birth, settle, correct *time.Timer
	var birthC, settleC, correctC <-chan time.Time
	defer func() {
		for _, t := range []*time.Timer{birth, settle, correct} {
			if t != nil {
				t.Stop()
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			b.publish(client, BridgeStatusTopic, []byte("offline"))
			return nil
		case <-birthC:
			birthC = nil
			b.log.Info("Home Assistant is online: publishing every device again")
			republish(published)
		case <-settleC:
			settleC, settled = nil, true
		case <-correctC:
			correctC = nil
		case <-b.inbox.ready:
			for _, msg := range b.inbox.take() {
				switch {
				case msg.connected:
					// The broker may have lost what was retained.
					republish(published)
					guard.forgetEchoes()
					settleC = restart(&settle, b.opts.SettleDelay)
				case b.isTuttiConfig(msg.topic):
					b.checkConfig(guard, published, msg.topic, msg.payload)
				case strings.HasPrefix(msg.topic, b.opts.Prefix+"/device/"):
					// Another application's config.
				case msg.topic == b.replyTopic:
					b.logReply(msg.payload)
				case strings.HasPrefix(msg.topic, haRoot+"/"):
					b.command(client, m, muted, msg.topic, msg.payload)
				case msg.topic == b.haStatusTopic():
					if string(msg.payload) != "online" {
						continue
					}
					birthC = restart(&birth, b.opts.BirthDelay())
				default:
					if err := m.apply(time.Now(), msg.topic, msg.payload); err != nil {
						b.log.Warn("ignoring a tutti message", "topic", msg.topic, "err", err)
					}
				}
			}
		}
		b.sync(client, m, published, guard)
		if settled {
			correctC = nil
			if at, ok := b.correct(client, guard, published); ok {
				correctC = restart(&correct, at.Sub(time.Now()))
			}
		}
	}
}

// restart (re)starts *t to fire after d, and returns its channel.
func restart(t **time.Timer, d time.Duration) <-chan time.Time {
	if *t == nil {
		*t = time.NewTimer(d)
	} else {
		(*t).Reset(d)
	}
	return (*t).C
}

// checkConfig looks at a tutti device config that came back on the
// bridge's subscription, and marks it for correction when it is neither
// what the bridge published nor an empty one of a device the bridge does
// not publish.
func (b *Bridge) checkConfig(guard *configGuard, published map[string][]byte, topic string, payload []byte) {
	now := time.Now()
	if guard.superseded(now, topic, payload) {
		return
	}
	want, ours := published[topic]
	switch {
	case ours && (want == nil || bytes.Equal(want, payload)):
		// Unchanged, or about to be published again anyway.
		return
	case ours && !guard.pending(topic):
		// Logged once per correction, however often the client writes.
		b.log.Warn("another client changed a config of the bridge's: restoring it", "topic", topic, "payload", truncate(string(payload), 200))
	case !ours && len(payload) == 0:
		guard.cancel(topic)
		return
	}
	if !guard.schedule(now, topic) {
		b.log.Warn("too many tutti configs to correct: leaving this one", "topic", topic)
	}
}

// correct publishes the corrections guard says are due: a config of the
// bridge's again, or an empty payload clearing a tutti config the bridge
// does not publish (a device deleted while the bridge was down, or one
// another client made up). It returns when the next correction is due.
func (b *Bridge) correct(client mqtt.Client, guard *configGuard, published map[string][]byte) (time.Time, bool) {
	now := time.Now()
	for _, topic := range guard.due(now) {
		want, ours := published[topic]
		if ours && want == nil {
			continue // sync failed to publish it, and will try again
		}
		if !ours {
			b.log.Info("clearing the config of a tutti device the bridge does not publish", "topic", topic)
		}
		guard.sent(now, topic, want)
		if !b.publish(client, topic, want) {
			guard.schedule(now, topic)
		}
	}
	return guard.wake()
}

// onConnect runs on its own goroutine after each (re)connection: with a
// clean session, subscriptions must be made again.
func (b *Bridge) onConnect(client mqtt.Client) {
	b.inbox.put(message{connected: true})
	client.Publish(BridgeStatusTopic, 1, true, "online")
	filters := map[string]byte{b.haStatusTopic(): 1, commandFilter: 1, b.replyTopic: 1, b.configFilter(): 1}
	for _, f := range tuttiFilters {
		filters[f] = 1
	}
	handler := func(_ mqtt.Client, msg mqtt.Message) {
		b.inbox.put(message{topic: msg.Topic(), payload: msg.Payload()})
	}
	if err := mqttclient.Subscribe(client, filters, handler, b.opts.PublishTimeout); err != nil {
		b.log.Error("subscribing failed; Home Assistant will not follow tutti until the next reconnect", "err", err)
	}
}

// sync publishes, retained, every config and state that differs from what
// was last published, and clears those of devices that are gone: configs
// first, so Home Assistant removes the entities before their states vanish
// (their templates would fail on an empty state).
func (b *Bridge) sync(client mqtt.Client, m *model, published map[string][]byte, guard *configGuard) {
	wanted := m.discovery(b.opts.Prefix, b.opts.Version)
	keep := map[string]bool{}
	for _, r := range wanted {
		keep[r.topic] = true
		if old, ok := published[r.topic]; ok && bytes.Equal(old, r.payload) {
			continue
		}
		if b.publishConfigOrState(client, guard, r.topic, r.payload) {
			published[r.topic] = r.payload
		}
	}
	var gone []string
	for topic := range published {
		if !keep[topic] {
			gone = append(gone, topic)
		}
	}
	slices.SortFunc(gone, func(x, y string) int {
		if cx, cy := b.isTuttiConfig(x), b.isTuttiConfig(y); cx != cy {
			if cx {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	})
	for _, topic := range gone {
		if b.publishConfigOrState(client, guard, topic, nil) {
			delete(published, topic)
		}
	}
}

// publishConfigOrState publishes one of the bridge's retained messages; a
// config is recorded in guard, whose echo comes back.
func (b *Bridge) publishConfigOrState(client mqtt.Client, guard *configGuard, topic string, payload []byte) bool {
	if b.isTuttiConfig(topic) {
		guard.sent(time.Now(), topic, payload)
		guard.cancel(topic)
	}
	return b.publish(client, topic, payload)
}

// republish makes the next sync publish everything again, and still clear
// the devices that went away meanwhile.
func republish(published map[string][]byte) {
	for topic := range published {
		published[topic] = nil
	}
}

// command publishes the tutti request for what Home Assistant published on
// a command topic, signed with the bridge's user name.
func (b *Bridge) command(client mqtt.Client, m *model, muted map[string]int, topic string, payload []byte) {
	kind, id, component, ok := parseCommandTopic(topic)
	if !ok {
		b.log.Warn("ignoring a message on an unknown command topic", "topic", topic)
		return
	}
	cmd, err := m.command(kind, id, component, payload, muted)
	if err != nil {
		b.log.Warn("ignoring a Home Assistant command", "topic", topic, "payload", truncate(string(payload), 100), "err", err)
		return
	}
	b.requests++
	cmd.req.ReqID = fmt.Sprintf("%s-%d", b.opts.ClientID, b.requests)
	cmd.req.ReplyTo = b.replyTopic
	target := cmd.topic
	if b.opts.Username != "" && !cmd.unsigned {
		target = protocol.UserTopic(cmd.topic, b.opts.Username)
	}
	b.send(client, target, false, protocol.Encode(cmd.req))
}

// logReply reports refused requests: Home Assistant has no way to show them.
func (b *Bridge) logReply(payload []byte) {
	reply, err := protocol.Decode[protocol.Reply](payload)
	if err != nil {
		b.log.Warn("ignoring a malformed reply", "err", err)
		return
	}
	if !reply.OK {
		b.log.Warn("tutti refused a request from Home Assistant", "cmd", reply.Cmd, "req_id", reply.ReqID, "err", reply.Error)
	}
}

// publish sends a retained QoS 1 message and waits for the broker to take it.
func (b *Bridge) publish(client mqtt.Client, topic string, payload []byte) bool {
	return b.send(client, topic, true, payload)
}

// send publishes at QoS 1 and waits for the broker to take the message.
func (b *Bridge) send(client mqtt.Client, topic string, retained bool, payload []byte) bool {
	token := client.Publish(topic, 1, retained, payload)
	if !token.WaitTimeout(b.opts.PublishTimeout) {
		b.log.Warn("publish timed out", "topic", topic)
		return false
	}
	if err := token.Error(); err != nil {
		b.log.Warn("publish failed", "topic", topic, "err", err)
		return false
	}
	return true
}

// message is what paho's handlers hand to Run's loop.
type message struct {
	connected bool
	topic     string
	payload   []byte
}

// inbox queues messages without bound, so a paho handler never blocks (one
// that blocks stalls paho's acknowledgements, which Run waits for).
type inbox struct {
	mu    sync.Mutex
	msgs  []message
	ready chan struct{}
}

func (q *inbox) put(m message) {
	q.mu.Lock()
	q.msgs = append(q.msgs, m)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *inbox) take() []message {
	q.mu.Lock()
	defer q.mu.Unlock()
	msgs := q.msgs
	q.msgs = nil
	return msgs
}
