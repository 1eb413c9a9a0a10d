package mp3

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"testing"
)

// upstreamDecodes is what go-mp3 v0.3.4, unpatched, decodes of the files
// in testdata (made by lame 3.100 from a tune with bursts of noise and
// clicks, for short blocks and the bit reservoir): the number of bytes and
// their SHA-256. The patches must leave every sample as it was.
var upstreamDecodes = []struct {
	file  string
	bytes int64
	sha   string
}{
	{"joint128.mp3", 400896, "3ea458d7223be8b11ecd1b7e10076ebb628136248809f8251ec8bccaed1c9cd1"},
	{"mono64.mp3", 400896, "f4d71679119b99115b3e7a92b01d2a21318a8f197a1aa9132da6ba70fc09bfa5"},
	{"mpeg2_48.mp3", 200448, "12b4b3005a915842a7e351b1ac52774fc4c0c93b3da8e46d81614837c35ea0ed"},
	{"stereo256.mp3", 400896, "25573de74b1587109cd80b21e32ede27073aabdd03fc66dc8da01c3a4b6d70f5"},
	{"vbr.mp3", 400896, "6e4765e9fa9edf5e2b32429d4f8716de73b42c5ebb3b4c8f3d4ec090dbbe100f"},
}

func TestDecodesAsUpstream(t *testing.T) {
	for _, want := range upstreamDecodes {
		t.Run(want.file, func(t *testing.T) {
			f, err := os.Open("testdata/" + want.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			d, err := NewDecoder(f)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			n, err := io.Copy(h, d)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%x", h.Sum(nil)); n != want.bytes || got != want.sha {
				t.Errorf("decoded %d bytes, SHA-256 %s; upstream: %d bytes, %s", n, got, want.bytes, want.sha)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	data, err := os.ReadFile("testdata/joint128.mp3")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d, err := NewDecoder(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, d); err != nil {
			b.Fatal(err)
		}
	}
}
