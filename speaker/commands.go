package speaker

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/protocol"
)

// ErrRestart is what Run returns after a restart command: the speaker has
// stopped in order, and whoever runs it is to start it again (the CLI
// re-executes the process, as a supervisor such as systemd would).
var ErrRestart = errors.New("speaker: restart requested")

// onCommand answers a request on the speaker's command topic
// (protocol.SpeakerCommands). It runs on a paho goroutine: it never waits
// for the broker.
func (s *Speaker) onCommand(b []byte) {
	req, err := protocol.DecodeRequest(b, protocol.SpeakerCommands)
	var result any
	if err == nil {
		result, err = s.do(req)
	}
	if err != nil {
		s.log.Warn("speaker command refused", "cmd", req.Cmd, "req_id", req.ReqID, "err", err)
	}
	tok := s.reply(req, result, err)
	if err == nil && req.Cmd == protocol.CmdRestart {
		select {
		case s.restart <- tok:
		default: // a restart is already under way
		}
	}
}

// do carries out a valid request and returns its result.
func (s *Speaker) do(req protocol.Request) (any, error) {
	if err := protocol.CheckFields(req); err != nil {
		return nil, err
	}
	switch req.Cmd {
	case protocol.CmdIdentify:
		s.eng.identify()
		s.log.Info("identifying: playing the identify tone")
		return nil, nil
	case protocol.CmdCalibrate:
		if err := s.calibrate(*req.CalibrationMs); err != nil { // CheckFields saw it present
			return nil, err
		}
		return s.statusMessage(), nil
	case protocol.CmdStatus:
		return s.statusMessage(), nil
	case protocol.CmdRestart:
		s.log.Info("restart requested: stopping")
		return nil, nil
	}
	return nil, fmt.Errorf("%w %q", protocol.ErrUnknownCommand, req.Cmd)
}

// calibrate sets the output latency calibration to ms milliseconds: saved
// first, so that an answer ok means it is kept, then applied at once.
func (s *Speaker) calibrate(ms float64) error {
	if math.IsNaN(ms) || math.Abs(ms) > protocol.MaxCalibrationMs {
		return fmt.Errorf("calibration_ms %v out of ±%d", ms, protocol.MaxCalibrationMs)
	}
	d := time.Duration(math.Round(ms * float64(time.Millisecond)))
	// One calibration at a time: the file and the engine end with the same.
	// Lock order: calibrationMu, mu, the engine's (Speaker).
	s.calibrationMu.Lock()
	defer s.calibrationMu.Unlock()
	if err := saveCalibration(s.opts.CacheDir, d); err != nil {
		return fmt.Errorf("calibration not saved, so not applied: %w", err)
	}
	s.mu.Lock()
	from := s.calibration
	s.calibration = d
	s.mu.Unlock()
	s.eng.setCalibration(d)
	s.log.Info("output latency calibration set", "from", from, "to", d)
	s.wake(s.statusWake)
	return nil
}

// reply publishes the one reply every request gets, without waiting. The
// speaker's command topic is not signed, so the reply_to is checked as an
// anonymous request's; tutti's broker lets the speaker publish only the
// reply to a request it was sent, on the topic that request named.
func (s *Speaker) reply(req protocol.Request, result any, err error) mqtt.Token {
	to, toErr := protocol.ReplyTopic(req.ReplyTo, "")
	if toErr != nil {
		s.log.Warn("speaker command: reply sent to the default reply topic", "err", toErr)
		if err == nil {
			err = toErr
		}
	}
	r := protocol.Reply{V: protocol.Version, OK: err == nil, Cmd: req.Cmd, ReqID: req.ReqID}
	if err != nil {
		r.Error = err.Error()
	} else if result != nil {
		r.Result = json.RawMessage(protocol.Encode(result))
	}
	return s.client.Publish(to, 1, false, protocol.Encode(r))
}
