package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tutti-audio/tutti/protocol"
)

// maxSearchQuery bounds a search query, in bytes: each word is a LIKE
// pattern matched against every song.
const maxSearchQuery = 200

// maxPageBytes is how much of a reply a page of songs may take: well under
// protocol.MaxPayload, so the reply always fits. A page holds MaxSearchPage
// songs unless they are long enough to stop it here first.
const maxPageBytes = protocol.MaxPayload / 2

// search answers one page of the songs matching req.Query.
func (c *Controller) search(req protocol.Request) (protocol.SearchResult, error) {
	words := strings.Fields(req.Query)
	switch {
	case len(words) == 0:
		return protocol.SearchResult{}, errors.New("search needs a query")
	case len(req.Query) > maxSearchQuery:
		return protocol.SearchResult{}, fmt.Errorf("search query longer than %d bytes", maxSearchQuery)
	case req.Offset < 0 || req.Limit < 0:
		return protocol.SearchResult{}, errors.New("search: offset and limit are at least 0")
	}
	limit := req.Limit
	if limit == 0 || limit > protocol.MaxSearchPage {
		limit = protocol.MaxSearchPage
	}
	songs, total, err := c.store.searchSongs(words, req.Offset, limit)
	if err != nil {
		return protocol.SearchResult{}, err
	}
	return protocol.SearchResult{Songs: fitPage(songs), Offset: req.Offset, Total: total}, nil
}

// fitPage returns the songs from the start that fit in maxPageBytes.
func fitPage(songs []protocol.Song) []protocol.Song {
	size := 0
	for i, s := range songs {
		b, _ := json.Marshal(s)
		if size += len(b) + 1; size > maxPageBytes {
			return songs[:i]
		}
	}
	return songs
}
