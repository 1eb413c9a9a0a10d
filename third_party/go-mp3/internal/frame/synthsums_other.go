//go:build !amd64

package frame

func matrixSums(sums *[synthRowsPadded]float32, rows *[32][synthRowsPadded]float32, in *[32]float32, n int) {
	matrixSumsGo(sums, rows, in, n)
}

func windowSums(pcm *[32]float32, v *[1024]float32, starts *[16]int, win *[512]float32) {
	windowSumsGo(pcm, v, starts, win)
}
