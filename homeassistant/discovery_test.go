package homeassistant

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tutti-audio/tutti/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testVersion stands for tutti's version in the configs.
const testVersion = "v1.2.3"

// clockOf is what the bridge shows of the clock of a speaker that sent one
// status.
func clockOf(s protocol.SpeakerStatus) clockReadings {
	var c clockReadings
	c.follow(time.Unix(1_000_000, 0), s)
	return c
}

func testController() protocol.ControllerStatus {
	return protocol.ControllerStatus{V: 1, Online: true, Instance: "i1", Name: "hub", Term: 3, SongsURL: "http://hub.local:8080/songs/"}
}

func testSpeaker() (protocol.SpeakerStatus, protocol.Assignment) {
	return protocol.SpeakerStatus{
			V: 1, ID: "kitchen", Online: true, Instance: "s1", Volume: 80,
			ClockOffsetNs: -1_234_567, ClockErrorNs: 250_000, LatencyNs: 40_000_000,
		},
		protocol.Assignment{V: 1, Speaker: "kitchen", Session: "home", Volume: 80, Term: 3}
}

func testSession() (protocol.SessionInfo, protocol.SessionState, protocol.Playlist) {
	pl := protocol.Playlist{V: 1, Session: "home", Term: 3, Version: 7, Entries: []protocol.Entry{
		{ID: "e1", Song: strings.Repeat("a", 64), Title: "Blue in Green", Artist: "Miles Davis", Frames: 44100 * 337, SampleRate: 44100},
		{ID: "e2", Song: strings.Repeat("b", 64), Frames: 48000 * 60, SampleRate: 48000},
	}}
	st := protocol.SessionState{
		V: 1, Session: "home", Term: 3, Seq: 12, State: protocol.Playing, Volume: 60,
		Anchor:          protocol.Anchor{Index: 0, Entry: "e1", Playing: true},
		PlaylistVersion: 7, PlaylistHash: pl.Hash(),
	}
	return protocol.SessionInfo{V: 1, Session: "home", Title: "Living room", ACL: protocol.Everyone, Term: 3}, st, pl
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBuildersPassValidator checks every builder's output against Home
// Assistant's rules, together with the state the bridge publishes for it.
func TestBuildersPassValidator(t *testing.T) {
	status, assign := testSpeaker()
	info, st, pl := testSession()
	longTitle := pl
	longTitle.Entries = append([]protocol.Entry(nil), pl.Entries...)
	longTitle.Entries[0].Title = strings.Repeat("é", 400)
	unassigned := assign
	unassigned.Session, unassigned.Volume = "", 0
	var many protocol.Playlist
	for i := range 150 {
		many.Entries = append(many.Entries, protocol.Entry{ID: "x" + string(rune('a'+i%26)) + strings.Repeat("z", i/26), Song: strings.Repeat("c", 64), Title: "same"})
	}
	manyState := st
	manyState.Anchor.Entry = many.Entries[120].ID

	cases := []struct {
		name     string
		objectID string
		config   Discovery
		state    any
	}{
		{"controller", "tutti_controller", controllerConfig(testVersion), controllerStateOf(testController(), []protocol.SpeakerStatus{status})},
		{"speaker", "tutti_speaker_kitchen", speakerConfig(status, assign, []string{"home", "office"}, testVersion), speakerStateOf(status, assign, clockOf(status))},
		{"speaker assigned to an unknown session", "tutti_speaker_kitchen", speakerConfig(status, assign, nil, testVersion), speakerStateOf(status, assign, clockOf(status))},
		{"speaker in no session", "tutti_speaker_kitchen", speakerConfig(status, unassigned, []string{"home"}, testVersion), speakerStateOf(status, unassigned, clockOf(status))},
		{"session", "tutti_session_home", sessionConfig(info, pl, testVersion), sessionStateOf(st, pl)},
		{"session with a long title", "tutti_session_home", sessionConfig(info, longTitle, testVersion), sessionStateOf(st, longTitle)},
		{"session with an empty playlist", "tutti_session_home", sessionConfig(info, protocol.Playlist{}, testVersion), sessionStateOf(protocol.SessionState{}, protocol.Playlist{})},
		{"session playing past the options", "tutti_session_home", sessionConfig(info, many, testVersion), sessionStateOf(manyState, many)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := discoveryTopic("homeassistant", tc.objectID)
			if err := validateDiscovery("homeassistant", topic, marshal(t, tc.config), marshal(t, tc.state)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestValidatorRejects makes sure the validator catches what Home Assistant
// would refuse, so that passing it means something.
func TestValidatorRejects(t *testing.T) {
	status, assign := testSpeaker()
	good := speakerConfig(status, assign, []string{"home"}, testVersion)
	state := marshal(t, speakerStateOf(status, assign, clockOf(status)))
	topic := discoveryTopic("homeassistant", "tutti_speaker_kitchen")
	mutations := map[string]func(m map[string]any){
		"tilde base":          func(m map[string]any) { m["~"] = "tutti/ha" },
		"unknown root key":    func(m map[string]any) { m["name"] = "x" },
		"no origin":           func(m map[string]any) { delete(m, "origin") },
		"no identifiers":      func(m map[string]any) { m["device"].(map[string]any)["identifiers"] = []any{} },
		"availability latest": func(m map[string]any) { m["availability_mode"] = "latest" },
		"no unique_id":        func(m map[string]any) { delete(component(m, "volume"), "unique_id") },
		"no platform":         func(m map[string]any) { delete(component(m, "volume"), "platform") },
		"number without command": func(m map[string]any) {
			delete(component(m, "volume"), "command_topic")
		},
		"select without options": func(m map[string]any) { delete(component(m, "session"), "options") },
		"wildcard command":       func(m map[string]any) { component(m, "mute")["command_topic"] = "tutti/ha/speaker/+/mute/set" },
		"duplicate unique_id": func(m map[string]any) {
			component(m, "mute")["unique_id"] = component(m, "volume")["unique_id"]
		},
		"binary_sensor without state": func(m map[string]any) { delete(component(m, "connection"), "state_topic") },
		"duration in a bad unit":      func(m map[string]any) { component(m, "clock_offset")["unit_of_measurement"] = "msec" },
		"duration without a unit":     func(m map[string]any) { delete(component(m, "latency"), "unit_of_measurement") },
		"unknown device class":        func(m map[string]any) { component(m, "restart")["device_class"] = "explode" },
		"unit on a button":            func(m map[string]any) { component(m, "identify")["unit_of_measurement"] = "ms" },
		"empty unit":                  func(m map[string]any) { component(m, "volume")["unit_of_measurement"] = "" },
		"qos 3":                       func(m map[string]any) { component(m, "mute")["qos"] = 3 },
		"root qos text":               func(m map[string]any) { m["qos"] = "1" },
		"negative precision":          func(m map[string]any) { component(m, "sync_error")["suggested_display_precision"] = -1 },
		"fractional precision":        func(m map[string]any) { component(m, "sync_error")["suggested_display_precision"] = 1.5 },
		"bad state class":             func(m map[string]any) { component(m, "latency")["state_class"] = "average" },
		"unknown device key":          func(m map[string]any) { m["device"].(map[string]any)["firmware"] = "1" },
		"numeric sw_version":          func(m map[string]any) { m["device"].(map[string]any)["sw_version"] = 1 },
		"unknown origin key":          func(m map[string]any) { m["origin"].(map[string]any)["url"] = "x" },
		"empty origin sw_version":     func(m map[string]any) { m["origin"].(map[string]any)["sw_version"] = "" },
	}
	if err := validateDiscovery("homeassistant", topic, marshal(t, good), state); err != nil {
		t.Fatalf("the unmutated payload fails: %v", err)
	}
	for name, mutate := range mutations {
		var m map[string]any
		if err := json.Unmarshal(marshal(t, good), &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		if err := validateDiscovery("homeassistant", topic, marshal(t, m), state); err == nil {
			t.Errorf("%s: validator accepted it", name)
		}
	}
	if err := validateDiscovery("homeassistant", "homeassistant/sensor/x/config", marshal(t, good), nil); err == nil {
		t.Error("validator accepted a component discovery topic")
	}
	long := speakerStateOf(status, assign, clockOf(status))
	if err := validateDiscovery("homeassistant", topic, marshal(t, good), marshal(t, map[string]any{
		"connection": "ON", "volume": long.Volume, "mute": "OFF", "session": "home",
		"clock_offset_ms": strings.Repeat("x", 256), "sync_error_ms": 1, "latency_ms": 1,
	})); err == nil {
		t.Error("validator accepted a sensor state of 256 characters")
	}
	if err := validateDiscovery("homeassistant", topic, marshal(t, good), marshal(t, map[string]any{
		"connection": "ON", "volume": long.Volume, "mute": "OFF", "session": "home",
		"clock_offset_ms": "fast", "sync_error_ms": 1, "latency_ms": 1, "calibration_ms": 0,
	})); err == nil {
		t.Error("validator accepted text for a sensor in ms")
	}
	if err := validateDiscovery("homeassistant", topic, marshal(t, good), marshal(t, map[string]any{
		"connection": "ON", "volume": long.Volume, "mute": "OFF", "session": "home",
		"clock_offset_ms": nil, "sync_error_ms": nil, "latency_ms": 1, "calibration_ms": 0,
	})); err != nil {
		t.Errorf("validator refused unknown (null) clock figures: %v", err)
	}
}

func component(m map[string]any, key string) map[string]any {
	return m["components"].(map[string]any)[key].(map[string]any)
}

func TestNowPlayingIsTruncated(t *testing.T) {
	_, st, pl := testSession()
	pl.Entries[0].Title = strings.Repeat("ü", 300)
	got := sessionStateOf(st, pl)
	if got.NowPlaying == nil {
		t.Fatal("nothing playing")
	}
	if n := utf8.RuneCountInString(*got.NowPlaying); n != maxState {
		t.Errorf("now playing has %d characters, want %d", n, maxState)
	}
	if !strings.HasSuffix(*got.NowPlaying, "…") {
		t.Errorf("truncated state %q has no ellipsis", *got.NowPlaying)
	}
	if got.NowPlayingAttributes.Title != pl.Entries[0].Title {
		t.Error("the attributes lost the full title")
	}
}

// TestRenameKeepsUniqueIDs: a session's title is its device name, never part
// of an id, so renaming it in tutti renames it in Home Assistant.
func TestRenameKeepsUniqueIDs(t *testing.T) {
	info, _, pl := testSession()
	before := sessionConfig(info, pl, testVersion)
	info.Title = "Kitchen party"
	after := sessionConfig(info, pl, testVersion)
	if after.Device.Name != "tutti Kitchen party" || before.Device.Name != "tutti Living room" {
		t.Errorf("names %q -> %q", before.Device.Name, after.Device.Name)
	}
	if strings.Join(before.Device.Identifiers, ",") != strings.Join(after.Device.Identifiers, ",") {
		t.Error("device identifiers changed with the title")
	}
	for key, c := range before.Components {
		if after.Components[key].UniqueID != c.UniqueID {
			t.Errorf("%s: unique_id %q -> %q", key, c.UniqueID, after.Components[key].UniqueID)
		}
	}
}

func TestGoldenFields(t *testing.T) {
	status, assign := testSpeaker()
	sp := speakerConfig(status, assign, []string{"office", "home"}, testVersion)
	checks := map[string][2]string{
		"speaker volume unique_id": {sp.Components["volume"].UniqueID, "tutti_speaker_kitchen_volume"},
		"speaker volume command":   {sp.Components["volume"].CommandTopic, "tutti/ha/speaker/kitchen/volume/set"},
		"speaker state topic":      {sp.Components["volume"].StateTopic, "tutti/ha/speaker/kitchen/state"},
		"speaker via_device":       {sp.Device.ViaDevice, "tutti_controller"},
		"speaker session options":  {strings.Join(sp.Components["session"].Options, ","), "(none),home,office"},
		"speaker latency category": {sp.Components["latency"].EntityCategory, "diagnostic"},
		"speaker calibration":      {sp.Components["calibration"].EntityCategory + " " + sp.Components["calibration"].CommandTopic, "config tutti/ha/speaker/kitchen/calibration/set"},
		"speaker offset category":  {sp.Components["clock_offset"].EntityCategory, "diagnostic"},
		"speaker last will":        {sp.Availability[2].Topic, "tutti/speaker/kitchen/status"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	state := speakerStateOf(status, assign, clockOf(status))
	if *state.ClockOffsetMs != -1.234 || *state.SyncErrorMs != 0.25 || state.LatencyMs != 40 {
		t.Errorf("speaker state %+v", state)
	}
	_, st, pl := testSession()
	ss := sessionStateOf(st, pl)
	if *ss.NowPlaying != "Blue in Green – Miles Davis" || ss.Entry != "1. Blue in Green – Miles Davis" || ss.NowPlayingAttributes.DurationS != 337 {
		t.Errorf("session state %+v", ss)
	}
}

// TestDeviceNames: names read naturally, and ids stay what they were.
func TestDeviceNames(t *testing.T) {
	status, assign := testSpeaker()
	info, _, pl := testSession()
	checks := map[string][2]string{
		"controller":            {controllerConfig(testVersion).Device.Name, "tutti controller"},
		"speaker":               {speakerConfig(status, assign, nil, testVersion).Device.Name, "Kitchen"},
		"speaker with a dash":   {speakerName("living-room"), "Living room"},
		"speaker with a number": {speakerName("speaker1"), "Speaker1"},
		"session":               {sessionConfig(info, pl, testVersion).Device.Name, "tutti Living room"},
		"speaker identifier":    {speakerConfig(status, assign, nil, testVersion).Device.Identifiers[0], "tutti_speaker_kitchen"},
		"controller identifier": {controllerConfig(testVersion).Device.Identifiers[0], "tutti_controller"},
		"speaker sw_version":    {speakerConfig(status, assign, nil, testVersion).Device.SWVersion, testVersion},
		"origin sw_version":     {sessionConfig(info, pl, testVersion).Origin.SWVersion, testVersion},
		"controller sw_version": {controllerConfig(testVersion).Device.SWVersion, testVersion},
		"session volume unit":   {sessionConfig(info, pl, testVersion).Components["volume"].UnitOfMeasurement, "%"},
		"speaker offset class":  {speakerConfig(status, assign, nil, testVersion).Components["clock_offset"].DeviceClass, "duration"},
		"speaker latency unit":  {speakerConfig(status, assign, nil, testVersion).Components["latency"].UnitOfMeasurement, "ms"},
		"controller sensor qos": {fmt.Sprint(controllerConfig(testVersion).Components["speakers_online"].QoS), "1"},
		"sync error precision":  {fmt.Sprint(*speakerConfig(status, assign, nil, testVersion).Components["sync_error"].DisplayPrecision), "2"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
}

// TestIdleSessionIsUnknown: with nothing current, the now-playing field is
// null, which the sensor's template renders as "None": unknown in Home
// Assistant, not an empty state.
func TestIdleSessionIsUnknown(t *testing.T) {
	info, _, _ := testSession()
	state := marshal(t, sessionStateOf(protocol.SessionState{}, protocol.Playlist{}))
	if !bytes.Contains(state, []byte(`"now_playing":null`)) {
		t.Errorf("idle state %s", state)
	}
	topic := discoveryTopic("homeassistant", "tutti_session_home")
	if err := validateDiscovery("homeassistant", topic, marshal(t, sessionConfig(info, protocol.Playlist{}, testVersion)), state); err != nil {
		t.Fatal(err)
	}
}

// TestSpeakerWithoutStatusHasUnknownClock: a speaker known only from its
// assignment shows no clock figures rather than zeros.
func TestSpeakerWithoutStatusHasUnknownClock(t *testing.T) {
	_, assign := testSpeaker()
	state := marshal(t, speakerStateOf(protocol.SpeakerStatus{ID: "kitchen"}, assign, clockReadings{}))
	if !bytes.Contains(state, []byte(`"clock_offset_ms":null,"sync_error_ms":null`)) {
		t.Errorf("state %s", state)
	}
}

// TestGoldenConfigs compares whole payloads with the files in testdata/
// (go test -update rewrites them).
func TestGoldenConfigs(t *testing.T) {
	status, assign := testSpeaker()
	info, _, pl := testSession()
	for file, config := range map[string]Discovery{
		"session.json":    sessionConfig(info, pl, testVersion),
		"speaker.json":    speakerConfig(status, assign, []string{"home", "office"}, testVersion),
		"controller.json": controllerConfig(testVersion),
	} {
		t.Run(file, func(t *testing.T) {
			got, err := json.MarshalIndent(config, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", file)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("config differs from %s:\n%s", golden, got)
			}
		})
	}
}
