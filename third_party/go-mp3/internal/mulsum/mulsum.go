// Package mulsum computes the decoder's sums of products, term by term in
// upstream's order, each product rounded to float32 before it is added as
// upstream's scalar code rounds it, so that any way of running them gives
// the same bits. The loops are turned so that independent sums advance
// together; amd64 runs four sums to an SSE instruction (mulsum_amd64.s),
// whose lanes round as the scalar instructions do.
//
// Go on arm64 fuses a product and a sum into one instruction where upstream
// wrote them in one expression (the column sums) and not where upstream
// stored the product first (the window): the Go code here is written the
// same way, so that it rounds as upstream does there too.
package mulsum

// columnsGo sets sums[r] to the sum over j < len(in) of
// rows[j*len(sums)+r] * in[j], added in the order of j; len(sums) is a
// multiple of 4.
func columnsGo(sums []float32, rows []float32, in []float32) {
	clear(sums)
	for j, x := range in {
		col := rows[j*len(sums) : (j+1)*len(sums)]
		for r := 0; r < len(sums); r += 4 {
			s, c := (*[4]float32)(sums[r:r+4]), (*[4]float32)(col[r:r+4])
			s[0] += c[0] * x
			s[1] += c[1] * x
			s[2] += c[2] * x
			s[3] += c[3] * x
		}
	}
}

// windowGo sets pcm[i] to the sum over k < 16 of
// v[starts[k]+i] * win[32k+i], added in the order of k.
func windowGo(pcm *[32]float32, v *[1024]float32, starts *[16]int, win *[512]float32) {
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
