package controller

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/tutti-audio/tutti/protocol"
)

// announceResult is the result of the announce command.
type announceResult struct {
	ID   string `json:"id"`    // the announcement's id, as published
	AtNs int64  `json:"at_ns"` // shared instant the chime starts
}

// announce publishes an announcement on session name's announce topic: a
// chime every speaker of the session starts at the same shared instant, as
// far ahead as a play command would start. An announcement changes no state
// and is gone once heard, so there is nothing to store and no quorum to wait
// for.
func (c *Controller) announce(name string, req protocol.Request) (announceResult, error) {
	if err := protocol.CheckFields(req); err != nil {
		return announceResult{}, err
	}
	if err := checkAnnouncementText(req.Text); err != nil {
		return announceResult{}, err
	}
	lead := c.leadOf(name)
	a := protocol.Announcement{V: protocol.Version, Term: c.lease.term, ID: randomID(),
		AtNs: c.now() + int64(lead), Text: req.Text, Sound: protocol.SoundChime}
	c.publish(protocol.AnnounceTopic(name), false, protocol.Encode(a))
	c.log.Info("announcement", "session", name, "id", a.ID, "at_ns", a.AtNs, "text", a.Text)
	return announceResult{ID: a.ID, AtNs: a.AtNs}, nil
}

// checkAnnouncementText refuses a text that speakers and dashboards could
// not show as it is: too long, not UTF-8, or holding control characters
// other than newline and tab.
func checkAnnouncementText(text string) error {
	if len(text) > protocol.MaxAnnouncementText {
		return fmt.Errorf("announcement text of %d bytes exceeds %d", len(text), protocol.MaxAnnouncementText)
	}
	if !utf8.ValidString(text) {
		return errors.New("announcement text is not valid UTF-8")
	}
	for i, r := range text {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return fmt.Errorf("announcement text holds control character %U at byte %d: only newline and tab are allowed", r, i)
		}
	}
	return nil
}
