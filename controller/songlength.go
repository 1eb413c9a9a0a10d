package controller

import (
	"context"
	"fmt"
)

// Folder songs whose headers do not tell their exact length are decoded
// here, in the background, before they may be enqueued.

// maxMeasureBatch bounds the songs the measuring loop lists at once.
const maxMeasureBatch = 64

// measureLoop decodes, one at a time (through the library's analysis
// slot, shared with uploads), the folder songs whose headers did not give
// their exact length: only then may they be enqueued.
func (c *Controller) measureLoop(ctx context.Context) {
	failed := map[string]bool{} // not decodable: not tried again until restart
	for {
		todo, err := c.store.unmeasuredSongs(maxMeasureBatch + len(failed))
		if err != nil {
			c.log.Error("music folders: songs to measure not listed", "err", err)
		}
		measured := 0
		for _, f := range todo {
			if ctx.Err() != nil {
				return
			}
			if failed[f.sha] {
				continue
			}
			if err := c.measure(f); err != nil {
				c.log.Warn("music folders: song length not measured; it cannot be played", "sha256", f.sha, "path", f.path, "err", err)
				failed[f.sha] = true
				continue
			}
			measured++
		}
		if measured > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-c.measureWake:
		}
	}
}

// measure decodes one song's file to count its frames.
func (c *Controller) measure(f musicFile) (err error) {
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
	c.lib.analyzing.Lock()
	defer c.lib.analyzing.Unlock()
	frames, rate, err := countFrames(file, song.Format, nil)
	if err != nil {
		return err
	}
	return c.store.setLength(f.sha, frames, rate)
}
