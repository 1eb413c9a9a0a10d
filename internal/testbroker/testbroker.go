// Package testbroker runs a real mochi MQTT broker for tests: on a free
// loopback port, open to every client and topic, with retained messages that
// never expire, stopped when the test ends.
package testbroker

import (
	"log/slog"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Start runs the broker and returns it (for inline publishes and
// subscriptions) and the URL clients dial. logger nil: mochi's errors only.
func Start(t testing.TB, logger *slog.Logger) (*mochi.Server, string) {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	}
	server := mochi.New(&mochi.Options{InlineClient: true, Logger: logger})
	server.Options.Capabilities.MaximumMessageExpiryInterval = 0 // retained state never expires
	if err := server.AddHook(new(allowAll), nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := server.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, "tcp://" + tcp.Address()
}

// allowAll lets every client connect and use every topic. (mochi's own
// auth.AllowHook would pull yaml.v3 in through its ledger.)
type allowAll struct{ mochi.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mochi.Client, string, bool) bool              { return true }
