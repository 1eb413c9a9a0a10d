package controller

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The decoders allocate what a file's length fields say before they read
// what follows: a 34-byte WAV whose unknown chunk claimed 2 GB made the
// WAV decoder take 8 GB, and a FLAC comment claiming 4 billion tags would
// take more. checkContainer refuses such files before they are decoded:
// every length must fit in the file (or its block).

// checkContainer checks the lengths of a file of format (as
// musicfolder.DetectFormat tells it) and size bytes that its decoder trusts.
func checkContainer(f io.ReaderAt, format string, size int64) error {
	switch format {
	case "flac":
		return checkFLACMetadata(f, size)
	case "wav":
		return checkWAVChunks(f, size)
	}
	return nil
}

// checkWAVChunks walks the RIFF chunks up to "data": each must fit in the
// file.
func checkWAVChunks(f io.ReaderAt, size int64) error {
	for off := int64(12); ; { // past "RIFF", its size, "WAVE"
		var h [8]byte
		if _, err := f.ReadAt(h[:], off); err != nil {
			return fmt.Errorf("wav chunks: %w", err)
		}
		if string(h[:4]) == "data" {
			return nil // its length is what the decoder plays, and checked against the frames decoded
		}
		length := int64(binary.LittleEndian.Uint32(h[4:]))
		off += 8 + length + length%2 // chunks are padded to even lengths
		if off > size {
			return fmt.Errorf("wav chunk %q of %d bytes runs past the end of the file", h[:4], length)
		}
	}
}

// checkFLACMetadata refuses FLAC metadata whose inner lengths do not fit
// their block (Vorbis comments' tag counts and lengths, pictures' lengths).
func checkFLACMetadata(f io.ReaderAt, size int64) error {
	const (
		typeVorbisComment = 4
		typePicture       = 6
	)
	off := int64(4) // past "fLaC"
	for last := false; !last; {
		var h [4]byte
		if _, err := f.ReadAt(h[:], off); err != nil {
			return fmt.Errorf("flac metadata: %w", err)
		}
		last = h[0]&0x80 != 0
		length := int64(h[1])<<16 | int64(h[2])<<8 | int64(h[3])
		off += 4
		if off+length > size {
			return errors.New("flac metadata block runs past the end of the file")
		}
		if t := h[0] & 0x7F; t == typeVorbisComment || t == typePicture {
			block := make([]byte, length) // at most 16 MiB, and no more than the file
			if _, err := f.ReadAt(block, off); err != nil {
				return fmt.Errorf("flac metadata: %w", err)
			}
			var err error
			if t == typeVorbisComment {
				err = checkVorbisComment(block)
			} else {
				err = checkPicture(block)
			}
			if err != nil {
				return fmt.Errorf("flac metadata: %w", err)
			}
		}
		off += length
	}
	return nil
}

// fields reads a block's fields in turn; the first that runs past the
// block's end is an error.
type fields struct {
	b     []byte
	order binary.ByteOrder
	err   error
}

// skip consumes n bytes.
func (r *fields) skip(n uint64) {
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = errors.New("a field runs past its block")
	}
	if r.err == nil {
		r.b = r.b[n:]
	}
}

// uint32 consumes a 32-bit number.
func (r *fields) uint32() uint64 {
	if r.err == nil && len(r.b) < 4 {
		r.err = errors.New("a field runs past its block")
	}
	if r.err != nil {
		return 0
	}
	v := uint64(r.order.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

// checkVorbisComment: the vendor string, then a count of tags, each a
// 32-bit length and that many bytes (little-endian).
func checkVorbisComment(block []byte) error {
	r := &fields{b: block, order: binary.LittleEndian}
	r.skip(r.uint32()) // vendor
	tags := r.uint32()
	if r.err == nil && tags > uint64(len(r.b))/4 {
		return fmt.Errorf("vorbis comment claims %d tags in %d bytes", tags, len(r.b))
	}
	for range tags {
		r.skip(r.uint32())
	}
	return r.err
}

// checkPicture: type, MIME type, description, four numbers, then the data
// (big-endian lengths).
func checkPicture(block []byte) error {
	r := &fields{b: block, order: binary.BigEndian}
	r.uint32()         // picture type
	r.skip(r.uint32()) // MIME type
	r.skip(r.uint32()) // description
	r.skip(16)         // width, height, depth, colours
	r.skip(r.uint32()) // data
	return r.err
}
