// Package mqttclient holds the paho client settings every tutti role uses,
// so that each of them avoids the same traps: paho otherwise retries a
// failed 3.1.1 handshake as 3.1, fails every connect with a zero timeout, and
// waits up to ten minutes between reconnects.
package mqttclient

import (
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
