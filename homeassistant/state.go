package homeassistant

import "github.com/tutti-audio/tutti/protocol"

// The states the bridge retains on stateTopic, one JSON object per device;
// the field names are the value templates of discovery.go.

const (
	on  = "ON"
	off = "OFF"
)

func onOff(b bool) string {
	if b {
		return on
	}
	return off
}

type controllerState struct {
	Connection     string `json:"connection"`
	SpeakersOnline int    `json:"speakers_online"`
}

func controllerStateOf(c protocol.ControllerStatus, speakers []protocol.SpeakerStatus) controllerState {
	online := 0
	for _, s := range speakers {
		if s.Online {
			online++
		}
	}
	return controllerState{Connection: onOff(c.Online), SpeakersOnline: online}
}

type speakerState struct {
	Connection    string   `json:"connection"`
	Volume        int      `json:"volume"`
	Mute          string   `json:"mute"`
	Session       string   `json:"session"`
	ClockOffsetMs *float64 `json:"clock_offset_ms"`
	SyncErrorMs   *float64 `json:"sync_error_ms"`
	LatencyMs     float64  `json:"latency_ms"`
	CalibrationMs float64  `json:"calibration_ms"`
}

// speakerStateOf reads the volume and session from the assignment (what the
// controller decided), the clock from what the bridge shows of it
// (deadband.go), and the rest from the speaker's own status. tutti has no
// mute of its own: a speaker is muted when its volume is 0. The sync error
// is the speaker's bound on its clock offset error.
func speakerStateOf(s protocol.SpeakerStatus, a protocol.Assignment, clock clockReadings) speakerState {
	session := a.Session
	if session == "" {
		session = NoSession
	}
	return speakerState{
		Connection:    onOff(s.Online),
		Volume:        a.Volume,
		Mute:          onOff(a.Volume == 0),
		Session:       session,
		ClockOffsetMs: clock.offset.shown(),
		SyncErrorMs:   clock.syncError.shown(),
		LatencyMs:     ms(s.LatencyNs),
		CalibrationMs: ms(s.CalibrationNs),
	}
}

// ms converts nanoseconds to milliseconds with microsecond resolution.
func ms(ns int64) float64 { return float64(ns/1000) / 1000 }

// sessionState's NowPlaying is null when nothing is current: its template
// then renders "None", which Home Assistant's MQTT sensors take as unknown.
type sessionState struct {
	State                string     `json:"state"`
	NowPlaying           *string    `json:"now_playing"`
	NowPlayingAttributes nowPlaying `json:"now_playing_attributes"`
	Volume               int        `json:"volume"`
	Mute                 string     `json:"mute"`
	Entry                string     `json:"entry"`
}

// nowPlaying holds the details of the current song, shown as attributes of
// the now-playing sensor, whose state is limited to 255 characters.
type nowPlaying struct {
	Title     string  `json:"title,omitempty"`
	Artist    string  `json:"artist,omitempty"`
	Song      string  `json:"song,omitempty"`
	URI       string  `json:"uri,omitempty"`
	Entry     string  `json:"entry,omitempty"`
	Index     int     `json:"index"`
	DurationS float64 `json:"duration_s,omitempty"`
}

// sessionStateOf describes a session's playback; the current entry is the
// anchor's, found by id so that a playlist older or newer than the state
// still names the right song, or none; when the anchor is inside a
// crossfade (a pause during one), the entry fading in, as the CLI shows it.
func sessionStateOf(st protocol.SessionState, pl protocol.Playlist) sessionState {
	state := st.State
	if state == "" {
		state = protocol.Stopped
	}
	out := sessionState{
		State:                state,
		Volume:               st.Volume,
		Mute:                 onOff(st.Volume == 0),
		Entry:                noOption,
		NowPlayingAttributes: nowPlaying{Index: -1},
	}
	for i, entry := range pl.Entries {
		if entry.ID != st.Anchor.Entry {
			continue
		}
		i, _ = pl.Timeline().Current(i, st.Anchor.PositionNs)
		entry = pl.Entries[i]
		out.NowPlaying = ptr(truncate(songLabel(entry), maxState))
		out.NowPlayingAttributes = nowPlaying{
			Title:     entry.Title,
			Artist:    entry.Artist,
			Song:      entry.Song,
			URI:       "tutti:song:" + entry.Song,
			Entry:     entry.ID,
			Index:     i,
			DurationS: float64(entry.DurationNs()/1e6) / 1e3,
		}
		if i < maxPlaylistOptions {
			out.Entry = entryLabel(i, entry)
		}
		break
	}
	return out
}
