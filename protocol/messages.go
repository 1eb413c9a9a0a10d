package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the major version of every payload, sent as "v". A receiver
// refuses another major version; within one, new fields may appear and old
// receivers ignore them (requests excepted: see DecodeRequest).
const Version = 1

// MaxPayload is the largest payload any tutti topic carries; the broker
// refuses larger packets.
const MaxPayload = 256 << 10

// Playback states of a session.
const (
	Stopped = "stopped"
	Playing = "playing"
	Paused  = "paused"
)

// Commands. Session commands go to SessionCommandTopic(session), library
// commands to LibraryCommandTopic.
const (
	CmdPlay     = "play"       // optional: index (entry to start), position
	CmdPause    = "pause"      //
	CmdNext     = "next"       //
	CmdPrevious = "previous"   // restarts the current song
	CmdSeek     = "seek"       // position (required)
	CmdEnqueue  = "enqueue"    // song (required: a song, album, artist or playlist link), index (insert before) or at (EnqueueNow, EnqueueNext, EnqueueEnd: the default)
	CmdDequeue  = "dequeue"    // entry or index (required)
	CmdClear    = "clear"      //
	CmdVolume   = "volume"     // volume 0-100 (required); with speaker: that speaker's own volume
	CmdStatus   = "status"     //
	CmdJoin     = "join"       // speaker (required): moves it into this session, at the session's current position
	CmdLeave    = "leave"      // speaker (required): takes it out of this session; it falls silent
	CmdAnnounce = "announce"   // text (optional): a chime on all the session's speakers at one instant, the music ducked under it
	CmdMove     = "move"       // entry or index (required), to (required): the entry moves to position to
	CmdShuffle  = "shuffle"    // on (required): shuffles the entries after the current one, or puts them back in order
	CmdRepeat   = "repeat"     // mode (required): RepeatOff ("off"), RepeatOne or RepeatAll
	CmdFade     = "crossfade"  // seconds (required, 0 to MaxCrossfadeMs/1000): overlap of songs; 0 plays them gapless
	CmdGain     = "replaygain" // mode (required): "off", GainTrack or GainAlbum

	CmdLoad    = "load"    // song (hash of a known song) or path (file on the controller's import dir)
	CmdSearch  = "search"  // query (words matched against title, artist, album, album artist; the last one a prefix), offset, limit: one page of the matches, best first
	CmdLookup  = "lookup"  // song (a song's hash or link; an album's or artist's link: that, and its songs)
	CmdRemove  = "remove"  // song (required; admins only): out of the library, its playlist entries and its file
	CmdArtists = "artists" // offset, limit, genre: the library's artists by name
	CmdAlbums  = "albums"  // link (an artist's), genre, offset, limit: albums by artist and title
	CmdTracks  = "tracks"  // link (required: an album's or an artist's), offset, limit: its songs in disc and track order
	CmdRecent  = "recent"  // offset, limit: albums, the most recently added first
	CmdGenres  = "genres"  // offset, limit: the genres and how many songs each holds
	CmdScan    = "scan"    // (admins only) rescan the music folders now; the controller's status shows the progress

	CmdPlaylists      = "playlists"       // offset, limit: the saved playlists
	CmdPlaylistShow   = "playlist"        // playlist (required), offset, limit: its songs
	CmdPlaylistCreate = "playlist_create" // title (required): a new, empty saved playlist; the result names its id
	CmdPlaylistRename = "playlist_rename" // playlist (required), title (required)
	CmdPlaylistDelete = "playlist_delete" // playlist (required)
	CmdPlaylistAdd    = "playlist_add"    // playlist (required), song (required: any link), index (insert before; default: append)
	CmdPlaylistRemove = "playlist_remove" // playlist (required), index (required)

	CmdList   = "list"   // the sessions the asking user may see
	CmdCreate = "create" // session (required), title, acl (like grant's; Everyone when absent): in force before the session's first state
	CmdRename = "rename" // session (required), title (required): the name (topic level) stays
	CmdDelete = "delete" // session (required)
	CmdGrant  = "grant"  // session (required), acl (required): who may see, join and control it
	CmdForget = "forget" // speaker (required): an offline speaker is forgotten: its retained assignment and status cleared

	CmdIdentify  = "identify"  // the speaker plays a short tone, over whatever it plays
	CmdRestart   = "restart"   // the speaker restarts (its process, under a supervisor such as systemd)
	CmdCalibrate = "calibrate" // calibration_ms (required): the speaker's output latency calibration, kept across restarts
)

// SessionCommands, LibraryCommands and SessionsCommands say which topic
// takes which command.
var (
	SessionCommands = []string{CmdPlay, CmdPause, CmdNext, CmdPrevious, CmdSeek, CmdEnqueue, CmdDequeue, CmdClear, CmdVolume, CmdStatus, CmdJoin, CmdLeave, CmdAnnounce,
		CmdMove, CmdShuffle, CmdRepeat, CmdFade, CmdGain}
	LibraryCommands = []string{CmdLoad, CmdSearch, CmdLookup, CmdRemove, CmdArtists, CmdAlbums, CmdTracks, CmdRecent, CmdGenres, CmdScan,
		CmdPlaylists, CmdPlaylistShow, CmdPlaylistCreate, CmdPlaylistRename, CmdPlaylistDelete, CmdPlaylistAdd, CmdPlaylistRemove}
	SessionsCommands = []string{CmdList, CmdCreate, CmdRename, CmdDelete, CmdGrant, CmdForget}
	SpeakerCommands  = []string{CmdIdentify, CmdRestart, CmdCalibrate, CmdStatus}
)

// Request is every command. Fields a command does not use must be absent.
type Request struct {
	V       int    `json:"v,omitempty"` // optional in requests; 1 when given
	Cmd     string `json:"cmd"`
	ReqID   string `json:"req_id,omitempty"`
	ReplyTo string `json:"reply_to,omitempty"` // topic for the Reply; DefaultReplyTopic when empty

	Song     string    `json:"song,omitempty"`     // sha256 hex or tutti:song:<sha256>[#m:ss]
	Path     string    `json:"path,omitempty"`     // load: file below the controller's import directory
	Index    *int      `json:"index,omitempty"`    // playlist position (0-based)
	Entry    string    `json:"entry,omitempty"`    // playlist entry id
	Position *Position `json:"position,omitempty"` // seconds (number) or "m:ss[.fff]"
	Volume   *int      `json:"volume,omitempty"`   // 0-100
	Query    string    `json:"query,omitempty"`
	Offset   int       `json:"offset,omitempty"`   // search and browse: results to skip
	Limit    int       `json:"limit,omitempty"`    // search and browse: at most this many (default and most: MaxSearchPage songs, MaxBrowsePage others)
	Speaker  string    `json:"speaker,omitempty"`  // join, leave, volume of one speaker
	Session  string    `json:"session,omitempty"`  // create, rename, delete, grant
	Title    string    `json:"title,omitempty"`    // create, rename: the name people see
	ACL      *ACL      `json:"acl,omitempty"`      // create, grant
	Text     string    `json:"text,omitempty"`     // announce: what the announcement says (logged and shown; tutti plays a chime)
	At       string    `json:"at,omitempty"`       // enqueue: EnqueueNow, EnqueueNext or EnqueueEnd
	To       *int      `json:"to,omitempty"`       // move: the position the entry moves to (0-based)
	On       *bool     `json:"on,omitempty"`       // shuffle
	Mode     string    `json:"mode,omitempty"`     // repeat, replaygain
	Seconds  *float64  `json:"seconds,omitempty"`  // crossfade
	Link     string    `json:"link,omitempty"`     // albums, tracks: the artist or album to list
	Genre    string    `json:"genre,omitempty"`    // artists, albums: only those of this genre
	Playlist string    `json:"playlist,omitempty"` // playlist commands: a saved playlist's id or link
	// CalibrationMs is calibrate's output latency calibration in ms: how
	// much later than its driver reports the speaker's sound is heard
	// (negative: earlier), within ±MaxCalibrationMs.
	CalibrationMs *float64 `json:"calibration_ms,omitempty"`
}

// Where enqueue puts what it adds.
const (
	EnqueueNow  = "now"  // before the current entry, and plays it at once
	EnqueueNext = "next" // right after the current entry
	EnqueueEnd  = "end"  // at the end (the default)
)

// MaxCalibrationMs bounds a speaker's latency calibration.
const MaxCalibrationMs = 500

// MaxAnnouncementText bounds an announcement's text, in bytes.
const MaxAnnouncementText = 1000

// ACL says who may do what with a session: user names, or "*" for every
// member. Admins may do everything; a speaker only plays the session it is
// assigned to.
type ACL struct {
	See     []string `json:"see"`     // read its state, playlist and status
	Join    []string `json:"join"`    // move speakers into it and out of it
	Control []string `json:"control"` // send it commands that change it
}

// Everyone is the ACL of a session created without one: every member may
// do everything.
var Everyone = ACL{See: []string{"*"}, Join: []string{"*"}, Control: []string{"*"}}

// Allows says whether list grants user.
func Allows(list []string, user string) bool {
	for _, u := range list {
		if u == "*" || u == user {
			return true
		}
	}
	return false
}

// SessionInfo is retained on SessionInfoTopic(session) by the lease holder:
// what the session is called and who may use it. tutti's broker enforces
// the ACL on every subscribe and publish.
type SessionInfo struct {
	V       int    `json:"v"`
	Session string `json:"session"`
	Title   string `json:"title"`
	ACL     ACL    `json:"acl"`
	Term    uint64 `json:"term"`
}

// Assignment is retained on AssignTopic(speaker) by the lease holder: the
// session the speaker plays ("" for none) and its own volume, which the
// session's volume scales. The speaker follows it; tutti's broker lets it
// read only that session.
type Assignment struct {
	V       int    `json:"v"`
	Speaker string `json:"speaker"`
	Session string `json:"session"`
	Volume  int    `json:"volume"`
	Term    uint64 `json:"term"`
}

// Reply answers every Request, on its ReplyTo topic. QoS 1, not retained.
type Reply struct {
	V      int             `json:"v"`
	OK     bool            `json:"ok"`
	Cmd    string          `json:"cmd"`
	ReqID  string          `json:"req_id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Anchor ties the shared clock to the playlist: at shared instant AtNs the
// session is at PositionNs into entry Index. While Playing, the position
// advances one nanosecond per shared nanosecond, across entry boundaries
// (gapless auto-advance) until the playlist ends; while paused it stays.
type Anchor struct {
	AtNs       int64  `json:"at_ns"`       // shared clock, Unix ns
	Index      int    `json:"index"`       // playlist entry index; -1 when the playlist is empty
	Entry      string `json:"entry"`       // that entry's id, to check the playlist matches
	PositionNs int64  `json:"position_ns"` // into that entry's song
	Playing    bool   `json:"playing"`
}

// SessionState is the retained state of one session: everything a speaker
// that connects at any moment needs, with Playlist, to know what to play.
type SessionState struct {
	V               int    `json:"v"`
	Session         string `json:"session"`
	Term            uint64 `json:"term"`  // the lease term of the controller that published it
	Seq             uint64 `json:"seq"`   // increases with every change, across terms
	State           string `json:"state"` // Stopped, Playing or Paused
	Anchor          Anchor `json:"anchor"`
	Volume          int    `json:"volume"`           // 0-100, scales each speaker's own volume
	PlaylistVersion uint64 `json:"playlist_version"` // the Playlist this anchor refers to
	PlaylistHash    string `json:"playlist_hash"`    // that Playlist's Hash(), to detect a mismatched pair
}

// Supersedes says whether a message stamped (term, seq) replaces one stamped
// (oldTerm, oldSeq): a higher term always does (it fences off a deposed
// controller), and within a term a higher seq does.
func Supersedes(term, seq, oldTerm, oldSeq uint64) bool {
	return term > oldTerm || term == oldTerm && seq > oldSeq
}

// Playlist is the retained playlist of one session.
type Playlist struct {
	V         int     `json:"v"`
	Session   string  `json:"session"`
	Term      uint64  `json:"term"`       // the lease term of the controller that published it
	Version   uint64  `json:"version"`    // increases with every change, across terms
	NextEntry uint64  `json:"next_entry"` // number of the next entry id, so a new lease holder never reuses one
	Entries   []Entry `json:"entries"`    // in the order they play (shuffled, when Shuffle)

	// How the entries play; every role computes the timeline with them.
	Repeat      string `json:"repeat,omitempty"`       // RepeatOff (""), RepeatOne or RepeatAll
	Shuffle     bool   `json:"shuffle,omitempty"`      // Entries are in a shuffled order
	CrossfadeMs int64  `json:"crossfade_ms,omitempty"` // overlap of one entry's end and the next's start
	ReplayGain  string `json:"replaygain,omitempty"`   // GainOff (""), GainTrack or GainAlbum: how Entry.GainDb was chosen
}

// Repeat modes of a playlist.
const (
	RepeatOff = ""
	RepeatOne = "one"
	RepeatAll = "all"
)

// ReplayGain modes of a playlist.
const (
	GainOff   = ""
	GainTrack = "track"
	GainAlbum = "album"
)

// MaxCrossfadeMs is the longest crossfade: 12 s, as the peers offer.
const MaxCrossfadeMs = 12000

// Hash identifies the playlist's content: the entries' ids, songs, lengths
// and gains in order, and how they play. SessionState.PlaylistHash carries it.
func (p Playlist) Hash() string {
	h := sha256.New()
	for _, e := range p.Entries {
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d\n", e.ID, e.Song, e.Frames, e.SampleRate)
		if e.GainDb != 0 || e.Missing {
			fmt.Fprintf(h, "gain %v missing %v\n", e.GainDb, e.Missing)
		}
	}
	if p.Repeat != RepeatOff || p.CrossfadeMs != 0 {
		fmt.Fprintf(h, "repeat %q crossfade %d\n", p.Repeat, p.CrossfadeMs)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Entry is one song in a playlist.
type Entry struct {
	ID         string  `json:"id"`   // unique within the playlist, stable while it stays
	Song       string  `json:"song"` // sha256 hex
	Title      string  `json:"title,omitempty"`
	Artist     string  `json:"artist,omitempty"`
	Frames     int64   `json:"frames"`            // exact length in sample frames
	SampleRate int     `json:"sample_rate"`       // frames per second
	GainDb     float64 `json:"gain_db,omitempty"` // every speaker applies it alike (Playlist.ReplayGain)
	Missing    bool    `json:"missing,omitempty"` // its file has gone from the music folders: skipped
}

// DurationNs is the entry's exact length; every role computes entry
// boundaries with it, so they agree to the nanosecond. A missing entry
// lasts 0: every role skips it alike.
func (e Entry) DurationNs() int64 {
	if e.Missing {
		return 0
	}
	return FramesToNs(e.Frames, e.SampleRate)
}

// FramesToNs converts a frame count at rate to nanoseconds, rounding down.
func FramesToNs(frames int64, rate int) int64 {
	if rate <= 0 {
		return 0
	}
	return frames/int64(rate)*1e9 + frames%int64(rate)*1e9/int64(rate)
}

// NsToFrames converts nanoseconds to a frame count at rate, rounding down.
func NsToFrames(ns int64, rate int) int64 {
	return ns/1e9*int64(rate) + ns%1e9*int64(rate)/1e9
}

// Song is the library's record of one song, as results carry it.
type Song struct {
	SHA256      string      `json:"sha256"`
	URI         string      `json:"uri"`
	Title       string      `json:"title"`
	Artist      string      `json:"artist"`
	Album       string      `json:"album"`
	AlbumArtist string      `json:"album_artist,omitempty"` // the album's artist; "" for the artist's own
	Track       int         `json:"track,omitempty"`        // number on its disc; 0 when unknown
	TrackTotal  int         `json:"track_total,omitempty"`
	Disc        int         `json:"disc,omitempty"`
	DiscTotal   int         `json:"disc_total,omitempty"`
	Year        int         `json:"year,omitempty"`
	Genre       string      `json:"genre,omitempty"`
	Format      string      `json:"format"` // mp3, flac, wav, ogg, opus, m4a
	Size        int64       `json:"size"`
	Frames      int64       `json:"frames"`
	SampleRate  int         `json:"sample_rate"`
	DurationNs  int64       `json:"duration_ns"`
	ReplayGain  *ReplayGain `json:"replaygain,omitempty"`
	AddedNs     int64       `json:"added_ns,omitempty"` // when it entered the library (Unix ns)
	Missing     bool        `json:"missing,omitempty"`  // its file has gone from the music folders
	// DerivedFrom is, on the record of a FLAC the controller converted from
	// a song speakers do not decode (an M4A), that song's hash: the source
	// plays as this FLAC, whose record carries the source's tags. Such a
	// song is left out of search and browse. "" for every other song.
	DerivedFrom string `json:"derived_from,omitempty"`
}

// ReplayGain is a song's loudness correction: the gain that brings it (or
// its album) to the ReplayGain reference level, and the peak that gain must
// not push past full scale. From the file's tags, or measured by the
// controller (EBU R128) when it has none.
type ReplayGain struct {
	Track    Gain  `json:"track"`
	Album    *Gain `json:"album,omitempty"` // nil when the tags give none
	Measured bool  `json:"measured,omitempty"`
}

// Gain is one ReplayGain value.
type Gain struct {
	Db   float64 `json:"db"`
	Peak float64 `json:"peak,omitempty"` // linear sample peak, 1 = full scale; 0 when unknown
}

// MaxGenreText bounds a genre's name, in bytes.
const MaxGenreText = 64

// CleanSong returns s with its texts bounded and safe to print (CleanText)
// and its numbers in range.
func CleanSong(s Song) Song {
	s.Title = CleanText(s.Title, MaxSongText)
	s.Artist = CleanText(s.Artist, MaxSongText)
	s.Album = CleanText(s.Album, MaxSongText)
	s.AlbumArtist = CleanText(s.AlbumArtist, MaxSongText)
	s.Genre = CleanText(s.Genre, MaxGenreText)
	for _, n := range []*int{&s.Track, &s.TrackTotal, &s.Disc, &s.DiscTotal} {
		if *n < 0 || *n > maxTrackNumber {
			*n = 0
		}
	}
	if s.Year < 0 || s.Year > maxYear {
		s.Year = 0
	}
	if s.ReplayGain != nil && !s.ReplayGain.valid() {
		s.ReplayGain = nil
	}
	return s
}

// maxTrackNumber and maxYear bound what tags may claim: box sets run to a
// few hundred tracks and dozens of discs; a larger number is garbage.
const (
	maxTrackNumber = 9999
	maxYear        = 9999
)

// MaxGainDb bounds a ReplayGain value either way: real ones stay within
// about ±20 dB (a whisper or a brick-walled master); beyond it is garbage.
const MaxGainDb = 30

func (r ReplayGain) valid() bool {
	ok := func(g Gain) bool {
		return g.Db >= -MaxGainDb && g.Db <= MaxGainDb && g.Peak >= 0 && g.Peak <= 16 // NaN fails every test
	}
	return ok(r.Track) && (r.Album == nil || ok(*r.Album))
}

// MaxSearchPage is the most songs one search reply carries: with texts of
// MaxSongText, even escaped as JSON, a page stays below MaxPayload (the
// controller also stops a page short of that).
const MaxSearchPage = 50

// SearchResult is one page of songs: search's matches, the best first (a
// title match before an artist's or an album's), and tracks' songs in their
// order; ask again with Offset+len(Songs) for the next.
type SearchResult struct {
	Songs  []Song `json:"songs"`
	Offset int    `json:"offset"` // of Songs[0] among all matches
	Total  int    `json:"total"`  // matches in all
}

// ControllerStatus is retained on ControllerStatusTopic.
type ControllerStatus struct {
	V        int           `json:"v"`
	Online   bool          `json:"online"`
	Instance string        `json:"instance"`            // random per process start
	Name     string        `json:"name,omitempty"`      // the controller's configured name
	Term     uint64        `json:"term,omitempty"`      // the lease term it holds
	SongsURL string        `json:"songs_url,omitempty"` // GET SongsURL+sha256 fetches a song (Range allowed)
	Scan     *ScanProgress `json:"scan,omitempty"`      // the last scan of the music folders, while one runs and after
}

// ScanProgress is how far a scan of the music folders got: it walks the
// folders (Seen files found), then reads the Total files that are new or
// changed (TotalBytes), Files of them (Bytes) so far. Scans are numbered
// from 1 since the controller started; the scan command answers with the
// number of the scan it starts.
type ScanProgress struct {
	Number     int   `json:"number"`
	Scanning   bool  `json:"scanning"`
	Done       bool  `json:"done,omitempty"` // finished; Scanning is then false
	Seen       int   `json:"seen"`
	Files      int   `json:"files"`
	Total      int   `json:"total"`
	Bytes      int64 `json:"bytes"`
	TotalBytes int64 `json:"total_bytes"`
	// Unavailable lists the music folders this scan could not read: their
	// songs stay as they were (not missing), and each is scanned again as
	// soon as it is back.
	Unavailable []UnavailableFolder `json:"unavailable,omitempty"`
}

// UnavailableFolder is a music folder a scan could not read: a network
// share not mounted (its mount point empty while the index holds files in
// it), its server down, the folder gone. Reason says which, for people.
type UnavailableFolder struct {
	Root   string `json:"root"`
	Reason string `json:"reason"`
}

// Lease is published on LeaseTopic by the controller in charge: retained
// when it claims a term, not retained when it renews. A standby that hears
// no renewal for TTLMs (or sees the holder's last will) claims Term+1; of
// several claims of one term the first the broker delivers wins (every
// subscriber sees the same order), and the winner then publishes a retained
// renewal, which replaces a losing claim retained after its own. Terms are fencing tokens: state stamped
// with a lower term than the lease is ignored.
type Lease struct {
	V          int    `json:"v"`
	Term       uint64 `json:"term"`
	Holder     string `json:"holder"`            // the holder's Instance
	Renewal    bool   `json:"renewal,omitempty"` // only the holder renews; a claim is false
	Name       string `json:"name,omitempty"`
	TTLMs      int64  `json:"ttl_ms"`
	SongsURL   string `json:"songs_url,omitempty"`
	FetchToken string `json:"fetch_token,omitempty"` // speakers serve their cache to requests bearing it
}

// Ack is a speaker's acknowledgement on AckTopic: either of a session state
// it has applied (Session, Term, Seq, with the playlist the state names) or
// of a song it holds verified (Song). The controller answers a command or a
// load once a quorum acknowledged.
type Ack struct {
	V       int    `json:"v"`
	Session string `json:"session,omitempty"`
	Term    uint64 `json:"term,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Song    string `json:"song,omitempty"` // sha256 hex
}

// SpeakerStatus is retained on SpeakerStatusTopic(id).
type SpeakerStatus struct {
	V             int     `json:"v"`
	ID            string  `json:"id"`
	Online        bool    `json:"online"`
	Instance      string  `json:"instance"` // random per process start; a stale last will carries an old one
	Session       string  `json:"session,omitempty"`
	State         string  `json:"state,omitempty"` // Playing, Paused, Stopped, or "buffering"
	Song          string  `json:"song,omitempty"`
	PositionNs    int64   `json:"position_ns,omitempty"`
	Volume        int     `json:"volume"`
	Output        string  `json:"output,omitempty"`
	LatencyNs     int64   `json:"latency_ns,omitempty"`      // output latency accounted for
	ClockOffsetNs int64   `json:"clock_offset_ns"`           // shared minus local clock
	ClockRTTNs    int64   `json:"clock_rtt_ns,omitempty"`    // round trip of the probe in use
	ClockErrorNs  int64   `json:"clock_error_ns,omitempty"`  // bound on the offset error
	ClockDriftPPM float64 `json:"clock_drift_ppm,omitempty"` // the local clock's rate error against the shared clock
	RTTP99Ns      int64   `json:"rtt_p99_ns,omitempty"`      // 99th percentile of recent probe round trips: how late a command may arrive
	Error         string  `json:"error,omitempty"`           // why the speaker is silent, if it is
	PeerURL       string  `json:"peer_url,omitempty"`        // GET PeerURL+sha256 with the lease's fetch token serves a cached song
	CalibrationNs int64   `json:"calibration_ns"`            // output latency calibration in effect (see CmdCalibrate)
	// CacheNoRoom says why the song cache found no room on its disk for a
	// song it fetched (other files fill the disk; evicting every song the
	// timeline does not need was not enough): the speaker retries with
	// backoff. "" once a fetch found room.
	CacheNoRoom string `json:"cache_no_room,omitempty"`
}

// Announcement is published (not retained, QoS 1) on AnnounceTopic(session)
// by the lease holder for an announce request: every speaker of the session
// plays the chime from shared instant AtNs, its music ducked meanwhile, so
// all rooms chime together.
type Announcement struct {
	V     int    `json:"v"`
	Term  uint64 `json:"term"`  // fencing, as in SessionState
	ID    string `json:"id"`    // unique per announcement, for logs and duplicates
	AtNs  int64  `json:"at_ns"` // shared clock, Unix ns
	Text  string `json:"text,omitempty"`
	Sound string `json:"sound"` // SoundChime
}

// SoundChime is the two-tone chime announcements play.
const SoundChime = "chime"

// ClockRequest is a speaker's probe: T1 is its local clock at sending, Unix ns.
type ClockRequest struct {
	V  int    `json:"v"`
	ID uint64 `json:"id"`
	T1 int64  `json:"t1"`
}

// ClockResponse is the time master's answer: T2 when it received the probe,
// T3 when it answered, both on the shared clock.
type ClockResponse struct {
	V  int    `json:"v"`
	ID uint64 `json:"id"`
	T1 int64  `json:"t1"`
	T2 int64  `json:"t2"`
	T3 int64  `json:"t3"`
}

// ClockBase ties the time master's shared clock to its wall clock: when the
// wall clock read WallNs, the shared clock read SharedNs. The shared clock
// runs on the master's monotonic clock, so steps of the wall clock do not
// move it; the master publishes its base retained on ClockBaseTopic when it
// starts and whenever its wall clock stepped, and a master starting again
// (or taking over) continues the shared clock from it: shared = wall now +
// SharedNs - WallNs.
type ClockBase struct {
	V        int   `json:"v"`
	SharedNs int64 `json:"shared_ns"`
	WallNs   int64 `json:"wall_ns"`
}

// Encode marshals a message. Messages are plain structs, so it cannot fail
// short of a programming error, which it panics on.
func Encode(msg any) []byte {
	b, err := json.Marshal(msg)
	if err != nil {
		panic(fmt.Sprintf("protocol: encode %T: %v", msg, err))
	}
	return b
}

// Decode unmarshals a non-request message of type T and checks its version.
// Unknown fields are ignored, for forward compatibility.
func Decode[T any, P interface {
	*T
	version() int
}](b []byte) (T, error) {
	var msg T
	if len(b) > MaxPayload {
		return msg, fmt.Errorf("payload of %d bytes exceeds %d", len(b), MaxPayload)
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		return msg, fmt.Errorf("malformed %T: %w", msg, err)
	}
	if v := P(&msg).version(); v != Version {
		return msg, fmt.Errorf("unsupported version %d of %T (want %d)", v, msg, Version)
	}
	return msg, nil
}

func (m *SessionState) version() int     { return m.V }
func (m *Playlist) version() int         { return m.V }
func (m *Reply) version() int            { return m.V }
func (m *ControllerStatus) version() int { return m.V }
func (m *SpeakerStatus) version() int    { return m.V }
func (m *ClockRequest) version() int     { return m.V }
func (m *ClockResponse) version() int    { return m.V }
func (m *ClockBase) version() int        { return m.V }
func (m *Lease) version() int            { return m.V }
func (m *SessionInfo) version() int      { return m.V }
func (m *Assignment) version() int       { return m.V }
func (m *Ack) version() int              { return m.V }
func (m *Announcement) version() int     { return m.V }
func (m *Song) version() int             { return Version } // Song carries no "v": it is a library record

// ErrUnknownCommand is wrapped by DecodeRequest when cmd is not one of allowed.
var ErrUnknownCommand = errors.New("unknown command")

// DecodeRequest parses a request strictly: unknown fields and wrong types are
// errors, so a typo gets an error reply instead of being ignored. allowed is
// the command set of the topic it arrived on. On error the returned Request
// still carries whatever of cmd, req_id and reply_to could be read, so the
// error can be replied to.
func DecodeRequest(b []byte, allowed []string) (Request, error) {
	var req Request
	if len(b) > MaxPayload {
		return req, fmt.Errorf("payload of %d bytes exceeds %d", len(b), MaxPayload)
	}
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		salvageEnvelope(b, &req)
		return req, fmt.Errorf("malformed request: %w", err)
	}
	if dec.More() {
		return req, errors.New("malformed request: trailing data after the JSON object")
	}
	if req.V != 0 && req.V != Version {
		return req, fmt.Errorf("unsupported version %d (want %d)", req.V, Version)
	}
	for _, c := range allowed {
		if req.Cmd == c {
			return req, nil
		}
	}
	if req.Cmd == "" {
		return req, errors.New("missing cmd")
	}
	return req, fmt.Errorf("%w %q (this topic takes: %v)", ErrUnknownCommand, req.Cmd, allowed)
}

// salvageEnvelope reads cmd, req_id and reply_to from a request that failed
// strict decoding, each only if it is a string.
func salvageEnvelope(b []byte, req *Request) {
	var loose map[string]json.RawMessage
	if json.Unmarshal(b, &loose) != nil {
		return
	}
	for key, dst := range map[string]*string{"cmd": &req.Cmd, "req_id": &req.ReqID, "reply_to": &req.ReplyTo} {
		var s string
		if raw, ok := loose[key]; ok && json.Unmarshal(raw, &s) == nil {
			*dst = s
		}
	}
}

// Position is a point in a song. In JSON it is a number of seconds or a
// string "m:ss", "h:mm:ss" or "s", each with optional fractional seconds.
type Position time.Duration

func (p *Position) UnmarshalJSON(b []byte) error {
	var secs float64
	if err := json.Unmarshal(b, &secs); err == nil {
		d, err := secondsToDuration(secs)
		*p = Position(d)
		return err
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("position: want seconds or \"m:ss\"")
	}
	d, err := ParsePosition(s)
	*p = Position(d)
	return err
}

func (p Position) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(p).Seconds())
}
