package flac_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/mewkiz/flac"
)

// TestParseNextAllocatesNothing: once the stream's frame has buffers for
// its block size, parsing a frame allocates nothing (the frame's samples,
// coefficients and partitions are reused, the CRCs are computed in place).
func TestParseNextAllocatesNothing(t *testing.T) {
	data, err := os.ReadFile("testdata/exact/s16_stereo_b192.flac")
	if err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]func() (*flac.Stream, error){
		"New":     func() (*flac.Stream, error) { return flac.New(bytes.NewReader(data)) },
		"NewSeek": func() (*flac.Stream, error) { return flac.NewSeek(bytes.NewReader(data)) },
	} {
		stream, err := open()
		if err != nil {
			t.Fatal(err)
		}
		for range 20 { // the frame's buffers grow to the stream's needs
			if _, err := stream.ParseNext(); err != nil {
				t.Fatal(err)
			}
		}
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := stream.ParseNext(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.2f allocations per frame", name, allocs)
		}
	}
}
