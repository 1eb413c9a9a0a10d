package frame_test

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mewkiz/flac/frame"
	"github.com/mewkiz/flac/internal/bufseekio"
)

// fuzzFrames is how many frames FuzzFrameParse parses of an input.
const fuzzFrames = 4

// FuzzFrameParse parses frames of arbitrary bytes three ways: a byte at a
// time (a plain reader), and read ahead from the buffers of a bufio.Reader
// and of the seekable reader flac.NewSeek uses, both tiny so that frames
// span many refills. Bad input must be an error, never a panic or a hang,
// and the three must agree on every frame, its samples and where it ends.
func FuzzFrameParse(f *testing.F) {
	paths, err := filepath.Glob("../testdata/exact/*.flac")
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		frames := data[framesStart(data):]
		f.Add(frames[:min(len(frames), 4096)])
	}
	f.Fuzz(checkFrames)
}

// checkFrames parses fuzzFrames frames of data the three ways and compares
// them.
func checkFrames(t *testing.T, data []byte) {
	{
		exact := bytes.NewReader(data)
		behindBuffered := bytes.NewReader(data)
		buffered := bufio.NewReaderSize(behindBuffered, 16)
		seekable := bufseekio.NewReadSeekerSize(bytes.NewReader(data), 16)
		for i := range fuzzFrames {
			want, wantErr := parse(exact)
			for name, r := range map[string]io.Reader{"bufio": buffered, "bufseekio": seekable} {
				got, err := parse(r)
				if (err == nil) != (wantErr == nil) {
					t.Fatalf("frame %d, %s: error %v; a byte at a time: %v", i, name, err, wantErr)
				}
				if err == nil && !reflect.DeepEqual(got, want) {
					t.Fatalf("frame %d, %s: parsed %+v; a byte at a time: %+v", i, name, got, want)
				}
			}
			if wantErr != nil {
				return
			}
			left := exact.Len()
			if at := buffered.Buffered() + behindBuffered.Len(); at != left {
				t.Fatalf("frame %d: bufio left %d bytes; a byte at a time: %d", i, at, left)
			}
			if at, _ := seekable.Seek(0, io.SeekCurrent); int(at) != len(data)-left {
				t.Fatalf("frame %d: bufseekio at %d; a byte at a time: %d", i, at, len(data)-left)
			}
		}
	}
}

// parsed is what a test compares of a parsed frame.
type parsed struct {
	Header  frame.Header
	Samples [][]int32
}

func parse(r io.Reader) (parsed, error) {
	f, err := frame.Parse(r)
	if err != nil {
		return parsed{}, err
	}
	p := parsed{Header: f.Header}
	for _, s := range f.Subframes {
		p.Samples = append(p.Samples, s.Samples)
	}
	return p, nil
}

// framesStart is the offset of the first frame of a FLAC file: after "fLaC"
// and the metadata blocks.
func framesStart(data []byte) int {
	off := 4
	for {
		last := data[off]&0x80 != 0
		off += 4 + (int(data[off+1])<<16 | int(data[off+2])<<8 | int(data[off+3]))
		if last {
			return off
		}
	}
}
