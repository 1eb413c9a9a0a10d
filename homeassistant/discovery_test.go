package homeassistant

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tutti-audio/tutti/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

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
		{"controller", "tutti_controller", controllerConfig(testController()), controllerStateOf(testController(), []protocol.SpeakerStatus{status})},
		{"speaker", "tutti_speaker_kitchen", speakerConfig(status, assign, []string{"home", "office"}), speakerStateOf(status, assign)},
		{"speaker assigned to an unknown session", "tutti_speaker_kitchen", speakerConfig(status, assign, nil), speakerStateOf(status, assign)},
		{"speaker in no session", "tutti_speaker_kitchen", speakerConfig(status, unassigned, []string{"home"}), speakerStateOf(status, unassigned)},
		{"session", "tutti_session_home", sessionConfig(info, pl), sessionStateOf(st, pl)},
		{"session with a long title", "tutti_session_home", sessionConfig(info, longTitle), sessionStateOf(st, longTitle)},
		{"session with an empty playlist", "tutti_session_home", sessionConfig(info, protocol.Playlist{}), sessionStateOf(protocol.SessionState{}, protocol.Playlist{})},
		{"session playing past the options", "tutti_session_home", sessionConfig(info, many), sessionStateOf(manyState, many)},
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
	good := speakerConfig(status, assign, []string{"home"})
	state := marshal(t, speakerStateOf(status, assign))
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
	long := speakerStateOf(status, assign)
	if err := validateDiscovery("homeassistant", topic, marshal(t, good), marshal(t, map[string]any{
		"connection": "ON", "volume": long.Volume, "mute": "OFF", "session": "home",
		"clock_offset_ms": strings.Repeat("x", 256), "sync_error_ms": 1, "latency_ms": 1,
	})); err == nil {
		t.Error("validator accepted a sensor state of 256 characters")
	}
}

func component(m map[string]any, key string) map[string]any {
	return m["components"].(map[string]any)[key].(map[string]any)
}

func TestNowPlayingIsTruncated(t *testing.T) {
	_, st, pl := testSession()
	pl.Entries[0].Title = strings.Repeat("ü", 300)
	got := sessionStateOf(st, pl)
	if n := utf8.RuneCountInString(got.NowPlaying); n != maxState {
		t.Errorf("now playing has %d characters, want %d", n, maxState)
	}
	if !strings.HasSuffix(got.NowPlaying, "…") {
		t.Errorf("truncated state %q has no ellipsis", got.NowPlaying)
	}
	if got.NowPlayingAttributes.Title != pl.Entries[0].Title {
		t.Error("the attributes lost the full title")
	}
}

// TestRenameKeepsUniqueIDs: a session's title is its device name, never part
// of an id, so renaming it in tutti renames it in Home Assistant.
func TestRenameKeepsUniqueIDs(t *testing.T) {
	info, _, pl := testSession()
	before := sessionConfig(info, pl)
	info.Title = "Kitchen party"
	after := sessionConfig(info, pl)
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
	sp := speakerConfig(status, assign, []string{"office", "home"})
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
	state := speakerStateOf(status, assign)
	if state.ClockOffsetMs != -1.234 || state.SyncErrorMs != 0.25 || state.LatencyMs != 40 {
		t.Errorf("speaker state %+v", state)
	}
	_, st, pl := testSession()
	ss := sessionStateOf(st, pl)
	if ss.NowPlaying != "Blue in Green – Miles Davis" || ss.Entry != "1. Blue in Green – Miles Davis" || ss.NowPlayingAttributes.DurationS != 337 {
		t.Errorf("session state %+v", ss)
	}
}

// TestGoldenSessionConfig compares the whole session payload with
// testdata/session.json (go test -update rewrites it).
func TestGoldenSessionConfig(t *testing.T) {
	info, _, pl := testSession()
	got, err := json.MarshalIndent(sessionConfig(info, pl), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "session.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(got, '\n'), want) {
		t.Errorf("session config differs from %s:\n%s", golden, got)
	}
}
