package mulsum

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randomFloats fills xs with values of every size a decoder meets, and
// zeros, negative zeros and subnormals.
func randomFloats(r *rand.Rand, xs []float32) {
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

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s, sum %d: %g, want %g", what, i, got[i], want[i])
		}
	}
}

// The sums as this machine runs them (SSE on amd64) are the Go loops'
// to the bit.
func TestSumsAsGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var in36 [32]float32
		var rows36 [32 * 36]float32
		randomFloats(r, in36[:])
		randomFloats(r, rows36[:])
		n := r.IntN(33)
		var got36, want36 [36]float32
		Columns36(&got36, &rows36, &in36, n)
		columnsGo(want36[:], rows36[:], in36[:n])
		sameBits(t, "36 columns", got36[:], want36[:])

		var in20 [18]float32
		var rows20 [18 * 20]float32
		randomFloats(r, in20[:])
		randomFloats(r, rows20[:])
		var got20, want20 [20]float32
		Columns20(&got20, &rows20, &in20)
		columnsGo(want20[:], rows20[:], in20[:])
		sameBits(t, "20 columns", got20[:], want20[:])

		var v [1024]float32
		var win [512]float32
		randomFloats(r, v[:])
		randomFloats(r, win[:])
		var starts [16]int
		for k := range starts {
			starts[k] = 32 * r.IntN(32)
		}
		var gotPCM, wantPCM [32]float32
		Window(&gotPCM, &v, &starts, &win)
		windowGo(&wantPCM, &v, &starts, &win)
		sameBits(t, "window", gotPCM[:], wantPCM[:])
	}
}
