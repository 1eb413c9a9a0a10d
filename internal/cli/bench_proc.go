package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// childProc is a tutti subprocess a benchmark runs, its output in a file.
type childProc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited; then err is its exit
	err     error
}

// startChild runs bin with args, stderr and stdout going to logPath.
func startChild(name, bin, logPath string, args ...string) (*childProc, error) {
	return startChildTo(name, bin, logPath, nil, args...)
}

// startChildTo is startChild with stdout going to stdout, if not nil.
func startChildTo(name, bin, logPath string, stdout *os.File, args ...string) (*childProc, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &childProc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *childProc) pid() int { return p.cmd.Process.Pid }

// exited reports an early exit of the process, with its log's tail.
func (p *childProc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v):\n%s", p.name, p.err, p.logTail())
	default:
		return nil
	}
}

func (p *childProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop interrupts the process and waits for it, killing it if it lingers.
// A process that has exited already (killed by a benchmark) is left as is.
func (p *childProc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// waitLog waits until the process's log matches re and returns the first
// submatch.
func (p *childProc) waitLog(ctx context.Context, re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.logPath)
		if m := re.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
		if err := p.exited(); err != nil {
			return "", err
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s did not log %q within %s:\n%s", p.name, re, timeout, p.logTail())
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tuttiBinary is the --tutti flag's default: this very program.
func tuttiBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return "tutti"
	}
	return exe
}

// procUsage is a process's CPU time and memory at one instant, from /proc.
type procUsage struct {
	at    time.Time
	cpu   time.Duration // user + system
	rssKB int64
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on Linux
// on every architecture tutti runs on.
const clockTicks = 100

func readProc(pid int) (procUsage, error) {
	u := procUsage{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name may hold spaces; the fields after it are fixed:
	// state is field 3, utime 14 and stime 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return u, errors.New("unreadable /proc stat")
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 13 {
		return u, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, err
	}
	u.cpu = time.Duration(utime+stime) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			u.rssKB, err = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return u, err
		}
	}
	return u, errors.New("no VmRSS in /proc status")
}

// procLoad is what a process used over a window.
type procLoad struct {
	cpuPercent float64 // of one core
	maxRSSMB   float64
}

func (l procLoad) String() string {
	return fmt.Sprintf("CPU %.2f%% of one core, RSS max %.1f MB", l.cpuPercent, l.maxRSSMB)
}

// measureProc samples process pid every 250 ms over window.
func measureProc(ctx context.Context, pid int, window time.Duration) (procLoad, error) {
	first, err := readProc(pid)
	if err != nil {
		return procLoad{}, err
	}
	last, maxRSS := first, first.rssKB
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	end := time.After(window)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return procLoad{}, ctx.Err()
		case <-end:
			done = true
		case <-ticker.C:
		}
		if last, err = readProc(pid); err != nil {
			return procLoad{}, err
		}
		maxRSS = max(maxRSS, last.rssKB)
	}
	return loadBetween(first, last, maxRSS), nil
}

// loadBetween is the load between two samples, with the largest RSS seen.
func loadBetween(first, last procUsage, maxRSSKB int64) procLoad {
	return procLoad{
		cpuPercent: 100 * float64(last.cpu-first.cpu) / float64(last.at.Sub(first.at)),
		maxRSSMB:   float64(max(maxRSSKB, last.rssKB)) / 1024,
	}
}
