package frame_test

import (
	"bytes"
	"crypto/md5"
	"io"
	"testing"

	"github.com/mewkiz/flac"
)

var golden = []struct {
	path string
}{
	{path: "../testdata/love.flac"},
	{path: "../testdata/19875.flac"},
	{path: "../testdata/44127.flac"},
	{path: "../testdata/59996.flac"},
	{path: "../testdata/80574.flac"},
	{path: "../testdata/172960.flac"},
	{path: "../testdata/189983.flac"},
	{path: "../testdata/191885.flac"},
	{path: "../testdata/212768.flac"},
	{path: "../testdata/220014.flac"},
	{path: "../testdata/243749.flac"},
	{path: "../testdata/257344.flac"},

	// IETF test cases.
}

func TestFrameHash(t *testing.T) {
	var zeroHash [md5.Size]byte
	for _, g := range golden {
		t.Run(g.path, func(t *testing.T) {
			stream, err := flac.Open(g.path)
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()

			// Skip frame hash test if no MD5 hash was set in StreamInfo.
			want := stream.Info.MD5sum[:]
			if bytes.Equal(want, zeroHash[:]) {
				t.Skipf("path=%q, skipping frame hash test as no MD5 hash was set in StreamInfo", g.path)
				return
			}

			md5sum := md5.New()
			for frameNum := 0; ; frameNum++ {
				frame, err := stream.ParseNext()
				if err != nil {
					if err == io.EOF {
						break
					}
					t.Errorf("path=%q, frameNum=%d: error while parsing frame; %v", g.path, frameNum, err)
					continue
				}
				frame.Hash(md5sum)
			}
			got := md5sum.Sum(nil)
			// Verify the decoded audio samples by comparing the MD5 checksum that is
			// stored in StreamInfo with the computed one.
			if !bytes.Equal(got, want) {
				t.Errorf("path=%q: MD5 checksum mismatch for decoded audio samples; expected %32x, got %32x", g.path, want, got)
			}
		})
	}
}

func BenchmarkFrameParse(b *testing.B) {
	// The file 151185.flac is a 119.5 MB public domain FLAC file used to
	// benchmark the flac library. Because of its size, it has not been included
	// in the repository, but is available for download at
	//
	//    http://freesound.org/people/jarfil/sounds/151185/
	for i := 0; i < b.N; i++ {
		stream, err := flac.Open("../testdata/benchmark/151185.flac")
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := stream.ParseNext()
			if err != nil {
				if err == io.EOF {
					break
				}
				stream.Close()
				b.Fatal(err)
			}
		}
		stream.Close()
	}
}

func BenchmarkFrameHash(b *testing.B) {
	// The file 151185.flac is a 119.5 MB public domain FLAC file used to
	// benchmark the flac library. Because of its size, it has not been included
	// in the repository, but is available for download at
	//
	//    http://freesound.org/people/jarfil/sounds/151185/
	for i := 0; i < b.N; i++ {
		stream, err := flac.Open("../testdata/benchmark/151185.flac")
		if err != nil {
			b.Fatal(err)
		}
		md5sum := md5.New()
		for {
			frame, err := stream.ParseNext()
			if err != nil {
				if err == io.EOF {
					break
				}
				stream.Close()
				b.Fatal(err)
			}
			frame.Hash(md5sum)
		}
		stream.Close()
		want := stream.Info.MD5sum[:]
		got := md5sum.Sum(nil)
		// Verify the decoded audio samples by comparing the MD5 checksum that is
		// stored in StreamInfo with the computed one.
		if !bytes.Equal(got, want) {
			b.Fatalf("MD5 checksum mismatch for decoded audio samples; expected %32x, got %32x", want, got)
		}
	}
}
