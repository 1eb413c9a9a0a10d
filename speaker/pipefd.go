package speaker

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// outputFd returns the file descriptor the paced thread writes w's blocks
// to, and a function that releases it once the thread has ended. A writer
// with a descriptor of its own (a file, a pipe, a socket) is written
// directly, through a duplicate of it; any other writer is fed, block by
// block, from a socket pair by a goroutine that release waits for.
func outputFd(w io.Writer, blockBytes int) (int, func() error, error) {
	if conn, ok := w.(syscall.Conn); ok {
		raw, err := conn.SyscallConn()
		if err != nil {
			return -1, nil, err
		}
		fd, dupErr := -1, error(nil)
		if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
			return -1, nil, err
		}
		if dupErr != nil {
			return -1, nil, fmt.Errorf("output: duplicating its descriptor: %w", dupErr)
		}
		return fd, func() error { return unix.Close(fd) }, nil
	}
	// A socket pair of messages, so that the goroutine reads whole blocks;
	// non-blocking, so that the thread's writes never outlast its stop.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("output: socket pair: %w", err)
	}
	r := os.NewFile(uintptr(fds[1]), "output-copy")
	copied := make(chan error, 1)
	go func() {
		copied <- copyBlocks(w, r, blockBytes)
		r.Close() // the thread's next write fails, if it is still writing
	}()
	return fds[0], func() error {
		err := unix.Close(fds[0])
		return errors.Join(err, <-copied)
	}, nil
}

// copyBlocks writes each message read from r to w, until r's other end is
// closed.
func copyBlocks(w io.Writer, r io.Reader, blockBytes int) error {
	buf := make([]byte, blockBytes)
	for {
		n, err := r.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
	}
}
