package speaker

import (
	"errors"
	"fmt"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// maxAnnounceAhead is how far ahead an announcement may be scheduled: the
// controller announces a lead time ahead (well under a second), so one
// further out is a mistake that would hold one of the engine's few slots.
const maxAnnounceAhead = time.Minute

// rememberedAnnouncements is how many announcement ids the speaker keeps to
// recognise duplicates (a QoS 1 message may come twice).
const rememberedAnnouncements = 64

var errDuplicateAnnouncement = errors.New("duplicate announcement")

// onAnnouncement schedules the chime of an announcement of session, unless
// the speaker no longer plays that session. The chime starts at the
// announcement's shared instant; an announcement that is entirely past is
// dropped, one partly past plays its rest.
func (s *Speaker) onAnnouncement(session string, b []byte) error {
	a, err := decodeAnnouncement(b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if session != s.session {
		s.mu.Unlock()
		return nil
	}
	err = s.fence.announcement(a.Term, a.ID)
	s.mu.Unlock()
	if errors.Is(err, errDuplicateAnnouncement) {
		return nil
	}
	if err != nil {
		return err
	}
	if a.Sound != protocol.SoundChime {
		return fmt.Errorf("announcement %s: unknown sound %q", a.ID, a.Sound)
	}
	if now, synced := s.sharedNow(); synced {
		switch {
		case a.AtNs+int64(chimeLen) <= now:
			return fmt.Errorf("announcement %s is past (it was due %v ago): dropped", a.ID, time.Duration(now-a.AtNs).Round(time.Millisecond))
		case a.AtNs-now > int64(maxAnnounceAhead):
			return fmt.Errorf("announcement %s is due in %v, over %v ahead: dropped", a.ID, time.Duration(a.AtNs-now).Round(time.Second), maxAnnounceAhead)
		}
	}
	if err := s.eng.announce(a.AtNs); err != nil {
		return fmt.Errorf("announcement %s: %w", a.ID, err)
	}
	// The text is the user's: a field, which slog quotes.
	s.log.Info("announcement", "id", a.ID, "session", session, "text", a.Text, "at", time.Unix(0, a.AtNs).UTC())
	return nil
}

// decodeAnnouncement parses an Announcement and checks what the speaker
// relies on.
func decodeAnnouncement(b []byte) (protocol.Announcement, error) {
	a, err := protocol.Decode[protocol.Announcement](b)
	if err != nil {
		return a, err
	}
	switch {
	case a.ID == "":
		return a, errors.New("announcement without id")
	case len(a.ID) > 100:
		return a, fmt.Errorf("announcement id of %d bytes", len(a.ID))
	case len(a.Text) > protocol.MaxAnnouncementText:
		return a, fmt.Errorf("announcement %s: text of %d bytes exceeds %d", a.ID, len(a.Text), protocol.MaxAnnouncementText)
	}
	return a, nil
}
