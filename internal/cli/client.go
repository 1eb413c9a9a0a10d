package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

// clientFlags are the flags of the remote-control commands.
type clientFlags struct {
	mqtt    mqttFlags
	session string
	speaker string
	timeout time.Duration
	json    bool
	offset  int    // search, browse, playlists, playlist: results to skip
	limit   int    // search, browse, playlists, playlist: results per page
	genre   string // artists, albums: only those of this genre
	queue   queueFlags
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	c.mqtt.register(fs, "")
	fs.StringVar(&c.session, "session", envOr("TUTTI_SESSION", protocol.DefaultSession), "session to control (env TUTTI_SESSION)")
	fs.StringVar(&c.speaker, "speaker", "", "volume: set this speaker's own volume instead of the session's")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "how long to wait for the reply")
	fs.BoolVar(&c.json, "json", false, "print the raw JSON reply")
	fs.IntVar(&c.offset, "offset", 0, "search, artists, albums, tracks, recent, genres, playlists, playlist: skip this many results (the next page starts at the last one's offset plus its results)")
	fs.IntVar(&c.limit, "limit", 0, fmt.Sprintf("search, tracks, playlist: songs per page (default and most %d); artists, albums, recent, genres: most %d; playlists: most %d",
		protocol.MaxSearchPage, protocol.MaxBrowsePage, protocol.MaxPlaylistsPage))
	fs.StringVar(&c.genre, "genre", "", "artists, albums: only those of this genre")
	c.queue.register(fs)
}

// client is a connected remote control with its own reply topic.
type client struct {
	conn    mqtt.Client
	http    *http.Client // for the song server, trusting --ca
	user    string       // signs every request; "" for anonymous (a demo broker)
	replyTo string
	replies chan protocol.Reply
	timeout time.Duration
}

func randomID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func dial(ctx context.Context, f clientFlags) (*client, error) {
	user, password, err := f.mqtt.credentials()
	if err != nil {
		return nil, err
	}
	id := randomID()
	// Replies to a user's requests go below its own reply topic, the only
	// one the broker lets it read.
	c := &client{user: user, replyTo: protocol.UserReplyTopic(user) + "/cli-" + id, replies: make(chan protocol.Reply, 16), timeout: f.timeout}
	tlsConf, err := f.mqtt.tls()
	if err != nil {
		return nil, err
	}
	opts := mqttclient.Options(f.mqtt.broker, protocol.ClientID(user, "cli", id), user, password).
		SetConnectTimeout(f.timeout).SetAutoReconnect(false).SetOrderMatters(false).SetTLSConfig(tlsConf)
	c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}
	c.conn = mqtt.NewClient(opts)
	if err := wait(ctx, c.conn.Connect(), f.timeout); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", f.mqtt.broker, err)
	}
	sub := c.conn.Subscribe(c.replyTo, 1, func(_ mqtt.Client, m mqtt.Message) {
		if r, err := protocol.Decode[protocol.Reply](m.Payload()); err == nil {
			select {
			case c.replies <- r:
			default:
			}
		}
	})
	if err := wait(ctx, sub, f.timeout); err != nil {
		c.close()
		return nil, fmt.Errorf("subscribe to replies: %w", err)
	}
	return c, nil
}

func (c *client) close() { c.conn.Disconnect(100) }

// wait waits for an MQTT token, the timeout or ctx, whichever comes first.
func wait(ctx context.Context, t mqtt.Token, timeout time.Duration) error {
	select {
	case <-t.Done():
		return mqttclient.TokenError(t)
	case <-time.After(timeout):
		return errors.New("timed out")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// request publishes req on topic and waits for its reply.
func (c *client) request(ctx context.Context, topic string, req protocol.Request) (protocol.Reply, error) {
	return c.requestWithin(ctx, topic, req, c.timeout)
}

// requestWithin is request with its own timeout for the reply. A request
// is signed with the user name: the broker lets it through only under the
// name the client logged in with, so the controller knows who asks.
func (c *client) requestWithin(ctx context.Context, topic string, req protocol.Request, timeout time.Duration) (protocol.Reply, error) {
	if c.user != "" {
		topic = protocol.UserTopic(topic, c.user)
	}
	req.V = protocol.Version
	req.ReqID = randomID()
	req.ReplyTo = c.replyTo
	if err := wait(ctx, c.conn.Publish(topic, 1, false, protocol.Encode(req)), c.timeout); err != nil {
		return protocol.Reply{}, fmt.Errorf("publish: %w", err)
	}
	deadline := time.After(timeout)
	for {
		select {
		case r := <-c.replies:
			if r.ReqID == req.ReqID {
				return r, nil
			}
		case <-deadline:
			return protocol.Reply{}, errors.New("no reply from the controller (is it running?)")
		case <-ctx.Done():
			return protocol.Reply{}, ctx.Err()
		}
	}
}

// clientCommand returns the runner of a command that is one request.
func clientCommand(cmd string) func(ctx context.Context, e *env, args []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, cmd, clientUsage[cmd])
		var f clientFlags
		f.register(fs)
		if err := fs.Parse(args); err != nil {
			return err
		}
		reqs, err := buildRequests(cmd, fs.Args())
		if err != nil {
			return err
		}
		switch cmd {
		case protocol.CmdVolume:
			reqs[0].Speaker = f.speaker
		case protocol.CmdSearch, protocol.CmdTracks, protocol.CmdRecent, protocol.CmdGenres, protocol.CmdPlaylists:
			reqs[0].Offset, reqs[0].Limit = f.offset, f.limit
		case protocol.CmdArtists, protocol.CmdAlbums:
			reqs[0].Offset, reqs[0].Limit, reqs[0].Genre = f.offset, f.limit, f.genre
		case protocol.CmdPlaylistShow:
			if reqs[0].Cmd == protocol.CmdPlaylistShow {
				reqs[0].Offset, reqs[0].Limit = f.offset, f.limit
			}
		}
		if reqs, err = f.queue.place(reqs); err != nil {
			return err
		}
		c, err := dial(ctx, f)
		if err != nil {
			return err
		}
		defer c.close()
		topic := protocol.SessionCommandTopic(f.session)
		switch {
		case slices.Contains(protocol.LibraryCommands, cmd):
			topic = protocol.LibraryCommandTopic
		case slices.Contains(protocol.SessionsCommands, cmd):
			topic = protocol.SessionsCommandTopic
		}
		for _, req := range reqs {
			r, err := c.request(ctx, topic, req)
			if err != nil {
				return err
			}
			if err := printReply(e, f.json, r); err != nil {
				return err
			}
		}
		return nil
	}
}

var clientUsage = map[string]string{
	"enqueue": "[flags] SONG...   (SONG: sha256, a tutti:song:, tutti:album:, tutti:artist: or tutti:playlist: link, or a file already loaded)",
	"move":    "[flags] ENTRY|INDEX TO   (TO: the position it moves to, from 0)",
	"shuffle": "[flags] on|off",
	"playlist": "[flags] ID | show ID | create TITLE | rename ID TITLE | delete ID | add ID SONG... | remove ID INDEX" +
		"   (ID: a saved playlist's id or tutti:playlist: link; SONG as for enqueue)",
	"dequeue": "[flags] ENTRY|INDEX",
	"play":    "[flags] [INDEX]",
	"seek":    "[flags] POSITION   (m:ss or seconds)",
	"volume":  "[flags] 0-100",
	"search":  "[flags] WORDS...   (the best matches first; the last word may be the start of one)",
	"albums":  "[flags] [ARTIST-LINK]   (tutti:artist:<id>, from tutti artists; all albums without it)",
	"tracks":  "[flags] LINK   (tutti:album:<id> or tutti:artist:<id>, from tutti albums or tutti artists)",
	"remove":  "[flags] SONG   (sha256, tutti:song:<sha256>, or the file itself)",
	"join":    "[flags] SPEAKER   (moves it into --session)",
	"leave":   "[flags] SPEAKER   (takes it out of --session)",
	"create":  "[flags] SESSION [TITLE] [SEE JOIN CONTROL]   (as grant; without them every member may do everything)",
	"rename":  "[flags] SESSION TITLE",
	"delete":  "[flags] SESSION",
	"forget":  "[flags] SPEAKER   (an offline speaker, gone for good)",
	"grant":   "[flags] SESSION SEE JOIN CONTROL   (each a comma list of user names, * for every member, - for nobody)",

	"replaygain": "[flags] off|track|album   (album: each song's album gain where it has one)",
	"repeat":     "[flags] off|one|all",
	"crossfade":  "[flags] SECONDS   (0, gapless, to 12)",
}

// buildRequests turns command-line arguments into the requests to send.
func buildRequests(cmd string, args []string) ([]protocol.Request, error) {
	req := protocol.Request{Cmd: cmd}
	switch cmd {
	case protocol.CmdEnqueue:
		if len(args) == 0 {
			return nil, errors.New("enqueue: name at least one song")
		}
		var reqs []protocol.Request
		for _, a := range args {
			song, err := linkRef(a)
			if err != nil {
				return nil, err
			}
			reqs = append(reqs, protocol.Request{Cmd: cmd, Song: song})
		}
		return reqs, nil
	case protocol.CmdMove, protocol.CmdShuffle:
		return queueRequests(cmd, args)
	case protocol.CmdPlaylistShow, protocol.CmdPlaylistCreate, protocol.CmdPlaylistRename, protocol.CmdPlaylistDelete,
		protocol.CmdPlaylistAdd, protocol.CmdPlaylistRemove:
		return playlistRequests(cmd, args)
	case protocol.CmdRepeat, protocol.CmdFade:
		r, err := playModeRequest(cmd, args)
		return []protocol.Request{r}, err
	case protocol.CmdDequeue:
		if len(args) != 1 {
			return nil, errors.New("dequeue: name one entry id or index")
		}
		if i, err := strconv.Atoi(args[0]); err == nil {
			req.Index = &i
		} else {
			req.Entry = args[0]
		}
	case protocol.CmdPlay:
		if len(args) > 1 {
			return nil, errors.New("play: at most one index")
		}
		if len(args) == 1 {
			i, err := strconv.Atoi(args[0])
			if err != nil {
				return nil, fmt.Errorf("play: index %q is not a number", args[0])
			}
			req.Index = &i
		}
	case protocol.CmdSeek:
		if len(args) != 1 {
			return nil, errors.New("seek: give one position (m:ss or seconds)")
		}
		d, err := protocol.ParsePosition(args[0])
		if err != nil {
			return nil, err
		}
		p := protocol.Position(d)
		req.Position = &p
	case protocol.CmdVolume:
		if len(args) != 1 {
			return nil, errors.New("volume: give one level 0-100")
		}
		v, err := strconv.Atoi(args[0])
		if err != nil {
			return nil, fmt.Errorf("volume %q is not a number", args[0])
		}
		req.Volume = &v
	case protocol.CmdGain:
		if len(args) != 1 {
			return nil, fmt.Errorf("replaygain: %s", clientUsage[cmd])
		}
		req.Mode = args[0]
	case protocol.CmdSearch:
		if len(args) == 0 {
			return nil, errors.New("search: give the words to look for")
		}
		req.Query = strings.Join(args, " ")
	case protocol.CmdAlbums:
		if len(args) > 1 {
			return nil, fmt.Errorf("albums: %s", clientUsage[cmd])
		}
		if len(args) == 1 {
			req.Link = args[0]
		}
	case protocol.CmdTracks:
		if len(args) != 1 {
			return nil, fmt.Errorf("tracks: %s", clientUsage[cmd])
		}
		req.Link = args[0]
	case protocol.CmdRemove:
		if len(args) != 1 {
			return nil, errors.New("remove: name one song")
		}
		song, err := songRef(args[0])
		if err != nil {
			return nil, err
		}
		req.Song = song
	case protocol.CmdJoin, protocol.CmdLeave, protocol.CmdForget:
		if len(args) != 1 {
			return nil, fmt.Errorf("%s: name one speaker", cmd)
		}
		req.Speaker = args[0]
	case protocol.CmdCreate:
		// The ACL comes with the request, so the session is never open to
		// members outside it, not even for a moment.
		if len(args) >= 4 {
			req.ACL = aclOf(args[len(args)-3:])
			args = args[:len(args)-3]
		}
		if len(args) < 1 || len(args) > 2 {
			return nil, fmt.Errorf("create: %s", clientUsage[cmd])
		}
		req.Session = args[0]
		if len(args) == 2 {
			req.Title = args[1]
		}
	case protocol.CmdRename:
		if len(args) != 2 {
			return nil, fmt.Errorf("rename: %s", clientUsage[cmd])
		}
		req.Session, req.Title = args[0], args[1]
	case protocol.CmdDelete:
		if len(args) != 1 {
			return nil, errors.New("delete: name one session")
		}
		req.Session = args[0]
	case protocol.CmdGrant:
		if len(args) != 4 {
			return nil, fmt.Errorf("grant: %s", clientUsage[cmd])
		}
		req.Session = args[0]
		req.ACL = aclOf(args[1:])
	default:
		if len(args) > 0 {
			return nil, fmt.Errorf("%s takes no arguments", cmd)
		}
	}
	return []protocol.Request{req}, nil
}

// aclOf reads the three lists of an ACL: who may see, join and control.
func aclOf(lists []string) *protocol.ACL {
	return &protocol.ACL{See: userList(lists[0]), Join: userList(lists[1]), Control: userList(lists[2])}
}

// userList reads a comma list of user names; "-" is nobody.
func userList(arg string) []string {
	if arg == "-" {
		return []string{}
	}
	return strings.Split(arg, ",")
}

// songRef accepts a song reference, or a file whose hash is the reference.
func songRef(arg string) (string, error) {
	if _, _, err := protocol.ParseSongRef(arg); err == nil {
		return arg, nil
	}
	sha, _, err := hashFile(arg)
	if err != nil {
		return "", fmt.Errorf("song %q: neither a song reference nor a readable file", arg)
	}
	return sha, nil
}

func printReply(e *env, raw bool, r protocol.Reply) error {
	if raw {
		fmt.Fprintln(e.stdout, string(protocol.Encode(r)))
	} else if r.OK {
		fmt.Fprintf(e.stdout, "%s: ok", r.Cmd)
		if len(r.Result) > 0 && r.Cmd != protocol.CmdStatus {
			fmt.Fprintf(e.stdout, " %s", summarize(r.Cmd, r.Result))
		}
		fmt.Fprintln(e.stdout)
	}
	if !r.OK {
		return fmt.Errorf("%s refused: %s", r.Cmd, protocol.CleanText(r.Error, maxPrintedError))
	}
	return nil
}

// maxPrintedError bounds an error reply as printed: it may quote what
// someone else typed.
const maxPrintedError = 1000

// summarize prints a result compactly: saved playlists and the library's
// lists as tables (playlists.go, browse.go), others as JSON (whose encoding
// escapes control characters).
func summarize(cmd string, result json.RawMessage) string {
	if text, ok := summarizePlaylists(result); ok {
		return text
	}
	if table, ok := libraryTable(cmd, result); ok {
		return table
	}
	return string(result)
}
