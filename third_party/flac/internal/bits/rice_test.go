package bits_test

import (
	"bufio"
	"bytes"
	"io"
	"math/rand"
	"testing"

	"github.com/icza/bitio"
	"github.com/mewkiz/flac/internal/bits"
)

// TestReadRice encodes residuals with every Rice parameter, some with
// quotients longer than the 64-bit cache, and decodes them a byte at a time
// and read ahead from a tiny buffer (a refill every few residuals).
func TestReadRice(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for k := uint(0); k < 31; k++ {
		want := make([]int32, 300)
		for i := range want {
			want[i] = int32(rng.Int63n(1<<(k+2))) - 1<<(k+1)
			if i%50 == 7 {
				want[i] = int32(150) << k // a quotient of 300 bits
			}
		}
		var buf bytes.Buffer
		w := bitio.NewWriter(&buf)
		for _, r := range want {
			folded := uint64(bits.EncodeZigZag(r))
			if err := bits.WriteUnary(w, folded>>k); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteBits(folded&(1<<k-1), uint8(k)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.WriteBits(0xABCD, 16); err != nil { // what follows the residuals
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		for name, r := range map[string]io.Reader{
			"byte at a time": bytes.NewReader(buf.Bytes()),
			"read ahead":     bufio.NewReaderSize(bytes.NewReader(buf.Bytes()), 16),
		} {
			var br bits.Reader
			br.Reset(r)
			got := make([]int32, len(want))
			if err := br.ReadRice(got, k); err != nil {
				t.Fatalf("k=%d, %s: %v", k, name, err)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("k=%d, %s: residual %d is %d, want %d", k, name, i, got[i], want[i])
				}
			}
			if x, err := br.Read(16); err != nil || x != 0xABCD {
				t.Errorf("k=%d, %s: then read %#x, %v; want 0xabcd", k, name, x, err)
			}
		}
	}
}

// TestReadRiceTruncated: residuals cut short are an unexpected EOF.
func TestReadRiceTruncated(t *testing.T) {
	for _, data := range [][]byte{{}, {0x00}, {0x80}, {0x00, 0x00, 0x00}} {
		var br bits.Reader
		br.Reset(bufio.NewReader(bytes.NewReader(data)))
		if err := br.ReadRice(make([]int32, 4), 3); err != io.ErrUnexpectedEOF {
			t.Errorf("% x: %v, want unexpected EOF", data, err)
		}
	}
}
