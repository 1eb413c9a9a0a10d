package homeassistant

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/tutti-audio/tutti/protocol"
)

// commandFilter matches every command topic of discovery.go.
const commandFilter = protocol.HomeAssistantCommandFilter

// unmuteVolume is what unmuting restores when the volume before the mute is
// unknown (the bridge restarted, or the mute was not the bridge's).
const unmuteVolume = 50

// command is one tutti request to publish on a plain command topic.
// Requests to the controller are signed with the bridge's user name; a
// speaker's own command topic takes no signature (only admins and
// controllers may publish there).
type command struct {
	topic    string
	req      protocol.Request
	unsigned bool
}

// parseCommandTopic splits a command topic into the device and the entity.
func parseCommandTopic(topic string) (kind, id, component string, ok bool) {
	rest, ok := strings.CutPrefix(topic, haRoot+"/")
	if !ok {
		return "", "", "", false
	}
	rest, ok = strings.CutSuffix(rest, "/set")
	if !ok {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// command translates what Home Assistant published on one of the bridge's
// command topics into a tutti request. muted holds, by device, the volume
// before the bridge muted it, so unmuting can restore it.
func (m *model) command(kind, id, component string, payload []byte, muted map[string]int) (command, error) {
	switch kind {
	case kindSession:
		return m.sessionCommand(id, component, string(payload), muted)
	case kindSpeaker:
		return m.speakerCommand(id, component, string(payload), muted)
	}
	return command{}, fmt.Errorf("no commands for %q devices", kind)
}

func (m *model) sessionCommand(name, component, payload string, muted map[string]int) (command, error) {
	se := m.sessions[name]
	if se == nil || se.info == nil {
		return command{}, fmt.Errorf("unknown session %q", name)
	}
	topic := protocol.SessionCommandTopic(name)
	volume := 0
	if se.state != nil {
		volume = se.state.Volume
	}
	switch component {
	case protocol.CmdPlay, protocol.CmdPause, protocol.CmdNext, protocol.CmdPrevious:
		return command{topic: topic, req: protocol.Request{Cmd: component}}, nil
	case "volume":
		v, err := parseVolume(payload)
		if err != nil {
			return command{}, err
		}
		return command{topic: topic, req: protocol.Request{Cmd: protocol.CmdVolume, Volume: &v}}, nil
	case "mute":
		v, err := muteVolume(payload, volume, kindSession+"/"+name, muted)
		if err != nil {
			return command{}, err
		}
		return command{topic: topic, req: protocol.Request{Cmd: protocol.CmdVolume, Volume: &v}}, nil
	case "playlist":
		var pl protocol.Playlist
		if se.playlist != nil {
			pl = *se.playlist
		}
		for i, entry := range pl.Entries[:min(len(pl.Entries), maxPlaylistOptions)] {
			if entryLabel(i, entry) == payload {
				return command{topic: topic, req: protocol.Request{Cmd: protocol.CmdPlay, Index: &i}}, nil
			}
		}
		return command{}, fmt.Errorf("no playlist entry %q", payload)
	case "announce":
		if len(payload) > protocol.MaxAnnouncementText {
			return command{}, fmt.Errorf("announcement of %d bytes is longer than %d", len(payload), protocol.MaxAnnouncementText)
		}
		return command{topic: topic, req: protocol.Request{Cmd: protocol.CmdAnnounce, Text: payload}}, nil
	}
	return command{}, fmt.Errorf("unknown session entity %q", component)
}

func (m *model) speakerCommand(id, component, payload string, muted map[string]int) (command, error) {
	sp := m.speakers[id]
	if sp == nil {
		return command{}, fmt.Errorf("unknown speaker %q", id)
	}
	var assign protocol.Assignment
	if sp.assign != nil {
		assign = *sp.assign
	}
	// A speaker's own volume is set through the session it plays.
	inSession := func(req protocol.Request) (command, error) {
		if assign.Session == "" {
			return command{}, fmt.Errorf("speaker %q is in no session, which its volume is set through", id)
		}
		req.Speaker = id
		return command{topic: protocol.SessionCommandTopic(assign.Session), req: req}, nil
	}
	switch component {
	case "volume":
		v, err := parseVolume(payload)
		if err != nil {
			return command{}, err
		}
		return inSession(protocol.Request{Cmd: protocol.CmdVolume, Volume: &v})
	case "mute":
		v, err := muteVolume(payload, assign.Volume, kindSpeaker+"/"+id, muted)
		if err != nil {
			return command{}, err
		}
		return inSession(protocol.Request{Cmd: protocol.CmdVolume, Volume: &v})
	case "session":
		if payload == NoSession {
			return inSession(protocol.Request{Cmd: protocol.CmdLeave})
		}
		if !slices.Contains(m.sessionNames(), payload) {
			return command{}, fmt.Errorf("unknown session %q", payload)
		}
		return command{topic: protocol.SessionCommandTopic(payload), req: protocol.Request{Cmd: protocol.CmdJoin, Speaker: id}}, nil
	case protocol.CmdIdentify, protocol.CmdRestart:
		return command{topic: protocol.SpeakerCommandTopic(id), req: protocol.Request{Cmd: component}, unsigned: true}, nil
	case "calibration":
		f, err := strconv.ParseFloat(strings.TrimSpace(payload), 64)
		if err != nil || math.IsNaN(f) || math.Abs(f) > protocol.MaxCalibrationMs {
			return command{}, fmt.Errorf("calibration %q is not a number of ms within ±%d", payload, protocol.MaxCalibrationMs)
		}
		return command{topic: protocol.SpeakerCommandTopic(id), req: protocol.Request{Cmd: protocol.CmdCalibrate, CalibrationMs: &f}, unsigned: true}, nil
	}
	return command{}, fmt.Errorf("unknown speaker entity %q", component)
}

// parseVolume reads a number entity's value: Home Assistant may send "42"
// or "42.0".
func parseVolume(payload string) (int, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(payload), 64)
	if err != nil || math.IsNaN(f) {
		return 0, fmt.Errorf("volume %q is not a number", payload)
	}
	if f < 0 || f > 100 {
		return 0, fmt.Errorf("volume %q is outside 0-100", payload)
	}
	return int(math.Round(f)), nil
}

// muteVolume is the volume a mute switch asks for: ON sets 0 and remembers
// the current volume under key; OFF restores it.
func muteVolume(payload string, current int, key string, muted map[string]int) (int, error) {
	switch payload {
	case on:
		if current > 0 {
			muted[key] = current
		}
		return 0, nil
	case off:
		v, ok := muted[key]
		if !ok {
			v = unmuteVolume
		}
		delete(muted, key)
		return v, nil
	}
	return 0, fmt.Errorf("switch payload %q is neither %s nor %s", payload, on, off)
}
