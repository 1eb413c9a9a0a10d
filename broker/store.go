package broker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

// storeFile is the bolt file in DataDir that holds the retained messages.
const storeFile = "broker.bolt"

// storeBucket is the bucket of mochi's bolt hook that holds them (its
// default, named here so that prepareStore reads the same one).
const storeBucket = "mochi"

// storeLockTimeout is how long New waits for another process's lock on the
// store file.
const storeLockTimeout = 2 * time.Second

// retainedStore is mochi's bolt store limited to retained messages: session
// state, playlists, statuses and discovery configs survive a restart. It
// stores nothing else: tutti's clients use clean sessions, and stored
// in-flight copies would cost two disk commits per subscriber of every QoS 1
// message (a state change to 100 speakers: 200 commits before they all had
// it).
type retainedStore struct {
	*bolt.Hook
	loaded []storage.Message // read by prepareStore; handed to mochi once
}

func (*retainedStore) Provides(b byte) bool {
	return b == mqtt.OnRetainMessage || b == mqtt.OnRetainedExpired || b == mqtt.StoredRetainedMessages
}

// StoredRetainedMessages returns what prepareStore read, so that a start
// decodes the store once: its cost grows with the store's size.
func (s *retainedStore) StoredRetainedMessages() ([]storage.Message, error) {
	loaded := s.loaded
	s.loaded = nil
	return loaded, nil
}

// OnRetainMessage stores a retained message with its owner (retainedOwner)
// in the record's client field, which mochi does not read back for a
// retained message: the quota accounts are rebuilt from it at start. An
// empty payload deletes the record: mochi's hook would store an empty one
// when the topic held nothing, and a client could grow the store with
// those without limit.
func (s *retainedStore) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	if len(pk.Payload) == 0 {
		r = -1
	}
	s.Hook.OnRetainMessage(&mqtt.Client{ID: retainedOwner(cl)}, pk, r)
}

// prepareStore readies the store file at path before mochi opens it, and
// returns the retained messages it holds. It drops those that break today's
// limits (checkMessage), which a store written before them may hold and
// which would slow this start and every later one, and empty or unreadable
// records. Then it compacts the file if it holds more free pages than data:
// bolt reuses freed pages but never gives them back, so a store that once
// held much would stay that large.
func prepareStore(path string, logger *slog.Logger) ([]storage.Message, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: storeLockTimeout})
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
	if !freeDominates(db) {
		return retained, db.Close()
	}
	return retained, compactStore(db, path, logger)
}

// badRecord is a stored record that prepareStore drops, and why.
type badRecord struct {
	key []byte
	err error
}

// readRetained decodes the retained records of db, and returns apart those
// that checkMessage refuses or that cannot be read.
func readRetained(db *bbolt.DB) (retained []storage.Message, bad []badRecord, err error) {
	prefix := []byte(storage.RetainedKey + "_")
	err = db.View(func(tx *bbolt.Tx) error {
		bucket := tx.Bucket([]byte(storeBucket))
		if bucket == nil {
			return nil
		}
		c := bucket.Cursor()
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
		from := stx.Bucket([]byte(storeBucket))
		if from == nil {
			return nil
		}
		c := from.Cursor()
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
