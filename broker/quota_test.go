package broker

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"

	"github.com/tutti-audio/tutti/clock"
)

// countRetained counts the broker's retained topics under prefix.
func countRetained(b *Broker, prefix string) int {
	n := 0
	for _, topic := range retainedTopics(b) {
		if strings.HasPrefix(topic, prefix) {
			n++
		}
	}
	return n
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// The attack: a member retains messages of 1 MB under a topic of its own
// (300 in the attack seen; 30 here keep the test short), then as many of
// 200 KiB as it can. The 1 MB ones break the payload limit, the others stop
// at the member's quota; the store and the heap stay
// within it, another user's round trips go on, the quota survives a
// restart, and clearing the topics frees it and shrinks the store.
func TestRetainedQuota(t *testing.T) {
	dataDir := t.TempDir()
	store := filepath.Join(dataDir, storeFile)
	opts := Options{UsersFile: writeUsers(t, admin, bob), DataDir: dataDir}
	b, stop, log := startBroker(t, opts)
	attacker := mustConnect(t, b, bob, "bob")
	heapBefore := heapInUse()
	stopProbe := probeOthers(t, b, admin)

	big := strings.Repeat("B", 1_000_000)
	for i := range 30 {
		publish(t, attacker, fmt.Sprint("bob/big/", i), true, big)
	}
	if n := countRetained(b, "bob/big/"); n != 0 {
		t.Errorf("%d payloads of 1 MB retained", n)
	}
	payload := strings.Repeat("Q", 200<<10)
	fits, bytes := 0, 0
	for i := range 100 {
		topic := fmt.Sprint("bob/q/", i)
		publish(t, attacker, topic, true, payload)
		if size := len(topic) + len(payload); bytes+size <= RetainedQuotaBytes {
			fits, bytes = fits+1, bytes+size
		}
	}
	stopProbe()
	heapAfter := heapInUse()
	if n := countRetained(b, "bob/q/"); n != fits {
		t.Errorf("%d messages of 200 KiB retained, want the %d that fit the quota", n, fits)
	}
	if !strings.Contains(log.String(), "mqtt retained publish refused") || !strings.Contains(log.String(), "retained quota of 4000 messages and 16777216 bytes reached") {
		t.Errorf("quota refusal not logged:\n%.3000s", log.String())
	}
	full := fileSize(t, store)
	t.Logf("store %d MB with the quota full (%d messages, %d bytes); heap in use %d MB before, %d MB after",
		full>>20, fits, bytes, heapBefore>>20, heapAfter>>20)
	if full > 3*RetainedQuotaBytes {
		t.Errorf("store of %d MB", full>>20)
	}
	if heapAfter > heapBefore+3*RetainedQuotaBytes {
		t.Errorf("heap grew from %d MB to %d MB", heapBefore>>20, heapAfter>>20)
	}
	stop()

	// The accounts are rebuilt from the store: still full.
	b, stop, log, took := timedStart(t, opts, admin)
	t.Logf("restart with the quota full: %v", took)
	attacker = mustConnect(t, b, bob, "bob")
	publish(t, attacker, "bob/q/more", true, payload)
	if n := countRetained(b, "bob/q/"); n != fits {
		t.Errorf("after a restart %d messages retained, want %d", n, fits)
	}
	// Clearing frees the quota, and the store shrinks at once.
	for i := range 100 {
		publish(t, attacker, fmt.Sprint("bob/q/", i), true, "")
	}
	publish(t, attacker, "bob/q/more", true, payload)
	if n := countRetained(b, "bob/q/"); n != 1 {
		t.Errorf("after clearing %d messages retained, want 1", n)
	}
	publish(t, attacker, "bob/q/more", true, "")
	cleared := fileSize(t, store)
	if !strings.Contains(log.String(), "mqtt store compacted") {
		t.Errorf("no compaction logged:\n%s", log.String())
	}
	if cleared >= compactMinSize {
		t.Errorf("store of %d bytes after clearing", cleared)
	}
	stop()

	_, _, _, took = timedStart(t, opts, admin)
	t.Logf("store %d bytes after clearing; restart: %v", cleared, took)
}

func TestRetainedQuotaAccounts(t *testing.T) {
	users, err := newUserDirectory(writeUsers(t, admin, bob, ctl), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stored := []storage.Message{
		{Client: "bob", TopicName: "x/1", Payload: []byte("0123456789")},
		{Client: "bob", TopicName: "tutti/session/home/state", Payload: []byte("state")},
		{Client: "ctl", TopicName: "homeassistant/device/tutti_controller/config", Payload: []byte("config")},
		{Client: "", TopicName: "demo/x", Payload: []byte("anonymous")},
	}
	q := newRetainedQuota(stored, users, newRefusalLog(clock.Real{}, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	check := func(user string, want account) {
		t.Helper()
		if got := q.usage(user); got != want {
			t.Errorf("%q uses %+v, want %+v", user, got, want)
		}
	}
	check("bob", account{1, 13})
	check("ctl", account{})
	check("", account{})

	// Another user's publish moves the topic to its account; clearing frees it.
	alice := &mqtt.Client{ID: "a", Properties: mqtt.ClientProperties{Username: []byte("alice")}}
	q.OnRetainMessage(alice, retainedPacket("x/1", "abc"), 0)
	check("bob", account{})
	check("alice", account{1, 6})
	q.OnRetainMessage(alice, retainedPacket("x/1", ""), -1)
	check("alice", account{})

	// The count is a limit too; replacing one's own message needs no room.
	for i := range RetainedQuotaMessages {
		q.retained("bob", fmt.Sprint("n/", i), 1)
	}
	if err := q.check("bob", "n/new", 1); err == nil {
		t.Error("a message beyond the count accepted")
	}
	if err := q.check("bob", "n/0", 2); err != nil {
		t.Errorf("replacing a message at the count refused: %v", err)
	}
	if err := q.check("bob", "tutti/session/home/state", 1); err != nil {
		t.Errorf("a tutti topic counted: %v", err)
	}
	if err := q.check("ctl", "n/new", RetainedQuotaBytes+1); err != nil {
		t.Errorf("a controller refused: %v", err)
	}
	if err := q.check("alice", "big", RetainedQuotaBytes+1); err == nil {
		t.Error("a message beyond the bytes accepted")
	}
	// A last will beyond the quota is sent, not retained.
	bobClient := &mqtt.Client{ID: "b", Properties: mqtt.ClientProperties{Username: []byte("bob")}}
	will, _ := q.OnWill(bobClient, mqtt.Will{TopicName: "bob/will", Payload: []byte("gone"), Retain: true})
	if will.Retain {
		t.Error("a last will beyond the quota stays retained")
	}
}
