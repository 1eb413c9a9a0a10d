package mulsum

// Columns36 sets sums[r] to the sum over j < n of rows[36j+r] * in[j];
// n is at most 32.
//
//go:noescape
func Columns36(sums *[36]float32, rows *[32 * 36]float32, in *[32]float32, n int)

// Columns20 sets sums[r] to the sum over j < 18 of rows[20j+r] * in[j].
//
//go:noescape
func Columns20(sums *[20]float32, rows *[18 * 20]float32, in *[18]float32)

// Window sets pcm[i] to the sum over k < 16 of v[starts[k]+i] * win[32k+i];
// each start is at most 1024-32.
//
//go:noescape
func Window(pcm *[32]float32, v *[1024]float32, starts *[16]int, win *[512]float32)
