// Package keepalive measures, for tests, how long an HTTP server keeps an
// idle keep-alive connection open: over a real TCP connection, after one
// complete request and response.
package keepalive

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// IdleFor sends one GET of path to the HTTP server at addr, reads the whole
// response, and returns the response's status and how long after the
// request was sent the server closed the connection, idle since the
// response: an idle timeout starts after the response, so this is at least
// the timeout. It fails if the server
// keeps the connection open longer than wait, sends anything more, or
// closes the connection instead of keeping it alive after the response.
func IdleFor(addr, path string, wait time.Duration) (status int, closedAfter time.Duration, err error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(wait)); err != nil {
		return 0, 0, err
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := req.Write(conn); err != nil {
		return 0, 0, fmt.Errorf("send the request: %w", err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, req)
	if err != nil {
		return 0, 0, fmt.Errorf("read the response: %w", err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, 0, fmt.Errorf("read the response's body: %w", err)
	}
	resp.Body.Close()
	if resp.Close {
		return resp.StatusCode, 0, errors.New("the server closes the connection after the response: nothing to keep alive")
	}
	switch n, err := r.Read(make([]byte, 1)); {
	case n > 0:
		return resp.StatusCode, 0, errors.New("the server sent bytes nobody asked for")
	case errors.Is(err, io.EOF):
		return resp.StatusCode, time.Since(start), nil
	default:
		return resp.StatusCode, 0, fmt.Errorf("the idle connection was not closed by the server within %v: %w", wait, err)
	}
}
