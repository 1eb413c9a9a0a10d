//go:build bench

package cli

import (
	"time"

	"github.com/tutti-audio/tutti/internal/cpuwait"
	"github.com/tutti-audio/tutti/playlog"
)

// A speaker's sound breaks when its process falls behind its output,
// because tutti kept it waiting or because the machine gave it no CPU
// (cpuwait tells them apart). The failover benchmark samples how long the
// speakers were held back and reports its figures also without those
// stretches.
const (
	// cpuWaitEvery is how often the waits are sampled: a quarter of the
	// speakers' latency, and cheap (a file read per thread).
	cpuWaitEvery = 10 * time.Millisecond
	// heldWait is how long a speaker's thread must have waited for a CPU
	// between two samples for the machine to count as holding the speaker
	// back: half the block period by which a paced output fills ahead, so
	// that a wait which could delay a write is never missed.
	heldWait = pipeBlockFrames * time.Second / pipeRate / 2
)

// unheld leaves out of a speaker's blocks, heard from outside, those that
// the machine may have delayed: a block written late was filled late, at
// most the output's latency before it was heard.
func unheld(blocks []playlog.Block, spans []cpuwait.Span) []playlog.Block {
	var kept []playlog.Block
	for _, b := range blocks {
		if !cpuwait.Held(spans, b.TNs-int64(pipeLatency), b.TNs) {
			kept = append(kept, b)
		}
	}
	return kept
}

// worstUnheldGapOf is playlog.Gap over a speaker's blocks between fromNs
// and toNs, left out the breaks during which the machine held it back.
func worstUnheldGapOf(blocks []playlog.Block, spans []cpuwait.Span, fromNs, toNs int64) int64 {
	var worst int64
	run := 0 // the first block of the stretch the machine did not hold back
	for i := 1; i <= len(blocks); i++ {
		if i < len(blocks) && !cpuwait.Held(spans, blocks[i-1].TNs-int64(pipeLatency), blocks[i].TNs) {
			continue
		}
		gap, _ := playlog.Gap(blocks[run:i], pipeRate, fromNs, toNs)
		worst = max(worst, gap)
		run = i
	}
	return worst
}
