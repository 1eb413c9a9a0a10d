// Package cpuwait tells when the machine held processes back. A process
// falls behind for one of two reasons: it kept itself waiting (a lock, a
// garbage collection, a write to disk), or the machine gave it no CPU
// (other processes, a virtual machine's host). Only the kernel tells them
// apart: a thread the machine holds back is runnable and waits on a run
// queue, which its schedstat counts; one that waits for itself sleeps,
// which it does not. A host that takes a virtual CPU away shows as that
// CPU's steal time instead. A Watch samples both.
package cpuwait

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Span is a stretch, in Unix ns, when the machine held a process back: one
// of its threads waited for a CPU, or a CPU was taken away, for the
// Watch's threshold or more. The kernel counts a wait when the thread gets
// the CPU, so the span reaches back from that sample by the wait.
type Span struct{ FromNs, ToNs int64 }

// Watch samples the run-queue waits of processes' threads until Stop.
type Watch struct {
	every, threshold time.Duration
	stopOnce         sync.Once
	stopped          chan struct{}
	done             chan struct{}
	mu               sync.Mutex
	held             [][]Span // per process
	longest          time.Duration
	err              error
}

// Start samples the threads of pids every period; a process counts as
// held back between two samples when one of its threads waited threshold
// or more in between.
func Start(pids []int, every, threshold time.Duration) *Watch {
	w := &Watch{every: every, threshold: threshold, stopped: make(chan struct{}), done: make(chan struct{}),
		held: make([][]Span, len(pids))}
	go w.run(pids)
	return w
}

func (w *Watch) run(pids []int) {
	defer close(w.done)
	last := make([]map[string]time.Duration, len(pids))
	lastSteal, _ := cpuSteal()
	lastAt := time.Now().UnixNano()
	ticker := time.NewTicker(w.every)
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
				continue // it ended: its owner tells why
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
			if most >= w.threshold {
				w.held[i] = append(w.held[i], Span{FromNs: lastAt - int64(most), ToNs: at})
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

func (w *Watch) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}

// Stop ends the sampling and returns, per process, the stretches the
// machine held it back, and the longest any of its threads waited (or a
// CPU was taken away) between two samples; stopping again returns the same.
func (w *Watch) Stop() ([][]Span, time.Duration, error) {
	w.stopOnce.Do(func() { close(w.stopped) })
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held, w.longest, w.err
}

// Held tells whether one of spans touches [fromNs, toNs].
func Held(spans []Span, fromNs, toNs int64) bool {
	for _, s := range spans {
		if s.FromNs <= toNs && s.ToNs >= fromNs {
			return true
		}
	}
	return false
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
