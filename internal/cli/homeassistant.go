package cli

import (
	"context"
	"flag"
	"log/slog"

	"github.com/tutti-audio/tutti/homeassistant"
)

// runHomeAssistant runs the bridge that makes tutti's controller, speakers
// and sessions appear in Home Assistant through MQTT discovery.
func runHomeAssistant(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "homeassistant", "[flags]")
	var m mqttFlags
	m.register(fs, "homeassistant")
	prefix := fs.String("prefix", homeassistant.DefaultPrefix, "Home Assistant's MQTT discovery prefix")
	if err := fs.Parse(args); err != nil {
		return err
	}
	user, password, err := m.credentials()
	if err != nil {
		return err
	}
	tlsConf, err := m.tls()
	if err != nil {
		return err
	}
	b, err := homeassistant.New(homeassistant.Options{BrokerURL: m.broker, Username: user, Password: password,
		Prefix: *prefix, TLS: tlsConf, Version: version(), Logger: e.log.With("role", "homeassistant")})
	if err != nil {
		return err
	}
	return b.Run(ctx)
}

// bridgeFlags run the Home Assistant bridge inside a hub or demo.
type bridgeFlags struct {
	enabled bool
	prefix  string
}

func (h *bridgeFlags) register(fs *flag.FlagSet, byDefault bool) {
	fs.BoolVar(&h.enabled, "homeassistant", byDefault, "also run the Home Assistant bridge (MQTT discovery) in this process")
	fs.StringVar(&h.prefix, "ha-prefix", homeassistant.DefaultPrefix, "Home Assistant's MQTT discovery prefix, for --homeassistant")
}

// bridge makes the bridge, connecting as user (which signs its requests);
// nil when not enabled.
func (h *bridgeFlags) bridge(brokerURL, user, password string, log *slog.Logger) (*homeassistant.Bridge, error) {
	if !h.enabled {
		return nil, nil
	}
	return homeassistant.New(homeassistant.Options{BrokerURL: brokerURL, Username: user, Password: password,
		Prefix: h.prefix, Version: version(), Logger: log.With("role", "homeassistant")})
}
