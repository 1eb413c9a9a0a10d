package broker

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawClient speaks MQTT 3.1.1 over TCP by hand, so a test chooses its packet
// identifiers and when (if ever) it acknowledges a delivery.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, b *Broker, u testUser, clientID string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", b.Addr(), testWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: clientID,
			UsernameFlag: true, Username: []byte(u.name), PasswordFlag: true, Password: []byte(u.password)}})
	if pk := c.next(); pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("connect: %+v", pk)
	}
	return c
}

func (c *rawClient) send(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = 4
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		pk.FixedHeader.Qos = 1 // the fixed header flags of a SUBSCRIBE
		err = pk.SubscribeEncode(&buf)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

// next reads the next packet the broker sends (CONNACK, SUBACK or PUBLISH).
func (c *rawClient) next() packets.Packet {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(testWait))
	header, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	pk := packets.Packet{ProtocolVersion: 4}
	if err := pk.FixedHeader.Decode(header); err != nil {
		c.t.Fatal(err)
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		c.t.Fatal(err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	pk.FixedHeader.Remaining = n
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	default:
		c.t.Fatalf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return pk
}

// subscribe subscribes at QoS 1 with packet identifier id and returns the
// SUBACK's return code, and any delivery that arrived before it.
func (c *rawClient) subscribe(id uint16, filter string) (code byte, before []packets.Packet) {
	c.t.Helper()
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: id,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}})
	for {
		pk := c.next()
		if pk.FixedHeader.Type == packets.Publish {
			before = append(before, pk)
			continue
		}
		if pk.FixedHeader.Type != packets.Suback || pk.PacketID != id || len(pk.ReasonCodes) != 1 {
			c.t.Fatalf("subscribe %s: answered %+v", filter, pk)
		}
		return pk.ReasonCodes[0], before
	}
}

// TestSubscribeSharingADeliveryPacketID: the broker's QoS 1 deliveries and a
// client's SUBSCRIBEs number their packets independently (MQTT 3.1.1 section
// 2.3.1). A client that subscribes with the identifier of a delivery it has
// not acknowledged yet, as a controller subscribing to its topics one by one
// while retained state pours in may, must get its subscription; the broker
// used to refuse it with 0x91 ("packet identifier in use", not even a 3.1.1
// return code), which paho reports as a success: the client silently never
// heard that topic.
func TestSubscribeSharingADeliveryPacketID(t *testing.T) {
	b, _, _ := startBroker(t, Options{UsersFile: writeUsers(t, admin)})
	c := dialRaw(t, b, admin, "raw-client")
	if code, _ := c.subscribe(1, "test/first"); code != 1 {
		t.Fatalf("first subscription refused with %#x", code)
	}
	publisher := mustConnect(t, b, admin, "publisher")
	publish := func(topic, payload string) {
		t.Helper()
		if tok := publisher.Publish(topic, 1, false, payload); !tok.WaitTimeout(testWait) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	publish("test/first", "one")
	delivery := c.next() // not acknowledged: it stays in flight
	if delivery.FixedHeader.Type != packets.Publish || delivery.TopicName != "test/first" || delivery.PacketID == 0 {
		t.Fatalf("delivery %+v", delivery)
	}

	code, _ := c.subscribe(delivery.PacketID, "test/second")
	if code != 1 {
		t.Fatalf("a SUBSCRIBE with the packet identifier %d of an unacknowledged delivery was refused with %#x",
			delivery.PacketID, code)
	}
	publish("test/second", "two")
	if got := c.next(); got.FixedHeader.Type != packets.Publish || got.TopicName != "test/second" || string(got.Payload) != "two" {
		t.Fatalf("after subscribing, got %+v", got)
	}
}
