//go:build bench

package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tutti-audio/tutti/playlog"
)

// The pipe outputs' format, as the speakers are started with it.
const (
	pipeRate        = 44100
	pipeBlockFrames = pipeRate / 50 // the pipe output's default block, 20 ms
	// pipeLatency is every speaker's --latency: the same for all, so it
	// cancels in the skew; two blocks, the least.
	pipeLatency = 40 * time.Millisecond
	// pipeBuffer is from a block's write to its being heard: the pipe
	// output fills a block one block period before it writes it.
	pipeBuffer = pipeLatency - pipeBlockFrames*time.Second/pipeRate
	// pipeReadBuffer holds any one write of the pipe output: a block of
	// 20 ms at up to 192 kHz is 15 KiB.
	pipeReadBuffer = 64 << 10
)

// pipeSpeaker is a `tutti speaker --output pipe` process whose PCM is read
// as an outside listener would: every write is timed as it leaves the
// process, and the subframe timecode in the samples says which frame left
// when. The speaker also logs each block as its engine scheduled it.
type pipeSpeaker struct {
	name    string
	proc    *childProc
	logPath string // the output's block log (playlog lines)

	mu     sync.Mutex
	stream *playlog.PCMStream
	read   chan struct{} // closed when the reader met the end of the stream
	err    error         // the reader's, once read is closed
}

// startPipeSpeaker starts speaker name against brokerURL, its clock and
// its output's crystal wrong by fault. Its stdout is a Unix socket of
// packets rather than a pipe: every write the speaker makes is one packet,
// and the kernel stamps it with the instant of the write, so the reader's
// own wake-up does not enter the figures.
func startPipeSpeaker(bin, dir, name, brokerURL string, fault clockFault) (*pipeSpeaker, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	r, w := fds[0], os.NewFile(uintptr(fds[1]), name+" output")
	if err := unix.SetsockoptInt(r, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(r)
		w.Close()
		return nil, fmt.Errorf("packet timestamps: %w", err)
	}
	s := &pipeSpeaker{name: name, logPath: filepath.Join(dir, name+".blocks"), stream: playlog.NewPCMStream(pipeBlockFrames), read: make(chan struct{})}
	cmd := exec.Command(bin, "speaker", "--name", name, "--broker", brokerURL,
		"--cache", filepath.Join(dir, name), "--peer-addr", "127.0.0.1:0", "--output", "pipe", "--pipe", "-",
		"--latency", pipeLatency.String(), "--virtual-log", s.logPath,
		"--fault-clock-offset", fault.offset.String(), "--fault-ppm", fmt.Sprint(fault.ppm))
	cmd.Stdout = w
	s.proc, err = startCmd(name, cmd, filepath.Join(dir, name+".log"))
	w.Close() // the child holds its end
	if err != nil {
		unix.Close(r)
		return nil, err
	}
	go s.readPCM(r)
	return s, nil
}

// pipeSpeakers are a benchmark's speaker processes with pipe outputs.
type pipeSpeakers []*pipeSpeaker

// startPipeSpeakers starts n of them, speaker i named speakerName(i),
// reaching the broker at brokerURL(name) with its clock wrong by fault(i).
func startPipeSpeakers(bin, dir string, n int, brokerURL func(name string) (string, error), fault func(i int) clockFault) (pipeSpeakers, error) {
	var spks pipeSpeakers
	for i := range n {
		name := speakerName(i)
		u, err := brokerURL(name)
		var s *pipeSpeaker
		if err == nil {
			s, err = startPipeSpeaker(bin, dir, name, u, fault(i))
		}
		if err != nil {
			spks.stop()
			return nil, err
		}
		spks = append(spks, s)
	}
	return spks, nil
}

func (spks pipeSpeakers) names() []string {
	var names []string
	for _, s := range spks {
		names = append(names, s.name)
	}
	return names
}

// stop ends them all; stopping again does nothing more.
func (spks pipeSpeakers) stop() {
	for _, s := range spks {
		s.stop()
	}
}

// traces stops them and pairs each one's timed reads with its output's
// block log; a speaker whose output logs nothing (an older tutti) is said
// on note and measured from outside only.
func (spks pipeSpeakers) traces(note io.Writer) ([]speakerTrace, error) {
	traces := make([]speakerTrace, len(spks))
	for i, s := range spks {
		if err := s.stop(); err != nil {
			return nil, fmt.Errorf("%s: reading its PCM: %w", s.name, err)
		}
		lines, err := s.blockLog()
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(note, "  %s's pipe output logs nothing (an older tutti): figures from outside only\n", s.name)
		} else if err != nil {
			return nil, err
		}
		traces[i] = traceOf(s.reads(), lines, pipeRate, pipeBlockFrames, int64(pipeBuffer))
		if len(traces[i].external) == 0 {
			return nil, fmt.Errorf("%s played no timecode:\n%s", s.name, s.proc.logTail())
		}
	}
	return traces, nil
}

// readPCM reads the stream to its end, one packet (one write of the
// speaker) at a time, each timed by the kernel's stamp of its write.
func (s *pipeSpeaker) readPCM(fd int) {
	defer close(s.read)
	defer unix.Close(fd)
	buf := make([]byte, pipeReadBuffer)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))))
	for {
		n, oobn, flags, _, err := unix.Recvmsg(fd, buf, oob, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			s.err = err
			return
		case n == 0:
			return // the speaker closed its output
		case flags&unix.MSG_TRUNC != 0:
			s.err = fmt.Errorf("a write of more than %d bytes", len(buf))
			return
		}
		at, err := writeStamp(oob[:oobn])
		if err != nil {
			s.err = err
			return
		}
		s.mu.Lock()
		s.stream.Add(at, buf[:n])
		s.mu.Unlock()
	}
}

// writeStamp returns the kernel's timestamp of a packet, Unix ns.
func writeStamp(oob []byte) (int64, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := *(*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return ts.Nano(), nil
		}
	}
	return 0, errors.New("a packet without its timestamp")
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
