package controller

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// songServer serves the library's files and their cover art over HTTP, and
// takes uploads.
type songServer struct {
	lib       *library
	log       *slog.Logger
	tokens    *fetchTokens          // the lease holder's: a request must bear one
	accepting func() bool           // uploads go to the lease holder only
	added     func(s protocol.Song) // announces a song an upload added

	uploads      uploadSlots      // uploads under way (uploads.go)
	uploadWindow time.Duration    // over which an upload's pace is measured
	now          func() time.Time // for upload pacing
	idleTimeout  time.Duration    // songIdleTimeout; shorter in tests
}

// newSongServer returns a song server over lib with the default limits.
func newSongServer(lib *library, log *slog.Logger, tokens *fetchTokens, accepting func() bool, added func(protocol.Song)) *songServer {
	return &songServer{lib: lib, log: log, tokens: tokens, accepting: accepting, added: added,
		uploads: make(uploadSlots, maxConcurrentUploads), uploadWindow: uploadWindow, now: time.Now,
		idleTimeout: songIdleTimeout}
}

// server returns the HTTP server of ss, with its connection limits.
func (ss *songServer) server(errorLog *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           ss.routes(),
		ReadHeaderTimeout: songHeaderTimeout,
		IdleTimeout:       ss.idleTimeout,
		MaxHeaderBytes:    songMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(errorLog.Handler(), slog.LevelWarn),
	}
}

// routes returns the song server's handler. Songs go only to requests that
// bear the lease holder's current or previous fetch token; their cover art
// goes to everyone.
func (ss *songServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /songs/{sha}", ss.authorized(ss.get)) // GET also answers HEAD
	mux.HandleFunc("PUT /songs/{sha}", ss.authorized(ss.limitedPut(ss.put)))
	// Covers need no token (art.go).
	mux.HandleFunc("GET "+protocol.ArtPath+"{sha}", newArtServer(ss.lib, ss.log).get)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	return mux
}

// authorized wraps a handler: the request must carry a valid fetch token,
// as "Authorization: Bearer <token>" or, for curl, "?token=<token>".
func (ss *songServer) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			token = r.URL.Query().Get("token")
		}
		if !ss.tokens.valid(token) {
			w.Header().Set("Connection", "close") // the server would read what body it has first
			w.Header().Set("WWW-Authenticate", `Bearer realm="tutti songs"`)
			writeError(w, http.StatusUnauthorized, "a valid fetch token is required (the lease's fetch_token, as Authorization: Bearer <token>)")
			return
		}
		h(w, r)
	}
}

// tokenRotation is how often the lease holder replaces its fetch token. The
// previous token stays valid until the next rotation, so a download started
// with it is not cut off.
const tokenRotation = 10 * time.Minute

// fetchTokens are the bearer tokens the song server accepts: the lease
// holder's current and previous ones (ours while we hold the lease, else
// learnt from the lease messages). Safe for concurrent use.
type fetchTokens struct {
	mu                sync.Mutex
	current, previous string
}

// set makes token the current one; the current one becomes the previous.
func (t *fetchTokens) set(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if token != t.current {
		t.previous, t.current = t.current, token
	}
}

func (t *fetchTokens) get() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.current
}

// valid says whether token is the current or the previous one.
func (t *fetchTokens) valid(token string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	match := func(want string) bool {
		return want != "" && subtle.ConstantTimeCompare([]byte(token), []byte(want)) == 1
	}
	return match(t.current) || match(t.previous)
}

// songHash validates the {sha} path value: exactly 64 hex digits.
func songHash(w http.ResponseWriter, r *http.Request) (string, bool) {
	sha := r.PathValue("sha")
	if len(sha) != 64 || strings.Trim(strings.ToLower(sha), "0123456789abcdef") != "" {
		writeError(w, http.StatusBadRequest, "malformed song hash: want 64 hex digits")
		return "", false
	}
	return strings.ToLower(sha), true
}

var contentTypes = map[string]string{
	"mp3": "audio/mpeg", "flac": "audio/flac", "wav": "audio/wav", "ogg": "audio/ogg",
}

func (ss *songServer) get(w http.ResponseWriter, r *http.Request) {
	sha, ok := songHash(w, r)
	if !ok {
		return
	}
	song, err := ss.lib.store.song(sha)
	if err != nil {
		writeError(w, http.StatusNotFound, "unknown song "+sha)
		return
	}
	f, err := ss.lib.openSong(sha)
	if err != nil {
		// A standby's mirror may not have fetched it yet.
		writeError(w, http.StatusNotFound, "song file not here (yet) "+sha)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", contentTypes[song.Format])
	w.Header().Set("ETag", `"`+sha+`"`)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable") // content-addressed
	http.ServeContent(w, r, "", info.ModTime(), f)
}

func (ss *songServer) put(w http.ResponseWriter, r *http.Request) {
	sha, ok := songHash(w, r)
	if !ok {
		return
	}
	if !ss.accepting() {
		// A standby's library follows the holder's; an upload here would be
		// known to nobody. The holder's URL is in tutti/controller/status.
		writeError(w, http.StatusServiceUnavailable, "this controller is a standby: upload to the one holding the lease")
		return
	}
	if r.ContentLength > ss.lib.maxSize {
		writeError(w, http.StatusRequestEntityTooLarge, errTooLarge.Error())
		return
	}
	song, created, err := ss.lib.add(r.Body, sha, r.URL.Query().Get("name"))
	switch {
	case errors.Is(err, errHashMismatch):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, errNotAudio):
		writeError(w, http.StatusUnsupportedMediaType, err.Error())
	case errors.Is(err, errTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
	case errors.Is(err, errUploadTooSlow):
		writeError(w, http.StatusRequestTimeout, fmt.Sprintf("%v: under %d bytes/s", err, minUploadRate))
	case err != nil:
		ss.log.Error("upload failed", "sha256", sha, "err", err)
		writeError(w, http.StatusInternalServerError, "upload failed: "+err.Error())
	case created:
		ss.log.Info("song added", "sha256", sha, "title", song.Title, "format", song.Format)
		ss.added(song)
		writeJSON(w, http.StatusCreated, song)
	default:
		writeJSON(w, http.StatusOK, song)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
