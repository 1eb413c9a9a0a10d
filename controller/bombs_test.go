package controller

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// TestBombUploadsLeaveCommandsAnswered: while four audio bombs and a real
// song are uploaded at once over HTTP, another user's commands are all
// answered; the bombs are refused with 415, the song is taken.
func TestBombUploadsLeaveCommandsAnswered(t *testing.T) {
	broker := startBroker(t)
	c, _ := startController(t, Options{BrokerURL: broker, DataDir: t.TempDir(), Open: true})
	member := newTestClient(t, broker, protocol.DefaultReplyTopic)
	auth := "Bearer " + c.tokens.get()

	var wg sync.WaitGroup
	results := make(chan string, 5)
	for i := range maxConcurrentUploads {
		bomb := blockFLAC(t, 44100, 1000+i, 65535, true)
		wg.Go(func() {
			resp, body := do(t, http.MethodPut, c.SongsURL()+hashOf(bomb), bomb, "Authorization", auth)
			results <- fmt.Sprintf("bomb %d: %d %s", i, resp.StatusCode, body)
		})
	}
	song := makeWAV(60*44100, 44100, 5) // a minute, 10 MB
	wg.Go(func() {
		resp, body := do(t, http.MethodPut, c.SongsURL()+hashOf(song), song, "Authorization", auth)
		results <- fmt.Sprintf("song: %d %.40s", resp.StatusCode, body)
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var slowest time.Duration
	for asked := 0; ; asked++ {
		start := time.Now()
		member.mustAsk(protocol.SessionCommandTopic("home"), "", `{"cmd":"status"}`, nil)
		slowest = max(slowest, time.Since(start))
		select {
		case <-time.After(100 * time.Millisecond): // within the rate limit
		case <-done:
			t.Logf("%d status commands answered during the uploads, the slowest in %v", asked+1, slowest)
			close(results)
			for r := range results {
				bomb := strings.HasPrefix(r, "bomb")
				if bomb && (!strings.Contains(r, ": 415 ") || !strings.Contains(r, "frames per byte")) ||
					!bomb && !strings.Contains(r, ": 201 ") {
					t.Error(r)
				}
			}
			return
		}
	}
}
