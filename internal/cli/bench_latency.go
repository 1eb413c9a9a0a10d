//go:build bench

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

const benchRate = 44100

// songBase is the first timecode frame of song k of a benchmark's playlist:
// every song carries distinct frame numbers, so a log tells which song and
// where in it a speaker played.
func songBase(k int) int64 { return int64(k) << 24 }

func timecodeSong(k, seconds int) generatedSong {
	base := songBase(k)
	return generatedSong{
		file: fmt.Sprintf("timecode-%03d.wav", k), seconds: seconds,
		sample: func(i int64) audiogen.Frame { return audiogen.Timecode(base + i) },
	}
}

// deviceBlock is the virtual devices' block: 882 frames (20 ms), their
// default, speaker.DefaultBlock(benchRate).
const deviceBlock = benchRate / 50

// soundLeadIn bounds how long before the first block that starts with a
// readable timecode the sound of a command may have begun: in the block
// before, and through a fade-in (5 ms; play or seek into a song), whose
// scaled samples carry no timecode.
const soundLeadIn = 2 * deviceBlock * time.Second / benchRate

// heardFrom is when sound that began at frame `first` was heard, given the
// first block that starts with timecoded sound, bl. The log says where the
// sound leading into bl began, which is the instant for sound that began
// within soundLeadIn of bl (a speaker that came in late began late). Sound
// that began earlier ran on from before: a new song started verbatim with
// no silence between (next) is timed back from bl to its first frame,
// within the block before.
func heardFrom(bl playlog.Block, first int64) int64 {
	if bl.SoundFromNs != 0 && bl.TNs-bl.SoundFromNs <= int64(soundLeadIn) {
		return bl.SoundFromNs
	}
	if d := bl.Frame - first; d > 0 && d <= deviceBlock {
		return bl.TNs - d*1e9/benchRate
	}
	return bl.TNs
}

// benchLatency times play, pause, next and seek from the publish of the
// command to the instant its effect is heard on the last speaker.
func benchLatency(ctx context.Context, b *bench, args []string) error {
	fs := b.flags()
	speakers := fs.Int("speakers", 3, "number of speakers")
	iterations := fs.Int("iterations", 20, "times each command is measured")
	lead := fs.Duration("lead", 0, "the controller's lead time for scheduled commands (0: the controller's default, adaptive)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *speakers < 1 || *iterations < 1 || *iterations > 100 {
		return fmt.Errorf("want at least 1 speaker and 1-100 iterations")
	}
	leadShown := "adaptive (the controller's default)"
	if *lead > 0 {
		leadShown = lead.String()
	}
	b.header("%d speakers, %d iterations of play, seek, next, pause; controller lead %s", *speakers, *iterations, leadShown)
	dir, err := tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logs := newDeviceLogs()
	sys, err := startSystem(ctx, b.quiet(), systemConfig{dir: dir, listen: "127.0.0.1:0", http: "127.0.0.1:0", speakers: *speakers, speakerLog: logs.writer, lead: *lead})
	if err != nil {
		return err
	}
	defer sys.stop()
	// One song per iteration: each ends with next into the following one.
	const songSeconds, seekTo = 12, 5
	var songs []generatedSong
	for k := range *iterations + 1 {
		songs = append(songs, timecodeSong(k, songSeconds))
	}
	if _, err := sys.loadAndPlay(ctx, b.quiet(), dir, songs); err != nil {
		return err
	}
	c, err := dialCommander(ctx, sys.brokerURL)
	if err != nil {
		return err
	}
	defer c.close()
	topic := protocol.SessionCommandTopic(protocol.DefaultSession)
	if _, err := logs.whenAllHeard(ctx, sys.names, 30*time.Second, firstBlock(0)); err != nil {
		return err
	}

	// m measures one command: publish, wait for the reply and for every
	// speaker to hear find's sound, record both latencies.
	type figures struct{ toSound, reply, scheduled durations }
	measured := map[string]*figures{}
	m := func(req protocol.Request, find func(name string, sent time.Time, blocks []playlog.Block) (int64, bool)) error {
		s, err := c.send(ctx, topic, req)
		if err != nil {
			return err
		}
		r, err := s.await(ctx)
		if err != nil {
			return err
		}
		heard, err := logs.whenAllHeard(ctx, sys.names, 10*time.Second, func(name string, blocks []playlog.Block) (int64, bool) {
			return find(name, s.at, blocks)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", req.Cmd, err)
		}
		f := measured[req.Cmd]
		if f == nil {
			f = &figures{}
			measured[req.Cmd] = f
		}
		f.toSound = append(f.toSound, time.Duration(heard-s.at.UnixNano()))
		f.reply = append(f.reply, r.at.Sub(s.at))
		// The reply says for when the controller scheduled the change.
		var result struct {
			AtNs int64 `json:"at_ns"`
		}
		if json.Unmarshal(r.Result, &result) == nil && result.AtNs > 0 {
			f.scheduled = append(f.scheduled, time.Duration(result.AtNs-s.at.UnixNano()))
		}
		return nil
	}
	pausedAt := map[string]int64{} // last frame each speaker heard before the pause
	pause := func(name string, sent time.Time, blocks []playlog.Block) (int64, bool) {
		frame, t, ok := playlog.LastSound(blocks, benchRate, math.MaxInt64)
		// Silence counts once it has lasted: the log runs ahead of real time
		// by the device latency, so a log that just ends may go on.
		end := t + int64(time.Second)/benchRate
		if !ok || t < sent.UnixNano() || time.Since(time.Unix(0, end)) < 200*time.Millisecond {
			return 0, false
		}
		pausedAt[name] = frame
		return end, true
	}
	firstAfter := func(sent time.Time, blocks []playlog.Block, lo, hi, first int64) (int64, bool) {
		for _, bl := range blocks {
			if bl.TNs > sent.UnixNano() && bl.Frame >= lo && bl.Frame < hi {
				return heardFrom(bl, first), true
			}
		}
		return 0, false
	}
	if err := m(protocol.Request{Cmd: protocol.CmdPause}, pause); err != nil {
		return err
	}
	for k := range *iterations {
		song, next := songBase(k), songBase(k+1)
		steps := []struct {
			req  protocol.Request
			find func(string, time.Time, []playlog.Block) (int64, bool)
		}{
			{protocol.Request{Cmd: protocol.CmdPlay}, func(name string, sent time.Time, blocks []playlog.Block) (int64, bool) {
				return firstAfter(sent, blocks, song, next, pausedAt[name]+1)
			}},
			{protocol.Request{Cmd: protocol.CmdSeek, Position: positionOf(seekTo * time.Second)}, func(_ string, sent time.Time, blocks []playlog.Block) (int64, bool) {
				target := song + seekTo*benchRate
				return firstAfter(sent, blocks, target-benchRate/10, next, target)
			}},
			{protocol.Request{Cmd: protocol.CmdNext}, func(_ string, sent time.Time, blocks []playlog.Block) (int64, bool) {
				return firstAfter(sent, blocks, next, songBase(k+2), next)
			}},
			{protocol.Request{Cmd: protocol.CmdPause}, pause},
		}
		for _, st := range steps {
			if err := m(st.req, st.find); err != nil {
				return fmt.Errorf("iteration %d: %w", k+1, err)
			}
		}
	}

	var all, replies, scheduled durations
	for _, cmd := range []string{protocol.CmdPlay, protocol.CmdPause, protocol.CmdNext, protocol.CmdSeek} {
		f := measured[cmd]
		all, replies, scheduled = append(all, f.toSound...), append(replies, f.reply...), append(scheduled, f.scheduled...)
		fmt.Fprintf(b.stdout, "%-6s command to sound on every speaker: %s\n       reply: %s\n", cmd, f.toSound.stats(), f.reply.stats())
	}
	st, rs, sc := all.stats(), replies.stats(), scheduled.stats()
	fmt.Fprintf(b.stdout, "all    command to sound on every speaker: %s\n       reply: %s\n", st, rs)
	fmt.Fprintf(b.stdout, "scheduled by the controller this far after the publish: %s\n", sc)
	b.result(map[string]any{
		"speakers": *speakers, "iterations": *iterations, "scheduled_p50_ms": sc.P50Ms, "samples": st.N,
		"cmd_to_sound_p50_ms": st.P50Ms, "cmd_to_sound_p99_ms": st.P99Ms, "cmd_to_sound_max_ms": st.Max,
		"reply_p50_ms": rs.P50Ms, "reply_p99_ms": rs.P99Ms,
	})
	return nil
}

func positionOf(d time.Duration) *protocol.Position {
	p := protocol.Position(d)
	return &p
}
