package controller

import (
	"errors"

	"github.com/tutti-audio/tutti/protocol"
)

// The scan command and the scan progress the controller status shows.

// scanProgressed notes a scan's progress for the controller status (the
// session loop publishes it).
func (c *Controller) scanProgressed(p protocol.ScanProgress) {
	c.scanProgress.Store(&p)
	c.poke(c.statusWake)
	if p.Done {
		c.poke(c.m3uWake)     // M3U files wait for the scan's songs (m3uimport.go)
		c.poke(c.measureWake) // and loudness for the scan's end (songlength.go)
	}
}

// startScan runs the scan command: an admin's rescan of the music folders.
func (c *Controller) startScan(who asker) (protocol.ScanProgress, error) {
	if err := who.mayAdminister(protocol.CmdScan); err != nil {
		return protocol.ScanProgress{}, err
	}
	if c.scanner == nil {
		return protocol.ScanProgress{}, errors.New("this controller has no music folders (--music DIR)")
	}
	// The scan asked for starts after the last one started (the first
	// scan, or one running, ends first).
	next := protocol.ScanProgress{Number: 1, Scanning: true}
	if last := c.scanProgress.Load(); last != nil {
		next.Number = last.Number + 1
	}
	c.scanner.Rescan()
	return next, nil
}

// scanning says whether a scan of the music folders runs, or the first
// has not started yet.
func (c *Controller) scanning() bool {
	p := c.scanProgress.Load()
	return p == nil || p.Scanning
}

// scanStatus is the scan progress to publish in the controller status.
func (c *Controller) scanStatus() *protocol.ScanProgress {
	if c.scanner == nil {
		return nil
	}
	return c.scanProgress.Load()
}
