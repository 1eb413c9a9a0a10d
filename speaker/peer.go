package speaker

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

// Peer fetch: speakers serve their verified cache to each other, so that
// songs survive the controller's host being away. Only requests bearing the
// fetch token of the current lease (or of the one before) are served.

// defaultPeerURL is the URL peers reach the cache server bound at addr at.
// Bound to all interfaces, the server is advertised at the address this
// machine uses to reach the broker: the network the peers are on too.
func defaultPeerURL(addr *net.TCPAddr, brokerURL string) string {
	host := addr.IP
	if host.IsUnspecified() {
		host = net.IPv4(127, 0, 0, 1)
		if u, err := url.Parse(brokerURL); err == nil {
			// Dialing UDP sends nothing; it only picks the route.
			if conn, err := net.Dial("udp", net.JoinHostPort(u.Hostname(), "9")); err == nil {
				host = conn.LocalAddr().(*net.UDPAddr).IP
				conn.Close()
			}
		}
	}
	return "http://" + net.JoinHostPort(host.String(), strconv.Itoa(addr.Port)) + "/songs/"
}

// Limits of the cache server. A request (GET or HEAD, one packet) has
// peerHeaderTimeout to arrive. There is no ReadTimeout: it would also fire
// under a long download (the server's read that watches for the client
// going away times out, and ends the response), and downloads have no
// overall deadline (a song over Wi-Fi may take minutes).
const (
	peerHeaderTimeout  = 10 * time.Second
	peerIdleTimeout    = 60 * time.Second // peers reconnect in a millisecond on the LAN
	peerMaxHeaderBytes = 16 << 10         // real requests are under 1 KiB
)

// peerServer returns the cache server's HTTP server, with its limits.
func (s *Speaker) peerServer() *http.Server {
	return &http.Server{Handler: s.peerHandler(), ReadHeaderTimeout: peerHeaderTimeout,
		IdleTimeout: s.peerIdle, MaxHeaderBytes: peerMaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
}

// peerHandler serves GET and HEAD /songs/<sha256>, with Range.
func (s *Speaker) peerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /songs/{sha}", s.serveSong)
	return mux
}

func (s *Speaker) serveSong(w http.ResponseWriter, r *http.Request) {
	token, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	allowed := bearer && s.fence.tokenValid(token)
	s.mu.Unlock()
	if !allowed {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tutti"`)
		http.Error(w, "a bearer token of the controller's lease is required", http.StatusUnauthorized)
		return
	}
	sha := r.PathValue("sha")
	if !validHash(sha) {
		http.NotFound(w, r)
		return
	}
	path, ok := s.cache.Lookup(sha) // counts as a use, for the LRU
	if !ok {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(path)
	if err != nil { // evicted a moment ago
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", info.ModTime(), f)
}

// wantPeers subscribes to the other speakers' statuses, which name their
// cache servers, the first time a song cannot come from the controller: as
// long as the controller serves, no speaker pays for receiving every other
// speaker's status. The next fetch attempt uses the peers known by then.
func (s *Speaker) wantPeers() {
	if s.peersWanted.Swap(true) {
		return
	}
	s.log.Info("the controller's song server fails: looking for peers")
	// A reconnect subscribes again by itself (onConnect); without a
	// connection, the next failed fetch tries again.
	if err := mqttclient.Subscribe(s.client, map[string]byte{protocol.SpeakerStatusFilter: 1}, s.onMessage, 5*time.Second); err != nil {
		s.log.Warn("cannot hear the other speakers' statuses", "err", err)
		s.peersWanted.Store(false)
	}
}

// onPeerStatus learns where another speaker serves its cache, from its
// retained status.
func (s *Speaker) onPeerStatus(id string, b []byte) error {
	if id == s.name {
		return nil
	}
	var peerURL string
	if len(b) > 0 {
		st, err := protocol.Decode[protocol.SpeakerStatus](b)
		if err != nil {
			return err
		}
		if st.ID != id {
			return fmt.Errorf("status of speaker %q on the topic of %q", st.ID, id)
		}
		if st.Online && st.PeerURL != "" {
			if u, err := url.Parse(st.PeerURL); err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
				return fmt.Errorf("speaker %s: peer URL %q is not an http(s) URL", id, st.PeerURL)
			}
			peerURL = st.PeerURL
		}
	}
	s.mu.Lock()
	known := s.peers[id]
	if peerURL == "" {
		delete(s.peers, id)
	} else {
		s.peers[id] = peerURL
	}
	s.mu.Unlock()
	if peerURL != "" && peerURL != known {
		s.wake(s.fetchWake) // a new source for the songs that failed
	}
	return nil
}

// songSources lists where to fetch songs from: the controller's song
// server, then the other online speakers, in the order of their ids
// starting after this speaker's own (so that speakers spread over peers).
func (s *Speaker) songSources() sources {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := sources{token: s.fence.token}
	if s.fence.songsURL != "" {
		src.bases = append(src.bases, s.fence.songsURL)
	}
	ids := make([]string, 0, len(s.peers))
	for id := range s.peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	after, _ := slices.BinarySearch(ids, s.name)
	for _, id := range slices.Concat(ids[after:], ids[:after]) {
		src.bases = append(src.bases, s.peers[id])
	}
	return src
}
