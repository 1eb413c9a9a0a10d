package musicgen

import (
	"image"
	"image/color"
	"image/jpeg"
	"os"
)

// WriteCover writes a small JPEG picture of one colour, chosen by seed, to
// path: a cover to embed or to put beside songs as cover.jpg.
func WriteCover(path string, seed int) error {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	c := color.RGBA{R: uint8(seed * 53), G: uint8(seed * 97), B: uint8(seed * 193), A: 255}
	for y := range 64 {
		for x := range 64 {
			img.Set(x, y, c)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := jpeg.Encode(f, img, nil); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
