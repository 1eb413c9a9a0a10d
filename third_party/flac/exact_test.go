package flac_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"os"
	"testing"

	"github.com/mewkiz/flac"
	"github.com/mewkiz/flac/frame"
)

// upstreamDecodes is the SHA-256 of what flac v1.0.12, unpatched, decodes of
// the files in testdata/exact (frameDigest: every frame's header and every
// sample of its subframes). The files are made by flac 1.4.2 from a song of
// eight parts (independent channels, equal channels, one silent, nearly
// equal, opposite, a burst of full-scale noise, silence, samples with their
// low bits zero): levels -0 to -8 at 16 bits stereo; -0, -5, -8 at 24 bits
// stereo and 16 bits mono; 24 bits mono; block sizes 16, 192, 1000 and
// 4607; LPC order 32 with partition order 8; an exhaustive search with
// precision search; no mid-side; 48 kHz. s16_stereo_variable.flac is a
// variable-block-size stream: frames of 192 and 4096 samples of the
// same song, numbered by their first sample.
var upstreamDecodes = []struct {
	file string
	sha  string
}{
	{"s16_mono_l0.flac", "c1f4854cc9e21c1ca5e7ec102eda5d999c1b9d1d50f1dbbea57b72e5cc478017"},
	{"s16_mono_l5.flac", "5d148f4b67ff7c56f9471b818f8b3a838485f9da47d46529b54e9125e133ba5c"},
	{"s16_mono_l8.flac", "d192bdfbe8fe436bce8788061328a91d479ed6319fb3528fadf995797c9fa3f2"},
	{"s16_stereo_48k.flac", "7f97687aecf9ea4af3a9d31c7b8008d4b02cfee7042650f1a04382482383d22d"},
	{"s16_stereo_b1000.flac", "23767e2c10ac065e4dd0f97737fcd74e014c5bc3252bae3c7dddb1ede5158ea4"},
	{"s16_stereo_b16.flac", "61cd1475fbfe5ddebdce5aba7c3dad63dbd4ee836fa9a1537dbaf1204fb9fadc"},
	{"s16_stereo_b192.flac", "234ec5f0ae8df14c0d0c59899d1cde2b35d39b2f5bd9354ec8af624b76b6b1b2"},
	{"s16_stereo_b4607.flac", "b0ab618d3c078717f9e9d46cea6d40315f602c0498f0aac0e6791cc706a36536"},
	{"s16_stereo_exhaustive.flac", "4b29e8a89c6239b20769017509b1cc58154f7bac3cebfa64f37f06c62ef2c3f6"},
	{"s16_stereo_l0.flac", "4092669c256a89c12cdb04b59393d80f50534e7c3fadc80641bb92340abcc7fc"},
	{"s16_stereo_l1.flac", "7a24df95eecd5627cd04d87c27b587adf6aee076c838287bd351774f78a30552"},
	{"s16_stereo_l2.flac", "9cee420dce0214ea078893bd3abeeacfd773355a19479383aed6bd999d23e0a0"},
	{"s16_stereo_l3.flac", "3062fcf27bc4c6841cb6d6914c788c32df68e6223d8ac64f29440812e60b2748"},
	{"s16_stereo_l4.flac", "acbe52a036bb5f6c9c1fffab1b8c3f3dc7e0e447b9a636fdfb685d4bec517015"},
	{"s16_stereo_l5.flac", "27a84f84ad9211646c35784f699b6e1a27a03b29ae6246e0492ab1f2e2aa19d6"},
	{"s16_stereo_l6.flac", "8a13eb23f3455b6031a16a313018e148d12bec6aeb00dedb7010b7a259a30ecc"},
	{"s16_stereo_l7.flac", "b7d70b54961214148beddd60f2924b2b5040c4cdc7a598580c8712b5022032fc"},
	{"s16_stereo_l8.flac", "2f759720d7bda58df87040a8f0609afa0f8fb56c26945103be792eb072722da2"},
	{"s16_stereo_nomidside.flac", "6290682dcc701a2f3d0a68c1d857daee2b91206517b1acda161d23f75a41d40c"},
	{"s16_stereo_variable.flac", "7525e895dc1b13506f62c625ff4ecf320d19a24872ba0216f7f61421199c8d14"},
	{"s24_mono_l8.flac", "3c92b514467de6627160c30981a9346bb8d0b0dd9d7cf27893e06c5ebeb13087"},
	{"s24_stereo_l0.flac", "ab1b31463bd306ad88589f9da95890f43bbd07b0a1ce9f7fdded470fed24156b"},
	{"s24_stereo_l5.flac", "c26ac964670fe884ec3f287d7dece8ad8b6fbf54b37066a78f01f9002ac92a71"},
	{"s24_stereo_l8.flac", "1e3fd3de422459e0437dee1933232dae3b68c73ed97235b61827ec4a8f717736"},
	{"s24_stereo_lpc32.flac", "661f5ff8b218d571deb5a629e42d6a96eb66eeb9c982976fd04bad0ee1a55dad"},
}

func TestDecodesAsUpstream(t *testing.T) {
	open := map[string]func([]byte) (*flac.Stream, error){
		"New":     func(b []byte) (*flac.Stream, error) { return flac.New(bytes.NewReader(b)) },
		"NewSeek": func(b []byte) (*flac.Stream, error) { return flac.NewSeek(bytes.NewReader(b)) },
		"Parse":   func(b []byte) (*flac.Stream, error) { return flac.Parse(bytes.NewReader(b)) },
	}
	seen := map[string]int{}
	for _, want := range upstreamDecodes {
		data, err := os.ReadFile("testdata/exact/" + want.file)
		if err != nil {
			t.Fatal(err)
		}
		for name, open := range open {
			stream, err := open(data)
			if err != nil {
				t.Fatalf("%s %s: %v", name, want.file, err)
			}
			h := sha256.New()
			for {
				f, err := stream.ParseNext()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s %s: %v", name, want.file, err)
				}
				frameDigest(h, f)
				countFeatures(seen, f)
			}
			if got := fmt.Sprintf("%x", h.Sum(nil)); got != want.sha {
				t.Errorf("%s %s: decoded SHA-256 %s; upstream: %s", name, want.file, got, want.sha)
			}
		}
	}
	// The corpus must keep exercising every path of the decoder.
	for _, feature := range []string{
		"channels 0", "channels 1", "channels 8", "channels 9", "channels 10",
		"pred 0", "pred 1", "pred 2", "pred 3", "rice 0", "rice 1", "wasted", "variable",
	} {
		if seen[feature] == 0 {
			t.Errorf("no frame of the corpus has %s", feature)
		}
	}
}

// frameDigest adds f's header fields and decoded samples to h.
func frameDigest(h hash.Hash, f *frame.Frame) {
	fields := []any{f.HasFixedBlockSize, f.BlockSize, f.SampleRate, uint8(f.Channels), f.BitsPerSample, f.Num}
	for _, s := range f.Subframes {
		fields = append(fields, uint8(s.Pred), int32(s.Order), uint32(s.Wasted), s.Samples)
	}
	for _, v := range fields {
		if err := binary.Write(h, binary.LittleEndian, v); err != nil {
			panic(err)
		}
	}
}

// countFeatures counts the coding features f uses.
func countFeatures(seen map[string]int, f *frame.Frame) {
	seen[fmt.Sprint("channels ", uint8(f.Channels))]++
	if !f.HasFixedBlockSize {
		seen["variable"]++
	}
	for _, s := range f.Subframes {
		seen[fmt.Sprint("pred ", uint8(s.Pred))]++
		if s.Wasted > 0 {
			seen["wasted"]++
		}
		if s.Pred == frame.PredFixed || s.Pred == frame.PredFIR {
			seen[fmt.Sprint("rice ", uint8(s.ResidualCodingMethod))]++
		}
	}
}

// BenchmarkDecode decodes a 16-bit stereo song of 0.77 s encoded at -5
// (flac's default), from memory.
func BenchmarkDecode(b *testing.B) {
	data, err := os.ReadFile("testdata/exact/s16_stereo_l5.flac")
	if err != nil {
		b.Fatal(err)
	}
	var seconds float64
	b.ReportAllocs()
	for b.Loop() {
		stream, err := flac.New(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := stream.ParseNext(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		seconds += float64(stream.Info.NSamples) / float64(stream.Info.SampleRate)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/seconds, "ns/audio-s")
}
