//go:build bench

package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// benchStart times how soon a song no speaker has yet is heard: a fresh
// song is uploaded to the controller, then enqueue and play are published
// back to back; first sound is when the last speaker hears the song's first
// frame, from the enqueue's publish.
func benchStart(ctx context.Context, b *bench, args []string) error {
	fs := b.flags()
	speakers := fs.Int("speakers", 3, "number of speakers")
	iterations := fs.Int("iterations", 10, "songs started")
	seconds := fs.Int("song-seconds", 30, "length of each song (30 s of 44.1 kHz stereo WAV is 5.3 MB)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *speakers < 1 || *iterations < 1 || *iterations > 100 || *seconds < 1 {
		return fmt.Errorf("want at least 1 speaker, 1-100 iterations and songs of at least 1 s")
	}
	size := float64(*seconds*benchRate*4+44) / 1e6
	b.header("%d speakers, %d uncached songs of %.1f MB (WAV), enqueue+play to first sound", *speakers, *iterations, size)
	dir, err := tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logs := newDeviceLogs()
	quiet := b.quiet()
	sys, err := startSystem(ctx, quiet, systemConfig{dir: dir, listen: "127.0.0.1:0", http: "127.0.0.1:0", speakers: *speakers, speakerLog: logs.writer})
	if err != nil {
		return err
	}
	defer sys.stop()
	c, err := dialCommander(ctx, sys.brokerURL)
	if err != nil {
		return err
	}
	defer c.close()
	statuses, err := watchStatuses(ctx, sys.brokerURL, sys.names)
	if err != nil {
		return err
	}
	err = statuses.until(ctx, sys.names, 30*time.Second, synced)
	statuses.close()
	if err != nil {
		return err
	}
	topic := protocol.SessionCommandTopic(protocol.DefaultSession)

	var firstSound durations
	for k := range *iterations {
		song := timecodeSong(k, *seconds)
		path := filepath.Join(dir, song.file)
		if err := writeSong(path, song); err != nil {
			return err
		}
		loaded, _, err := upload(ctx, c.songs, path, true, quiet)
		if err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		os.Remove(path)
		if _, err := c.do(ctx, topic, protocol.Request{Cmd: protocol.CmdClear}); err != nil {
			return err
		}
		enqueue, err := c.send(ctx, topic, protocol.Request{Cmd: protocol.CmdEnqueue, Song: loaded.SHA256})
		if err != nil {
			return err
		}
		play, err := c.send(ctx, topic, protocol.Request{Cmd: protocol.CmdPlay})
		if err != nil {
			return err
		}
		for _, s := range []sentRequest{enqueue, play} {
			if _, err := s.await(ctx); err != nil {
				return err
			}
		}
		lo, hi := songBase(k), songBase(k+1)
		heard, err := logs.whenAllHeard(ctx, sys.names, 30*time.Second, func(_ string, blocks []playlog.Block) (int64, bool) {
			for _, bl := range blocks {
				if bl.TNs > enqueue.at.UnixNano() && bl.Frame >= lo && bl.Frame < hi {
					return heardFrom(bl, lo), true
				}
			}
			return 0, false
		})
		if err != nil {
			return fmt.Errorf("song %d: %w", k+1, err)
		}
		firstSound = append(firstSound, time.Duration(heard-enqueue.at.UnixNano()))
		fmt.Fprintf(b.stdout, "  song %d: first sound on every speaker after %.1f ms\n", k+1, float64(firstSound[k])/1e6)
	}
	st := firstSound.stats()
	fmt.Fprintf(b.stdout, "first sound of an uncached %.1f MB song on every speaker: %s\n", size, st)
	b.result(map[string]any{
		"speakers": *speakers, "iterations": *iterations, "song_mb": size, "samples": st.N,
		"first_sound_p50_ms": st.P50Ms, "first_sound_p99_ms": st.P99Ms, "first_sound_max_ms": st.Max,
	})
	return nil
}
