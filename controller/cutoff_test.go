package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
)

// TestCutOffHolderStopsActing puts the lease holder A behind a proxy and
// cuts it (the proxy black-holes both ways, the connection stays open):
// A stops acting within one TTL of the cut, on its own clock, though it
// never learns that its connection is dead; B takes over; an upload to A
// is refused. Healed, A comes back as a standby and mirrors what B did
// meanwhile: nothing is lost.
func TestCutOffHolderStopsActing(t *testing.T) {
	broker := startBroker(t)
	proxy := toxiproxy.NewProxy(toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()), "a", "127.0.0.1:0", strings.TrimPrefix(broker, "tcp://"))
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	ttl := 600 * time.Millisecond
	optsA := Options{Open: true, BrokerURL: "tcp://" + proxy.Listen, DataDir: t.TempDir(), Name: "a", LeaseTTL: ttl}
	a, _ := startController(t, optsA)
	optsB := Options{Open: true, BrokerURL: broker, DataDir: t.TempDir(), Name: "b", LeaseTTL: ttl}
	b, _ := runController(t, optsB)
	tc := newTestClient(t, broker, protocol.DefaultReplyTopic)
	song := upload(t, a, makeWAV(8000, 8000, 1), "before")
	tc.cmd("e1", `{"cmd":"enqueue","song":"`+song.SHA256+`","req_id":"e1"}`)
	testwait.For(t, "B to mirror the enqueue", waitTimeout, func() bool { return mirroredEntries(t, optsB.DataDir) == 1 })
	tokenA := a.tokens.get()

	cut := time.Now()
	for _, dir := range []string{"upstream", "downstream"} {
		spec := fmt.Sprintf(`{"name":"cut_%s","type":"timeout","stream":%q,"toxicity":1,"attributes":{"timeout":0}}`, dir, dir)
		if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, "A to stop acting", waitTimeout, func() bool { return !a.holding() })
	stopped := time.Since(cut)
	testwait.For(t, "B to take over", waitTimeout, b.holding)
	tookOver := time.Since(cut)
	t.Logf("A stopped %v after the cut, B took over after %v (TTL %v)", stopped, tookOver, ttl)
	// Its last renewal came back before the cut; polling adds a few ms.
	if stopped > ttl+50*time.Millisecond {
		t.Errorf("A stopped acting %v after the cut, over the TTL of %v", stopped, ttl)
	}

	// A refuses uploads; B, holding the lease, takes them.
	wav := makeWAV(8000, 8000, 2)
	resp, body := do(t, http.MethodPut, a.SongsURL()+hashOf(wav)+"?name=during", wav, "Authorization", "Bearer "+tokenA)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upload to the cut-off A: %d %s", resp.StatusCode, body)
	}
	during := upload(t, b, wav, "during")
	tc.cmd("e2", `{"cmd":"enqueue","song":"`+during.SHA256+`","req_id":"e2"}`)

	// Healed: the black-holed connection is dropped, A reconnects.
	leases := newTestClient(t, broker, protocol.LeaseTopic)
	proxy.Toxics.RemoveToxic(context.Background(), "cut_upstream")
	proxy.Toxics.RemoveToxic(context.Background(), "cut_downstream")
	proxy.Stop()
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "A to reconnect", waitTimeout, func() bool { return a.subscribed.Load() })
	testwait.For(t, "A to mirror what B did meanwhile", waitTimeout, func() bool { return mirroredEntries(t, optsA.DataDir) == 2 })
	holderStays(t, leases, "b", 3*leaseRenewals)
	if a.holding() || !b.holding() {
		t.Fatalf("after A came back: A leads %v, B leads %v", a.holding(), b.holding())
	}
	// The song uploaded to B during the cut is known: enqueue works.
	res := tc.cmd("e3", `{"cmd":"enqueue","song":"`+during.SHA256+`","req_id":"e3"}`)
	if res.Entry == "" {
		t.Fatalf("enqueue after the heal: %+v", res)
	}
}

// TestHolderLapsesWhileDisconnected runs the session loop of a holder that
// has lost its connection on synctest's fake clock: it stops acting exactly
// one tick short of a TTL after its last renewal came back, though nothing
// arrives to wake it.
func TestHolderLapsesWhileDisconnected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(Options{Open: true, DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.listener.Close()
		defer c.store.Close()
		c.client = paho.NewClient(paho.NewClientOptions()) // never connected: nothing is published
		c.lease.role, c.lease.holder, c.lease.heard = leading, c.instance, time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.sessionLoop(ctx) }()

		until := DefaultLeaseTTL - leaseTick(DefaultLeaseTTL)
		time.Sleep(until - time.Nanosecond)
		synctest.Wait()
		if !c.holding() {
			t.Fatalf("stopped acting before %v", until)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if c.holding() {
			t.Fatalf("still acting %v after its last renewal (TTL %v)", until, DefaultLeaseTTL)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if c.lease.leading() {
			t.Fatal("the session loop did not step down")
		}
	})
}

// mirroredEntries counts the entries of home's playlist in the store of
// the controller whose data directory is dir.
func mirroredEntries(t *testing.T, dir string) int {
	st := openTestStore(t, dir)
	defer st.Close()
	all, err := st.sessions()
	if err != nil {
		return -1
	}
	return len(all["home"].Playlist.Entries)
}
