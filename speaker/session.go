package speaker

import (
	"context"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/clock"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

// This file follows the session the speaker plays: its assignment, the
// session's state and playlist through the fence, the subscriptions that
// carry them, and the acks.

const (
	// repairInterval is how often a speaker whose session state and
	// playlist do not match re-reads them from the broker, and retries a
	// subscription the broker refused.
	repairInterval = 500 * time.Millisecond
	// sessionSafety is how long the session loop sleeps otherwise: a
	// connect, a move and a mismatch signal sessionWake, so this tick only
	// backs them up.
	sessionSafety = 10 * time.Second
)

func unsubscribe(c mqtt.Client, topics ...string) error {
	tok := c.Unsubscribe(topics...)
	if !tok.WaitTimeout(5 * time.Second) {
		return errors.New("no answer from the broker")
	}
	return tok.Error()
}

// currentSession is the session the speaker plays ("" = none).
func (s *Speaker) currentSession() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.session
}

// onState applies a state of session, unless the speaker no longer plays
// that session (a message sent before it moved).
func (s *Speaker) onState(session string, b []byte) error {
	if len(b) == 0 {
		return nil // retained state cleared
	}
	st, err := protocol.Decode[protocol.SessionState](b)
	if err != nil {
		return err
	}
	if st.Volume < 0 || st.Volume > 100 {
		return fmt.Errorf("session volume %d out of 0-100", st.Volume)
	}
	if st.Session != "" && st.Session != session {
		return fmt.Errorf("state of session %q on the topic of %q", st.Session, session)
	}
	s.applyMu.Lock() // lock order: applyMu, mu, the engine's (Speaker)
	defer s.applyMu.Unlock()
	s.mu.Lock()
	if session != s.session {
		s.mu.Unlock()
		return nil
	}
	err = s.fence.state(st.Term, st.Seq)
	s.mu.Unlock()
	if err == errStale {
		return nil
	}
	if err != nil {
		return err
	}
	s.eng.addState(st)
	s.mu.Lock()
	s.acks.applied(st)
	s.mu.Unlock()
	s.sendAcks()
	s.repairIfMismatched()
	if s.opts.OnState != nil {
		s.opts.OnState(st)
	}
	s.wake(s.fetchWake)
	return nil
}

// onPlaylist takes a playlist of session, unless the speaker no longer
// plays that session.
func (s *Speaker) onPlaylist(session string, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	pl, err := protocol.Decode[protocol.Playlist](b)
	if err != nil {
		return err
	}
	if pl.Session != "" && pl.Session != session {
		return fmt.Errorf("playlist of session %q on the topic of %q", pl.Session, session)
	}
	for _, e := range pl.Entries {
		if !validHash(e.Song) || e.SampleRate <= 0 || e.Frames < 0 {
			return fmt.Errorf("playlist %d: bad entry %q (song %q, %d frames at %d Hz)", pl.Version, e.ID, e.Song, e.Frames, e.SampleRate)
		}
	}
	s.applyMu.Lock() // lock order: applyMu, mu, the engine's (Speaker)
	defer s.applyMu.Unlock()
	s.mu.Lock()
	if session != s.session {
		s.mu.Unlock()
		return nil
	}
	err = s.fence.playlist(pl.Term)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.eng.setPlaylist(pl)
	s.sendAcks()
	s.repairIfMismatched()
	s.wake(s.fetchWake)
	return nil
}

func (s *Speaker) onControllerStatus(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	cs, err := protocol.Decode[protocol.ControllerStatus](b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	taken := s.fence.controllerStatus(cs.Term, cs.SongsURL)
	s.mu.Unlock()
	if taken {
		s.wake(s.fetchWake)
	}
	return nil
}

func (s *Speaker) onLease(b []byte) error {
	if len(b) == 0 {
		return nil // retained claim cleared
	}
	l, err := protocol.Decode[protocol.Lease](b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	current, seen := s.fence.lease(l), s.fence.leaseTerm
	s.mu.Unlock()
	if !current {
		return fmt.Errorf("lease of term %d from a deposed controller (term %d seen)", l.Term, seen)
	}
	s.wake(s.fetchWake)
	return nil
}

// onAssignment follows the speaker's assignment: a move to another session
// (or to none) or a change of its own volume.
func (s *Speaker) onAssignment(b []byte) error {
	if len(b) == 0 {
		return nil // assignment cleared: the speaker plays on what it plays
	}
	a, err := protocol.Decode[protocol.Assignment](b)
	if err != nil {
		return err
	}
	if a.Speaker != s.name {
		return fmt.Errorf("assignment of speaker %q on the topic of %q", a.Speaker, s.name)
	}
	if a.Session != "" {
		if err := protocol.ValidName(a.Session); err != nil {
			return fmt.Errorf("assignment: session: %w", err)
		}
	}
	if a.Volume < 0 || a.Volume > 100 {
		return fmt.Errorf("assignment: volume %d out of 0-100", a.Volume)
	}
	// No state or playlist is applied halfway through a move. Lock order:
	// applyMu, mu, the engine's (Speaker).
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	if err := s.fence.assignment(a.Term); err != nil {
		s.mu.Unlock()
		return err
	}
	from, moved := s.session, a.Session != s.session
	s.ownVolume = a.Volume
	if moved {
		// Terms and seqs are the new session's own, and so are the acks.
		s.session = a.Session
		s.fence.newSession()
		s.acks = acks{}
	}
	s.mu.Unlock()
	s.eng.setOwnVolume(a.Volume)
	if moved {
		s.eng.follow(a.Session != "")
		s.log.Info("assigned to another session", "from", from, "to", a.Session, "volume", a.Volume)
		s.wake(s.sessionWake)
	}
	s.wake(s.statusWake)
	return nil
}

// repairIfMismatched has the session loop re-read the session when the
// state and playlist just applied do not match.
func (s *Speaker) repairIfMismatched() {
	if s.eng.mismatched() {
		s.wake(s.sessionWake)
	}
}

// sessionLoop keeps the subscriptions to the state and playlist of the
// session the speaker plays: after a connect and after a move it subscribes
// them (and unsubscribes the old session's), retrying until the broker
// takes them. While they do not match (the engine is muted meanwhile) it
// re-reads them: unsubscribing and subscribing again makes the broker send
// the retained pair anew.
func (s *Speaker) sessionLoop(ctx context.Context, client mqtt.Client) {
	timer := s.clock.NewTimer(sessionSafety)
	defer timer.Stop()
	var sub sessionSubscription
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		case <-s.sessionWake:
		}
		timer.Reset(s.followSession(client, &sub))
	}
}

// sessionSubscription is what the session loop did last.
type sessionSubscription struct {
	session  string    // whose topics are subscribed
	reReadAt time.Time // when the session was last re-read
}

// followSession makes the subscriptions match the session the speaker
// plays, and re-reads a mismatched session at most every repairInterval
// (re-reading makes the handlers signal again while it stays mismatched).
// It says when to look again.
func (s *Speaker) followSession(client mqtt.Client, sub *sessionSubscription) time.Duration {
	if !client.IsConnectionOpen() {
		return sessionSafety // the connect handler signals sessionWake
	}
	if s.connected.Swap(false) {
		sub.session = "" // a clean session starts with no subscriptions
	}
	want := s.currentSession()
	switch {
	case want != sub.session:
		if sub.session != "" {
			if err := unsubscribe(client, sessionTopics(sub.session)...); err != nil {
				s.log.Warn("leaving a session: unsubscribe failed", "session", sub.session, "err", err)
			}
			sub.session = ""
		}
		if want == "" {
			return sessionSafety
		}
		if err := s.subscribeSession(client, want); err != nil {
			s.log.Error("subscribing to the session failed; silent until it works", "session", want, "err", err)
			return repairInterval
		}
		sub.session = want
	case want != "" && s.eng.mismatched():
		if wait := repairInterval - clock.Since(s.clock, sub.reReadAt); wait > 0 {
			return wait
		}
		sub.reReadAt = s.clock.Now()
		s.log.Warn("session state and playlist do not match; muted, re-reading them from the broker")
		if err := unsubscribe(client, sessionTopics(want)...); err != nil {
			s.log.Warn("re-reading the session: unsubscribe failed", "err", err)
			return repairInterval
		}
		if err := s.subscribeSession(client, want); err != nil {
			s.log.Error("re-reading the session: subscribe failed", "err", err)
			sub.session = ""
		}
		return repairInterval // to see whether the pair read again matches
	}
	return sessionSafety
}

func (s *Speaker) subscribeSession(client mqtt.Client, session string) error {
	subs := map[string]byte{}
	for _, topic := range sessionTopics(session) {
		subs[topic] = 1
	}
	return mqttclient.Subscribe(client, subs, s.onMessage, 5*time.Second)
}

// sessionTopics are the topics a speaker plays session from: the retained
// state and playlist, and the announcements.
func sessionTopics(session string) []string {
	return []string{protocol.SessionStateTopic(session), protocol.PlaylistTopic(session), protocol.AnnounceTopic(session)}
}

// sendAcks acknowledges the applied session states whose playlist the
// engine now holds.
func (s *Speaker) sendAcks() {
	s.mu.Lock()
	due := s.acks.due(s.eng.holdsPlaylist)
	session := s.session
	s.mu.Unlock()
	for _, st := range due {
		s.publishAck(protocol.Ack{V: protocol.Version, Session: session, Term: st.Term, Seq: st.Seq})
	}
}

// publishAck sends an ack without waiting for the broker (handlers must
// not block). An ack lost to a dropped connection only costs the command
// its quorum, which the controller reports.
func (s *Speaker) publishAck(a protocol.Ack) {
	tok := s.client.Publish(protocol.AckTopic(s.name), 1, false, protocol.Encode(a))
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			s.log.Warn("ack not sent", "ack", a, "err", err)
		}
	default:
	}
}
