package homeassistant

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// model is what the bridge knows of tutti, from its retained topics.
type model struct {
	controller *protocol.ControllerStatus
	speakers   map[string]*speakerModel
	sessions   map[string]*sessionModel
}

type speakerModel struct {
	status *protocol.SpeakerStatus
	assign *protocol.Assignment
	clock  clockReadings
}

type sessionModel struct {
	info     *protocol.SessionInfo
	state    *protocol.SessionState
	playlist *protocol.Playlist
	// cover is the cover art URL of the latest song that was current: a
	// stopped session keeps showing the last one.
	cover string
}

func newModel() *model {
	return &model{speakers: map[string]*speakerModel{}, sessions: map[string]*sessionModel{}}
}

// tuttiFilters are the retained topics the model is built from.
var tuttiFilters = []string{
	protocol.ControllerStatusTopic,
	protocol.SpeakerStatusFilter,
	protocol.AssignFilter,
	protocol.SessionInfoFilter,
	protocol.SessionStateFilter,
	protocol.PlaylistFilter,
}

// apply takes one message of tutti's, arrived at now; an empty payload
// removes what the topic held. Messages stamped with an older term or
// sequence than the one held come from a deposed controller and are ignored.
func (m *model) apply(now time.Time, topic string, payload []byte) error {
	if topic == protocol.ControllerStatusTopic {
		return decodeInto(payload, &m.controller, protocol.Decode[protocol.ControllerStatus], func(*protocol.ControllerStatus) error { return nil })
	}
	if id, ok := protocol.SpeakerFromTopic(topic); ok {
		sp := m.speakers[id]
		if sp == nil {
			sp = &speakerModel{}
		}
		var err error
		switch topic {
		case protocol.SpeakerStatusTopic(id):
			err = decodeInto(payload, &sp.status, protocol.Decode[protocol.SpeakerStatus], func(s *protocol.SpeakerStatus) error { return sameName("speaker", s.ID, id) })
			if err == nil && sp.status != nil {
				sp.clock.follow(now, *sp.status)
			}
		case protocol.AssignTopic(id):
			err = decodeInto(payload, &sp.assign, protocol.Decode[protocol.Assignment], func(a *protocol.Assignment) error {
				if sp.assign != nil && a.Term < sp.assign.Term {
					return fmt.Errorf("assignment of term %d is older than term %d", a.Term, sp.assign.Term)
				}
				return sameName("speaker", a.Speaker, id)
			})
		default:
			return fmt.Errorf("unexpected topic %q", topic)
		}
		if sp.status == nil && sp.assign == nil {
			delete(m.speakers, id)
		} else {
			m.speakers[id] = sp
		}
		return err
	}
	if name, ok := protocol.SessionFromTopic(topic); ok {
		se := m.sessions[name]
		if se == nil {
			se = &sessionModel{}
		}
		var err error
		switch topic {
		case protocol.SessionInfoTopic(name):
			err = decodeInto(payload, &se.info, protocol.Decode[protocol.SessionInfo], func(i *protocol.SessionInfo) error {
				if se.info != nil && i.Term < se.info.Term {
					return fmt.Errorf("session info of term %d is older than term %d", i.Term, se.info.Term)
				}
				return sameName("session", i.Session, name)
			})
		case protocol.SessionStateTopic(name):
			err = decodeInto(payload, &se.state, protocol.Decode[protocol.SessionState], func(s *protocol.SessionState) error {
				if se.state != nil && !protocol.Supersedes(s.Term, s.Seq, se.state.Term, se.state.Seq) {
					return fmt.Errorf("session state %d/%d does not supersede %d/%d", s.Term, s.Seq, se.state.Term, se.state.Seq)
				}
				return sameName("session", s.Session, name)
			})
		case protocol.PlaylistTopic(name):
			err = decodeInto(payload, &se.playlist, protocol.Decode[protocol.Playlist], func(p *protocol.Playlist) error {
				if se.playlist != nil && !protocol.Supersedes(p.Term, p.Version, se.playlist.Term, se.playlist.Version) {
					return fmt.Errorf("playlist %d/%d does not supersede %d/%d", p.Term, p.Version, se.playlist.Term, se.playlist.Version)
				}
				return sameName("session", p.Session, name)
			})
		default:
			return fmt.Errorf("unexpected topic %q", topic)
		}
		if se.info == nil && se.state == nil && se.playlist == nil {
			delete(m.sessions, name)
		} else {
			m.sessions[name] = se
		}
		return err
	}
	return fmt.Errorf("unexpected topic %q", topic)
}

// decodeInto sets *dst from payload if check accepts it, or clears it when
// the payload is empty; a bad payload leaves *dst as it was.
func decodeInto[T any](payload []byte, dst **T, decode func([]byte) (T, error), check func(*T) error) error {
	if len(payload) == 0 {
		*dst = nil
		return nil
	}
	msg, err := decode(payload)
	if err != nil {
		return err
	}
	if err := check(&msg); err != nil {
		return err
	}
	*dst = &msg
	return nil
}

func sameName(what, inPayload, inTopic string) error {
	if inPayload != inTopic {
		return fmt.Errorf("%s %q in the payload of %s %q's topic", what, inPayload, what, inTopic)
	}
	return nil
}

// retained is one message the bridge keeps retained.
type retained struct {
	topic   string
	payload []byte
}

// discovery lists the config of every device the model holds, then their
// states: Home Assistant must know an entity before its state means anything.
// version is the bridge's, for the configs.
func (m *model) discovery(prefix, version string) []retained {
	var configs, states []retained
	add := func(kind, id string, config Discovery, state any) {
		configs = append(configs, retained{discoveryTopic(prefix, objectID(kind, id)), encode(config)})
		states = append(states, retained{stateTopic(kind, id), encode(state)})
	}
	var statuses []protocol.SpeakerStatus
	for _, id := range slices.Sorted(maps.Keys(m.speakers)) {
		sp := m.speakers[id]
		status := protocol.SpeakerStatus{ID: id}
		if sp.status != nil {
			status = *sp.status
		}
		assign := protocol.Assignment{Speaker: id}
		if sp.assign != nil {
			assign = *sp.assign
		}
		statuses = append(statuses, status)
		add(kindSpeaker, id, speakerConfig(status, assign, m.sessionNames(), version), speakerStateOf(status, assign, sp.clock))
	}
	if m.controller != nil {
		add(kindController, "", controllerConfig(version), controllerStateOf(*m.controller, statuses))
	}
	for _, name := range m.sessionNames() {
		se := m.sessions[name]
		var state protocol.SessionState
		if se.state != nil {
			state = *se.state
		}
		var playlist protocol.Playlist
		if se.playlist != nil {
			playlist = *se.playlist
		}
		st := sessionStateOf(state, playlist)
		add(kindSession, name, sessionConfig(*se.info, playlist, version), st)
		if m.controller != nil && st.NowPlayingAttributes.Song != "" {
			if url := protocol.ArtURL(m.controller.SongsURL, st.NowPlayingAttributes.Song); url != "" {
				se.cover = url
			}
		}
		if se.cover != "" {
			states = append(states, retained{coverTopic(name), []byte(se.cover)})
		}
	}
	return append(configs, states...)
}

// sessionNames lists the sessions that exist: those with an info.
func (m *model) sessionNames() []string {
	var names []string
	for _, name := range slices.Sorted(maps.Keys(m.sessions)) {
		if m.sessions[name].info != nil {
			names = append(names, name)
		}
	}
	return names
}

// encode marshals the package's own payload types, which cannot fail.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("homeassistant: encode %T: %v", v, err))
	}
	return b
}
