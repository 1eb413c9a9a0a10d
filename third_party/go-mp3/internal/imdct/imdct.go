// Copyright 2017 Hajime Hoshi
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

package imdct

import (
	"math"

	"github.com/hajimehoshi/go-mp3/internal/mulsum"
)

var imdctWinData = [4][36]float32{}

func init() {
	for i := 0; i < 36; i++ {
		imdctWinData[0][i] = float32(math.Sin(math.Pi / 36 * (float64(i) + 0.5)))
	}
	for i := 0; i < 18; i++ {
		imdctWinData[1][i] = float32(math.Sin(math.Pi / 36 * (float64(i) + 0.5)))
	}
	for i := 18; i < 24; i++ {
		imdctWinData[1][i] = 1.0
	}
	for i := 24; i < 30; i++ {
		imdctWinData[1][i] = float32(math.Sin(math.Pi / 12 * (float64(i) + 0.5 - 18.0)))
	}
	for i := 30; i < 36; i++ {
		imdctWinData[1][i] = 0.0
	}
	for i := 0; i < 12; i++ {
		imdctWinData[2][i] = float32(math.Sin(math.Pi / 12 * (float64(i) + 0.5)))
	}
	for i := 12; i < 36; i++ {
		imdctWinData[2][i] = 0.0
	}
	for i := 0; i < 6; i++ {
		imdctWinData[3][i] = 0.0
	}
	for i := 6; i < 12; i++ {
		imdctWinData[3][i] = float32(math.Sin(math.Pi / 12 * (float64(i) + 0.5 - 6.0)))
	}
	for i := 12; i < 18; i++ {
		imdctWinData[3][i] = 1.0
	}
	for i := 18; i < 36; i++ {
		imdctWinData[3][i] = float32(math.Sin(math.Pi / 36 * (float64(i) + 0.5)))
	}
}

var cosN12 = [6][12]float32{}

func init() {
	const N = 12
	for i := 0; i < 6; i++ {
		for j := 0; j < 12; j++ {
			cosN12[i][j] = float32(math.Cos(math.Pi / (2 * N) * (2*float64(j) + 1 + N/2) * (2*float64(i) + 1)))
		}
	}
}

var cosN36 = [18][36]float32{}

func init() {
	const N = 36
	for i := 0; i < 18; i++ {
		for j := 0; j < 36; j++ {
			cosN36[i][j] = float32(math.Cos(math.Pi / (2 * N) * (2*float64(j) + 1 + N/2) * (2*float64(i) + 1)))
		}
	}
	if !cosN36Mirrored() {
		panic("mp3: the IMDCT matrix is not mirrored exactly")
	}
}

// cosN36Mirrored says whether the computed matrix has, to the bit, the
// symmetries of its cosines that Win relies on: column 17-p is column p
// negated (p < 9), column 53-p is column p (18 <= p < 27).
func cosN36Mirrored() bool {
	for m := 0; m < 18; m++ {
		for p := 0; p < 9; p++ {
			if cosN36[m][17-p] != -cosN36[m][p] {
				return false
			}
		}
		for p := 18; p < 27; p++ {
			if cosN36[m][53-p] != cosN36[m][p] {
				return false
			}
		}
	}
	return true
}

// cosLong holds, for each input m, the columns of cosN36[m] whose sums
// Win computes (0-8, then 18-26; the others mirror them), 20 values an
// input (two zeros pad it to a multiple of four).
var cosLong [18 * 20]float32

func init() {
	for m := 0; m < 18; m++ {
		for p := 0; p < 9; p++ {
			cosLong[20*m+p] = cosN36[m][p]
			cosLong[20*m+9+p] = cosN36[m][18+p]
		}
	}
}

// Win writes the windowed inverse MDCT of in (18 values) into out.
func Win(in []float32, blockType int, out *[36]float32) {
	*out = [36]float32{}
	if blockType == 2 {
		iwd := imdctWinData[blockType]
		const N = 12
		for i := 0; i < 3; i++ {
			for p := 0; p < N; p++ {
				sum := float32(0.0)
				for m := 0; m < N/2; m++ {
					sum += in[i+3*m] * cosN12[m][p]
				}
				out[6*i+p+6] += sum * iwd[p]
			}
		}
		return
	}
	const N = 36
	iwd := imdctWinData[blockType]
	// Only half of the sums are computed: the others are the same sums
	// negated (columns 9-17) or as they are (columns 27-35), to the bit,
	// since the rounding of each product and addition is symmetric. Each
	// sum adds its terms in upstream's order (m = 0, 1, ...): package
	// mulsum.
	var half [20]float32
	mulsum.Columns20(&half, &cosLong, (*[18]float32)(in))
	var sums [N]float32
	for p := 0; p < 9; p++ {
		sums[p] = half[p]
		sums[17-p] = -half[p]
		sums[18+p] = half[9+p]
		sums[35-p] = half[9+p]
	}
	for p := 0; p < N; p++ {
		out[p] = sums[p] * iwd[p]
	}
}
