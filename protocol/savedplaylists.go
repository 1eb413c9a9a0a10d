package protocol

// SavedPlaylist is retained on SavedPlaylistTopic(ID) by the lease holder: a
// household's saved playlist (anyone who may use the library may change
// it). Songs are hashes only, so the message stays small whatever their
// tags; a song the library no longer holds stays in it, shown as missing
// and skipped when the playlist is loaded into a session.
type SavedPlaylist struct {
	V       int      `json:"v"`
	ID      string   `json:"id"` // ValidPlaylistID; its link is PlaylistURI(ID)
	Title   string   `json:"title"`
	Term    uint64   `json:"term"`    // the lease term of the controller that changed it last
	Version uint64   `json:"version"` // increases with every change, across terms
	Songs   []string `json:"songs"`   // sha256 hex, in order
}

func (m *SavedPlaylist) version() int { return m.V }

// Bounds of saved playlists. A saved playlist of MaxSavedPlaylistSongs
// hashes takes about 67 KB, well inside MaxPayload, and loads into a session
// in one enqueue (a session playlist holds as many entries). Every saved
// playlist is a retained message the lease holder publishes again at each
// connect: MaxSavedPlaylists of them take at most about 33 MB of the
// broker's memory, a few MB in practice.
const (
	MaxSavedPlaylistSongs = 1000
	MaxSavedPlaylists     = 500
)

// SavedPlaylistInfo is one saved playlist as the playlists command lists it.
type SavedPlaylistInfo struct {
	ID      string `json:"id"`
	URI     string `json:"uri"` // tutti:playlist:<id>
	Title   string `json:"title"`
	Songs   int    `json:"songs"`
	Version uint64 `json:"version"`
}

// SavedPlaylistsPage is the playlists command's result: one page of the
// saved playlists by title; ask again with Offset+len(Playlists) for the next.
type SavedPlaylistsPage struct {
	Playlists []SavedPlaylistInfo `json:"playlists"`
	Offset    int                 `json:"offset"`
	Total     int                 `json:"total"`
}

// MaxPlaylistsPage is the most saved playlists one playlists reply lists:
// with titles of MaxSongText, even escaped as JSON, a page stays well below
// MaxPayload.
const MaxPlaylistsPage = 100

// SavedPlaylistPage is the playlist command's result: the saved playlist
// and one page of its songs (at most MaxSearchPage, as search pages are:
// the records are the same), in order.
type SavedPlaylistPage struct {
	Playlist SavedPlaylistInfo `json:"playlist"` // its Songs counts them all
	Songs    []SavedSong       `json:"songs"`
	Offset   int               `json:"offset"` // index of Songs[0] in the playlist
}

// SavedSong is one song of a saved playlist: its library record, or only
// its hash (SHA256, URI) with Missing set when the library lacks it.
// Missing songs, whose record is gone or whose file has gone from the music
// folders, are skipped when the playlist is loaded into a session.
type SavedSong struct {
	Index int `json:"index"`
	Song
}
