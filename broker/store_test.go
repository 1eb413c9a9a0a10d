package broker

import (
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"go.etcd.io/bbolt"

	"github.com/tutti-audio/tutti/protocol"
)

// storedRecord is the store record of a retained message.
func storedRecord(t *testing.T, owner, topic string, payload []byte) []byte {
	t.Helper()
	b, err := retainedRecord(owner, retainedPacket(topic, string(payload))).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeStore puts records (key to value) into the store file at path.
func writeStore(t *testing.T, path string, records map[string][]byte) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		bucket, err := tx.CreateBucketIfNotExists([]byte(storeBucket))
		if err != nil {
			return err
		}
		for k, v := range records {
			if err := bucket.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// deleteFromStore deletes keys from the store file at path.
func deleteFromStore(t *testing.T, path string, keys []string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, k := range keys {
			if err := tx.Bucket([]byte(storeBucket)).Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A store written before the limits (or by hand) holds retained messages
// 15,000 levels deep, a 30,000-byte topic, a 1 MB payload, a retained
// command, an empty and an unreadable record: they are dropped at start
// with a log line, so neither this start nor the next is slowed, and the
// rest is kept.
func TestPoisonedStoreDroppedAtStart(t *testing.T) {
	dataDir := t.TempDir()
	path := filepath.Join(dataDir, storeFile)
	good := map[string][]byte{
		retainedKey(protocol.SessionStateTopic("home")): storedRecord(t, "ctl", protocol.SessionStateTopic("home"), []byte("state")),
		retainedKey("bob/ok"):                           storedRecord(t, "bob", "bob/ok", []byte("fine")),
	}
	records := map[string][]byte{}
	for i := range 20 {
		topic := deepTopic(fmt.Sprint("deep", i), 15000) // bolt keys stop at 32 KiB
		records[retainedKey(topic)] = storedRecord(t, "bob", topic, []byte("poison"))
	}
	for topic, payload := range map[string][]byte{
		strings.Repeat("L", 30000):           []byte("poison"),
		"bob/big":                            make([]byte, 1_000_000),
		protocol.SessionCommandTopic("home"): []byte(`{"cmd":"stop"}`),
		"bob/empty":                          nil,
	} {
		records[retainedKey(topic)] = storedRecord(t, "bob", topic, payload)
	}
	records[retainedKey("bob/garbage")] = []byte("not json")
	dropped := len(records)
	for k, v := range good {
		records[k] = v
	}
	writeStore(t, path, records)

	opts := Options{UsersFile: writeUsers(t, admin, bob, ctl), DataDir: dataDir}
	b, stop, log, took := timedStart(t, opts, admin)
	t.Logf("start with %d poisoned records: %v to the first round trip", dropped, took)
	want := []string{"bob/ok", protocol.SessionStateTopic("home")}
	if got := retainedTopics(b); !slices.Equal(got, want) {
		t.Errorf("retained %.300q, want %q", got, want)
	}
	if line := fmt.Sprintf("stored retained messages dropped: over a limit or unreadable\" dropped=%d", dropped); !strings.Contains(log.String(), line) {
		t.Errorf("no %q in the log:\n%.3000s", line, log.String())
	}
	stop()

	b, _, log, took = timedStart(t, opts, admin)
	t.Logf("next start: %v", took)
	if strings.Contains(log.String(), "dropped") {
		t.Errorf("records dropped again:\n%s", log.String())
	}
	if got := retainedTopics(b); !slices.Equal(got, want) {
		t.Errorf("retained %.300q after a second start, want %q", got, want)
	}
}

// A realistic store (a library of 2000 songs, 150 Home Assistant configs,
// 30 sessions with long playlists) that once also held 16 MB more: the start
// compacts it, keeps every record, and logs how long that took.
func TestStoreCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), storeFile)
	live := map[string][]byte{}
	add := func(owner, topic string, size int) {
		live[retainedKey(topic)] = storedRecord(t, owner, topic, []byte(strings.Repeat("x", size)))
	}
	for i := range 2000 {
		add("ctl", protocol.LibrarySongTopic(fmt.Sprintf("%064x", i)), 700)
	}
	for i := range 150 {
		add("ctl", fmt.Sprintf("homeassistant/device/tutti_speaker_s%d/config", i), 4000)
	}
	for i := range 30 {
		add("ctl", protocol.PlaylistTopic(fmt.Sprint("s", i)), 100_000)
		add("ctl", protocol.SessionStateTopic(fmt.Sprint("s", i)), 500)
	}
	writeStore(t, path, live)
	junk := map[string][]byte{}
	var junkKeys []string
	for i := range 60 {
		topic := fmt.Sprint("bob/junk/", i)
		junk[retainedKey(topic)] = storedRecord(t, "bob", topic, make([]byte, 200_000))
		junkKeys = append(junkKeys, retainedKey(topic))
	}
	writeStore(t, path, junk)
	deleteFromStore(t, path, junkKeys)
	before := fileSize(t, path)

	var log syncBuffer
	start := time.Now()
	store, err := openStore(path, slog.New(slog.NewTextHandler(&log, nil)))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	store.Stop()
	after := fileSize(t, path)
	t.Logf("store of %d records: %d bytes before, %d after; openStore took %v; %s", len(live), before, after, took, log.String())
	if len(store.loaded) != len(live) {
		t.Errorf("read %d records, want %d", len(store.loaded), len(live))
	}
	if after > before/2 || !strings.Contains(log.String(), "mqtt store compacted") {
		t.Errorf("not compacted: %d bytes before, %d after", before, after)
	}
	// Every record survived the copy, byte for byte.
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		bucket := tx.Bucket([]byte(storeBucket))
		if n := bucket.Stats().KeyN; n != len(live) {
			t.Errorf("%d records after compaction, want %d", n, len(live))
		}
		for k, v := range live {
			if got := bucket.Get([]byte(k)); string(got) != string(v) {
				t.Errorf("record %s changed", k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Clearing most of a running store compacts it at once, while other
// clients go on retaining and clearing: nothing of theirs is lost, and the
// store takes writes after the compaction.
func TestStoreCompactsWhileRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), storeFile)
	var log syncBuffer
	store, err := openStore(path, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Stop()
	bob := &mqtt.Client{ID: "bob-1", Properties: mqtt.ClientProperties{Username: []byte("bob")}}
	alice := &mqtt.Client{ID: "alice-1", Properties: mqtt.ClientProperties{Username: []byte("alice")}}
	big := strings.Repeat("B", 200_000)
	for i := range 40 {
		store.OnRetainMessage(bob, retainedPacket(fmt.Sprint("bob/", i), big), 1)
	}
	full := fileSize(t, path)

	var wg sync.WaitGroup
	wg.Go(func() { // alice meanwhile
		for i := range 200 {
			store.OnRetainMessage(alice, retainedPacket(fmt.Sprint("alice/", i%20), fmt.Sprint("v", i)), 1)
			if i%7 == 0 {
				store.OnRetainMessage(alice, retainedPacket(fmt.Sprint("alice/gone/", i), "x"), 1)
				store.OnRetainMessage(alice, retainedPacket(fmt.Sprint("alice/gone/", i), ""), -1)
			}
		}
	})
	for i := range 40 {
		store.OnRetainMessage(bob, retainedPacket(fmt.Sprint("bob/", i), ""), -1)
	}
	wg.Wait()
	store.OnRetainMessage(bob, retainedPacket("bob/after", "still stored"), 1)
	cleared := fileSize(t, path)
	t.Logf("store %d bytes full, %d after clearing", full, cleared)
	if !strings.Contains(log.String(), "mqtt store compacted") || cleared >= compactMinSize {
		t.Errorf("not compacted: %d bytes full, %d after clearing\n%s", full, cleared, log.String())
	}
	store.Stop()

	store, err = openStore(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range store.loaded {
		got[m.TopicName] = string(m.Payload)
		if want := strings.Split(m.TopicName, "/")[0]; m.Client != want {
			t.Errorf("%s stored with owner %q, want %q", m.TopicName, m.Client, want)
		}
	}
	want := map[string]string{"bob/after": "still stored"}
	for i := 180; i < 200; i++ {
		want[fmt.Sprint("alice/", i%20)] = fmt.Sprint("v", i)
	}
	if !maps.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
}
