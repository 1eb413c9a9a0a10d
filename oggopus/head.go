package oggopus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// header is what the identification header (RFC 7845 section 5.1) says.
type header struct {
	channels int
	preSkip  int64   // frames at the start the encoder added, not played
	gain     float32 // linear factor of the header's output gain
}

// parseHead reads an "OpusHead" packet. tutti plays mono and stereo, so
// only mapping family 0 is accepted (one stream, 1 or 2 channels).
func parseHead(p []byte) (header, error) {
	if len(p) < 19 || !bytes.HasPrefix(p, []byte("OpusHead")) {
		return header{}, errors.New("not an Ogg Opus stream (no OpusHead)")
	}
	if p[8]>>4 != 0 { // major version 0: later minor versions stay compatible
		return header{}, fmt.Errorf("Opus header version %d", p[8])
	}
	h := header{channels: int(p[9]), preSkip: int64(binary.LittleEndian.Uint16(p[10:12]))}
	if family := p[18]; family != 0 {
		return header{}, fmt.Errorf("Opus channel mapping family %d: tutti plays mono and stereo", family)
	}
	if h.channels < 1 || h.channels > 2 {
		return header{}, fmt.Errorf("%d channels: tutti plays mono and stereo", h.channels)
	}
	// Q7.8 dB, to apply to every sample.
	gainDb := float64(int16(binary.LittleEndian.Uint16(p[16:18]))) / 256
	h.gain = float32(dbToLinear(gainDb))
	return h, nil
}

// maxPacketFrames is the longest an Opus packet may last: 120 ms.
const maxPacketFrames = SampleRate * 120 / 1000

// packetFrames is how many 48 kHz frames the Opus packet p decodes to, from
// its table-of-contents byte and frame count (RFC 6716 section 3.1).
func packetFrames(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, errors.New("empty Opus packet")
	}
	config := int(p[0] >> 3)
	var perFrame int
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		perFrame = []int{480, 960, 1920, 2880}[config%4]
	case config < 16: // hybrid: 10, 20 ms
		perFrame = []int{480, 960}[config%2]
	default: // CELT: 2.5, 5, 10, 20 ms
		perFrame = []int{120, 240, 480, 960}[config%4]
	}
	count := 1
	switch p[0] & 3 {
	case 1, 2:
		count = 2
	case 3:
		if len(p) < 2 {
			return 0, errors.New("Opus packet too short for its frame count")
		}
		count = int(p[1] & 0x3F)
	}
	frames := perFrame * count
	if count == 0 || frames > maxPacketFrames {
		return 0, fmt.Errorf("Opus packet of %d frames of %d samples", count, perFrame)
	}
	return frames, nil
}
