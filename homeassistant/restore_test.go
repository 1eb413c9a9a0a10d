package homeassistant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/internal/testbroker"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

// correctionsWithin is the most corrections of one config the pacing allows
// in d: one at once, then after 1, 3, 7, 15 ... s.
func correctionsWithin(d time.Duration) int {
	return 1 + int(math.Floor(math.Log2(d.Seconds()/firstCorrectionWait.Seconds()+1)))
}

// TestBridgeRestoresUnderRewrites: a client rewrites the session's config
// as fast as the broker takes it, 300 times. The bridge's restores stay
// paced, the config ends up the bridge's, and Home Assistant's commands are
// translated all along.
func TestBridgeRestoresUnderRewrites(t *testing.T) {
	server, url := testbroker.Start(t, nil)
	const prefix = "hatest"
	sessionTopic := discoveryTopic(prefix, "tutti_session_home")
	retainTestWorld(t, server)
	ha := record(t, url, prefix+"/#", protocol.SessionCommandTopic("home"))
	runBridge(t, Options{
		BrokerURL:   url,
		Prefix:      prefix,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		SettleDelay: 200 * time.Millisecond,
	})
	var d Discovery
	testwait.For(t, "the session's config with its playlist", waitTimeout, func() bool {
		p, _, _ := ha.last(sessionTopic)
		return json.Unmarshal(p, &d) == nil && len(d.Components["playlist"].Options) == 2
	})
	original, from, _ := ha.last(sessionTopic)
	pause := d.Components[protocol.CmdPause].CommandTopic

	attacker := paho.NewClient(mqttclient.Options(url, "attacker", "", ""))
	if tok := attacker.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("attacker connect: %v", tok.Error())
	}
	t.Cleanup(func() { attacker.Disconnect(0) })
	remote := newPahoPublisher(t, url)

	const rewrites, presses = 300, 20
	var pressed atomic.Int32
	pressing := make(chan struct{})
	go func() {
		defer close(pressing)
		for range presses {
			if remote.Publish(pause, []byte("PRESS"), false, 1) == nil {
				pressed.Add(1)
			}
		}
	}()
	began := time.Now()
	for i := range rewrites {
		forged := bytes.Replace(original, []byte(`"name":"tutti Living room"`), fmt.Appendf(nil, `"name":"pwned %d"`, i), 1)
		if tok := attacker.Publish(sessionTopic, 1, true, forged); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("rewrite %d: %v", i, tok.Error())
		}
	}
	<-pressing
	testwait.For(t, "the bridge's config back after the rewrites", waitTimeout, func() bool {
		p, _, _ := ha.last(sessionTopic)
		return bytes.Equal(p, original)
	})
	took := time.Since(began)

	restores := 0
	rewritten := 0
	ha.mu.Lock()
	for _, m := range ha.msgs[from+1:] {
		if m.Topic() != sessionTopic {
			continue
		}
		if bytes.Equal(m.Payload(), original) {
			if rewritten > 0 {
				restores++
			}
		} else {
			rewritten++
		}
	}
	ha.mu.Unlock()
	t.Logf("%d rewrites, %d restores, restored %v after the first rewrite", rewritten, restores, took)
	if rewritten != rewrites {
		t.Errorf("Home Assistant saw %d rewrites, want %d", rewritten, rewrites)
	}
	if limit := correctionsWithin(took); restores < 1 || restores > limit {
		t.Errorf("%d restores in %v; the pacing allows 1 to %d", restores, took, limit)
	}

	// Every press Home Assistant made became a tutti request.
	if pressed.Load() != presses {
		t.Fatalf("only %d of %d presses published", pressed.Load(), presses)
	}
	testwait.For(t, "every press translated", waitTimeout, func() bool {
		_, _, n := ha.last(protocol.SessionCommandTopic("home"))
		return n == presses
	})
}

// TestTwoBridgesDoNotLoop: two bridges of different versions share one
// discovery prefix, each restoring its own configs over the other's. Their
// fight is paced: unpaced, it would publish as fast as the broker goes.
func TestTwoBridgesDoNotLoop(t *testing.T) {
	server, url := testbroker.Start(t, nil)
	const prefix = "hatest"
	sessionTopic := discoveryTopic(prefix, "tutti_session_home")
	retainTestWorld(t, server)
	ha := record(t, url, sessionTopic)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	began := time.Now()
	for _, v := range []string{"v1", "v2"} {
		runBridge(t, Options{BrokerURL: url, Prefix: prefix, Logger: quiet, SettleDelay: 200 * time.Millisecond, Version: v})
	}
	// Each bridge publishes its config (twice at most, as tutti's state
	// arrives in pieces), then corrects the other's at once, after 1 s and
	// after 3 s: ten configs take at least 3 s.
	const configs = 10
	testwait.For(t, fmt.Sprintf("%d session configs", configs), waitTimeout, func() bool {
		_, _, n := ha.last(sessionTopic)
		return n >= configs
	})
	took := time.Since(began)
	t.Logf("%d session configs took %v", configs, took)
	if least := firstCorrectionWait + 2*firstCorrectionWait; took < least {
		t.Errorf("%d session configs within %v; the pacing allows them no sooner than %v", configs, took, least)
	}
	// Both are still at it, each restoring its own version.
	var versions []string
	ha.mu.Lock()
	for _, m := range ha.msgs {
		var d Discovery
		if json.Unmarshal(m.Payload(), &d) == nil && !slices.Contains(versions, d.Origin.SWVersion) {
			versions = append(versions, d.Origin.SWVersion)
		}
	}
	ha.mu.Unlock()
	if len(versions) != 2 {
		t.Errorf("versions published: %v", versions)
	}
}
