package mqtt

import (
	"hash/fnv"
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"
)

// tutti: retained publishes to one topic are retained and delivered under
// one lock, so every subscriber sees them in the order the broker retained
// them (see TUTTI.md).

// retainOrderStripes is the number of locks the topics share: enough that
// publishes to different topics rarely wait for each other, few enough to
// cost nothing (a topic's lock is held only while its message is retained
// and queued, never while anything is written to a connection).
const retainOrderStripes = 64

// retainOrder holds the locks that order retained publishes, by topic.
type retainOrder [retainOrderStripes]sync.Mutex

func (o *retainOrder) lock(topic string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(topic))
	return &o[h.Sum32()%retainOrderStripes]
}

// retainAndPublish retains pk if it is retained and delivers it to the
// subscribers. Hooks and inline subscription handlers run while a retained
// message's lock is held: they must not publish retained messages
// themselves.
func (s *Server) retainAndPublish(cl *Client, pk packets.Packet) {
	if !pk.FixedHeader.Retain {
		s.publishToSubscribers(pk)
		return
	}
	mu := s.retainOrder.lock(pk.TopicName)
	mu.Lock()
	defer mu.Unlock()
	s.retainMessage(cl, pk)
	s.publishToSubscribers(pk)
}
