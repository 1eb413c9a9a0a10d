package mp3

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"runtime"
	"testing"
)

// upstreamDecodes is what go-mp3 v0.3.4, unpatched, decodes of the files
// in testdata (made by lame 3.100 from a tune with bursts of noise and
// clicks, for short blocks and the bit reservoir): the number of bytes and
// their SHA-256. The patches must leave every sample as it was. The files
// cover MPEG-1 at 32, 44.1 and 48 kHz and MPEG-2 at 16, 22.05 and 24 kHz;
// CBR from 32 to 320 kbit/s, VBR (-V 0, 5, 9) and ABR; mono, stereo,
// joint and forced mid/side stereo; frames with CRCs and an ID3v2 tag.
//
// Go lets arm64 fuse a multiplication and an addition into one instruction
// (one rounding instead of two), and it does so in upstream's sums: there
// the output differs from amd64's in the last bits, so each file has the
// SHA-256 upstream decodes of it on amd64 and on arm64.
var upstreamDecodes = []struct {
	file            string
	bytes           int64
	sha, shaFusedMA string
}{
	{"abr96.mp3", 267264,
		"e0acc8fa3c57b4bf2491af5897d4c6346d5bbc33ecdd9f9d0c71ba1e13694f8f",
		"8cf17615bf34c4da7ee0eaf94cde37939ed8d16ed1ee4fee56854ecc088a3fb9"},
	{"cbr112_48k.mp3", 396288,
		"f1b79137c9ded495d3062a473ddaf0c19ba0e88e53c5a50007822486a37badac",
		"209c464213a018934ebe6608707c9f3a0f66c043a3dd399292f441a01d238def"},
	{"cbr128_joint_crc.mp3", 364032,
		"5c87b75d11f32078310e2518efb7f06a8cac390d7e0442eacf23735b9f365cc4",
		"8bf266add4333a30e62a76fb93058946b402b1a692b8248fa5a61cbaa6646577"},
	{"cbr192_ms.mp3", 364032,
		"1c2a1a4711556a6f3dfbea66c922cf58e1ca07d51ef642c51196757df17a14f0",
		"3a29514d46860176362399addfce2a5eab7e6ba8455e1364d44ba779bb783800"},
	{"cbr320_stereo.mp3", 364032,
		"f196fe5e7461ccb3634002cebec50f97f9ce1a736ee2ec47676a25f1ceca0644",
		"6c9ee58cb35daf3eca809b829050a16f340ef629a71602458a1eb6a9573d7b15"},
	{"cbr32_mono.mp3", 182016,
		"721633d4013620fd8b3a7c2d2d6cddd36925f751ede8f9ed0f30d189e78932f9",
		"7fd8b678c8bdbd0011bcf53869c053f07b8457c5d455145c91766b1314888751"},
	{"cbr96_32k_mono.mp3", 267264,
		"8fe1d3d4827abb4193b8918f403b5d3cd57d57f0b9a107c2cc84f85a72cf19d2",
		"41dcd345cb5f46dc8fdad8ea59aaa4a5700943ce24b18e5228d3c8bbe3adf551"},
	{"id3v2_128.mp3", 364032,
		"79f55c70601da375662c908c9cff10f394dcabddd9defb05e8883492307a7fae",
		"bbb38bbced259efb724c0a28c706f971fc7ce323a4ca456a0d9789d36617c686"},
	{"joint128.mp3", 400896,
		"3ea458d7223be8b11ecd1b7e10076ebb628136248809f8251ec8bccaed1c9cd1",
		"0e56736e51ad500bdca7fe4076af43a97e8ae6c1f06e58a0d8e5d3449a1cc3c3"},
	{"mono64.mp3", 400896,
		"f4d71679119b99115b3e7a92b01d2a21318a8f197a1aa9132da6ba70fc09bfa5",
		"2349289e3c0ef615695b9becdf46c5d568c6ce2ececeea3f1d67b33fd2029105"},
	{"mpeg2_16k_mono_crc.mp3", 133632,
		"8570f3bb7a49b75499d1faf04a25a9a474e193256d5cfa07914325ff6bf8c60c",
		"9c1dc4e75acf7d2482d7577f42906fa93e94f746fa1278d5fb5ac794124a69fc"},
	{"mpeg2_22k_64.mp3", 184320,
		"1d937561786df8f997198004c86cd8ca91e069e8c5e94146c8aa2ea46d6db98f",
		"939b21e111479db6bd6491a9a4a36fe0c1010e7beef7688e4848001ee4b0d485"},
	{"mpeg2_24k_160.mp3", 200448,
		"4a505d703c355ef20a6a29c008b724723d5cf66b7be17d50d580904943fef535",
		"4844c5b44b6fb8e0bf46aaea19f7e88e85cd56b0671baa2495f04d08860ef43b"},
	{"mpeg2_24k_vbr.mp3", 200448,
		"4f13000daad84afe1c60a1b1aece52179d8002ec7bf8f5c5a57ecc2369d6953f",
		"17f5f3671074cb8b02391e948ac1fd21b008cfe1c02bc1af57e5cd1a35ae2063"},
	{"mpeg2_48.mp3", 200448,
		"12b4b3005a915842a7e351b1ac52774fc4c0c93b3da8e46d81614837c35ea0ed",
		"00b0c064e600fc9e3689ff797cc3401029f18e7aae355908bf229faa1102ba25"},
	{"stereo256.mp3", 400896,
		"25573de74b1587109cd80b21e32ede27073aabdd03fc66dc8da01c3a4b6d70f5",
		"d64ef3c21a3c285f1998e26dee7809a45bf97694168c19bbeafae34854001477"},
	{"vbr.mp3", 400896,
		"6e4765e9fa9edf5e2b32429d4f8716de73b42c5ebb3b4c8f3d4ec090dbbe100f",
		"0d4f33e1682d132076b7ab389f1c18a94bbc5f9e4f6e16fd8b7c7abb9581559f"},
	{"vbr0.mp3", 364032,
		"95dd73e80584bffbcb687809c48138d342a168583ab0ceaba540ee1a3ff29a3a",
		"bb86ae0f9fedc106cea479d8a27e91d529717e67c012720e4d4743e72c6aa360"},
	{"vbr9.mp3", 184320,
		"6bb8b5b4e0dff99d87d9d87b4a066d553ff8c073983353a2135aed4c8ab53b47",
		"50630c087361612f2b7bda8ce194fadd177980f498c6af0842848240125bcf78"},
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
			sha := want.sha
			if runtime.GOARCH == "arm64" {
				sha = want.shaFusedMA
			}
			if got := fmt.Sprintf("%x", h.Sum(nil)); n != want.bytes || got != sha {
				t.Errorf("decoded %d bytes, SHA-256 %s; upstream: %d bytes, %s", n, got, want.bytes, sha)
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

// MPEG-2.5 (here 8 kHz) is refused, as upstream refused it.
func TestMPEG25Refused(t *testing.T) {
	f, err := os.Open("testdata/mpeg25_8k.mp3")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const upstream = "mp3: MPEG version 2.5 is not supported"
	if _, err := NewDecoder(f); err == nil || err.Error() != upstream {
		t.Errorf("NewDecoder: %v; upstream: %s", err, upstream)
	}
}
