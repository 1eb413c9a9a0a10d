//go:build !amd64

package mulsum

func Columns36(sums *[36]float32, rows *[32 * 36]float32, in *[32]float32, n int) {
	columnsGo(sums[:], rows[:], in[:n])
}

func Columns20(sums *[20]float32, rows *[18 * 20]float32, in *[18]float32) {
	columnsGo(sums[:], rows[:], in[:])
}

func Window(pcm *[32]float32, v *[1024]float32, starts *[16]int, win *[512]float32) {
	windowGo(pcm, v, starts, win)
}
