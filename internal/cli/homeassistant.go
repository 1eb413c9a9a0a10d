package cli

import (
	"context"
	"errors"

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
	if m.ca != "" {
		return errors.New("homeassistant: MQTT over TLS is not supported by the bridge yet: use the plain port")
	}
	user, password, err := m.credentials()
	if err != nil {
		return err
	}
	b, err := homeassistant.New(homeassistant.Options{BrokerURL: m.broker, Username: user, Password: password,
		Prefix: *prefix, Logger: e.log.With("role", "homeassistant")})
	if err != nil {
		return err
	}
	return b.Run(ctx)
}
