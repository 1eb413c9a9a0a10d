package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/tutti-audio/tutti/clock"
)

// Folder songs are decoded here, in the background, one at a time: first
// those whose headers do not tell their exact length (they may not be
// enqueued before), then, once a scan is over, those whose tags give no
// ReplayGain, to measure
// their loudness (EBU R128) and, once an album's songs are all measured,
// its gain (albumgain.go).

// maxMeasureBatch bounds the songs the measuring loop lists at once.
const maxMeasureBatch = 64

// measureLoop decodes, one at a time (through the library's analysis
// slot, shared with uploads), the folder songs whose headers did not give
// their exact length, then those without ReplayGain, on a thread of the
// lowest priority. A song that cannot be decoded is logged and not tried
// again until restart.
func (c *Controller) measureLoop(ctx context.Context) {
	decode, stop := c.lowPriority()
	defer stop()
	failed := map[string]bool{}
	busy := 0 // songs measured since the loop was last idle
	var since time.Time
	for {
		todo, err := c.store.unmeasuredSongs(maxMeasureBatch + len(failed))
		if err != nil {
			c.log.Error("music folders: songs to measure not listed", "err", err)
		}
		lengths := len(todo)
		var levels []musicFile
		if !c.scanning() { // loudness waits for the scan, not to take a core from it
			if levels, err = c.store.unleveledSongs(maxMeasureBatch + len(failed)); err != nil {
				c.log.Error("music folders: songs to measure the loudness of not listed", "err", err)
			}
		}
		todo = append(todo, levels...)
		measured := 0
		for i, f := range todo {
			if ctx.Err() != nil {
				return
			}
			if failed[f.sha] {
				continue
			}
			if i >= lengths && measured > 0 && c.newSongs() {
				break // lengths first: list again
			}
			if err := c.measure(f, decode); err != nil {
				c.log.Warn("music folders: song not measured; not tried again until restart", "sha256", f.sha, "path", f.path,
					"length_known", i >= lengths, "err", err)
				failed[f.sha] = true
				continue
			}
			measured++
		}
		if measured > 0 {
			if busy == 0 {
				since = c.local.Now()
			}
			busy += measured
			continue
		}
		if busy > 0 {
			c.log.Info("music folders: songs measured", "songs", busy, "took", clock.Since(c.local, since).Round(time.Millisecond))
			busy = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-c.measureWake:
		}
	}
}

// lowPriority starts the goroutine the measuring decodes on, on a thread
// of the lowest priority: run has it run a function and waits for it. The
// store is written from the calling goroutine, so that no transaction
// waits on a thread the kernel puts last. stop ends it.
func (c *Controller) lowPriority() (run func(func()), stop func()) {
	jobs := make(chan func())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := lowerThreadPriority(); err != nil { // measurenice_linux.go
			c.log.Warn("music folders: the measuring's priority not lowered", "err", err)
		}
		for job := range jobs {
			job()
		}
	}()
	run = func(job func()) {
		finished := make(chan struct{})
		jobs <- func() { defer close(finished); job() }
		<-finished
	}
	return run, func() { close(jobs); <-done }
}

// newSongs says whether songs came to be measured since it was last asked
// (the wake is taken; listing them again follows).
func (c *Controller) newSongs() bool {
	select {
	case <-c.measureWake:
		return true
	default:
		return false
	}
}

// measure decodes one song's file, through decode, to count its frames
// and, when its tags give no ReplayGain, to measure its loudness.
func (c *Controller) measure(f musicFile, decode func(func())) (err error) {
	// Decoders of third-party formats can panic on hostile input.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder failed: %v", p)
		}
	}()
	song, err := c.store.song(f.sha)
	if err != nil {
		return err
	}
	file, err := c.lib.openSong(f.sha)
	if err != nil {
		return err
	}
	defer file.Close()
	if song.Format == "m4a" { // its headers tell, as analyze reads them
		measured, err := m4aSong(file, song.Size, song)
		if err != nil {
			return err
		}
		return c.store.setLength(f.sha, measured.Frames, measured.SampleRate)
	}
	var meter *songMeter
	if song.ReplayGain == nil {
		meter = &songMeter{pace: c.yielder.pacer()}
	}
	var frames int64
	var rate int
	decode(func() {
		defer func() { // on the decoding goroutine: the panic is this song's error
			if p := recover(); p != nil {
				err = fmt.Errorf("decoder failed: %v", p)
			}
		}()
		c.lib.analyzing.Lock()
		defer c.lib.analyzing.Unlock()
		frames, rate, err = countFrames(file, song.Format, meter)
	})
	if err != nil {
		return err
	}
	if song.Frames == 0 {
		if err := c.store.setLength(f.sha, frames, rate); err != nil {
			return err
		}
	}
	if meter == nil {
		return nil
	}
	if err := c.store.setMeasured(f.sha, meter.replayGain(), meter.histogram()); err != nil {
		return err
	}
	changed, err := c.albumGain(f.sha)
	c.noteGains(append(changed, f.sha))
	return err
}
