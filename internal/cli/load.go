package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/schollz/progressbar/v3"

	"github.com/tutti-audio/tutti/protocol"
)

// runLoad adds files to the library: each is hashed first and uploaded only
// if the controller does not know that hash yet.
func runLoad(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "load", "[flags] FILE...")
	var f clientFlags
	f.register(fs)
	enqueue := fs.Bool("enqueue", false, "also append each song to the session's playlist")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("name at least one file")
	}
	c, err := dial(ctx, f)
	if err != nil {
		return err
	}
	defer c.close()
	server, err := c.songServer(ctx)
	if err != nil {
		return err
	}
	for _, path := range fs.Args() {
		song, uploaded, err := upload(ctx, server, path, *quiet, e)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		verb := "known"
		if uploaded {
			verb = "uploaded"
		}
		held := ""
		// The controller answers once a majority of the nodes (it and the
		// speakers) hold the song: each speaker downloads it first.
		r, err := c.requestWithin(ctx, protocol.LibraryCommandTopic, protocol.Request{Cmd: protocol.CmdLoad, Song: song.SHA256}, loadReplyTimeout)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %w", path, err)
		case !r.OK:
			fmt.Fprintf(e.stderr, "warning: %s is in the library, but: %s\n", path, r.Error)
		default:
			var q struct{ Holders, Nodes int }
			if json.Unmarshal(r.Result, &q) == nil && q.Nodes > 0 {
				held = fmt.Sprintf(", held by %d of %d nodes", q.Holders, q.Nodes)
			}
		}
		song = protocol.CleanSong(song) // the controller's texts reach a terminal
		fmt.Fprintf(e.stdout, "%s %s  %s - %s (%s)%s\n", verb, song.URI, song.Artist, song.Title, protocol.FormatPosition(time.Duration(song.DurationNs)), held)
		if *enqueue {
			r, err := c.request(ctx, protocol.SessionCommandTopic(f.session), protocol.Request{Cmd: protocol.CmdEnqueue, Song: song.SHA256})
			if err != nil {
				return err
			}
			if err := printReply(e, f.json, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadReplyTimeout covers the controller's wait for a quorum of holders of
// a song (30 s) and a little more.
const loadReplyTimeout = 35 * time.Second

// songServer is where the controller holding the lease serves songs, the
// token its song server wants, and the HTTP client to reach it with.
type songServer struct {
	url, token string
	client     *http.Client
}

func (s songServer) http() *http.Client {
	if s.client == nil {
		return http.DefaultClient
	}
	return s.client
}

// authorize adds the song server's token to a request.
func (s songServer) authorize(r *http.Request) {
	if s.token != "" {
		r.Header.Set("Authorization", "Bearer "+s.token)
	}
}

// songServer waits for an online controller and returns its song server.
func (c *client) songServer(ctx context.Context) (songServer, error) {
	s, err := awaitController(ctx, c.conn, c.timeout)
	s.client = c.http
	return s, err
}

// awaitController waits for the controller's status to say it is online,
// and for its lease, and returns its song server. The controller publishes
// that status once it has subscribed to commands, so after it a command is
// heard.
func awaitController(ctx context.Context, conn mqtt.Client, timeout time.Duration) (songServer, error) {
	var mu sync.Mutex
	var online bool
	var server songServer
	ready := make(chan struct{}, 1)
	handle := func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		switch m.Topic() {
		case protocol.ControllerStatusTopic:
			st, err := protocol.Decode[protocol.ControllerStatus](m.Payload())
			online = err == nil && st.Online && st.SongsURL != ""
			if online {
				server.url = st.SongsURL
			}
		case protocol.LeaseTopic:
			if l, err := protocol.Decode[protocol.Lease](m.Payload()); err == nil && l.FetchToken != "" {
				server.token = l.FetchToken
			}
		}
		if online && server.token != "" {
			select {
			case ready <- struct{}{}:
			default:
			}
		}
	}
	topics := map[string]byte{protocol.ControllerStatusTopic: 1, protocol.LeaseTopic: 1}
	if err := wait(ctx, conn.SubscribeMultiple(topics, handle), timeout); err != nil {
		return songServer{}, err
	}
	defer conn.Unsubscribe(protocol.ControllerStatusTopic, protocol.LeaseTopic)
	select {
	case <-ready:
		mu.Lock()
		defer mu.Unlock()
		return server, nil
	case <-time.After(timeout):
		return songServer{}, fmt.Errorf("no online controller on %s (is the controller running?)", protocol.ControllerStatusTopic)
	case <-ctx.Done():
		return songServer{}, ctx.Err()
	}
}

func hashFile(path string) (sha string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	size, err = io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), size, err
}

// upload puts one file into the library unless its hash is known already.
func upload(ctx context.Context, server songServer, path string, quiet bool, e *env) (protocol.Song, bool, error) {
	var song protocol.Song
	sha, size, err := hashFile(path)
	if err != nil {
		return song, false, err
	}
	url := server.url + sha + "?name=" + neturl.QueryEscape(filepath.Base(path))
	head, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return song, false, err
	}
	server.authorize(head)
	resp, err := server.http().Do(head)
	if err != nil {
		return song, false, err
	}
	resp.Body.Close()
	known := resp.StatusCode == http.StatusOK
	f, err := os.Open(path)
	if err != nil {
		return song, false, err
	}
	defer f.Close()
	var body io.Reader = f
	if known {
		body = http.NoBody // the controller answers a known hash without reading
	} else if !quiet {
		bar := progressbar.DefaultBytes(size, "uploading "+filepath.Base(path))
		defer bar.Close()
		r := progressbar.NewReader(f, bar)
		body = &r
	}
	put, err := http.NewRequestWithContext(ctx, http.MethodPut, url, body)
	if err != nil {
		return song, false, err
	}
	server.authorize(put)
	if !known {
		put.ContentLength = size
	}
	resp, err = server.http().Do(put)
	if err != nil {
		return song, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return song, false, fmt.Errorf("refused (%s): %s", resp.Status, e.Error)
	}
	err = json.NewDecoder(resp.Body).Decode(&song)
	return song, resp.StatusCode == http.StatusCreated, err
}
