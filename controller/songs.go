package controller

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/tutti-audio/tutti/protocol"
)

// songServer serves the library's files over HTTP and takes uploads.
type songServer struct {
	lib       *library
	log       *slog.Logger
	accepting func() bool           // uploads go to the lease holder only
	added     func(s protocol.Song) // announces a song an upload added
}

// routes returns the song server's handler. Song URLs are open in this
// version; authorization (signed, short-lived tokens) is to wrap the two
// /songs/ handlers here.
func (ss *songServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /songs/{sha}", ss.get) // GET also answers HEAD
	mux.HandleFunc("PUT /songs/{sha}", ss.put)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	return mux
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
	f, err := os.Open(ss.lib.songPath(sha))
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
