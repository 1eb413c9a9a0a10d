package musicfolder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// File is one audio file a scan read.
type File struct {
	Root   string // the music folder it is in
	Path   string // absolute
	Size   int64
	ModNs  int64  // modification time, Unix ns
	SHA256 string // of the whole file
	Format string // as DetectFormat tells it; FormatPlaylist for a playlist file
	Tags   Tags
	Length Length // Frames 0: only decoding all of it tells
	// Playlist is a playlist file's content (Format FormatPlaylist), at
	// most MaxPlaylistSize bytes.
	Playlist []byte
}

// FormatPlaylist is the Format of a playlist file (IsPlaylistName).
const FormatPlaylist = "m3u"

// MaxPlaylistSize bounds a playlist file the scan reads. A playlist of
// 10,000 tracks with long paths and #EXTINF lines takes a few hundred KB;
// a larger file is no playlist anyone keeps, and would be held whole.
const MaxPlaylistSize = 1 << 20

// errChanged reports a file that changed while it was read: it is read
// again once it settles.
var errChanged = errors.New("changed while being read")

// hashBufferSize is the read size while hashing: large reads keep the
// system calls' cost small next to SHA-256's.
const hashBufferSize = 1 << 20

// readFile reads one audio file: its format, tags, length and hash, all
// from one open file, and checks it did not change meanwhile; or a playlist
// file (readPlaylist). buf is the caller's hashing buffer.
func readFile(root, path string, buf []byte) (File, error) {
	if IsPlaylistName(path) {
		return readPlaylist(root, path)
	}
	f, before, err := openRegular(path)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	file := File{Root: root, Path: path, Size: before.Size(), ModNs: before.ModTime().UnixNano()}
	var head [HeadSize]byte
	n, err := f.ReadAt(head[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return File{}, err
	}
	if file.Format = DetectFormat(head[:n]); file.Format == "" {
		return File{}, errors.New("not a known audio format")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return File{}, err
	}
	// Buffered: tag readers and go-mp3's frame walk make many small reads.
	file.Tags = ReadTags(newBufferedSeeker(f, buf))
	if file.Length, err = HeaderLength(newBufferedSeeker(f, buf), file.Size, file.Format); err != nil {
		return File{}, fmt.Errorf("%s: %w", file.Format, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return File{}, err
	}
	h := sha256.New()
	hashed, err := hashAll(h, f, buf)
	if err != nil {
		return File{}, err
	}
	after, err := f.Stat()
	if err != nil {
		return File{}, err
	}
	if hashed != file.Size || after.Size() != file.Size || !after.ModTime().Equal(before.ModTime()) {
		return File{}, errChanged
	}
	file.SHA256 = hex.EncodeToString(h.Sum(nil))
	return file, nil
}

// openRegular opens the regular file at path, with what Stat says of it.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, info, nil
}

// readPlaylist reads a playlist file whole, within MaxPlaylistSize, and
// checks it did not change meanwhile.
func readPlaylist(root, path string) (File, error) {
	f, before, err := openRegular(path)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	if before.Size() > MaxPlaylistSize {
		return File{}, fmt.Errorf("playlist file of %d bytes, over %d", before.Size(), MaxPlaylistSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxPlaylistSize+1))
	if err != nil {
		return File{}, err
	}
	after, err := f.Stat()
	if err != nil {
		return File{}, err
	}
	if int64(len(data)) != before.Size() || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return File{}, errChanged
	}
	sum := sha256.Sum256(data)
	return File{Root: root, Path: path, Size: before.Size(), ModNs: before.ModTime().UnixNano(),
		SHA256: hex.EncodeToString(sum[:]), Format: FormatPlaylist, Playlist: data}, nil
}

// hashAll writes all of r into h through buf, returning the bytes read.
// (io.CopyBuffer would let *os.File pick its own 32 KiB buffer.)
func hashAll(h io.Writer, r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := r.Read(buf)
		h.Write(buf[:n])
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// bufferedSeeker reads a file through a buffer and seeks within it when it
// can, so the many small reads of a header walk cost few system calls.
type bufferedSeeker struct {
	f     io.ReadSeeker
	buf   []byte
	start int64 // file offset of buf[0]
	n     int   // bytes of buf filled
	pos   int64 // the reader's offset
}

func newBufferedSeeker(f io.ReadSeeker, buf []byte) *bufferedSeeker {
	return &bufferedSeeker{f: f, buf: buf, start: -1}
}

func (b *bufferedSeeker) Read(p []byte) (int, error) {
	if b.start < 0 || b.pos < b.start || b.pos >= b.start+int64(b.n) {
		if _, err := b.f.Seek(b.pos, io.SeekStart); err != nil {
			return 0, err
		}
		n, err := io.ReadFull(b.f, b.buf)
		if n == 0 {
			b.start = -1
			if err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			return 0, err
		}
		b.start, b.n = b.pos, n
	}
	n := copy(p, b.buf[b.pos-b.start:b.n])
	b.pos += int64(n)
	return n, nil
}

func (b *bufferedSeeker) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.pos
	case io.SeekEnd:
		end, err := b.f.Seek(0, io.SeekEnd)
		if err != nil {
			return 0, err
		}
		offset += end
	}
	if offset < 0 {
		return 0, errors.New("seek before the start")
	}
	b.pos = offset
	return offset, nil
}
