package protocol

import (
	"strings"
	"testing"
)

func TestRetained(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	for _, topic := range []string{
		ControllerStatusTopic, LeaseTopic, LibrarySongTopic(sha), SavedPlaylistTopic("mix"),
		SessionStateTopic("home"), PlaylistTopic("home"), SessionInfoTopic("den"),
		AssignTopic("kitchen"), SpeakerStatusTopic("kitchen"),
		HomeAssistantRoot + "/status", HomeAssistantRoot + "/controller/state",
		HomeAssistantRoot + "/speaker/kitchen/state", HomeAssistantRoot + "/session/home/cover",
	} {
		if !Retained(topic) {
			t.Errorf("Retained(%q) = false", topic)
		}
	}
	for _, topic := range []string{
		SessionCommandTopic("home"), UserTopic(SessionCommandTopic("home"), "bob"),
		AnnounceTopic("home"), AckTopic("kitchen"), ClockRequestTopic("kitchen"),
		SpeakerCommandTopic("kitchen"), LibraryCommandTopic, SessionsCommandTopic,
		DefaultReplyTopic, DefaultReplyTopic + "/bob/1",
		HomeAssistantRoot + "/session/home/pause/set",
		SessionStateTopic("home") + "/more", "tutti/session//state", "tutti/controller", SavedPlaylistTopic("mix") + "/x",
		"tutti/x", "tutti", "home/lights",
	} {
		if Retained(topic) {
			t.Errorf("Retained(%q) = true", topic)
		}
	}
}

func TestCheckTopicSize(t *testing.T) {
	name := strings.Repeat("n", 64) // the longest valid name
	for _, topic := range []string{
		UserTopic(SessionCommandTopic(name), name),
		HomeAssistantRoot + "/session/" + name + "/playlist/set",
		"homeassistant/device/tutti_session_" + name + "/config",
		strings.Repeat("x", MaxTopicLength),
		strings.Repeat("a/", MaxTopicLevels-1) + "a",
	} {
		if err := CheckTopicSize(topic); err != nil {
			t.Errorf("%.60q...: %v", topic, err)
		}
	}
	for _, topic := range []string{
		strings.Repeat("x", MaxTopicLength+1),
		strings.Repeat("a/", MaxTopicLevels) + "a",
		strings.Repeat("/", MaxTopicLevels),
	} {
		err := CheckTopicSize(topic)
		if err == nil {
			t.Errorf("%.60q... accepted", topic)
		} else if len(err.Error()) > 120 {
			t.Errorf("error quotes too much: %d bytes", len(err.Error()))
		}
	}
	if _, err := ReplyTopic(DefaultReplyTopic+"/alice/"+strings.Repeat("r/", MaxTopicLevels), "alice"); err == nil {
		t.Error("ReplyTopic accepted a reply_to deeper than the broker takes")
	}
}

// FuzzRetained: Retained and CheckTopicSize take any string; a topic
// Retained accepts is below Root and no deeper than the protocol's
// retained topics (5 levels).
func FuzzRetained(f *testing.F) {
	for _, seed := range []string{LeaseTopic, SessionStateTopic("home"), "tutti/ha/+/+/state", "tutti//", "/", "", "tutti/session/home/state/"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		sizeErr := CheckTopicSize(topic)
		if !Retained(topic) {
			return
		}
		if !strings.HasPrefix(topic, Root+"/") || strings.Count(topic, "/") > 4 || strings.Contains(topic, "//") {
			t.Errorf("Retained(%q) = true", topic)
		}
		if sizeErr != nil && len(topic) <= MaxTopicLength {
			t.Errorf("retained topic %q refused: %v", topic, sizeErr)
		}
	})
}
