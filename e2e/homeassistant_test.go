package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/protocol"
	"github.com/tutti-audio/tutti/speaker"
)

// haView is Home Assistant's side of the broker: every message under the
// discovery prefix and the bridge's topics, read with mosquitto_sub.
type haView struct {
	mu   sync.Mutex
	msgs map[string][][]byte // payloads by topic, in arrival order
}

func watchHomeAssistant(t *testing.T, port string, filters ...string) *haView {
	v := &haView{msgs: map[string][][]byte{}}
	args := []string{"-F", "%t %p"}
	for _, f := range filters[1:] {
		args = append(args, "-t", f)
	}
	mosquittoSub(t, port, filters[0], func(line []byte) {
		topic, payload, _ := bytes.Cut(line, []byte(" "))
		v.mu.Lock()
		v.msgs[string(topic)] = append(v.msgs[string(topic)], append([]byte(nil), payload...))
		v.mu.Unlock()
	}, args...)
	return v
}

// last returns the latest payload on topic and how many arrived there.
func (v *haView) last(topic string) ([]byte, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	msgs := v.msgs[topic]
	if len(msgs) == 0 {
		return nil, 0
	}
	return msgs[len(msgs)-1], len(msgs)
}

// state decodes the latest JSON payload on topic into a map.
func (v *haView) state(topic string) map[string]any {
	p, _ := v.last(topic)
	var m map[string]any
	json.Unmarshal(p, &m)
	return m
}

// haDevice is the part of a discovery payload Home Assistant acts on.
type haDevice struct {
	Availability []struct {
		Topic string `json:"topic"`
	} `json:"availability"`
	Components map[string]struct {
		Platform     string `json:"platform"`
		UniqueID     string `json:"unique_id"`
		CommandTopic string `json:"command_topic"`
		StateTopic   string `json:"state_topic"`
		URLTopic     string `json:"url_topic"`
		Options      []string
	} `json:"components"`
}

// device waits for the config of object id and decodes it.
func (v *haView) device(t *testing.T, objectID string) haDevice {
	t.Helper()
	topic := "homeassistant/device/" + objectID + "/config"
	var d haDevice
	testwait.For(t, "the config of "+objectID, 20*time.Second, func() bool {
		p, _ := v.last(topic)
		return len(p) > 0 && json.Unmarshal(p, &d) == nil
	})
	for key, c := range d.Components {
		if c.UniqueID == "" || c.Platform == "" {
			t.Errorf("%s: component %s without platform or unique_id", objectID, key)
		}
		if c.CommandTopic != "" && (!strings.HasPrefix(c.CommandTopic, protocol.HomeAssistantRoot+"/") || strings.ContainsAny(c.CommandTopic, "+#")) {
			t.Errorf("%s: component %s has command topic %q", objectID, key, c.CommandTopic)
		}
	}
	return d
}

// press publishes what Home Assistant publishes when someone uses the
// entity: to the command topic the device's config names.
func press(t *testing.T, r *remote, d haDevice, entity, payload string) {
	t.Helper()
	c, ok := d.Components[entity]
	if !ok || c.CommandTopic == "" {
		t.Fatalf("no command topic for entity %s", entity)
	}
	r.pub(c.CommandTopic, payload)
}

// soundSince returns when speaker name's first block of sound at or after
// fromNs began, or 0.
func soundSince(t *testing.T, s *system, name string, fromNs int64) int64 {
	for _, l := range readLines(t, s.logs[name]) {
		if l.TNs >= fromNs && l.Sound > 0 && !l.Underrun {
			return l.TNs
		}
	}
	return 0
}

func TestHomeAssistantEmbeddedBroker(t *testing.T) {
	s := newSystem(t)
	s.startTuttiBroker()
	homeAssistantScenario(t, s, false)
}

// TestHomeAssistantMosquitto runs the scenario on Mosquitto as Home
// Assistant's add-on runs it, letting any client write anywhere: a client
// rewrites the bridge's config there, and the bridge restores it.
func TestHomeAssistantMosquitto(t *testing.T) {
	s := newSystem(t)
	s.startMosquitto()
	homeAssistantScenario(t, s, true)
}

// homeAssistantScenario plays Home Assistant with mosquitto_pub and
// mosquitto_sub against real processes: a controller, two speakers and the
// bridge, `tutti homeassistant`. Every entity Home Assistant would use is
// used, and its effect checked on the speakers and in the states. With
// openBroker (a broker that lets anyone write under the discovery prefix),
// another client also rewrites the session's config.
func homeAssistantScenario(t *testing.T, s *system, openBroker bool) {
	ha := watchHomeAssistant(t, s.brokerPort, "homeassistant/#", protocol.HomeAssistantRoot+"/#", protocol.SpeakerStatusFilter, protocol.AnnounceTopic(protocol.DefaultSession))
	s.startController()
	s.startSpeaker("kitchen")
	s.startSpeaker("den")
	start(t, "homeassistant", tuttiBin, "homeassistant", "--broker", s.brokerURL())
	r := newRemote(t, s.brokerPort)

	pathA, shaA := timecodeSong(t, "a.wav", 60, 0)
	pathB, shaB := timecodeSong(t, "b.wav", 60, 1_000_000)
	s.load(pathA, pathB)
	r.enqueue(shaA, shaB)
	s.waitCached([]string{"kitchen", "den"}, shaA, shaB)

	home := ha.device(t, "tutti_session_home")
	kitchen := ha.device(t, "tutti_speaker_kitchen")
	den := ha.device(t, "tutti_speaker_den")
	ha.device(t, "tutti_controller")
	homeState := home.Components["state"].StateTopic
	kitchenState := kitchen.Components["volume"].StateTopic
	denState := den.Components["volume"].StateTopic
	testwait.For(t, "the playlist select to offer both songs", 10*time.Second, func() bool {
		home = ha.device(t, "tutti_session_home")
		return len(home.Components["playlist"].Options) == 2
	})

	// Play: the speakers play the first song, and the states say so.
	press(t, r, home, protocol.CmdPlay, "PRESS")
	testwait.For(t, "the session to play", 10*time.Second, func() bool { return ha.state(homeState)["state"] == protocol.Playing })
	testwait.For(t, "both speakers to sound", 10*time.Second, func() bool {
		return len(s.blocks("kitchen")) > 50 && len(s.blocks("den")) > 50
	})
	if p, _ := ha.last(home.Components["cover"].URLTopic); !strings.HasSuffix(string(p), protocol.ArtPath+shaA) {
		t.Errorf("cover art URL %q, want the first song's", p)
	}

	// Session volume and mute, a speaker's own volume.
	press(t, r, home, "volume", "30")
	testwait.For(t, "the session volume 30", 10*time.Second, func() bool { return ha.state(homeState)["volume"] == 30.0 })
	press(t, r, home, "mute", "ON")
	testwait.For(t, "the session muted", 10*time.Second, func() bool {
		st := ha.state(homeState)
		return st["mute"] == "ON" && st["volume"] == 0.0
	})
	press(t, r, home, "mute", "OFF")
	testwait.For(t, "the session unmuted to 30", 10*time.Second, func() bool { return ha.state(homeState)["volume"] == 30.0 })
	press(t, r, kitchen, "volume", "55")
	testwait.For(t, "kitchen's volume 55", 10*time.Second, func() bool { return ha.state(kitchenState)["volume"] == 55.0 })

	// The den leaves the session and joins it again.
	press(t, r, den, "session", "(none)")
	testwait.For(t, "the den out of the session", 10*time.Second, func() bool {
		var st protocol.SpeakerStatus
		json.Unmarshal(mustLast(ha, protocol.SpeakerStatusTopic("den")), &st)
		return ha.state(denState)["session"] == "(none)" && st.State == "unassigned"
	})
	press(t, r, den, "session", protocol.DefaultSession)
	testwait.For(t, "the den back in the session", 10*time.Second, func() bool {
		var st protocol.SpeakerStatus
		json.Unmarshal(mustLast(ha, protocol.SpeakerStatusTopic("den")), &st)
		return ha.state(denState)["session"] == protocol.DefaultSession && st.State == protocol.Playing
	})

	// Playlist select, next, previous (which restarts the current song).
	press(t, r, home, "playlist", home.Components["playlist"].Options[1])
	testwait.For(t, "the second song", 10*time.Second, func() bool { return nowPlayingIndex(ha, homeState) == 1 })
	press(t, r, home, "playlist", home.Components["playlist"].Options[0])
	testwait.For(t, "the first song again", 10*time.Second, func() bool { return nowPlayingIndex(ha, homeState) == 0 })
	press(t, r, home, protocol.CmdNext, "PRESS")
	testwait.For(t, "the second song after next", 10*time.Second, func() bool { return nowPlayingIndex(ha, homeState) == 1 })
	afterNext := sessionState(t, r)
	press(t, r, home, protocol.CmdPrevious, "PRESS")
	testwait.For(t, "the second song restarted", 10*time.Second, func() bool {
		st := sessionState(t, r)
		return st.Seq > afterNext.Seq && st.Anchor.Index == 1 && st.Anchor.PositionNs == 0
	})

	// Devices read naturally and carry tutti's version.
	var kitchenConfig struct {
		Device struct {
			Name      string `json:"name"`
			SWVersion string `json:"sw_version"`
		} `json:"device"`
		Origin struct {
			SWVersion string `json:"sw_version"`
		} `json:"origin"`
	}
	json.Unmarshal(mustLast(ha, "homeassistant/device/tutti_speaker_kitchen/config"), &kitchenConfig)
	if kitchenConfig.Device.Name != "Kitchen" || kitchenConfig.Device.SWVersion == "" || kitchenConfig.Origin.SWVersion == "" {
		t.Errorf("kitchen's device %+v", kitchenConfig)
	}

	if openBroker {
		home = restoredAfterRewrite(t, r, ha, home, den)
	}
	var denBefore protocol.SpeakerStatus
	json.Unmarshal(mustLast(ha, protocol.SpeakerStatusTopic("den")), &denBefore)

	// Pause: both speakers fall silent.
	press(t, r, home, protocol.CmdPause, "PRESS")
	testwait.For(t, "the session to pause", 10*time.Second, func() bool { return ha.state(homeState)["state"] == protocol.Paused })
	time.Sleep(time.Second) // the pause takes effect a lead time ahead
	quiet := time.Now().UnixNano()
	var denAfter protocol.SpeakerStatus
	json.Unmarshal(mustLast(ha, protocol.SpeakerStatusTopic("den")), &denAfter)
	if denAfter.Instance != denBefore.Instance {
		t.Errorf("pressing Pause restarted the den (instance %s, was %s)", denAfter.Instance, denBefore.Instance)
	}

	// Identify: a tone on the kitchen speaker only.
	press(t, r, kitchen, protocol.CmdIdentify, "PRESS")
	testwait.For(t, "the kitchen's identify tone", 10*time.Second, func() bool { return soundSince(t, s, "kitchen", quiet) != 0 })
	time.Sleep(time.Second)
	if at := soundSince(t, s, "den", quiet); at != 0 {
		t.Errorf("the den sounded at %d while the kitchen identified itself", at)
	}

	// Announce: both speakers chime at the announcement's instant.
	time.Sleep(time.Second) // the identify tone is over
	quiet = time.Now().UnixNano()
	press(t, r, home, "announce", "Dinner is ready")
	var ann protocol.Announcement
	testwait.For(t, "the announcement", 10*time.Second, func() bool {
		p, _ := ha.last(protocol.AnnounceTopic(protocol.DefaultSession))
		return json.Unmarshal(p, &ann) == nil && ann.Text == "Dinner is ready"
	})
	testwait.For(t, "both speakers to chime", 10*time.Second, func() bool {
		return soundSince(t, s, "kitchen", quiet) != 0 && soundSince(t, s, "den", quiet) != 0
	})
	for _, name := range []string{"kitchen", "den"} {
		// A block holding the chime's first frame starts with silence; the
		// next one is all chime: the first block of sound begins within
		// one block after the instant.
		at := soundSince(t, s, name, quiet)
		t.Logf("%s: first block of the chime %v after the announcement's instant", name, time.Duration(at-ann.AtNs))
		block := time.Duration(speaker.DefaultBlock(44100)) * time.Second / 44100
		if d := time.Duration(at - ann.AtNs); d < -time.Millisecond || d > block+2*time.Millisecond {
			t.Errorf("%s chimed %v after the announcement's instant, want within one block", name, d)
		}
	}

	// Latency calibration.
	press(t, r, kitchen, "calibration", "12.5")
	testwait.For(t, "kitchen's calibration", 10*time.Second, func() bool { return ha.state(kitchenState)["calibration_ms"] == 12.5 })

	// Restart: the den's process starts again (a new instance) and is back.
	var before protocol.SpeakerStatus
	json.Unmarshal(mustLast(ha, protocol.SpeakerStatusTopic("den")), &before)
	press(t, r, den, protocol.CmdRestart, "PRESS")
	testwait.For(t, "the den to restart", 20*time.Second, func() bool {
		var st protocol.SpeakerStatus
		json.Unmarshal(mustLast(ha, protocol.SpeakerStatusTopic("den")), &st)
		return st.Online && st.Instance != before.Instance
	})

	// Killing the den makes it unavailable: its last will lands on a topic
	// its device's availability follows.
	follows := false
	for _, a := range den.Availability {
		follows = follows || a.Topic == protocol.SpeakerStatusTopic("den")
	}
	if !follows {
		t.Errorf("the den's availability does not follow its status: %+v", den.Availability)
	}
	s.speakers["den"].stop(syscall.SIGKILL)
	testwait.For(t, "the den's last will", 20*time.Second, func() bool {
		var st protocol.SpeakerStatus
		return json.Unmarshal(mustLast(ha, protocol.SpeakerStatusTopic("den")), &st) == nil && !st.Online && ha.state(denState)["connection"] == "OFF"
	})

	// Forgotten, the den's device is removed.
	if rep := r.request(protocol.SessionsCommandTopic, `"cmd":"forget","speaker":"den"`); !rep.OK {
		t.Fatalf("forget: %s", rep.Error)
	}
	testwait.For(t, "the den's config to be cleared", 10*time.Second, func() bool {
		p, n := ha.last("homeassistant/device/tutti_speaker_den/config")
		return n > 1 && len(p) == 0
	})

	// Home Assistant restarts: its birth message brings every config again.
	_, configs := ha.last("homeassistant/device/tutti_session_home/config")
	r.pub("homeassistant/status", "online")
	testwait.For(t, "the configs again", 10*time.Second, func() bool {
		_, n := ha.last("homeassistant/device/tutti_session_home/config")
		_, k := ha.last("homeassistant/device/tutti_speaker_kitchen/config")
		return n > configs && k > 1
	})

	// A new session appears, playing nothing: its now-playing is unknown
	// (null), not an empty string. Deleted, it is removed.
	if rep := r.request(protocol.SessionsCommandTopic, `"cmd":"create","session":"party","title":"Party"`); !rep.OK {
		t.Fatalf("create: %s", rep.Error)
	}
	party := ha.device(t, "tutti_session_party")
	testwait.For(t, "the party's state", 10*time.Second, func() bool { return ha.state(party.Components["now_playing"].StateTopic) != nil })
	if st := ha.state(party.Components["now_playing"].StateTopic); st["now_playing"] != nil {
		t.Errorf("idle party's now playing %q, want null", st["now_playing"])
	} else if _, ok := st["now_playing"]; !ok {
		t.Errorf("idle party's state has no now_playing: %v", st)
	}
	if rep := r.request(protocol.SessionsCommandTopic, `"cmd":"delete","session":"party"`); !rep.OK {
		t.Fatalf("delete: %s", rep.Error)
	}
	testwait.For(t, "the party's config to be cleared", 10*time.Second, func() bool {
		p, n := ha.last("homeassistant/device/tutti_session_party/config")
		return n > 1 && len(p) == 0
	})
}

// restoredAfterRewrite rewrites the session's retained config as another
// client could on an open broker (another name, and Pause pointed at the
// den's restart) and waits for the bridge to put its own config back, in
// the broker too. It returns the session's device as restored.
func restoredAfterRewrite(t *testing.T, r *remote, ha *haView, home, den haDevice) haDevice {
	t.Helper()
	topic := "homeassistant/device/tutti_session_home/config"
	mine, n := ha.last(topic)
	forged := strings.Replace(string(mine), home.Components[protocol.CmdPause].CommandTopic, den.Components[protocol.CmdRestart].CommandTopic, 1)
	forged = strings.Replace(forged, `"name":"tutti `, `"name":"pwned `, 1)
	if forged == string(mine) {
		t.Fatalf("the forgery changed nothing in %s", mine)
	}
	out, err := exec.Command("mosquitto_pub", "-h", r.host, "-p", r.port, "-q", "1", "-r", "-t", topic, "-m", forged).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
	testwait.For(t, "the bridge to restore the session's config", 10*time.Second, func() bool {
		p, m := ha.last(topic)
		return m >= n+2 && bytes.Equal(p, mine)
	})
	if got := r.retained(topic); !bytes.Equal(got, mine) {
		t.Errorf("the broker retains %s, want the bridge's config", got)
	}
	return ha.device(t, "tutti_session_home")
}

// sessionState reads the default session's retained state.
func sessionState(t *testing.T, r *remote) protocol.SessionState {
	t.Helper()
	st, err := protocol.Decode[protocol.SessionState](r.retained(protocol.SessionStateTopic(protocol.DefaultSession)))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// mustLast is the latest payload on topic, nil if none.
func mustLast(ha *haView, topic string) []byte {
	p, _ := ha.last(topic)
	return p
}

// nowPlayingIndex is the playlist index the session's state names, -1 for
// none.
func nowPlayingIndex(ha *haView, topic string) int {
	attrs, _ := ha.state(topic)["now_playing_attributes"].(map[string]any)
	i, ok := attrs["index"].(float64)
	if !ok {
		return -2
	}
	return int(i)
}
