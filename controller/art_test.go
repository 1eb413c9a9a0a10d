package controller

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/protocol"
)

// makeMP3 returns an MP3 file: an ID3v2.3 tag holding an APIC frame with
// picture (none if nil), then frames of silence (MPEG-1 Layer III, 128
// kbit/s, 44.1 kHz, all side information zero).
func makeMP3(picture []byte) []byte {
	var frames []byte
	if picture != nil {
		var apic bytes.Buffer
		apic.WriteByte(0)                  // text encoding: ISO-8859-1
		apic.WriteString("image/png\x00")  // MIME type, as taggers write it even when wrong
		apic.WriteByte(3)                  // picture type: front cover
		apic.WriteString("cover\x00")      // description
		apic.Write(picture)                // picture data
		frames = append(frames, "APIC"...) // frame id
		frames = binary.BigEndian.AppendUint32(frames, uint32(apic.Len()))
		frames = append(frames, 0, 0) // frame flags
		frames = append(frames, apic.Bytes()...)
	}
	var b bytes.Buffer
	b.WriteString("ID3\x03\x00\x00")
	size := len(frames)
	b.Write([]byte{byte(size >> 21 & 0x7f), byte(size >> 14 & 0x7f), byte(size >> 7 & 0x7f), byte(size & 0x7f)}) // syncsafe
	b.Write(frames)
	frame := make([]byte, 417) // 144 * 128000 / 44100
	copy(frame, []byte{0xFF, 0xFB, 0x90, 0x00})
	for range 20 {
		b.Write(frame)
	}
	return b.Bytes()
}

// smallPNG is a 2×2 PNG picture.
func smallPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	img.SetNRGBA(1, 1, color.NRGBA{R: 200, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCoverArt(t *testing.T) {
	srv, lib, _ := newTestSongServer(t)
	put := func(song []byte) string {
		t.Helper()
		sha := hashOf(song)
		if resp, body := do(t, http.MethodPut, srv.URL+"/songs/"+sha, song, "Authorization", authz); resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload: %d %s", resp.StatusCode, body)
		}
		return sha
	}
	picture := smallPNG(t)
	withCover := put(makeMP3(picture))
	withText := put(makeMP3([]byte("not a picture, just text")))
	plain := put(makeWAV(1000, 8000, 3))
	art := func(sha string) string { return srv.URL + protocol.ArtPath + sha }

	// Embedded: served as it is, without a token.
	resp, body := do(t, http.MethodGet, art(withCover), nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, picture) || resp.Header.Get("Content-Type") != "image/png" ||
		resp.Header.Get("ETag") != `"`+withCover+`-embedded"` || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
		t.Fatalf("embedded cover: %d %q %q %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"),
			resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"), len(body))
	}
	resp, _ = do(t, http.MethodGet, art(withCover), nil, "If-None-Match", resp.Header.Get("ETag"))
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET: %d", resp.StatusCode)
	}

	// None, or something that is no picture: a drawn PNG, the same every time.
	drawn := map[string][]byte{}
	for _, sha := range []string{plain, withText} {
		resp, body := do(t, http.MethodGet, art(sha), nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" ||
			resp.Header.Get("ETag") != `"`+sha+`-generated"` {
			t.Fatalf("drawn cover: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("ETag"))
		}
		img, err := png.Decode(bytes.NewReader(body))
		if err != nil || img.Bounds() != image.Rect(0, 0, coverSize, coverSize) {
			t.Fatalf("drawn cover: %v, %v", err, img)
		}
		if _, again := do(t, http.MethodGet, art(sha), nil); !bytes.Equal(again, body) {
			t.Error("drawn cover differs between requests")
		}
		drawn[sha] = body
	}
	if bytes.Equal(drawn[plain], drawn[withText]) {
		t.Error("two songs drew the same cover")
	}
	resp, body = do(t, http.MethodHead, art(plain), nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(drawn[plain])) {
		t.Errorf("HEAD: %d, %d bytes, length %d", resp.StatusCode, len(body), resp.ContentLength)
	}

	// A record whose file is not here yet (a standby's mirror).
	missing := strings.Repeat("ab", 32)
	if err := lib.store.addSong(protocol.Song{SHA256: missing, URI: protocol.SongURI(missing), Title: "x", Format: "mp3"}, 1); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{art(strings.Repeat("0", 64)), art(missing), art(strings.ToUpper(plain)), art("nope"), art("")} {
		if resp, body := do(t, http.MethodGet, url, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
		}
	}
	if resp, _ := do(t, http.MethodPut, art(plain), []byte("x")); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT of a cover: %d", resp.StatusCode)
	}
	// The songs themselves still need the token.
	if resp, _ := do(t, http.MethodGet, srv.URL+"/songs/"+withCover, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("song without token: %d", resp.StatusCode)
	}
}

func TestEmbeddedPictureTypes(t *testing.T) {
	lib := newTestLibrary(t)
	gif := []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;")
	for _, tc := range []struct {
		picture []byte
		want    string
	}{
		{smallPNG(t), "image/png"},
		{gif, "image/gif"},
		{[]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), "image/jpeg"},
		{[]byte("<html><script>alert(1)</script></html>"), ""},
		{nil, ""},
	} {
		path := lib.songPath(hashOf(tc.picture))
		if err := os.WriteFile(path, makeMP3(tc.picture), 0o644); err != nil {
			t.Fatal(err)
		}
		got, contentType, err := embeddedPicture(path)
		if err != nil || contentType != tc.want || tc.want != "" && !bytes.Equal(got, tc.picture) || tc.want == "" && got != nil {
			t.Errorf("%q: %q, %d bytes, %v; want %q", tc.picture, contentType, len(got), err, tc.want)
		}
	}
	// A truncated tag that claims a large frame: no picture, no error.
	truncated := makeMP3(smallPNG(t))[:40]
	path := lib.songPath(hashOf(truncated))
	if err := os.WriteFile(path, truncated, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _, err := embeddedPicture(path); got != nil || err != nil {
		t.Errorf("truncated: %d bytes, %v", len(got), err)
	}
}
