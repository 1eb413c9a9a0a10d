package broker

import (
	"slices"
	"sync"
	"time"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/protocol"
)

// A speaker answers the requests published on its command topic
// (protocol.SpeakerCommandTopic, by admins and controllers) on the reply
// topic each names. The broker lets it publish a reply only in answer to a
// request it was sent: speakerCommands remembers the requests on their way,
// and a speaker's reply uses up the one it answers. So a speaker can neither
// answer a member's session command before the controller does nor write to
// anyone's reply topic unasked.

// maxPendingSpeakerCommands bounds the requests remembered, all speakers
// together: admins and the Home Assistant bridge send a few at a time
// (identify, restart, calibrate, status). Beyond it the oldest is
// forgotten, and its late reply dropped.
const maxPendingSpeakerCommands = 256

// speakerCommandTTL is how long a speaker has to answer: it answers on
// receipt (a calibration first saves a small file), so a minute leaves room
// for a busy or reconnecting speaker.
const speakerCommandTTL = time.Minute

// pendingSpeakerCommand is a request sent to a speaker and not answered yet:
// where and with which request id the speaker will answer.
type pendingSpeakerCommand struct {
	speaker, replyTo, reqID string
	at                      time.Time
}

// speakerCommands holds the pending requests. mochi runs hooks on every
// client's goroutine, so it is guarded by mu.
type speakerCommands struct {
	clock   clock.Clock
	mu      sync.Mutex
	pending []pendingSpeakerCommand // oldest first
}

func newSpeakerCommands(clock clock.Clock) *speakerCommands {
	return &speakerCommands{clock: clock}
}

// sent records a request published on speaker's command topic, reading its
// reply topic and request id the way the speaker does (also from a request
// it will refuse: that gets an error reply too).
func (c *speakerCommands) sent(speaker string, payload []byte) {
	req, _ := protocol.DecodeRequest(payload, protocol.SpeakerCommands)
	replyTo, _ := protocol.ReplyTopic(req.ReplyTo, "")
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if len(c.pending) >= maxPendingSpeakerCommands {
		c.pending = slices.Delete(c.pending, 0, 1)
	}
	c.pending = append(c.pending, pendingSpeakerCommand{speaker: speaker, replyTo: replyTo, reqID: req.ReqID, at: now})
}

// answer reports whether speaker may publish payload on topic: the reply to
// a pending request it was sent, on that request's reply topic. The request
// is then answered: one reply each.
func (c *speakerCommands) answer(speaker, topic string, payload []byte) bool {
	reply, err := protocol.Decode[protocol.Reply](payload)
	if err != nil {
		return false
	}
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	i := slices.IndexFunc(c.pending, func(p pendingSpeakerCommand) bool {
		return p.speaker == speaker && p.replyTo == topic && p.reqID == reply.ReqID
	})
	if i < 0 {
		return false
	}
	c.pending = slices.Delete(c.pending, i, i+1)
	return true
}

// expire forgets the requests older than speakerCommandTTL. c.mu is held.
func (c *speakerCommands) expire(now time.Time) {
	fresh := slices.IndexFunc(c.pending, func(p pendingSpeakerCommand) bool { return now.Sub(p.at) <= speakerCommandTTL })
	if fresh < 0 {
		fresh = len(c.pending)
	}
	c.pending = slices.Delete(c.pending, 0, fresh)
}
