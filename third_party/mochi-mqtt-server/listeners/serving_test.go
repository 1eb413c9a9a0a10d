package listeners

import (
	"errors"
	"net/http"
	"syscall"
	"time"
)

// getWhenServing GETs url, retrying while the listener started by the
// test's goroutine is not yet accepting connections.
// tutti: upstream slept 1 ms before its GET, which failed under load with
// "connection refused" (the Serve goroutine had not run yet).
func getWhenServing(url string) (*http.Response, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			return resp, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}
