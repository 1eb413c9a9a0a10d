//go:build bench

package cli

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// snapcast is the peer a speaker's cost is compared with: a snapserver on
// loopback (its default FLAC codec and 1 s buffer) whose pipe source is fed
// the benchmark's music as PCM, looped, for snapclients to play.
type snapcast struct {
	dir    string
	port   int
	server *childProc
	fifo   *os.File
	fed    chan struct{} // closed when the feeder has stopped
}

// snapcastInstalled tells whether both programs are on the PATH.
func snapcastInstalled() error {
	for _, tool := range []string{"snapserver", "snapclient"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install snapserver snapclient)", tool)
		}
	}
	return nil
}

// startSnapserver runs a snapserver in dir whose only stream is pcm (44.1
// kHz s16le stereo), written to its FIFO over and over: the FIFO's
// back-pressure paces the writes, as snapserver reads it in real time.
func startSnapserver(dir string, pcm []byte) (*snapcast, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	fifoPath := filepath.Join(dir, "source")
	if err := syscall.Mkfifo(fifoPath, 0o600); err != nil {
		return nil, fmt.Errorf("snapserver source: %w", err)
	}
	// Read-write: the open does not wait for a reader, and the FIFO stays
	// open when snapserver reopens it.
	fifo, err := os.OpenFile(fifoPath, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	port, err := freeLoopbackPort()
	if err != nil {
		fifo.Close()
		return nil, err
	}
	conf := filepath.Join(dir, "snapserver.conf") // empty: the flags say it all, not /etc's
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		fifo.Close()
		return nil, err
	}
	cmd := exec.Command("snapserver", "-c", conf, "--server.datadir="+dir,
		"--stream.bind_to_address=127.0.0.1", "--stream.port="+strconv.Itoa(port),
		"--http.enabled=0", "--tcp.enabled=0", "--logging.sink=stderr",
		"--stream.source=pipe://"+fifoPath+"?name=bench&sampleformat=44100:16:2&mode=read")
	server, err := startCmd("snapserver", cmd, filepath.Join(dir, "snapserver.log"))
	if err != nil {
		fifo.Close()
		return nil, err
	}
	s := &snapcast{dir: dir, port: port, server: server, fifo: fifo, fed: make(chan struct{})}
	go func() {
		defer close(s.fed)
		for {
			// It fails once stop closes the FIFO; before, a failure
			// leaves snapclient without sound, which the benchmark tells.
			if _, err := fifo.Write(pcm); err != nil {
				return
			}
		}
	}()
	return s, nil
}

// freeLoopbackPort is a TCP port free on 127.0.0.1 a moment ago, for a
// program that cannot be told to bind port 0 and say which it got.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// client starts a snapclient named name with the given player options
// (e.g. "--player", "file:filename=stdout"), its stdout going to stdout
// (nil: its log) and its environment extended by env.
func (s *snapcast) client(name string, stdout io.Writer, env []string, player ...string) (*childProc, error) {
	args := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "--hostID", name, "--logsink", "stderr"}, player...)
	cmd := exec.Command("snapclient", args...)
	cmd.Stdout, cmd.Env = stdout, append(os.Environ(), env...)
	return startCmd("snapclient "+name, cmd, filepath.Join(s.dir, name+".log"))
}

// stop ends the server and the feeder.
func (s *snapcast) stop() {
	s.server.stop()
	s.fifo.Close()
	<-s.fed
}
