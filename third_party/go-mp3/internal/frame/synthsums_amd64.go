package frame

// matrixSums is matrixSumsGo in SSE (synthsums_amd64.s); n is at most 32.
//
//go:noescape
func matrixSums(sums *[synthRowsPadded]float32, rows *[32][synthRowsPadded]float32, in *[32]float32, n int)

// windowSums is windowSumsGo in SSE; each start is at most 1024-32.
//
//go:noescape
func windowSums(pcm *[32]float32, v *[1024]float32, starts *[16]int, win *[512]float32)
