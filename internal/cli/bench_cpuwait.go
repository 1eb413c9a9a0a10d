//go:build bench

package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tutti-audio/tutti/playlog"
)

// A speaker's sound breaks when its process falls behind its output, for
// one of two reasons: tutti kept it waiting (a lock, a garbage collection,
// a write to disk), or the machine gave it no CPU (other processes, a
// virtual machine's host). Only the kernel tells them apart: a thread the
// machine holds back is runnable and waits on a run queue, which its
// schedstat counts; one that tutti keeps waiting sleeps, which it does not.
// A virtual machine's host that takes a CPU away shows as that CPU's steal
// time instead. A benchmark samples both, and tells the figures of the
// stretches the machine held a speaker back apart.
const (
	// cpuWaitEvery is how often the waits are sampled: a tenth of the
	// speaker's buffer, and cheap (a file read per thread).
	cpuWaitEvery = 10 * time.Millisecond
	// heldWait is how long a speaker's thread must have waited for a CPU
	// within one sample for the machine to count as holding the speaker
	// back: half the block period by which a paced output fills ahead, so
	// a wait that could delay a write is never missed.
	heldWait = pipeBlockFrames * time.Second / pipeRate / 2
)

// heldSpan is a stretch when the machine held a speaker back: one of its
// threads waited for a CPU, or a CPU was taken away, for heldWait or more.
type heldSpan struct{ fromNs, toNs int64 }

// cpuWaits samples the run-queue waits of processes' threads until stop.
type cpuWaits struct {
	stopOnce sync.Once
	stopped  chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	held     [][]heldSpan // per process
	longest  time.Duration
	err      error
}

// watchCPUWaits starts sampling the threads of pids.
func watchCPUWaits(pids []int) *cpuWaits {
	w := &cpuWaits{stopped: make(chan struct{}), done: make(chan struct{}), held: make([][]heldSpan, len(pids))}
	go w.run(pids)
	return w
}

func (w *cpuWaits) run(pids []int) {
	defer close(w.done)
	last := make([]map[string]time.Duration, len(pids))
	lastSteal, _ := cpuSteal()
	lastAt := time.Now().UnixNano()
	ticker := time.NewTicker(cpuWaitEvery)
	defer ticker.Stop()
	for {
		at := time.Now().UnixNano()
		steal, err := cpuSteal()
		if err != nil {
			w.fail(err)
			return
		}
		var stolen time.Duration // the most any CPU was taken away
		for cpu, d := range steal {
			if before, ok := lastSteal[cpu]; ok {
				stolen = max(stolen, d-before)
			}
		}
		lastSteal = steal
		for i, pid := range pids {
			waits, err := threadWaits(pid)
			if errors.Is(err, os.ErrNotExist) {
				continue // it ended: the benchmark tells why
			}
			if err != nil {
				w.fail(fmt.Errorf("process %d: %w", pid, err))
				return
			}
			most := stolen
			for tid, d := range waits {
				if before, ok := last[i][tid]; ok {
					most = max(most, d-before)
				}
			}
			last[i] = waits
			w.mu.Lock()
			w.longest = max(w.longest, most)
			if most >= heldWait {
				w.held[i] = append(w.held[i], heldSpan{fromNs: lastAt, toNs: at})
			}
			w.mu.Unlock()
		}
		lastAt = at
		select {
		case <-w.stopped:
			return
		case <-ticker.C:
		}
	}
}

func (w *cpuWaits) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}

// stop ends the sampling and returns, per process, the stretches the
// machine held it back, and the longest any thread waited within a sample;
// stopping again returns the same.
func (w *cpuWaits) stop() ([][]heldSpan, time.Duration, error) {
	w.stopOnce.Do(func() { close(w.stopped) })
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held, w.longest, w.err
}

// threadWaits reads how long each thread of process pid has waited on a
// run queue (/proc schedstat, second field), by thread id.
func threadWaits(pid int) (map[string]time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	waits := make(map[string]time.Duration, len(tasks))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited meanwhile
		}
		if err != nil {
			return nil, err
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			return nil, errors.New("short /proc schedstat")
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, err
		}
		waits[t.Name()] = time.Duration(ns)
	}
	return waits, nil
}

// userHz is the unit of /proc/stat's times (USER_HZ, 100 on Linux).
const userHz = 100

// cpuSteal reads how long a virtual machine's host has taken each CPU
// away (/proc/stat, the eighth time of each cpuN line), by CPU.
func cpuSteal() (map[string]time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	steal := map[string]time.Duration{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		ticks, err := strconv.ParseInt(f[8], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/stat: %w", err)
		}
		steal[f[0]] = time.Duration(ticks) * time.Second / userHz
	}
	return steal, nil
}

// heldBetween tells whether one of spans touches [fromNs, toNs].
func heldBetween(spans []heldSpan, fromNs, toNs int64) bool {
	for _, s := range spans {
		if s.fromNs <= toNs && s.toNs >= fromNs {
			return true
		}
	}
	return false
}

// unheld leaves out of a speaker's blocks, heard from outside, those that
// the machine may have delayed: a block written late was filled late, at
// most the output's latency before it was heard.
func unheld(blocks []playlog.Block, spans []heldSpan) []playlog.Block {
	var kept []playlog.Block
	for _, b := range blocks {
		if !heldBetween(spans, b.TNs-int64(pipeLatency), b.TNs) {
			kept = append(kept, b)
		}
	}
	return kept
}

// worstUnheldGapOf is playlog.Gap over a speaker's blocks between fromNs and
// toNs, left out the breaks during which the machine held it back.
func worstUnheldGapOf(blocks []playlog.Block, spans []heldSpan, fromNs, toNs int64) int64 {
	var worst int64
	run := 0 // the first block of the stretch the machine did not hold back
	for i := 1; i <= len(blocks); i++ {
		if i < len(blocks) && !heldBetween(spans, blocks[i-1].TNs-int64(pipeLatency), blocks[i].TNs) {
			continue
		}
		gap, _ := playlog.Gap(blocks[run:i], pipeRate, fromNs, toNs)
		worst = max(worst, gap)
		run = i
	}
	return worst
}
