//go:build bench

package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// benchScale measures command fan-out: from the publish of a command to the
// instant each speaker accepts the new session state, with (a) many
// speakers in one session and (b) many sessions of a few speakers, all on
// one hub. The hub (broker and controller) is a subprocess so that its CPU
// can be read from /proc; the speakers run in this process.
func benchScale(ctx context.Context, b *bench, args []string) error {
	fs := b.flags()
	speakers := fs.Int("speakers", 100, "speakers in the one session of configuration (a)")
	sessions := fs.Int("sessions", 20, "sessions of configuration (b)")
	perSession := fs.Int("per-session", 5, "speakers per session in configuration (b)")
	commands := fs.Int("commands", 20, "commands per configuration (in (b), each goes to every session at once)")
	interval := fs.Duration("interval", 250*time.Millisecond, "time between commands")
	tutti := fs.String("tutti", tuttiBinary(), "the tutti binary to run the hub with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *speakers < 1 || *sessions < 1 || *perSession < 1 || *commands < 1 {
		return fmt.Errorf("want at least 1 speaker, session and command")
	}
	b.header("(a) %d speakers in one session, (b) %d sessions x %d speakers; %d volume commands each, one every %s; hub as a subprocess",
		*speakers, *sessions, *perSession, *commands, *interval)
	dir, err := tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	zones := []string{protocol.DefaultSession}
	for i := range *sessions {
		zones = append(zones, fmt.Sprintf("zone%02d", i+1))
	}
	hub, err := startChild("tutti hub", *tutti, filepath.Join(dir, "hub.out"),
		"hub", "--demo", "--data", filepath.Join(dir, "hub"), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--sessions", strings.Join(zones, ","))
	if err != nil {
		return err
	}
	defer hub.stop()
	hubURL, err := hub.waitLog(ctx, regexp.MustCompile(`mqtt=(tcp://\S+)`), 30*time.Second)
	if err != nil {
		return err
	}

	oneSession := func(int) string { return protocol.DefaultSession }
	a, err := runFanout(ctx, b, hub, hubURL, "a-", *speakers, oneSession, []string{protocol.DefaultSession}, *commands, *interval)
	if err != nil {
		return fmt.Errorf("(a): %w", err)
	}
	fmt.Fprintf(b.stdout, "(a) %d speakers, 1 session: fan-out %s\n    reply: %s\n    hub: %s; speakers' process: %s\n", *speakers, a.fanout.stats(), a.replies.stats(), a.hub, a.speakers)
	zoneOf := func(i int) string { return zones[1 + i / *perSession] }
	bRes, err := runFanout(ctx, b, hub, hubURL, "b-", *sessions**perSession, zoneOf, zones[1:], *commands, *interval)
	if err != nil {
		return fmt.Errorf("(b): %w", err)
	}
	fmt.Fprintf(b.stdout, "(b) %d sessions x %d speakers: fan-out %s\n    reply: %s\n    hub: %s; speakers' process: %s\n", *sessions, *perSession, bRes.fanout.stats(), bRes.replies.stats(), bRes.hub, bRes.speakers)
	as, bs := a.fanout.stats(), bRes.fanout.stats()
	b.result(map[string]any{
		"speakers": *speakers, "sessions": *sessions, "per_session": *perSession, "commands": *commands,
		"fanout_p50_ms": as.P50Ms, "fanout_p99_ms": as.P99Ms, "fanout_max_ms": as.Max,
		"fanout_sessions_p50_ms": bs.P50Ms, "fanout_sessions_p99_ms": bs.P99Ms, "fanout_sessions_max_ms": bs.Max,
		"hub_cpu_percent": max(a.hub.cpuPercent, bRes.hub.cpuPercent), "hub_rss_mb": max(a.hub.maxRSSMB, bRes.hub.maxRSSMB),
		"speakers_process_cpu_percent": max(a.speakers.cpuPercent, bRes.speakers.cpuPercent),
	})
	return nil
}

// fanoutResult is one configuration's figures.
type fanoutResult struct {
	fanout durations // one per speaker and command
	hub    procLoad  // while the commands ran
	// speakers is this process's load meanwhile: all the speakers, and
	// the benchmark itself.
	speakers procLoad
	replies  durations // publish to reply, per command
}

// fanoutRound is one command to each of some sessions, and who heard it when.
type fanoutRound struct {
	mu      sync.Mutex
	volume  int                  // the state every speaker waits for
	heard   map[string]time.Time // by speaker
	want    int
	allDone chan struct{}
}

func (r *fanoutRound) accept(name string, st protocol.SessionState) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if st.Volume != r.volume || !r.heard[name].IsZero() {
		return
	}
	r.heard[name] = now
	if len(r.heard) == r.want {
		close(r.allDone)
	}
}

// runFanout starts n speakers (speaker i in session sessionOf(i)) against
// the hub, sends one volume command per round to every one of sessions, and
// times each speaker's receipt of the new state.
func runFanout(ctx context.Context, b *bench, hub *childProc, hubURL, prefix string, n int, sessionOf func(int) string, sessions []string, commands int, interval time.Duration) (fanoutResult, error) {
	var res fanoutResult
	var mu sync.Mutex
	var round *fanoutRound
	sessionOfName := map[string]string{}
	for i := range n {
		sessionOfName[prefix+speakerName(i)] = sessionOf(i)
	}
	dir, err := tempDir()
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	sys, err := startSystem(ctx, b.quiet(), systemConfig{
		dir: dir, hubURL: hubURL, namePrefix: prefix, speakers: n, speakerSession: sessionOf, block: benchRate / 10,
		onState: func(name string, st protocol.SessionState) {
			mu.Lock()
			r := round
			mu.Unlock()
			if r != nil {
				r.accept(name, st)
			}
		},
	})
	if err != nil {
		return res, err
	}
	defer sys.stop()
	c, err := dialCommander(ctx, hubURL)
	if err != nil {
		return res, err
	}
	defer c.close()

	var replies durations
	// send runs one round; the first, a warm-up that also waits for every
	// speaker to connect, is not counted.
	send := func(volume int, timeout time.Duration) (map[string]time.Time, error) {
		r := &fanoutRound{volume: volume, heard: map[string]time.Time{}, want: n, allDone: make(chan struct{})}
		mu.Lock()
		round = r
		mu.Unlock()
		sent := map[string]time.Time{}
		var reqs []sentRequest
		for _, s := range sessions {
			v := volume
			req, err := c.send(ctx, protocol.SessionCommandTopic(s), protocol.Request{Cmd: protocol.CmdVolume, Volume: &v})
			if err != nil {
				return nil, err
			}
			sent[s] = req.at
			reqs = append(reqs, req)
		}
		defer func() {
			for _, req := range reqs {
				if r, err := req.await(ctx); err == nil {
					replies = append(replies, r.at.Sub(req.at))
				}
			}
		}()
		select {
		case <-r.allDone:
		case <-time.After(timeout):
			r.mu.Lock()
			defer r.mu.Unlock()
			var missing []string
			for name := range sessionOfName {
				if r.heard[name].IsZero() {
					missing = append(missing, name+" ("+sessionOfName[name]+")")
				}
			}
			slices.Sort(missing)
			return nil, fmt.Errorf("only %d of %d speakers got the command within %s; missing %s", len(r.heard), n, timeout, strings.Join(missing[:min(len(missing), 5)], ", "))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return sent, nil
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := send(10, 5*time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return res, fmt.Errorf("warm-up: %w", err)
		}
		send(11, time.Second) // a changed volume, so the next warm-up is a change again
	}
	replies = nil
	before, err := readProc(hub.pid())
	if err != nil {
		return res, err
	}
	selfBefore, err := readProc(os.Getpid())
	if err != nil {
		return res, err
	}
	maxRSS := before.rssKB
	for k := range commands {
		next := time.Now().Add(interval)
		volume := 30 + k%50
		sent, err := send(volume, 10*time.Second)
		if err != nil {
			return res, fmt.Errorf("command %d: %w", k+1, err)
		}
		round.mu.Lock()
		for name, at := range round.heard {
			res.fanout = append(res.fanout, at.Sub(sent[sessionOfName[name]]))
		}
		round.mu.Unlock()
		if u, err := readProc(hub.pid()); err == nil {
			maxRSS = max(maxRSS, u.rssKB)
		}
		select {
		case <-time.After(time.Until(next)):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	after, err := readProc(hub.pid())
	if err != nil {
		return res, err
	}
	selfAfter, err := readProc(os.Getpid())
	if err != nil {
		return res, err
	}
	res.hub = loadBetween(before, after, maxRSS)
	res.speakers = loadBetween(selfBefore, selfAfter, selfAfter.rssKB)
	res.replies = replies
	return res, sys.stop()
}
