package controller

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"os"
	"time"

	"github.com/dhowden/tag"

	"github.com/tutti-audio/tutti/protocol"
)

// Cover art: GET protocol.ArtPath+sha256 serves the picture embedded in a
// song's file, or else one drawn from the song's hash, so every song has a
// cover. No token is needed: dashboards show covers and hold none, and only
// pictures are served here, never audio.

// maxArtScan bounds how much of a song file is read looking for its
// picture: tags sit at the start of a file, and covers take a few hundred
// KiB at most. A picture beyond it counts as none.
const maxArtScan = 8 << 20

// maxArtReaders bounds the art requests reading song files at once, and so
// the memory they take (up to about maxArtScan each).
const maxArtReaders = 4

// artTypes are the picture types served as they are; a song embedding
// anything else gets a drawn cover.
var artTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// artServer serves cover art from the library's files.
type artServer struct {
	lib     *library
	log     *slog.Logger
	readers chan struct{} // a slot per request reading a file
}

func newArtServer(lib *library, log *slog.Logger) *artServer {
	return &artServer{lib: lib, log: log, readers: make(chan struct{}, maxArtReaders)}
}

// get serves a song's cover. Bad hashes are answered like unknown songs:
// there is no such cover.
func (a *artServer) get(w http.ResponseWriter, r *http.Request) {
	sha := r.PathValue("sha")
	if !protocol.IsSongHash(sha) {
		writeError(w, http.StatusNotFound, "no cover art: want "+protocol.ArtPath+"<sha256 of a song, 64 lowercase hex digits>")
		return
	}
	if _, err := a.lib.store.song(sha); err != nil {
		writeError(w, http.StatusNotFound, "unknown song "+sha)
		return
	}
	select {
	case a.readers <- struct{}{}:
		defer func() { <-a.readers }()
	case <-r.Context().Done():
		return
	}
	picture, contentType, err := embeddedPicture(a.lib.filePath(sha))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A standby's mirror may not have fetched it yet; the cover found
		// later must not be hidden by a drawn one cached for a year.
		writeError(w, http.StatusNotFound, "song file not here (yet) "+sha)
		return
	case err != nil:
		a.log.Warn("cover art: cannot read song file", "sha256", sha, "err", err)
		writeError(w, http.StatusInternalServerError, "cannot read the song file")
		return
	}
	etag := `"` + sha + `-embedded"`
	cache := "public, max-age=31536000, immutable" // a song's bytes never change
	if picture == nil {
		// The folder's image may change: browsers check it again.
		picture, contentType, etag = folderPicture(a.lib.store, sha)
		cache = "no-cache"
	}
	if picture == nil {
		if picture, err = drawCover(sha); err != nil {
			a.log.Error("cover art: drawing failed", "sha256", sha, "err", err)
			writeError(w, http.StatusInternalServerError, "cannot draw a cover")
			return
		}
		contentType, etag = "image/png", `"`+sha+`-generated"`
		cache = "public, max-age=31536000, immutable" // drawn from the hash alone
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", cache)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(picture))
}

// embeddedPicture returns the picture embedded in the tags of the song file
// at path and its type, or nil when it has none that a browser shows. It
// reads at most maxArtScan bytes of the file. Only failing to open the file
// is an error: bad tags mean no picture.
func embeddedPicture(path string) (picture []byte, contentType string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, "", err
	}
	// The tag parser trusts lengths in the file; hostile tags must cost no
	// more than a drawn cover.
	defer func() {
		if p := recover(); p != nil {
			picture, contentType, err = nil, "", nil
		}
	}()
	meta, err := tag.ReadFrom(io.NewSectionReader(f, 0, min(info.Size(), maxArtScan)))
	if err != nil || meta.Picture() == nil || len(meta.Picture().Data) == 0 {
		return nil, "", nil
	}
	picture = meta.Picture().Data
	contentType = http.DetectContentType(picture)
	if !artTypes[contentType] {
		return nil, "", nil
	}
	return picture, contentType, nil
}

// coverSize is the width and height of a drawn cover, in pixels.
const coverSize = 256

// drawCover draws the cover of a song without one: a diagonal gradient
// between two colours, with a few soft light discs over it, all chosen by
// the song's hash, so a song always gets the same cover and songs look
// different from each other.
func drawCover(sha string) ([]byte, error) {
	h, err := hex.DecodeString(sha)
	if err != nil || len(h) < 32 {
		return nil, fmt.Errorf("bad song hash %q", sha)
	}
	hue := float64(uint16(h[0])<<8|uint16(h[1])) / 65536 * 360
	from := hsl(hue, 0.55+float64(h[2])/255*0.2, 0.42+float64(h[3])/255*0.1)
	to := hsl(hue+30+float64(h[4])/255*60, 0.55+float64(h[5])/255*0.2, 0.55+float64(h[6])/255*0.1)
	angle := float64(h[7]) / 256 * 2 * math.Pi
	dx, dy := math.Cos(angle), math.Sin(angle)
	type disc struct{ x, y, r, alpha float64 }
	discs := make([]disc, 3)
	for i := range discs {
		b := h[8+4*i:]
		discs[i] = disc{
			x:     float64(b[0]) / 255 * coverSize,
			y:     float64(b[1]) / 255 * coverSize,
			r:     coverSize * (0.15 + float64(b[2])/255*0.35),
			alpha: 0.10 + float64(b[3])/255*0.15,
		}
	}
	img := image.NewNRGBA(image.Rect(0, 0, coverSize, coverSize))
	half := coverSize / 2.0
	// The gradient's parameter runs over [-reach, reach] across the image.
	reach := half * (math.Abs(dx) + math.Abs(dy))
	for y := range coverSize {
		for x := range coverSize {
			px, py := float64(x)+0.5, float64(y)+0.5
			t := ((px-half)*dx + (py-half)*dy + reach) / (2 * reach)
			r, g, b := mix(from, to, t)
			for _, d := range discs {
				dist := math.Hypot(px-d.x, py-d.y)
				// Full light inside, fading out over the disc's last 8 pixels.
				if edge := (d.r - dist) / 8; edge > 0 {
					a := d.alpha * min(edge, 1)
					r, g, b = r+(1-r)*a, g+(1-g)*a, b+(1-b)*a
				}
			}
			img.SetNRGBA(x, y, color.NRGBA{R: channel(r), G: channel(g), B: channel(b), A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// rgb is a colour with channels in [0, 1].
type rgb struct{ r, g, b float64 }

// hsl converts hue (degrees), saturation and lightness (both in [0, 1]).
func hsl(hue, s, l float64) rgb {
	hue = math.Mod(hue, 360) / 60
	c := (1 - math.Abs(2*l-1)) * s
	x := c * (1 - math.Abs(math.Mod(hue, 2)-1))
	var r, g, b float64
	switch int(hue) {
	case 0:
		r, g = c, x
	case 1:
		r, g = x, c
	case 2:
		g, b = c, x
	case 3:
		g, b = x, c
	case 4:
		r, b = x, c
	default:
		r, b = c, x
	}
	m := l - c/2
	return rgb{r + m, g + m, b + m}
}

// mix is the colour a fraction t of the way from a to b.
func mix(a, b rgb, t float64) (r, g, bl float64) {
	return a.r + (b.r-a.r)*t, a.g + (b.g-a.g)*t, a.b + (b.b-a.b)*t
}

func channel(v float64) uint8 { return uint8(math.Round(min(max(v, 0), 1) * 255)) }
