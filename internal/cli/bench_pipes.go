package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tutti-audio/tutti/playlog"
)

// The pipe outputs' format, as the speakers are started with it.
const (
	pipeRate        = 44100
	pipeBlockFrames = pipeRate / 100 // the pipe output's default block, 10 ms
	// pipeLatency is every speaker's --latency: the same for all, so it
	// cancels in the skew.
	pipeLatency = 30 * time.Millisecond
	// pipeReadBuffer holds many blocks, so that a reader that woke late
	// reads all that waits at once (and the read is known to be late).
	pipeReadBuffer = 64 << 10
)

// pipeSpeaker is a `tutti speaker --output pipe` process whose PCM is read
// as an outside listener would: every read is timestamped as it returns,
// and the subframe timecode in the samples says which frame left when. The
// speaker also logs each block as its engine scheduled it.
type pipeSpeaker struct {
	name    string
	proc    *childProc
	logPath string // the output's block log (playlog lines)

	mu     sync.Mutex
	stream *playlog.PCMStream
	read   chan struct{} // closed when the reader met the end of the stream
	err    error         // the reader's, once read is closed
	// notRealtime says why the reader's thread did not get real-time
	// scheduling, once read is closed.
	notRealtime error
}

// startPipeSpeaker starts speaker name against brokerURL, its clock and
// its output's crystal wrong by fault.
func startPipeSpeaker(bin, dir, name, brokerURL string, fault clockFault) (*pipeSpeaker, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s := &pipeSpeaker{name: name, logPath: filepath.Join(dir, name+".blocks"), stream: playlog.NewPCMStream(pipeBlockFrames), read: make(chan struct{})}
	s.proc, err = startChildTo(name, bin, filepath.Join(dir, name+".log"), w, "speaker", "--name", name, "--broker", brokerURL,
		"--cache", filepath.Join(dir, name), "--peer-addr", "127.0.0.1:0", "--output", "pipe", "--pipe", "-",
		"--latency", pipeLatency.String(), "--virtual-log", s.logPath,
		"--fault-clock-offset", fault.offset.String(), "--fault-ppm", fmt.Sprint(fault.ppm))
	w.Close() // the child holds its end
	if err != nil {
		r.Close()
		return nil, err
	}
	go s.readPCM(r)
	return s, nil
}

// readerPriority is the readers' SCHED_FIFO priority: above the speakers'
// output threads (10), so that a write wakes its reader at once.
const readerPriority = 11

// readPCM reads the stream to its end, timing each read. The reader is as
// exact as the output it measures: a thread of its own with real-time
// scheduling where allowed, blocked in read(2) so that the write wakes it
// directly (not through the Go runtime's poller).
func (s *pipeSpeaker) readPCM(r *os.File) {
	defer close(s.read)
	defer r.Close()
	runtime.LockOSThread() // for good: the thread ends with the goroutine
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: readerPriority}
	s.notRealtime = unix.SchedSetAttr(0, &attr, 0)
	fd := int(r.Fd()) // puts the pipe in blocking mode
	buf := make([]byte, pipeReadBuffer)
	for {
		n, err := unix.Read(fd, buf)
		at := time.Now().UnixNano() // first thing after the read returns
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			s.err = err
			return
		case n == 0:
			return // the speaker closed its output
		}
		s.mu.Lock()
		s.stream.Add(at, buf[:n])
		s.mu.Unlock()
	}
}

// reads returns the timecoded reads so far.
func (s *pipeSpeaker) reads() []playlog.PCMRead {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.stream.Reads()
	return r[:len(r):len(r)]
}

// stop ends the process and waits for the reader to finish.
func (s *pipeSpeaker) stop() error {
	s.proc.stop()
	<-s.read
	return s.err
}

// blockLog reads the output's block log: its blocks in order, underrun
// markers left out, so that block k is the k-th block of the PCM stream.
func (s *pipeSpeaker) blockLog() ([]playlog.Line, error) {
	f, err := os.Open(s.logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []playlog.Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l playlog.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%s: %w", s.logPath, err)
		}
		if !l.Underrun {
			lines = append(lines, l)
		}
	}
	return lines, sc.Err()
}
