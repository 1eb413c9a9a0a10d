package homeassistant

import (
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// The bridge's topics pass the broker's limits with their longest names:
// what it retains below tutti/ is what the protocol defines as retained
// (the broker retains nothing else there), and every topic is within the
// size limits.
func TestTopicsWithinBrokerLimits(t *testing.T) {
	long := strings.Repeat("n", 64) // the longest valid name
	retainedTopics := []string{BridgeStatusTopic, stateTopic(kindController, ""), coverTopic(long)}
	var topics []string
	for _, kind := range []string{kindSpeaker, kindSession} {
		retainedTopics = append(retainedTopics, stateTopic(kind, long))
		for _, component := range []string{"volume", "mute", "playlist", "announce", "session", "calibration", "pause"} {
			topics = append(topics, commandTopic(kind, long, component))
		}
	}
	for _, kind := range []string{kindController, kindSpeaker, kindSession} {
		topics = append(topics, discoveryTopic(DefaultPrefix, objectID(kind, long)))
	}
	for _, topic := range retainedTopics {
		if !protocol.Retained(topic) {
			t.Errorf("%s is retained by the bridge but not by the protocol", topic)
		}
	}
	for _, topic := range append(topics, retainedTopics...) {
		if err := protocol.CheckTopicSize(topic); err != nil {
			t.Error(err)
		}
	}
}
