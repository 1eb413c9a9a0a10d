// Package homeassistant makes tutti appear in Home Assistant through MQTT
// device-based discovery (HA 2024.11 and later). Home Assistant has no MQTT
// media_player, so each tutti thing becomes a device built of the platforms
// it has: buttons, numbers, switches, selects, sensors, an image and a
// notify entity. This file holds the discovery payloads, built by pure
// functions from tutti's protocol messages; bridge.go publishes them.
package homeassistant

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tutti-audio/tutti/protocol"
)

// DefaultPrefix is Home Assistant's default discovery prefix; the broker's
// ACL guards the same prefix by default.
const DefaultPrefix = protocol.HomeAssistantPrefix

// haRoot holds every topic the bridge owns.
const haRoot = protocol.HomeAssistantRoot

// BridgeStatusTopic is retained: "online" while the bridge runs, "offline"
// from its last will. Every device's availability includes it, because the
// states Home Assistant shows are the bridge's.
const BridgeStatusTopic = haRoot + "/status"

// Kinds of device, the second level of the bridge's topics.
const (
	kindController = "controller"
	kindSpeaker    = "speaker"
	kindSession    = "session"
)

// NoSession is the speaker session select's option for "in no session". The
// parentheses keep it apart from every session name (protocol.ValidName).
const NoSession = "(none)"

// maxState is the longest state Home Assistant accepts for a sensor, in
// characters; a longer one makes the sensor go unknown with an error.
const maxState = 255

// maxPlaylistOptions caps the playlist select: every option travels in the
// discovery payload, and the payload is re-published at each playlist change.
const maxPlaylistOptions = 100

// noOption is the state of a select with no current option: MQTT selects
// take the payload "None" as unknown.
const noOption = "None"

// discoveryTopic is where a device's config is retained.
func discoveryTopic(prefix, objectID string) string {
	return prefix + "/device/" + objectID + "/config"
}

// objectID names a device in topics and ids; the controller has no id, as
// the controller in charge changes with the lease.
func objectID(kind, id string) string {
	if kind == kindController {
		return "tutti_controller"
	}
	return "tutti_" + kind + "_" + id
}

// stateTopic carries a device's state as one JSON object, retained; each
// entity picks its field with a value template.
func stateTopic(kind, id string) string {
	if kind == kindController {
		return haRoot + "/controller/state"
	}
	return haRoot + "/" + kind + "/" + id + "/state"
}

// commandTopic is where Home Assistant sends what a user does with one
// entity; the bridge translates it into a tutti request.
func commandTopic(kind, id, component string) string {
	return haRoot + "/" + kind + "/" + id + "/" + component + "/set"
}

// coverTopic carries a session's cover art URL, retained.
func coverTopic(session string) string { return haRoot + "/session/" + session + "/cover" }

// Discovery is a device-based discovery payload. Home Assistant allows at its
// root only device, origin, the availability options, components and the
// shared state_topic, command_topic, qos and encoding.
type Discovery struct {
	Device           Device               `json:"device"`
	Origin           Origin               `json:"origin"`
	Availability     []Availability       `json:"availability"`
	AvailabilityMode string               `json:"availability_mode"`
	QoS              int                  `json:"qos"`
	Components       map[string]Component `json:"components"`
}

// Device ties the entities together in Home Assistant's device registry.
type Device struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model"`
	SWVersion    string   `json:"sw_version,omitempty"`
	ViaDevice    string   `json:"via_device,omitempty"`
}

// Origin names the application behind the discovery; device-based discovery
// requires it.
type Origin struct {
	Name       string `json:"name"`
	SWVersion  string `json:"sw_version,omitempty"`
	SupportURL string `json:"support_url,omitempty"`
}

// Availability is one topic an entity's availability depends on.
type Availability struct {
	Topic         string `json:"topic"`
	ValueTemplate string `json:"value_template,omitempty"`
}

// Component is one entity. Fields a platform does not use stay empty and are
// left out of the JSON.
type Component struct {
	Platform               string         `json:"platform"`
	UniqueID               string         `json:"unique_id"`
	Name                   string         `json:"name"`
	QoS                    int            `json:"qos"`
	DeviceClass            string         `json:"device_class,omitempty"`
	EntityCategory         string         `json:"entity_category,omitempty"`
	Icon                   string         `json:"icon,omitempty"`
	StateTopic             string         `json:"state_topic,omitempty"`
	ValueTemplate          string         `json:"value_template,omitempty"`
	CommandTopic           string         `json:"command_topic,omitempty"`
	JSONAttributesTopic    string         `json:"json_attributes_topic,omitempty"`
	JSONAttributesTemplate string         `json:"json_attributes_template,omitempty"`
	Options                []string       `json:"options,omitempty"`
	Min                    *float64       `json:"min,omitempty"`
	Max                    *float64       `json:"max,omitempty"`
	Step                   *float64       `json:"step,omitempty"`
	Mode                   string         `json:"mode,omitempty"`
	UnitOfMeasurement      string         `json:"unit_of_measurement,omitempty"`
	StateClass             string         `json:"state_class,omitempty"`
	DisplayPrecision       *int           `json:"suggested_display_precision,omitempty"`
	URLTopic               string         `json:"url_topic,omitempty"`
	Availability           []Availability `json:"availability,omitempty"`
	AvailabilityMode       string         `json:"availability_mode,omitempty"`
}

// qos is the QoS of every topic the bridge's entities use. Components
// repeat it: older Home Assistant versions do not pass the device's qos down
// to its components.
const qos = 1

func origin(version string) Origin {
	return Origin{Name: "tutti", SWVersion: version, SupportURL: "https://github.com/tutti-audio/tutti"}
}

// onlineTemplate reads tutti's status payloads, whose last wills say
// {"online": false}.
const onlineTemplate = "{{ 'online' if value_json.online else 'offline' }}"

var (
	bridgeAvailability     = Availability{Topic: BridgeStatusTopic}
	controllerAvailability = Availability{Topic: protocol.ControllerStatusTopic, ValueTemplate: onlineTemplate}
)

func speakerAvailability(id string) Availability {
	return Availability{Topic: protocol.SpeakerStatusTopic(id), ValueTemplate: onlineTemplate}
}

func field(name string) string { return "{{ value_json." + name + " }}" }

func ptr[T any](v T) *T { return &v }

// entities builds the components of one device, with unique ids derived from
// the device's tutti id only, so a rename never orphans an entity.
type entities struct {
	kind, id string
	list     map[string]Component
}

func newEntities(kind, id string) *entities {
	return &entities{kind: kind, id: id, list: map[string]Component{}}
}

// add registers c under key, filling in the platform and unique id; stateful
// entities read their field of the device's state topic.
func (e *entities) add(key, platform, name string, c Component) {
	c.Platform = platform
	c.UniqueID = objectID(e.kind, e.id) + "_" + key
	c.Name = name
	c.QoS = qos
	if c.ValueTemplate != "" {
		c.StateTopic = stateTopic(e.kind, e.id)
	}
	e.list[key] = c
}

func (e *entities) command(key string) string { return commandTopic(e.kind, e.id, key) }

// addVolume adds the volume slider and the mute switch speakers and
// sessions both have.
func (e *entities) addVolume() {
	e.add("volume", "number", "Volume", Component{
		Icon:              "mdi:volume-high",
		Min:               ptr(0.0),
		Max:               ptr(100.0),
		Step:              ptr(1.0),
		Mode:              "slider",
		UnitOfMeasurement: "%",
		ValueTemplate:     field("volume"),
		CommandTopic:      e.command("volume"),
	})
	e.add("mute", "switch", "Mute", Component{
		Icon:          "mdi:volume-off",
		ValueTemplate: field("mute"),
		CommandTopic:  e.command("mute"),
	})
}

// connection is a binary sensor available whenever the bridge is, so it
// shows "disconnected" rather than "unavailable" when its subject is gone.
func connection() Component {
	return Component{
		DeviceClass:      "connectivity",
		EntityCategory:   "diagnostic",
		ValueTemplate:    field("connection"),
		Availability:     []Availability{bridgeAvailability},
		AvailabilityMode: "all",
	}
}

// controllerConfig describes the controller in charge. Its name stays the
// same whichever controller holds the lease; version is the bridge's.
func controllerConfig(version string) Discovery {
	e := newEntities(kindController, "")
	e.add("connection", "binary_sensor", "Connection", connection())
	e.add("speakers_online", "sensor", "Speakers online", Component{
		Icon:          "mdi:speaker-multiple",
		StateClass:    "measurement",
		ValueTemplate: field("speakers_online"),
	})
	return Discovery{
		Device: Device{
			Identifiers:  []string{objectID(kindController, "")},
			Name:         "tutti controller",
			Manufacturer: "tutti",
			Model:        "controller",
			SWVersion:    version,
		},
		Origin:           origin(version),
		Availability:     []Availability{bridgeAvailability},
		AvailabilityMode: "all",
		QoS:              qos,
		Components:       e.list,
	}
}

// Display precisions of the diagnostic durations, in decimals of a ms: the
// clock offset and sync error are meaningful to about 10 µs, the output
// latency to 0.1 ms.
const (
	clockPrecision   = 2
	latencyPrecision = 1
)

// durationMs is a diagnostic sensor of a duration in milliseconds.
func durationMs(icon, field string, precision int) Component {
	return Component{
		DeviceClass:       "duration",
		EntityCategory:    "diagnostic",
		Icon:              icon,
		UnitOfMeasurement: "ms",
		StateClass:        "measurement",
		DisplayPrecision:  ptr(precision),
		ValueTemplate:     field,
	}
}

// speakerConfig describes one speaker; sessions are the names its session
// select offers, version the bridge's.
func speakerConfig(s protocol.SpeakerStatus, a protocol.Assignment, sessions []string, version string) Discovery {
	e := newEntities(kindSpeaker, s.ID)
	e.addVolume()
	e.add("session", "select", "Session", Component{
		Icon:          "mdi:speaker-wireless",
		Options:       sessionOptions(sessions, a.Session),
		ValueTemplate: field("session"),
		CommandTopic:  e.command("session"),
	})
	e.add("connection", "binary_sensor", "Connection", connection())
	e.add("clock_offset", "sensor", "Clock offset", durationMs("mdi:clock-outline", field("clock_offset_ms"), clockPrecision))
	e.add("sync_error", "sensor", "Sync error", durationMs("mdi:sine-wave", field("sync_error_ms"), clockPrecision))
	e.add("latency", "sensor", "Output latency", durationMs("mdi:timer-sand", field("latency_ms"), latencyPrecision))
	e.add("calibration", "number", "Latency calibration", Component{
		EntityCategory:    "config",
		Icon:              "mdi:tune-vertical",
		Min:               ptr(float64(-protocol.MaxCalibrationMs)),
		Max:               ptr(float64(protocol.MaxCalibrationMs)),
		Step:              ptr(0.1),
		Mode:              "box",
		UnitOfMeasurement: "ms",
		ValueTemplate:     field("calibration_ms"),
		CommandTopic:      e.command("calibration"),
	})
	e.add(protocol.CmdIdentify, "button", "Identify", Component{
		DeviceClass:  "identify",
		CommandTopic: e.command(protocol.CmdIdentify),
	})
	e.add(protocol.CmdRestart, "button", "Restart", Component{
		DeviceClass:    "restart",
		EntityCategory: "config",
		CommandTopic:   e.command(protocol.CmdRestart),
	})
	return Discovery{
		Device: Device{
			Identifiers:  []string{objectID(kindSpeaker, s.ID)},
			Name:         speakerName(s.ID),
			Manufacturer: "tutti",
			Model:        "speaker",
			SWVersion:    version,
			ViaDevice:    objectID(kindController, ""),
		},
		Origin:           origin(version),
		Availability:     []Availability{bridgeAvailability, controllerAvailability, speakerAvailability(s.ID)},
		AvailabilityMode: "all",
		QoS:              qos,
		Components:       e.list,
	}
}

// speakerName is how a speaker's id reads as a name: "living-room" becomes
// "Living room". Home Assistant prefixes every entity's name with it
// ("Living room Volume").
func speakerName(id string) string {
	name := strings.NewReplacer("-", " ", "_", " ").Replace(id)
	first, size := utf8.DecodeRuneInString(name)
	return string(unicode.ToUpper(first)) + name[size:]
}

// sessionOptions lists NoSession and every session, sorted, with the one the
// speaker is assigned to even before its info arrived.
func sessionOptions(sessions []string, assigned string) []string {
	names := slices.Clone(sessions)
	if assigned != "" && !slices.Contains(names, assigned) {
		names = append(names, assigned)
	}
	slices.Sort(names)
	return append([]string{NoSession}, slices.Compact(names)...)
}

// sessionConfig describes one session; its playlist fills the playlist
// select. version is the bridge's.
func sessionConfig(info protocol.SessionInfo, pl protocol.Playlist, version string) Discovery {
	e := newEntities(kindSession, info.Session)
	for _, b := range []struct{ key, name, icon string }{
		{protocol.CmdPlay, "Play", "mdi:play"},
		{protocol.CmdPause, "Pause", "mdi:pause"},
		{protocol.CmdNext, "Next", "mdi:skip-next"},
		{protocol.CmdPrevious, "Previous", "mdi:skip-previous"},
	} {
		e.add(b.key, "button", b.name, Component{Icon: b.icon, CommandTopic: e.command(b.key)})
	}
	e.add("state", "sensor", "Playback", Component{
		DeviceClass:   "enum",
		Options:       []string{protocol.Stopped, protocol.Playing, protocol.Paused},
		ValueTemplate: field("state"),
	})
	e.add("now_playing", "sensor", "Now playing", Component{
		Icon:                   "mdi:music",
		ValueTemplate:          field("now_playing"),
		JSONAttributesTopic:    stateTopic(kindSession, info.Session),
		JSONAttributesTemplate: "{{ value_json.now_playing_attributes | tojson }}",
	})
	e.addVolume()
	e.add("playlist", "select", "Playlist", Component{
		Icon:          "mdi:playlist-music",
		Options:       playlistOptions(pl),
		ValueTemplate: field("entry"),
		CommandTopic:  e.command("playlist"),
	})
	e.add("cover", "image", "Cover art", Component{URLTopic: coverTopic(info.Session)})
	e.add("announce", "notify", "Announce", Component{
		Icon:         "mdi:bullhorn",
		CommandTopic: e.command("announce"),
	})
	title := info.Title
	if title == "" {
		title = info.Session
	}
	return Discovery{
		Device: Device{
			Identifiers:  []string{objectID(kindSession, info.Session)},
			Name:         "tutti " + title,
			Manufacturer: "tutti",
			Model:        "session",
			SWVersion:    version,
			ViaDevice:    objectID(kindController, ""),
		},
		Origin:           origin(version),
		Availability:     []Availability{bridgeAvailability, controllerAvailability},
		AvailabilityMode: "all",
		QoS:              qos,
		Components:       e.list,
	}
}

// playlistOptions labels the first maxPlaylistOptions entries; the number
// keeps labels unique when titles repeat. An empty playlist still needs one
// option, as Home Assistant refuses a select without any.
func playlistOptions(pl protocol.Playlist) []string {
	if len(pl.Entries) == 0 {
		return []string{"(empty)"}
	}
	var options []string
	for i, entry := range pl.Entries[:min(len(pl.Entries), maxPlaylistOptions)] {
		options = append(options, entryLabel(i, entry))
	}
	return options
}

func entryLabel(i int, entry protocol.Entry) string {
	return truncate(fmt.Sprintf("%d. %s", i+1, songLabel(entry)), 100)
}

func songLabel(entry protocol.Entry) string {
	label := entry.Title
	if label == "" {
		label = entry.Song[:min(len(entry.Song), 12)]
	}
	if entry.Artist != "" {
		label += " – " + entry.Artist
	}
	return label
}

// truncate shortens s to at most n characters (not bytes: Home Assistant
// counts characters), marking the cut with an ellipsis.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}
