//go:build bench

package cli

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/protocol"
)

// costCase is one way of playing that the cost benchmark measures: a song
// file, the output's rate, and whether the output is ALSA (a PulseAudio
// null sink) instead of a pipe.
type costCase struct {
	name string
	song string // path of the encoded file
	rate int
	alsa bool
}

// costResult is what a case measured, of tutti's speaker and of the
// snapclient beside it (peer false: none ran).
type costResult struct {
	tutti, snapclient procLoad
	peer              bool
}

// costWarmUp lets the decoder, the caches and the peer's buffer settle
// before a window is measured.
const costWarmUp = 2 * time.Second

// benchCost runs, for each case, one real speaker process against an
// in-process broker and controller, and beside it, when Snapcast is
// installed, one snapclient of a snapserver playing the same music; it
// reads both processes' CPU time and resident memory from /proc over the
// same window.
func benchCost(ctx context.Context, b *bench, args []string) error {
	fs := b.flags()
	window := fs.Duration("window", 15*time.Second, "how long each case is measured")
	tutti := fs.String("tutti", tuttiBinary(), "the tutti binary to run the speaker with")
	only := fs.String("cases", "flac,mp3,ogg,opus,resampled,alsa", "the cases to run, comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, tool := range []string{"flac", "lame", "oggenc", "opusenc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the %s encoder is needed to make the test songs: apt-get install flac lame vorbis-tools opus-tools", tool)
		}
	}
	b.header("one `tutti speaker` process (pipe output, or ALSA to a PulseAudio null sink) per case, beside one snapclient (file player, or ALSA) of a snapserver playing the same music, %s each", *window)
	peerMissing, pulseMissing := snapcastInstalled(), pulseInstalled()
	if peerMissing != nil {
		fmt.Fprintf(b.stdout, "no snapclient to compare with: %v; tutti's figures alone\n", peerMissing)
	}
	if pulseMissing != nil {
		fmt.Fprintf(b.stdout, "no ALSA case: %v\n", pulseMissing)
	}
	dir, err := tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The songs: generated music, encoded by the reference encoders.
	songSeconds := int((*window + costWarmUp + 15*time.Second).Seconds())
	tune := audiogen.Tune(3, benchRate)
	wav := filepath.Join(dir, "music.wav")
	if err := writeSong(wav, generatedSong{seconds: songSeconds, sample: tune}); err != nil {
		return err
	}
	flacPath, mp3Path, oggPath := filepath.Join(dir, "music.flac"), filepath.Join(dir, "music.mp3"), filepath.Join(dir, "music.ogg")
	opusPath := filepath.Join(dir, "music.opus")
	for _, enc := range [][]string{
		{"flac", "--silent", "--force", "-o", flacPath, wav},
		{"lame", "--quiet", "-b", "192", wav, mp3Path},
		{"oggenc", "--quiet", "-o", oggPath, wav},
		{"opusenc", "--quiet", "--bitrate", "128", wav, opusPath},
	} {
		if out, err := exec.CommandContext(ctx, enc[0], enc[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", enc[0], err, out)
		}
	}
	cases := []costCase{
		{name: "flac", song: flacPath, rate: benchRate},
		{name: "mp3", song: mp3Path, rate: benchRate},
		{name: "ogg", song: oggPath, rate: benchRate},
		// Opus decodes at 48 kHz: played at that rate, as an ALSA device
		// of 48 kHz does, the case measures the decoder alone.
		{name: "opus", song: opusPath, rate: 48000},
		{name: "resampled", song: flacPath, rate: 48000},
	}
	if pulseMissing == nil {
		cases = append(cases, costCase{name: "alsa", song: flacPath, rate: benchRate, alsa: true})
	}
	wanted := strings.Split(*only, ",")
	cases = slices.DeleteFunc(cases, func(c costCase) bool { return !slices.Contains(wanted, c.name) })
	if len(cases) == 0 {
		return fmt.Errorf("--cases %q: no case to run", *only)
	}

	quiet := b.quiet()
	sys, err := startSystem(ctx, quiet, systemConfig{dir: dir, listen: "127.0.0.1:0", http: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer sys.stop()
	c, err := dialCommander(ctx, sys.brokerURL)
	if err != nil {
		return err
	}
	defer c.close()
	topic := protocol.SessionCommandTopic(protocol.DefaultSession)
	// One speaker name for every case: each case's process takes the place
	// of the one before, so that the session's quorum is always the one
	// that plays.
	const name = "cost"
	songs := map[string]protocol.Song{}
	for _, cs := range cases {
		song, ok := songs[cs.song]
		if !ok {
			if song, _, err = upload(ctx, c.songs, cs.song, true, quiet); err != nil {
				return fmt.Errorf("upload %s: %w", filepath.Base(cs.song), err)
			}
			songs[cs.song] = song
		}
		if _, err := c.do(ctx, topic, protocol.Request{Cmd: protocol.CmdEnqueue, Song: song.SHA256}); err != nil {
			return err
		}
	}
	statuses, err := watchStatuses(ctx, sys.brokerURL, []string{name})
	if err != nil {
		return err
	}
	defer statuses.close()

	var peer *snapcast
	if peerMissing == nil {
		if peer, err = startSnapserver(filepath.Join(dir, "snapcast"), tunePCM(tune, songSeconds)); err != nil {
			return err
		}
		defer peer.stop()
	}
	var pulse *pulseServer
	if pulseMissing == nil {
		if pulse, err = startPulse(ctx, "tutti", "snapclient"); err != nil {
			return err
		}
		defer pulse.stop()
	}

	results := map[string]costResult{}
	for i, cs := range cases {
		cmd := protocol.CmdPlay
		if i > 0 {
			cmd = protocol.CmdNext
		}
		start := func() error {
			_, err := c.do(ctx, topic, protocol.Request{Cmd: cmd})
			return err
		}
		r, err := runCostCase(ctx, costRun{c: cs, name: name, song: songs[cs.song], start: start, dir: dir, tutti: *tutti,
			brokerURL: sys.brokerURL, statuses: statuses, peer: peer, pulse: pulse, window: *window})
		if err != nil {
			return fmt.Errorf("%s: %w", cs.name, err)
		}
		results[cs.name] = r
		// The next case's speaker must not see this one's status.
		offline := func(st map[string]any) bool { return st["online"] == false }
		if err := statuses.until(ctx, []string{name}, 15*time.Second, offline); err != nil {
			return err
		}
		line := fmt.Sprintf("%-9s tutti %s", cs.name, r.tutti)
		if r.peer {
			line += fmt.Sprintf("; snapclient %s; tutti/snapclient CPU %.2fx, RSS %.2fx", r.snapclient,
				r.tutti.cpuPercent/r.snapclient.cpuPercent, r.tutti.maxRSSMB/r.snapclient.maxRSSMB)
		}
		fmt.Fprintln(b.stdout, line)
	}

	fields := map[string]any{"window_s": window.Seconds()}
	var worst procLoad
	for name, r := range results {
		worst.cpuPercent = max(worst.cpuPercent, r.tutti.cpuPercent)
		if r.tutti.maxRSSMB > worst.maxRSSMB {
			worst.maxRSSMB, worst.fileMB = r.tutti.maxRSSMB, r.tutti.fileMB
		}
		fields[name+"_cpu_percent"], fields[name+"_rss_mb"] = r.tutti.cpuPercent, r.tutti.maxRSSMB
		if r.peer {
			fields[name+"_cpu_ratio_snapclient"] = r.tutti.cpuPercent / r.snapclient.cpuPercent
			fields[name+"_snapclient_cpu_percent"] = r.snapclient.cpuPercent
		}
	}
	fields["cpu_percent"], fields["rss_mb"] = worst.cpuPercent, worst.maxRSSMB
	fmt.Fprintf(b.stdout, "tutti, worst case: %s\n", worst)
	// snapclient decodes FLAC in every case: its figures of the FLAC case
	// stand for it.
	if r := results["flac"]; r.peer {
		fields["snapclient_cpu_percent"], fields["snapclient_rss_mb"] = r.snapclient.cpuPercent, r.snapclient.maxRSSMB
	}
	b.result(fields)
	return nil
}

// costRun is what one case is run with.
type costRun struct {
	c         costCase
	name      string // the speaker's
	song      protocol.Song
	start     func() error // makes the session play the case's song
	dir       string
	tutti     string // the binary
	brokerURL string
	statuses  *statusWatch
	peer      *snapcast    // nil: none
	pulse     *pulseServer // for the ALSA case
	window    time.Duration
}

// runCostCase starts the case's speaker, and snapclient beside it, waits
// until both play, and measures them over the same window.
func runCostCase(ctx context.Context, run costRun) (costResult, error) {
	c := run.c
	tuttiSound, peerSound := &pcmMeter{}, &pcmMeter{}
	args := []string{"speaker", "--name", run.name, "--broker", run.brokerURL,
		"--cache", filepath.Join(run.dir, "cache-"+c.name), "--rate", strconv.Itoa(c.rate)}
	var env []string
	peerPlayer := []string{"--player", "file:filename=stdout"}
	if c.alsa {
		args = append(args, "--output", "alsa", "--alsa-device", "pulse:tutti")
		env = run.pulse.env
		peerPlayer = []string{"--player", "alsa", "--soundcard", "pulse:snapclient"}
	} else {
		args = append(args, "--output", "pipe", "--pipe", "-")
	}
	if c.rate != benchRate {
		peerPlayer = append(peerPlayer, "--sampleformat", strconv.Itoa(c.rate)+":16:*")
	}
	cmd := exec.Command(run.tutti, args...)
	cmd.Env = append(os.Environ(), env...)
	if !c.alsa {
		cmd.Stdout = tuttiSound
	}
	spk, err := startCmd("tutti speaker", cmd, filepath.Join(run.dir, run.name+".log"))
	if err != nil {
		return costResult{}, err
	}
	defer spk.stop()
	var peer *childProc
	if run.peer != nil {
		var out io.Writer
		if !c.alsa {
			out = peerSound
		}
		if peer, err = run.peer.client("snapclient-"+c.name, out, env, peerPlayer...); err != nil {
			return costResult{}, err
		}
		defer peer.stop()
	}

	if err := run.statuses.until(ctx, []string{run.name}, 30*time.Second, synced); err != nil {
		if exit := spk.exited(); exit != nil {
			return costResult{}, exit
		}
		return costResult{}, fmt.Errorf("the speaker does not come online: %w", err)
	}
	if err := run.start(); err != nil {
		return costResult{}, err
	}
	playing := func(st map[string]any) bool {
		return st["state"] == protocol.Playing && st["song"] == run.song.SHA256
	}
	if err := run.statuses.until(ctx, []string{run.name}, 30*time.Second, playing); err != nil {
		if exit := spk.exited(); exit != nil {
			return costResult{}, exit
		}
		return costResult{}, fmt.Errorf("the speaker does not play: %w", err)
	}
	if peer != nil {
		if err := waitSound(ctx, peer, peerSound, c, run.pulse, "snapclient", 15*time.Second); err != nil {
			return costResult{}, err
		}
	}
	select {
	case <-time.After(costWarmUp):
	case <-ctx.Done():
		return costResult{}, ctx.Err()
	}

	var r costResult
	var peerErr error
	var wg sync.WaitGroup
	if peer != nil {
		r.peer = true
		wg.Go(func() { r.snapclient, peerErr = measureProc(ctx, peer.pid(), run.window) })
	}
	tuttiFrom, peerFrom := tuttiSound.sound(), peerSound.sound()
	r.tutti, err = measureProc(ctx, spk.pid(), run.window)
	wg.Wait()
	for _, p := range []*childProc{spk, peer} {
		if p != nil && p.exited() != nil {
			return r, p.exited()
		}
	}
	if err != nil {
		return r, fmt.Errorf("reading /proc of the speaker: %w", err)
	}
	if peerErr != nil {
		return r, fmt.Errorf("reading /proc of snapclient: %w", peerErr)
	}
	// What was measured was playing all along.
	if c.alsa {
		if st := run.statuses.of(run.name); !playing(st) {
			return r, fmt.Errorf("the speaker stopped playing during the window: %v", st)
		}
		if err := run.pulse.sinkRunning(ctx, "tutti"); err != nil || peer == nil {
			return r, err
		}
		return r, run.pulse.sinkRunning(ctx, "snapclient")
	}
	for _, heard := range []struct {
		who   string
		meter *pcmMeter
		from  int64
		ran   bool
	}{{"tutti", tuttiSound, tuttiFrom, true}, {"snapclient", peerSound, peerFrom, peer != nil}} {
		if s := float64(heard.meter.sound()-heard.from) / float64(c.rate); heard.ran && s < run.window.Seconds()/2 {
			return r, fmt.Errorf("%s played only %.1f s of sound in %s", heard.who, s, run.window)
		}
	}
	return r, nil
}

// waitSound waits until a player's output carries sound: its pipe (pcm),
// or for an ALSA case its PulseAudio sink, named who.
func waitSound(ctx context.Context, p *childProc, pcm *pcmMeter, c costCase, pulse *pulseServer, who string, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); ; {
		var err error
		if c.alsa {
			err = pulse.sinkRunning(ctx, who)
		} else if pcm.sound() == 0 {
			err = fmt.Errorf("no sound from %s", who)
		}
		if err == nil {
			return nil
		}
		if exit := p.exited(); exit != nil {
			return exit
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s:\n%s", err, timeout, p.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sinkRunning says whether the null sink named sink is being played to.
func (p *pulseServer) sinkRunning(ctx context.Context, sink string) error {
	out, err := exec.CommandContext(ctx, "pactl", "-s", p.server, "list", "short", "sinks").Output()
	if err != nil {
		return fmt.Errorf("pactl: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// index, name, driver, format, state
		if f := strings.Fields(line); len(f) >= 5 && f[1] == sink {
			if f[len(f)-1] != "RUNNING" {
				return fmt.Errorf("the PulseAudio sink %s is not played to: %s", sink, line)
			}
			return nil
		}
	}
	return fmt.Errorf("no PulseAudio sink %s", sink)
}

// pcmMeter counts the frames of a 16-bit stereo PCM stream that are not
// silence.
type pcmMeter struct {
	mu     sync.Mutex
	sounds int64
	part   []byte // a frame split across writes
}

func (m *pcmMeter) Write(b []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(b)
	if len(m.part) > 0 {
		take := min(4-len(m.part), len(b))
		m.part, b = append(m.part, b[:take]...), b[take:]
		if len(m.part) < 4 {
			return n, nil
		}
		m.count(m.part)
		m.part = m.part[:0]
	}
	whole := len(b) &^ 3
	m.count(b[:whole])
	m.part = append(m.part, b[whole:]...)
	return n, nil
}

func (m *pcmMeter) count(frames []byte) {
	for i := 0; i < len(frames); i += 4 {
		if binary.LittleEndian.Uint32(frames[i:]) != 0 {
			m.sounds++
		}
	}
}

func (m *pcmMeter) sound() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sounds
}

// tunePCM is seconds of tune as 16-bit stereo PCM.
func tunePCM(tune func(int64) audiogen.Frame, seconds int) []byte {
	pcm := make([]byte, 0, seconds*benchRate*4)
	for i := range int64(seconds * benchRate) {
		f := tune(i)
		pcm = binary.LittleEndian.AppendUint16(pcm, uint16(f.L))
		pcm = binary.LittleEndian.AppendUint16(pcm, uint16(f.R))
	}
	return pcm
}
