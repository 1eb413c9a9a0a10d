package controller

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/protocol"
)

// This file answers the requests that find their loop's queue full: the
// asker hears that the controller is busy instead of waiting for a reply
// that never comes.

// busyLogInterval is how often at most a busy refusal is logged: a flood
// that fills a queue overflows it thousands of times a second.
const busyLogInterval = time.Second

// refuseBusy answers msg, a request that found the queue q full. It runs
// on paho's handler goroutine, so it reads only what the reply needs and
// publishes at QoS 0 without waiting: waiting there would stop paho
// reading, the acknowledgement it waits for included, and QoS 0 takes no
// message id or store entry from a flood.
func (c *Controller) refuseBusy(q *inbox, msg mqtt.Message) {
	_, user, signed := protocol.CommandTopic(msg.Topic())
	var head struct {
		Cmd     string `json:"cmd"`
		ReqID   string `json:"req_id"`
		ReplyTo string `json:"reply_to"`
	}
	if len(msg.Payload()) <= protocol.MaxPayload {
		// Unreadable: the reply goes to the asker's own reply topic,
		// without a req_id.
		_ = json.Unmarshal(msg.Payload(), &head)
	}
	req := protocol.Request{Cmd: head.Cmd, ReqID: head.ReqID, ReplyTo: head.ReplyTo}
	topic, _ := replyTopic(req, user, signed) // refused reply_to: topic is the asker's own
	err := fmt.Errorf("controller busy: %d requests queued, retry", q.limit)
	payload, _ := encodeReply(req, nil, err)
	c.client.Publish(topic, 0, false, payload)
	if skipped, ok := c.busyLog.allow(c.local.Now()); ok {
		c.log.Error("command queue full; request refused as busy", "topic", msg.Topic(), "queued", q.limit,
			"not_logged_before", skipped)
	}
}

// sparseLog lets a message be logged at most once per interval, and counts
// the times it was left out. Safe for concurrent use.
type sparseLog struct {
	interval time.Duration

	mu      sync.Mutex
	logged  time.Time // when it was last allowed
	skipped int       // left out since
}

// allow says whether to log at now, and how many were left out before.
func (l *sparseLog) allow(now time.Time) (skipped int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.logged.IsZero() && now.Sub(l.logged) < l.interval {
		l.skipped++
		return 0, false
	}
	skipped = l.skipped
	l.logged, l.skipped = now, 0
	return skipped, true
}
