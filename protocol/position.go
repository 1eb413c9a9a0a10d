package protocol

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// ParsePosition parses "83", "83.5", "1:23", "1:23.250" or "1:02:03".
func ParsePosition(s string) (time.Duration, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) > 3 || parts[0] == "" {
		return 0, fmt.Errorf("position %q: want seconds, m:ss or h:mm:ss", s)
	}
	var secs float64
	for i, part := range parts {
		last := i == len(parts)-1
		var v float64
		var err error
		if last {
			v, err = strconv.ParseFloat(part, 64)
		} else {
			var n int64
			n, err = strconv.ParseInt(part, 10, 64)
			v = float64(n)
		}
		if err != nil || v < 0 || (i > 0 && v >= 60) {
			return 0, fmt.Errorf("position %q: want seconds, m:ss or h:mm:ss", s)
		}
		secs = secs*60 + v
	}
	return secondsToDuration(secs)
}

func secondsToDuration(secs float64) (time.Duration, error) {
	if math.IsNaN(secs) || secs < 0 || secs > 100*3600 {
		return 0, fmt.Errorf("position %v s out of range (0 to 100 h)", secs)
	}
	return time.Duration(math.Round(secs * 1e9)), nil
}

// FormatPosition writes d as m:ss (h:mm:ss from an hour on), rounded down.
func FormatPosition(d time.Duration) string {
	total := int64(d / time.Second)
	h, m, s := total/3600, total/60%60, total%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

// SongURI is the stable link to a song: tutti:song:<sha256>.
func SongURI(sha string) string { return "tutti:song:" + sha }

// ParseSongRef accepts a bare sha256 or tutti:song:<sha256>, either with an
// optional "#m:ss" offset, and returns the lower-case hash and offset.
func ParseSongRef(ref string) (sha string, offset time.Duration, err error) {
	body, frag, hasFrag := strings.Cut(strings.TrimSpace(ref), "#")
	body = strings.TrimPrefix(body, "tutti:song:")
	if !validSHA256(body) {
		return "", 0, fmt.Errorf("song %q: want a sha256 (64 hex digits) or tutti:song:<sha256>", ref)
	}
	if hasFrag {
		if offset, err = ParsePosition(frag); err != nil {
			return "", 0, err
		}
	}
	return strings.ToLower(body), offset, nil
}

func validSHA256(s string) bool { return IsSongHash(strings.ToLower(s)) }

// IsSongHash says whether s is a song's id as every message carries it: a
// sha256 in 64 lowercase hex digits.
func IsSongHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
