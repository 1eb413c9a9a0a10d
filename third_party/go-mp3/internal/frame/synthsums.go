package frame

// The two sums of the subband synthesis, each term rounded and added in
// upstream's order (the products rounded to float32 where upstream stored
// them), so that any way of running them gives the same bits; loops are
// turned so that independent sums advance together. amd64 runs them four
// sums to an SSE instruction (synthsums_amd64.s), which rounds each lane
// as the scalar instructions do.

// synthRows is the transpose of the rows of synthNWin whose sums are
// computed (0-16, then 33-48; the others mirror them): synthRows[j] holds
// column j of those 33 rows, so that one input sample updates 33
// independent sums. Three zero rows pad it to a multiple of four.
var synthRows [32][synthRowsPadded]float32

const synthRowsPadded = 36

// matrixSumsGo sets sums[r] to the sum over j < n of rows[j][r] * in[j],
// added in the order of j.
func matrixSumsGo(sums *[synthRowsPadded]float32, rows *[32][synthRowsPadded]float32, in *[32]float32, n int) {
	*sums = [synthRowsPadded]float32{}
	for j, x := range in[:n] {
		col := &rows[j]
		for r := 0; r < synthRowsPadded; r += 4 {
			s, c := (*[4]float32)(sums[r:r+4]), (*[4]float32)(col[r:r+4])
			s[0] += c[0] * x
			s[1] += c[1] * x
			s[2] += c[2] * x
			s[3] += c[3] * x
		}
	}
}

// windowSumsGo sets pcm[i] to the sum over k < 16 of
// v[starts[k]+i] * win[32k+i], added in the order of k. Each start is at
// most 1024-32.
func windowSumsGo(pcm *[32]float32, v *[1024]float32, starts *[16]int, win *[512]float32) {
	*pcm = [32]float32{}
	for k, start := range starts {
		block := (*[32]float32)(v[start : start+32])
		w := (*[32]float32)(win[32*k : 32*k+32])
		for i := 0; i < 32; i += 8 {
			p, b, w := (*[8]float32)(pcm[i:i+8]), (*[8]float32)(block[i:i+8]), (*[8]float32)(w[i:i+8])
			p[0] += float32(b[0] * w[0])
			p[1] += float32(b[1] * w[1])
			p[2] += float32(b[2] * w[2])
			p[3] += float32(b[3] * w[3])
			p[4] += float32(b[4] * w[4])
			p[5] += float32(b[5] * w[5])
			p[6] += float32(b[6] * w[6])
			p[7] += float32(b[7] * w[7])
		}
	}
}
