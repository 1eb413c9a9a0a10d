package audiogen

import (
	"bufio"
	"io"

	"github.com/mewkiz/flac"
	"github.com/mewkiz/flac/frame"
	"github.com/mewkiz/flac/meta"
)

// WriteBlockFLAC writes a 16-bit stereo FLAC of blocks blocks of blockSize
// frames each (16-65535), without a seek table. Each block is constant, the
// sample of every frame in block i being BlockTimecode(i): constant blocks
// are what an encoder makes of silence, and, at the largest block size,
// what an audio bomb is made of (18 bytes decode to 65535 frames).
func WriteBlockFLAC(w io.Writer, rate, blocks, blockSize int) error {
	bw := bufio.NewWriter(w)
	info := &meta.StreamInfo{BlockSizeMin: uint16(blockSize), BlockSizeMax: uint16(blockSize),
		SampleRate: uint32(rate), NChannels: 2, BitsPerSample: 16, NSamples: uint64(blocks * blockSize)}
	// Only the io.Writer: the encoder rewrites the stream info of a Seeker
	// when it closes, which info already has right.
	enc, err := flac.NewEncoder(struct{ io.Writer }{bw}, info)
	if err != nil {
		return err
	}
	left, right := make([]int32, blockSize), make([]int32, blockSize)
	for i := range blocks {
		f := BlockTimecode(int64(i))
		for j := range blockSize {
			left[j], right[j] = int32(f.L), int32(f.R)
		}
		err := enc.WriteFrame(&frame.Frame{
			Header: frame.Header{HasFixedBlockSize: true, BlockSize: uint16(blockSize), SampleRate: uint32(rate),
				Channels: frame.ChannelsLR, BitsPerSample: 16},
			Subframes: []*frame.Subframe{
				{SubHeader: frame.SubHeader{Pred: frame.PredConstant}, Samples: left, NSamples: blockSize},
				{SubHeader: frame.SubHeader{Pred: frame.PredConstant}, Samples: right, NSamples: blockSize},
			},
		})
		if err != nil {
			return err
		}
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// BlockTimecode is the sample of every frame of block i of a WriteBlockFLAC
// file, read back with ReadTimecode.
func BlockTimecode(i int64) Frame { return Timecode(i) }
