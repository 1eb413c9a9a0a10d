// Package mqttclient holds the paho client settings every tutti role uses,
// so that each of them avoids the same traps: paho otherwise retries a
// failed 3.1.1 handshake as 3.1, fails every connect with a zero timeout, and
// waits up to ten minutes between reconnects.
package mqttclient

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Options returns client options for an MQTT 3.1.1 connection with a clean
// session that reconnects by itself within a few seconds. Callers add their
// will, handlers and ordering. Subscriptions do not survive a reconnect with
// a clean session: make them in the OnConnect handler.
func Options(brokerURL, clientID, username, password string) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID(clientID).
		SetUsername(username).
		SetPassword(password).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(10 * time.Second).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(3 * time.Second)
}

// TokenError is the error of a completed token. A subscribe token's error
// includes the filters the broker refused (its ACL), which paho reports in
// the token's result, as a return code above 2, and not as an error.
func TokenError(t mqtt.Token) error {
	if err := t.Error(); err != nil {
		return err
	}
	st, ok := t.(*mqtt.SubscribeToken)
	if !ok {
		return nil
	}
	var refused []string
	for filter, code := range st.Result() {
		if code > 2 { // granted QoS 0-2, else a refusal
			refused = append(refused, fmt.Sprintf("%s (code %#x)", filter, code))
		}
	}
	if len(refused) == 0 {
		return nil
	}
	slices.Sort(refused)
	return fmt.Errorf("the broker refused the subscription to %s", strings.Join(refused, ", "))
}

// Subscribe subscribes to filters (filter -> QoS) and waits up to timeout
// for the broker's answer; a filter the broker refuses is an error.
func Subscribe(c mqtt.Client, filters map[string]byte, handler mqtt.MessageHandler, timeout time.Duration) error {
	t := c.SubscribeMultiple(filters, handler)
	if !t.WaitTimeout(timeout) {
		return errors.New("no answer from the broker to a subscription")
	}
	return TokenError(t)
}
