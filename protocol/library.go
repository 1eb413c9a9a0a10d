package protocol

// MaxBrowsePage is the most artists, albums or genres one browse reply
// carries when the request names no smaller limit: a screenful or a few,
// and few requests for a household's few hundred artists. The controller
// also stops a page short of MaxPayload, whatever the names' lengths.
// (tracks answers pages of songs, at most MaxSearchPage.)
const MaxBrowsePage = 200

// Artist is one artist of the library as browse lists it. Songs are listed
// under their album artist when they have one (a compilation's songs stay
// under "Various Artists"), else under their artist.
type Artist struct {
	ID     string `json:"id"`
	URI    string `json:"uri"` // ArtistURI(ID): for albums, tracks, enqueue
	Name   string `json:"name"`
	Albums int    `json:"albums"` // albums holding its songs
	Songs  int    `json:"songs"`
}

// Album is one album of the library as browse lists it: the songs sharing
// an album title and album artist (their artist when they have none).
type Album struct {
	ID        string `json:"id"`
	URI       string `json:"uri"` // AlbumURI(ID): for tracks, enqueue
	Title     string `json:"title"`
	Artist    string `json:"artist"`     // its album artist
	ArtistURI string `json:"artist_uri"` // ArtistURI of that artist
	Year      int    `json:"year,omitempty"`
	Songs     int    `json:"songs"`
	Cover     string `json:"cover,omitempty"`    // URL of its first song's art (ArtURL); "" when unknown
	AddedNs   int64  `json:"added_ns,omitempty"` // when its latest song entered the library (Unix ns)
}

// Genre is one genre of the library and how many songs it holds.
type Genre struct {
	Name  string `json:"name"`
	Songs int    `json:"songs"`
}

// ArtistsResult is artists' result: one page of the artists by name; ask
// again with Offset+len(Artists) for the next.
type ArtistsResult struct {
	Artists []Artist `json:"artists"`
	Offset  int      `json:"offset"`
	Total   int      `json:"total"`
}

// AlbumsResult is the result of albums (by artist, then title) and of
// recent (the most recently added first): one page.
type AlbumsResult struct {
	Albums []Album `json:"albums"`
	Offset int     `json:"offset"`
	Total  int     `json:"total"`
}

// GenresResult is genres' result: one page of the genres by name.
type GenresResult struct {
	Genres []Genre `json:"genres"`
	Offset int     `json:"offset"`
	Total  int     `json:"total"`
}

// LinkResult is lookup's result for an album or artist link: the album or
// the artist, and the first page of its songs in tracks' order (Total
// says how many it has; tracks pages through them).
type LinkResult struct {
	Album  *Album  `json:"album,omitempty"`
	Artist *Artist `json:"artist,omitempty"`
	Songs  []Song  `json:"songs"`
	Total  int     `json:"total"`
}
