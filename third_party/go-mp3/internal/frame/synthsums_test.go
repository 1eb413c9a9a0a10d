package frame

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randomSamples fills xs with values of every size a decoder meets, and
// zeros, negative zeros and subnormals.
func randomSamples(r *rand.Rand, xs []float32) {
	for i := range xs {
		switch r.IntN(8) {
		case 0:
			xs[i] = 0
		case 1:
			xs[i] = float32(math.Copysign(0, -1))
		case 2:
			xs[i] = math.Float32frombits(r.Uint32N(1 << 23)) // subnormal
		default:
			xs[i] = float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(40)-20)))
		}
	}
}

// The sums as this machine runs them (SSE on amd64) are matrixSumsGo's
// and windowSumsGo's to the bit.
func TestSynthSumsAsGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var in [32]float32
		randomSamples(r, in[:])
		n := r.IntN(33)
		var got, want [synthRowsPadded]float32
		matrixSums(&got, &synthRows, &in, n)
		matrixSumsGo(&want, &synthRows, &in, n)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("matrix sum %d of %d inputs: %g, want %g", i, n, got[i], want[i])
			}
		}

		var v [1024]float32
		randomSamples(r, v[:])
		off := 64 * r.IntN(16)
		var starts [16]int
		for k := range starts {
			starts[k] = (off + 128*(k>>1) + 96*(k&1)) & 1023
		}
		var gotPCM, wantPCM [32]float32
		windowSums(&gotPCM, &v, &starts, &synthDtbl)
		windowSumsGo(&wantPCM, &v, &starts, &synthDtbl)
		for i := range gotPCM {
			if math.Float32bits(gotPCM[i]) != math.Float32bits(wantPCM[i]) {
				t.Fatalf("window sum %d at offset %d: %g, want %g", i, off, gotPCM[i], wantPCM[i])
			}
		}
	}
}
