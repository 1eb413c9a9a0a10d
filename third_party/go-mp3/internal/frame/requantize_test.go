package frame

import (
	"math"
	"testing"
)

// TestPow2Exact checks the table against math.Pow over every idx the
// requantisation can make, and a little beyond the range on both sides
// (where pow2 falls back to math.Pow).
func TestPow2Exact(t *testing.T) {
	for k := pow2QuartersMin - 8; k <= pow2QuartersMax+8; k++ {
		idx := float64(k) / 4
		if got, want := pow2(idx), math.Pow(2.0, idx); math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("pow2(%v) = %v, math.Pow = %v", idx, got, want)
		}
	}
	for _, idx := range []float64{0.1, -0.3, 1e-9} {
		if got, want := pow2(idx), math.Pow(2.0, idx); got != want {
			t.Errorf("pow2(%v) = %v, math.Pow = %v", idx, got, want)
		}
	}
}

// TestRequantizeRange walks the fields' whole ranges: every idx the long
// and short block formulas can make must be in the table.
func TestRequantizeRange(t *testing.T) {
	for gain := 0; gain < 256; gain++ {
		for _, sfMult := range []float64{0.5, 1} {
			for sf := 0; sf < 16; sf++ {
				for pre := 0; pre <= 3; pre++ {
					long := -(sfMult * (float64(sf) + float64(pre))) + 0.25*(float64(gain)-210)
					checkInTable(t, long)
				}
				for sub := 0; sub < 8; sub++ {
					short := -(sfMult * float64(sf)) + 0.25*(float64(gain)-210.0-8.0*float64(sub))
					checkInTable(t, short)
				}
			}
		}
	}
}

func checkInTable(t *testing.T, idx float64) {
	t.Helper()
	k := idx * 4
	if k != math.Trunc(k) || k < pow2QuartersMin || k > pow2QuartersMax {
		t.Fatalf("idx %v is not in the table", idx)
	}
}
