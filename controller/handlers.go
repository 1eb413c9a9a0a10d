package controller

import (
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/protocol"
)

// This file holds paho's handlers: they run on paho's goroutines, never
// block, and hand messages to the loops' inboxes (inbox.go) or answer
// at once (clock probes).

// subscription is one topic filter the controller listens to.
type subscription struct {
	filter  string
	qos     byte
	handler mqtt.MessageHandler
}

// answerClock is the time master's side of a clock probe, of a speaker or
// of a standby controller. T2 is stamped first and T3 right before
// publishing; nothing slow happens in between.
func (c *Controller) answerClock(client mqtt.Client, msg mqtt.Message) {
	t2 := c.now()
	if !c.holding() || !c.handlers.enter() {
		return
	}
	defer c.handlers.leave()
	id, ok := protocol.SpeakerFromTopic(msg.Topic())
	if !ok || id == c.sharedClock.id { // our own probe, sent before we took over
		return
	}
	req, err := protocol.Decode[protocol.ClockRequest](msg.Payload())
	if err != nil {
		c.log.Debug("bad clock request", "speaker", id, "err", err)
		return
	}
	resp := protocol.ClockResponse{V: protocol.Version, ID: req.ID, T1: req.T1, T2: t2}
	resp.T3 = c.now()
	client.Publish(protocol.ClockResponseTopic(id), 0, false, protocol.Encode(resp))
}

// queue hands messages to a loop; commands are handled one at a time there.
func (c *Controller) queue(q *inbox) mqtt.MessageHandler {
	return func(_ mqtt.Client, msg mqtt.Message) {
		if !c.handlers.enter() {
			return
		}
		defer c.handlers.leave()
		if msg.Retained() {
			// A retained command was answered when it was new; obeying it
			// again at every reconnect would replay old commands.
			c.log.Warn("ignoring retained command", "topic", msg.Topic())
			return
		}
		c.yielder.commandArrived() // measurepace.go
		if !q.push(inbound{topic: msg.Topic(), payload: msg.Payload()}) {
			c.refuseBusy(q, msg)
		}
	}
}

// queueEvent hands a message for the session loop to it, in arrival order.
func (c *Controller) queueEvent(_ mqtt.Client, msg mqtt.Message) {
	if !c.handlers.enter() {
		return
	}
	defer c.handlers.leave()
	at := c.local.Now()
	if msg.Topic() == protocol.LeaseTopic {
		if m, err := protocol.Decode[protocol.Lease](msg.Payload()); err == nil {
			c.hold.heard(m, msg.Retained(), at)
		}
	}
	if !c.sessionEvents.push(inbound{topic: msg.Topic(), payload: msg.Payload(), retained: msg.Retained(), at: at}) {
		c.log.Error("session inbox full; message dropped", "topic", msg.Topic(), "queued", maxQueued)
	}
}

// noteSpeaker keeps the latest status of every speaker for status replies,
// and tells the session loop, which assigns a speaker seen for the first
// time.
func (c *Controller) noteSpeaker(client mqtt.Client, msg mqtt.Message) {
	if !c.handlers.enter() {
		return
	}
	defer c.handlers.leave()
	id, ok := protocol.SpeakerFromTopic(msg.Topic())
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(msg.Payload()) == 0 {
		// The retained status was cleared (forget): the speaker is gone, and
		// a status from it later makes it new again.
		delete(c.speakers, id)
		return
	}
	st, err := protocol.Decode[protocol.SpeakerStatus](msg.Payload())
	if err != nil {
		c.log.Warn("bad speaker status", "speaker", id, "err", err)
		return
	}
	st.ID = id // the topic, which the broker's ACL vouches for, names the speaker
	_, seen := c.speakers[id]
	c.speakers[id] = st
	if _, assigned := c.assignments[id]; !seen && !assigned {
		if !c.sessionEvents.push(inbound{topic: msg.Topic()}) {
			c.log.Error("session inbox full; speaker not assigned", "speaker", id)
		}
	}
}

// gate tracks handler calls on goroutines the controller does not own, so
// Run can wait for the running ones and turn away later ones.
type gate struct {
	mu     sync.Mutex
	wg     sync.WaitGroup
	closed bool
}

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

func (g *gate) leave() { g.wg.Done() }

func (g *gate) closeAndWait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}
