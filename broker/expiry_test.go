package broker

import (
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/protocol"
)

// TestRetainedNeverExpire runs the broker's mochi server in a synctest bubble
// (fake time, no sockets: the publish is injected as a 3.1.1 client's) for
// 25 hours, past mochi's default limit of 24 h. The control, a limit of one
// minute, shows that the test would see an expiry.
func TestRetainedNeverExpire(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxExpiry int64 // seconds; -1: as newServer sets it
		wait      time.Duration
		kept      bool
	}{
		{"tutti", -1, 25 * time.Hour, true},
		{"one minute limit", 60, 2 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				quiet := slog.New(slog.DiscardHandler)
				users, err := newUserDirectory("", quiet)
				if err != nil {
					t.Fatal(err)
				}
				server, _, err := newServer(Options{AllowAnonymous: true}, users, newConnLimiter(1, clock.Real{}, quiet), nil, quiet)
				if err != nil {
					t.Fatal(err)
				}
				if tc.maxExpiry >= 0 {
					server.Options.Capabilities.MaximumMessageExpiryInterval = tc.maxExpiry
				}
				if err := server.Serve(); err != nil {
					t.Fatal(err)
				}
				defer server.Close()

				topic := protocol.SessionStateTopic("home")
				client := server.NewClient(nil, mqtt.LocalListener, "controller", true)
				client.Properties.ProtocolVersion = 4
				err = server.InjectPacket(client, packets.Packet{
					FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
					TopicName:   topic,
					Payload:     []byte("state"),
				})
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := server.Topics.Retained.Get(topic); !ok {
					t.Fatal("not retained")
				}
				time.Sleep(tc.wait)
				synctest.Wait()
				if _, ok := server.Topics.Retained.Get(topic); ok != tc.kept {
					t.Errorf("retained after %v: %v, want %v", tc.wait, ok, tc.kept)
				}
			})
		})
	}
}
