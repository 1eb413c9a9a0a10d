package controller

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// Limits of the song server's connections and uploads. Downloads have no
// overall deadline (a song over a weak Wi-Fi link may take minutes);
// uploads must keep a minimum pace instead.
const (
	// songHeaderTimeout: a client has this long to send its request line
	// and headers, which take one packet.
	songHeaderTimeout = 10 * time.Second
	// songIdleTimeout closes keep-alive connections nobody uses; speakers
	// and standbys reconnect in a millisecond on the LAN.
	songIdleTimeout = 60 * time.Second
	// songMaxHeaderBytes bounds a request's headers and URL (the upload's
	// name is in the query): real ones are under 1 KiB.
	songMaxHeaderBytes = 64 << 10
	// maxConcurrentUploads: each upload holds a temporary file and waits
	// for its turn at analysis (one at a time). A household uploads one
	// song at a time, a bulk import a few; more are refused with 503.
	maxConcurrentUploads = 4
	// uploadWindow and minUploadRate: an upload must bring minUploadRate
	// bytes per second, counted over each window; one that stalls or
	// trickles (a slowloris holding a slot and a temp file) is cut off
	// with 408 within two windows. Any LAN or Wi-Fi link does 100 times
	// this rate.
	uploadWindow  = 10 * time.Second
	minUploadRate = 16 << 10
)

// errUploadTooSlow ends an upload that falls below its minimum pace.
var errUploadTooSlow = errors.New("upload too slow")

// paceReader reads an upload's body and fails it with errUploadTooSlow when
// fewer than minBytes arrive in a window, or when a read blocks for two
// windows (the connection's read deadline, moved on at every window).
type paceReader struct {
	body        io.Reader
	setDeadline func(time.Time) error // the connection's read deadline
	now         func() time.Time
	window      time.Duration
	minBytes    int64 // per window

	windowStart time.Time
	got         int64 // bytes in this window
}

func newPaceReader(body io.Reader, setDeadline func(time.Time) error, now func() time.Time, window time.Duration, rate int64) *paceReader {
	p := &paceReader{body: body, setDeadline: setDeadline, now: now, window: window,
		minBytes: int64(float64(rate) * window.Seconds()), windowStart: now()}
	setDeadline(p.windowStart.Add(2 * window))
	return p
}

func (p *paceReader) Read(b []byte) (int, error) {
	n, err := p.body.Read(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, errUploadTooSlow
	}
	p.got += int64(n)
	if errors.Is(err, io.EOF) {
		// The body is in: the analysis that follows may take longer than
		// a window, and the connection must not time out under it.
		p.setDeadline(time.Time{})
		return n, err
	}
	if now := p.now(); now.Sub(p.windowStart) >= p.window {
		if p.got < p.minBytes {
			return n, errUploadTooSlow
		}
		p.windowStart, p.got = now, 0
		p.setDeadline(now.Add(2 * p.window))
	}
	return n, err
}

// uploadSlots admits at most a fixed number of uploads at once.
type uploadSlots chan struct{}

// take claims a slot, or says there is none free.
func (s uploadSlots) take() bool {
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s uploadSlots) release() { <-s }

// limitedPut wraps the upload handler: at most cap(slots) at once (others
// get 503 and Retry-After), each body read at a minimum pace.
func (ss *songServer) limitedPut(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// An upload answered before its body is read (refused, too slow)
		// must not have the server read the rest: it closes the connection.
		w.Header().Set("Connection", "close")
		if !ss.uploads.take() {
			w.Header().Set("Retry-After", "10")
			writeError(w, http.StatusServiceUnavailable, "too many uploads at once: try again shortly")
			return
		}
		defer ss.uploads.release()
		rc := http.NewResponseController(w)
		r.Body = struct {
			io.Reader
			io.Closer
		}{newPaceReader(r.Body, rc.SetReadDeadline, ss.now, ss.uploadWindow, minUploadRate), r.Body}
		h(w, r)
	}
}
