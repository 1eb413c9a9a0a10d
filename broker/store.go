package broker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

// storeFile is the bolt file in DataDir that holds the retained messages.
const storeFile = "broker.bolt"

// storeBucket holds the records: the default bucket of mochi's bolt hook,
// which wrote the stores of earlier versions.
const storeBucket = "mochi"

// storeLockTimeout is how long New waits for another process's lock on the
// store file.
const storeLockTimeout = 2 * time.Second

// retainedStore keeps the retained messages in a bolt file, so that
// session state, playlists, statuses and discovery configs survive a
// restart. It keeps nothing else: tutti's clients use clean sessions, and
// stored in-flight copies would cost two disk commits per subscriber of
// every QoS 1 message (a state change to 100 speakers: 200 commits before
// they all had it). Its records are those of mochi's bolt hook, which
// earlier versions used, plus each message's owner (retainedOwner) in the
// client field, from which the quota accounts are rebuilt at start. When
// a deletion leaves more free pages than data it compacts the file: bolt
// reuses freed pages but never gives them back.
type retainedStore struct {
	mqtt.HookBase
	path   string
	logger *slog.Logger

	mu     sync.Mutex        // orders writes and the compaction that replaces db
	db     *bbolt.DB         // nil once stopped, or if a compaction could not reopen the file
	loaded []storage.Message // read by openStore; handed to mochi once
}

// openStore opens (or creates) the store file at path and reads the
// retained messages it holds. It drops those that break today's limits
// (checkMessage), which a store written before them may hold and which
// would slow this start and every later one, and empty or unreadable
// records; then it compacts the file if it holds more free pages than data.
func openStore(path string, logger *slog.Logger) (*retainedStore, error) {
	db, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	retained, bad, err := readRetained(db)
	if err == nil && len(bad) > 0 {
		err = deleteRecords(db, bad)
		logger.Warn("stored retained messages dropped: over a limit or unreadable", "dropped", len(bad), "first", bad[0].err)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &retainedStore{path: path, logger: logger, db: db, loaded: retained}
	if err := s.compactIfMostlyFree(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// openBolt opens the bolt file at path with the store's bucket. The file is
// locked: a second broker on the same file fails after storeLockTimeout
// instead of corrupting it.
func openBolt(path string) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: storeLockTimeout})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(storeBucket))
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func (s *retainedStore) ID() string { return "tutti-store" }

func (s *retainedStore) Provides(b byte) bool {
	return b == mqtt.OnRetainMessage || b == mqtt.OnRetainedExpired || b == mqtt.StoredRetainedMessages
}

// StoredRetainedMessages returns what openStore read, so that a start
// decodes the store once: its cost grows with the store's size.
func (s *retainedStore) StoredRetainedMessages() ([]storage.Message, error) {
	loaded := s.loaded
	s.loaded = nil
	return loaded, nil
}

// Stop closes the file; mochi calls it when it closes.
func (s *retainedStore) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// OnRetainMessage stores a retained message, or deletes the record of a
// topic cleared with an empty payload. (mochi's bolt hook stored an empty
// record when the topic held nothing, so that a client could grow the
// store without limit.)
func (s *retainedStore) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	if len(pk.Payload) == 0 {
		s.delete(pk.TopicName)
		return
	}
	s.put(retainedRecord(retainedOwner(cl), pk))
}

// OnRetainedExpired deletes the record of a retained message that expired
// (an MQTT 5 client's message expiry).
func (s *retainedStore) OnRetainedExpired(topic string) { s.delete(topic) }

// retainedKey is the key of topic's record.
func retainedKey(topic string) string { return storage.RetainedKey + "_" + topic }

// retainedRecord is the record of pk, retained by owner, as mochi's bolt
// hook writes it.
func retainedRecord(owner string, pk packets.Packet) storage.Message {
	return storage.Message{
		ID:          retainedKey(pk.TopicName),
		T:           storage.RetainedKey,
		FixedHeader: pk.FixedHeader,
		TopicName:   pk.TopicName,
		Payload:     pk.Payload,
		Created:     pk.Created,
		Client:      owner,
		Origin:      pk.Origin,
		Properties: storage.MessageProperties{
			PayloadFormat:          pk.Properties.PayloadFormat,
			MessageExpiryInterval:  pk.Properties.MessageExpiryInterval,
			ContentType:            pk.Properties.ContentType,
			ResponseTopic:          pk.Properties.ResponseTopic,
			CorrelationData:        pk.Properties.CorrelationData,
			SubscriptionIdentifier: pk.Properties.SubscriptionIdentifier,
			TopicAlias:             pk.Properties.TopicAlias,
			User:                   pk.Properties.User,
		},
	}
}

func (s *retainedStore) put(m storage.Message) {
	data, err := m.MarshalBinary()
	if err != nil {
		s.logger.Error("mqtt store: retained message not stored", "topic", logTopic(m.TopicName), "error", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(storeBucket)).Put([]byte(m.ID), data)
	})
	if err != nil {
		s.logger.Error("mqtt store: retained message not stored", "topic", logTopic(m.TopicName), "error", err)
	}
}

// delete deletes topic's record, if there is one (a look first: a commit
// costs a disk sync, and anyone may clear topics that hold nothing), and
// then compacts the file if free pages dominate.
func (s *retainedStore) delete(topic string) {
	key := []byte(retainedKey(topic))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return
	}
	var stored bool
	s.db.View(func(tx *bbolt.Tx) error {
		stored = tx.Bucket([]byte(storeBucket)).Get(key) != nil
		return nil
	})
	if !stored {
		return
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(storeBucket)).Delete(key)
	})
	if err == nil {
		err = s.compactIfMostlyFree()
	}
	if err != nil {
		s.logger.Error("mqtt store: retained message not deleted, or the store not compacted", "topic", logTopic(topic), "error", err)
	}
}

// compactIfMostlyFree compacts the file if free pages dominate, and opens
// the compacted one. Callers hold mu (or own s alone).
func (s *retainedStore) compactIfMostlyFree() error {
	if !freeDominates(s.db) {
		return nil
	}
	err := compactStore(s.db, s.path, s.logger) // closes s.db
	db, openErr := openBolt(s.path)
	s.db = db
	return errors.Join(err, openErr)
}

// badRecord is a stored record that openStore drops, and why.
type badRecord struct {
	key []byte
	err error
}

// readRetained decodes the retained records of db, and returns apart those
// that checkMessage refuses or that cannot be read.
func readRetained(db *bbolt.DB) (retained []storage.Message, bad []badRecord, err error) {
	prefix := []byte(storage.RetainedKey + "_")
	err = db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(storeBucket)).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var m storage.Message
			err := m.UnmarshalBinary(v)
			switch {
			case err != nil:
			case len(m.Payload) == 0:
				err = errors.New("empty payload")
			default:
				err = checkMessage(m.TopicName, m.Payload, true)
			}
			if err != nil {
				bad = append(bad, badRecord{bytes.Clone(k), err})
				continue
			}
			retained = append(retained, m)
		}
		return nil
	})
	return retained, bad, err
}

// deleteRecords deletes the bad records from db's store bucket.
func deleteRecords(db *bbolt.DB, bad []badRecord) error {
	return db.Update(func(tx *bbolt.Tx) error {
		bucket := tx.Bucket([]byte(storeBucket))
		for _, r := range bad {
			if err := bucket.Delete(r.key); err != nil {
				return err
			}
		}
		return nil
	})
}

// compactMinSize is the smallest store file worth compacting: below it the
// free pages cost nothing that matters.
const compactMinSize = 4 << 20

// freeDominates reports whether the store file is at least compactMinSize
// and more of the pages bolt has used are free than hold data. (The file
// also has up to bolt's allocation step, 16 MiB, of room beyond those pages,
// which it would take again as soon as it grew.)
func freeDominates(db *bbolt.DB) bool {
	var fileSize, free, used int64
	err := db.View(func(tx *bbolt.Tx) error {
		info, err := os.Stat(db.Path())
		if err != nil {
			return err
		}
		fileSize = info.Size()
		stats := db.Stats()
		free = int64(stats.FreePageN+stats.PendingPageN) * int64(db.Info().PageSize)
		used = tx.Size() - free
		return nil
	})
	return err == nil && fileSize >= compactMinSize && free > used
}

// compactTxSize is how many bytes compactStore copies per transaction, so
// that a large store is not copied in one.
const compactTxSize = 4 << 20

// compactAllocSize is the step in which the compacted file grows while it
// is written (bolt's default is 16 MiB), so that it ends near the size of
// its data.
const compactAllocSize = 1 << 20

// compactStore copies db's store bucket into a new file and puts that in
// place of path, then closes db. (bbolt.Compact does the same from bbolt
// 1.3.7 on.)
func compactStore(db *bbolt.DB, path string, logger *slog.Logger) error {
	start := time.Now()
	before, err := os.Stat(path)
	if err != nil {
		db.Close()
		return err
	}
	tmp := path + ".compact"
	err = copyStore(db, tmp)
	if closeErr := db.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compact %s: %w", path, err)
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		dir.Sync() // the rename survives a power cut
		dir.Close()
	}
	after, err := os.Stat(path)
	if err != nil {
		return err
	}
	logger.Info("mqtt store compacted", "path", path, "bytes_before", before.Size(), "bytes_after", after.Size(), "took", time.Since(start))
	return nil
}

// copyStore writes src's store bucket into a new bolt file at path.
func copyStore(src *bbolt.DB, path string) error {
	os.Remove(path) // left over by a compaction that was cut short
	dst, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: storeLockTimeout})
	if err != nil {
		return err
	}
	dst.AllocSize = compactAllocSize
	err = src.View(func(stx *bbolt.Tx) error {
		c := stx.Bucket([]byte(storeBucket)).Cursor()
		k, v := c.First()
		for k != nil {
			err := dst.Update(func(dtx *bbolt.Tx) error {
				to, err := dtx.CreateBucketIfNotExists([]byte(storeBucket))
				if err != nil {
					return err
				}
				to.FillPercent = 1 // written in key order: full pages
				for n := 0; k != nil && n < compactTxSize; k, v = c.Next() {
					if err := to.Put(k, v); err != nil {
						return err
					}
					n += len(k) + len(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if closeErr := dst.Close(); err == nil {
		err = closeErr
	}
	return err
}
