package broker

import (
	"crypto/tls"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/certs"
	"github.com/tutti-audio/tutti/protocol"
)

// tlsFiles makes a CA and a server certificate for 127.0.0.1, and the
// server's TLS configuration.
func tlsFiles(t *testing.T) (certs.Files, *tls.Config) {
	t.Helper()
	files, err := certs.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	serverConf, err := certs.ServerConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	return files, serverConf
}

func TestMQTTOverTLS(t *testing.T) {
	files, serverConf := tlsFiles(t)
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin, kitchen), TLSAddr: "127.0.0.1:0", TLS: serverConf})
	if b.TLSAddr() == "" || b.TLSAddr() == b.Addr() {
		t.Fatalf("TLS address %q (plain %q)", b.TLSAddr(), b.Addr())
	}
	overTLS := func(caFile string) func(*paho.ClientOptions) {
		return func(o *paho.ClientOptions) {
			conf, err := certs.ClientConfig(caFile)
			if err != nil {
				t.Fatal(err)
			}
			o.Servers = nil
			o.AddBroker("ssl://" + b.TLSAddr()).SetTLSConfig(conf)
		}
	}

	// A client trusting the CA talks to a plain TCP one through the broker.
	c, err := connect(t, b, kitchen, "kitchen", overTLS(files.CA))
	if err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	plain := mustConnect(t, b, admin, "observer")
	seen := subscribe(t, plain, protocol.SpeakerStatusTopic("kitchen"))
	publish(t, c, protocol.SpeakerStatusTopic("kitchen"), false, "online")
	if m := receive(t, seen); m.payload != "online" {
		t.Errorf("got %+v", m)
	}
	// Users and ACLs apply over TLS too.
	if _, err := connect(t, b, testUser{name: kitchen.name, password: "guess"}, "guess", overTLS(files.CA)); err == nil {
		t.Error("wrong password accepted over TLS")
	}

	// A client trusting another CA does not connect.
	stranger, err := certs.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, b, kitchen, "kitchen-2", overTLS(stranger.CA)); err == nil {
		t.Error("a client trusting another CA connected")
	}
}

func TestTLSAddrNeedsConfig(t *testing.T) {
	if b, err := New(Options{Addr: "127.0.0.1:0", AllowAnonymous: true, TLSAddr: "127.0.0.1:0"}); err == nil {
		b.Close()
		t.Error("New accepted a TLS address without a TLS configuration")
	}
}
