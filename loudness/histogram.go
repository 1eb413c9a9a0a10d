package loudness

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Histogram is what the integrated loudness of several stretches of audio
// measured apart (an album's songs) needs from each: how many of its
// gating blocks fell in each of the meter's bins (1/binsPerLU LU wide,
// above the absolute gate). Integrated gates the blocks of all of them
// together, as BS.1770 does for a programme made of them (and as
// libebur128's loudness_global_multiple does for an album), taking each
// block as the middle of its bin: a block is within 1/(2*binsPerLU) =
// 0.005 LU of that, so the result is within 0.005 LU of the gated mean of
// the blocks' exact energies. A song's histogram takes a few KB (its
// blocks spread over a few hundred to a few thousand bins).
type Histogram struct {
	bins []histogramBin // by index, each with a count > 0
}

type histogramBin struct {
	index int
	count int64
}

// Histogram is the histogram of the blocks written so far.
func (m *Meter) Histogram() Histogram {
	var h Histogram
	for i, n := range m.count {
		if n > 0 {
			h.bins = append(h.bins, histogramBin{index: i, count: n})
		}
	}
	return h
}

// Blocks is how many gating blocks h holds (those over the absolute gate).
func (h Histogram) Blocks() int64 {
	var n int64
	for _, b := range h.bins {
		n += b.count
	}
	return n
}

// binEnergy is the energy of a block whose loudness is the middle of bin i.
func binEnergy(i int) float64 {
	return math.Pow(10, (absoluteGate+(float64(i)+0.5)/binsPerLU-blockOffset)/10)
}

// Integrated is the integrated loudness (LUFS) of the audio the histograms
// were measured from, taken together; -Inf when no block passes the gates.
func Integrated(hs ...Histogram) float64 {
	var count [histogramLen]int64
	var n int64
	var sum float64
	for _, h := range hs {
		for _, b := range h.bins {
			count[b.index] += b.count
			n += b.count
			sum += float64(b.count) * binEnergy(b.index)
		}
	}
	if n == 0 {
		return math.Inf(-1)
	}
	threshold := blockOffset + 10*math.Log10(sum/float64(n)) + relativeGate
	// As Result does: blocks in the bin holding the threshold are gated by
	// the bin's middle.
	first := max(0, int(math.Round((threshold-absoluteGate)*binsPerLU)))
	n, sum = 0, 0
	for i := first; i < histogramLen; i++ {
		n += count[i]
		sum += float64(count[i]) * binEnergy(i)
	}
	if n == 0 {
		return math.Inf(-1)
	}
	return blockOffset + 10*math.Log10(sum/float64(n))
}

// histogramEncoding is the first byte of an encoded Histogram: its format.
const histogramEncoding = 1

// maxBinBlocks bounds a bin's count in an encoded histogram: a song of 6
// hours has 216,000 blocks, an album of them a few million; more is
// garbage.
const maxBinBlocks = 1 << 32

// MarshalBinary encodes h compactly: the format byte, the number of bins,
// then for each the gap from the last bin's index and its count, all as
// unsigned varints.
func (h Histogram) MarshalBinary() ([]byte, error) {
	out := make([]byte, 0, 1+binary.MaxVarintLen64+len(h.bins)*4)
	out = append(out, histogramEncoding)
	out = binary.AppendUvarint(out, uint64(len(h.bins)))
	last := -1
	for _, b := range h.bins {
		out = binary.AppendUvarint(out, uint64(b.index-last-1))
		out = binary.AppendUvarint(out, uint64(b.count))
		last = b.index
	}
	return out, nil
}

// ParseHistogram decodes what MarshalBinary encoded, refusing anything
// else: bins out of range or order, empty or overfull bins, bytes left over.
func ParseHistogram(data []byte) (Histogram, error) {
	var h Histogram
	if len(data) == 0 || data[0] != histogramEncoding {
		return h, errors.New("loudness: not an encoded histogram")
	}
	data = data[1:]
	next := func() (uint64, error) {
		v, n := binary.Uvarint(data)
		if n <= 0 {
			return 0, errors.New("loudness: histogram cut short")
		}
		if n != len(binary.AppendUvarint(nil, v)) {
			return 0, errors.New("loudness: histogram number not in its shortest form")
		}
		data = data[n:]
		return v, nil
	}
	bins, err := next()
	if err != nil {
		return h, err
	}
	if bins > uint64(histogramLen) {
		return h, fmt.Errorf("loudness: histogram of %d bins, over %d", bins, histogramLen)
	}
	h.bins = make([]histogramBin, 0, bins)
	last := -1
	for range bins {
		gap, err := next()
		if err != nil {
			return Histogram{}, err
		}
		count, err := next()
		if err != nil {
			return Histogram{}, err
		}
		if gap >= uint64(histogramLen-last-1) {
			return Histogram{}, errors.New("loudness: histogram bin out of range")
		}
		if count == 0 || count > maxBinBlocks {
			return Histogram{}, fmt.Errorf("loudness: histogram bin of %d blocks", count)
		}
		last += int(gap) + 1
		h.bins = append(h.bins, histogramBin{index: last, count: int64(count)})
	}
	if len(data) > 0 {
		return Histogram{}, errors.New("loudness: bytes after the histogram")
	}
	return h, nil
}
