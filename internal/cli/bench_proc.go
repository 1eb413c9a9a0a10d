//go:build bench

package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	return startCmd(name, exec.Command(bin, args...), logPath)
}

// startCmd starts cmd, its stderr going to logPath, and its stdout too
// unless cmd has one already.
func startCmd(name string, cmd *exec.Cmd, logPath string) (*childProc, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	if cmd.Stdout == nil {
		cmd.Stdout = log
	}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, cmd.Path, err)
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

// tuttiBinary is the --tutti flag's default, the program the benchmarks'
// speakers and controllers run: the product binary beside this one (make
// build puts bin/tutti next to bin/tutti-bench), so that they are measured
// as they ship; else this very program.
func tuttiBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return "tutti"
	}
	product := filepath.Join(filepath.Dir(exe), "tutti")
	if info, err := os.Stat(product); err == nil && !info.IsDir() && product != exe {
		return product
	}
	return exe
}

// procUsage is a process's CPU time and memory at one instant, from /proc.
type procUsage struct {
	at    time.Time
	cpu   time.Duration // user + system
	rssKB int64
	// fileKB of rssKB are pages of files: the program's and its
	// libraries' code and constant data (RssFile).
	fileKB int64
}

func readProc(pid int) (procUsage, error) {
	u := procUsage{at: time.Now()}
	var err error
	if u.cpu, err = threadsCPU(pid); err != nil {
		return u, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	seen := 0
	for _, line := range strings.Split(string(status), "\n") {
		for _, f := range []struct {
			name string
			kb   *int64
		}{{"VmRSS:", &u.rssKB}, {"RssFile:", &u.fileKB}} {
			if v, ok := strings.CutPrefix(line, f.name); ok {
				if *f.kb, err = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err != nil {
					return u, err
				}
				seen++
			}
		}
	}
	if seen < 2 {
		return u, errors.New("no VmRSS or RssFile in /proc status")
	}
	return u, nil
}

// threadsCPU is the CPU time the threads of process pid have used, from
// each thread's /proc schedstat (nanoseconds; /proc/PID/stat counts in
// 10 ms ticks, which over a window of 15 s is a seventh of a process using
// 0.6 % of a core). Threads that exited no longer count: the processes
// measured keep theirs while they play.
func threadsCPU(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited meanwhile
		}
		if err != nil {
			return 0, err
		}
		// Fields: time on the CPU (ns), time waiting to run, time slices.
		f := strings.Fields(string(b))
		if len(f) < 1 {
			return 0, errors.New("empty /proc schedstat")
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, err
		}
		total += time.Duration(ns)
	}
	return total, nil
}

// procLoad is what a process used over a window.
type procLoad struct {
	cpuPercent float64 // of one core
	maxRSSMB   float64
	fileMB     float64 // of the RSS at the end, file pages
}

func (l procLoad) String() string {
	return fmt.Sprintf("CPU %.2f%% of one core, RSS max %.1f MB (%.1f MB of it file pages)", l.cpuPercent, l.maxRSSMB, l.fileMB)
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
		fileMB:     float64(last.fileKB) / 1024,
	}
}
