package oggopus

import (
	"bytes"
	"os"
	"testing"
)

// FuzzDecode feeds New, Stream and Seek arbitrary bytes: they must end in
// an error or a bounded stream, never panic or hang.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"testdata/tiny.opus", "testdata/tiny-silk.opus"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(100))
	}
	f.Fuzz(func(t *testing.T, b []byte, seekTo uint16) {
		d, err := New(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Every packet decodes to at least one 2.5 ms frame from at least
		// one byte, so a stream lasts no more frames than that allows.
		limit := (len(b) + 1) * maxPacketFrames
		buf := make([][2]float64, 512)
		total := 0
		for {
			n, ok := d.Stream(buf)
			total += n
			if total > limit {
				t.Fatalf("%d frames from %d bytes", total, len(b))
			}
			if !ok {
				break
			}
		}
		if err := d.Seek(int(seekTo) % (d.Len() + 1)); err == nil {
			d.Stream(buf)
		}
	})
}
