package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tutti-audio/tutti/protocol"
)

// maxSearchQuery bounds a search query, in bytes: a few dozen words, each a
// term the full-text index looks up.
const maxSearchQuery = 200

// maxPageBytes is how much of a reply a page of songs, artists, albums or
// genres may take: well under protocol.MaxPayload, so the reply always
// fits. A page holds as many as asked unless they are long enough to stop
// it here first.
const maxPageBytes = protocol.MaxPayload / 2

// search answers one page of the songs matching req.Query.
func (c *Controller) search(req protocol.Request) (protocol.SearchResult, error) {
	words := strings.Fields(req.Query)
	switch {
	case len(words) == 0:
		return protocol.SearchResult{}, errors.New("search needs a query")
	case len(req.Query) > maxSearchQuery:
		return protocol.SearchResult{}, fmt.Errorf("search query longer than %d bytes", maxSearchQuery)
	}
	p, err := pageOf(req, protocol.MaxSearchPage)
	if err != nil {
		return protocol.SearchResult{}, err
	}
	songs, total, err := c.store.searchSongs(words, p.offset, p.limit)
	if err != nil {
		return protocol.SearchResult{}, err
	}
	return protocol.SearchResult{Songs: fitPage(songs), Offset: req.Offset, Total: total}, nil
}

// pageOf is the page req asks for: at most most, which is also the
// default.
func pageOf(req protocol.Request, most int) (page, error) {
	if req.Offset < 0 || req.Limit < 0 {
		return page{}, fmt.Errorf("%s: offset and limit are at least 0", req.Cmd)
	}
	limit := req.Limit
	if limit == 0 || limit > most {
		limit = most
	}
	return page{offset: req.Offset, limit: limit}, nil
}

// fitPage returns the items from the start that fit in maxPageBytes.
func fitPage[T any](items []T) []T {
	size := 0
	for i, item := range items {
		b, _ := json.Marshal(item)
		if size += len(b) + 1; size > maxPageBytes {
			return items[:i]
		}
	}
	return items
}
