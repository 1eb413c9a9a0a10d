package broker

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// TestRefusalLogThrottled: a flood of refusals of one user makes one log
// line a second, which counts those left out.
func TestRefusalLogThrottled(t *testing.T) {
	clock := newFakeClock()
	var buf syncBuffer
	l := newRefusalLog(clock, slog.New(slog.NewTextHandler(&buf, nil)))
	cl := &mqtt.Client{ID: "bob-1", Properties: mqtt.ClientProperties{Username: []byte("bob")}}
	for range 1000 {
		l.add(cl, "refused", context.Canceled)
	}
	clock.Advance(refusalLogInterval)
	l.add(cl, "refused", context.Canceled)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "not_logged_before=999") {
		t.Errorf("log:\n%s", buf.String())
	}
}
