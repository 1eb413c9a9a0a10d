//go:build bench

package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/controller"
	"github.com/tutti-audio/tutti/internal/cpuwait"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// benchFailover kills the controller holding the lease (kill -9) while
// speakers play, again and again, and measures how long until a standby is
// in charge, how much of the music the speakers lost, and their skew
// throughout, from outside (their pipe outputs read and timed, as bench
// sync does). The controllers and the speakers are separate processes, the
// broker (the time master) runs in this one.
func benchFailover(ctx context.Context, b *bench, args []string) (err error) {
	fs := b.flags()
	speakers := fs.Int("speakers", 3, "number of speakers")
	controllers := fs.Int("controllers", 2, "number of controller processes (one holds the lease)")
	kills := fs.Int("kills", 3, "how many times the lease holder is killed")
	every := fs.Duration("every", 5*time.Second, "time between kills")
	settle := fs.Duration("settle", 4*time.Second, "time after the first sound before the first kill")
	ttl := fs.Duration("lease-ttl", controller.DefaultLeaseTTL, "the controllers' lease TTL")
	how := fs.String("fault", "kill", "what happens to the lease holder: kill (kill -9: its connection drops at once) or freeze (SIGSTOP: it falls silent, as when cut off, and is resumed after the takeover)")
	tutti := fs.String("tutti", tuttiBinary(), "the tutti binary to run the controllers with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *controllers < 2 || *speakers < 2 || *kills < 1 {
		return fmt.Errorf("want at least 2 controllers, 2 speakers and 1 kill")
	}
	if *how != "kill" && *how != "freeze" {
		return fmt.Errorf("--fault: want kill or freeze")
	}
	dir, err := tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.header("%d speakers, %d controllers (lease TTL %s), the lease holder %s %d times, %s apart",
		*speakers, *controllers, *ttl, map[string]string{"kill": "killed -9", "freeze": "frozen (SIGSTOP)"}[*how], *kills, *every)

	quiet := b.quiet()
	brokerURL, stopBroker, err := startBenchBroker(ctx, filepath.Join(dir, "broker"), quiet)
	if err != nil {
		return err
	}
	defer stopBroker()

	procs := map[string]*childProc{}
	startController := func(name string) error {
		p, err := startChild(name, *tutti, filepath.Join(dir, name+".log"), "controller", "--broker", brokerURL,
			"--data", filepath.Join(dir, name), "--http", "127.0.0.1:0", "--clock-from-broker", "--open", "--name", name,
			"--lease-ttl", ttl.String())
		procs[name] = p
		return err
	}
	defer func() {
		for name, p := range procs {
			p.stop()
			if err != nil {
				fmt.Fprintf(b.stderr, "--- end of %s's log:\n%s\n", name, p.logTail())
			}
		}
	}()
	for i := range *controllers {
		if err := startController(fmt.Sprintf("controller%d", i+1)); err != nil {
			return err
		}
	}
	watch, err := watchLease(ctx, brokerURL)
	if err != nil {
		return err
	}
	defer watch.close()

	sys, err := startSystem(ctx, quiet, systemConfig{dir: dir, hubURL: brokerURL})
	if err != nil {
		return err
	}
	defer sys.stop()
	spks, err := startPipeSpeakers(*tutti, dir, *speakers, func(string) (string, error) { return brokerURL, nil },
		func(int) clockFault { return clockFault{} })
	if err != nil {
		return err
	}
	defer spks.stop()
	var pids []int
	for _, s := range spks {
		pids = append(pids, s.proc.cmd.Process.Pid)
	}
	waits := cpuwait.Start(pids, cpuWaitEvery, heldWait)
	defer waits.Stop()
	seconds := int((*settle + time.Duration(*kills+1)*(*every)).Seconds()) + 20
	if int64(seconds)*pipeRate > audiogen.SubframeTimecodeFrames {
		return fmt.Errorf("--settle, --kills and --every: the timecode song lasts at most %d s", audiogen.SubframeTimecodeFrames/pipeRate)
	}
	song := generatedSong{file: "timecode.wav", seconds: seconds, sample: audiogen.SubframeTimecode}
	if _, err := sys.loadAndPlay(ctx, quiet, dir, []generatedSong{song}); err != nil {
		return err
	}
	firstSound, err := firstSoundOf(ctx, spks, 30*time.Second)
	if err != nil {
		return err
	}
	if err := sleepCtx(ctx, time.Until(time.Unix(0, firstSound).Add(*settle))); err != nil {
		return err
	}
	cmd, err := dialCommander(ctx, brokerURL)
	if err != nil {
		return err
	}
	defer cmd.close()

	var takeovers, answers durations
	var killedAt []int64
	for round := range *kills {
		held, ok := watch.current()
		if !ok {
			return fmt.Errorf("round %d: nobody holds the lease", round+1)
		}
		victim := procs[held.Name]
		if victim == nil {
			return fmt.Errorf("round %d: the lease holder %q is not one of ours", round+1, held.Name)
		}
		killed := time.Now()
		if *how == "kill" {
			victim.cmd.Process.Signal(syscall.SIGKILL)
			<-victim.done
		} else {
			victim.cmd.Process.Signal(syscall.SIGSTOP)
		}
		killedAt = append(killedAt, killed.UnixNano())
		next, err := watch.await(ctx, held.Term, 10*time.Second)
		if err != nil {
			return fmt.Errorf("round %d: %w", round+1, err)
		}
		takeovers = append(takeovers, next.at.Sub(killed))
		// The first command the new holder answers: the lease message may
		// reach us before the new holder has taken the lease up, and a
		// request in between is answered "retry", as any client is told.
		if err := firstAnswer(ctx, cmd, 5*time.Second); err != nil {
			return fmt.Errorf("round %d: status after the takeover: %w", round+1, err)
		}
		answers = append(answers, time.Since(killed))
		fmt.Fprintf(b.stdout, "%s %d: %s (term %d) lost; %s took over (term %d) after %s; commands answered after %s\n",
			*how, round+1, held.Name, held.Term, next.Name, next.Term, takeovers[round].Round(time.Millisecond), answers[round].Round(time.Millisecond))
		// Back, as a standby: restarted, or resumed (it finds a higher
		// term and steps down; whatever it still sends is fenced off).
		if *how == "kill" {
			err = startController(held.Name)
		} else {
			err = victim.cmd.Process.Signal(syscall.SIGCONT)
		}
		if err != nil {
			return err
		}
		if err := sleepCtx(ctx, time.Until(killed.Add(*every))); err != nil {
			return err
		}
	}
	end := time.Now().UnixNano()
	held, longestWait, err := waits.Stop()
	if err != nil {
		return fmt.Errorf("the speakers' waits for a CPU: %w", err)
	}
	traces, err := spks.traces(b.stdout)
	if err != nil {
		return err
	}
	from, to := firstSound+settle.Nanoseconds()-int64(time.Second), end-int64(time.Second)
	extSkews, engSkews, _ := frameSkews(traces, pipeRate, from, to)
	skew, engine := playlog.Summarize(extSkews), playlog.Summarize(engSkews)
	if skew.N == 0 {
		return fmt.Errorf("no frame was heard by all speakers")
	}
	// The same from outside, left out what the machine may have delayed:
	// a frame is measured where no speaker was held back around it.
	unheldTraces := make([]speakerTrace, len(traces))
	for i, tr := range traces {
		unheldTraces[i] = tr
		unheldTraces[i].external = unheld(tr.external, held[i])
	}
	unheldSkews, _, _ := frameSkews(unheldTraces, pipeRate, from, to)
	unheldSkew := playlog.Summarize(unheldSkews)
	// A gap as a listener hears it: silence, or a jump in the timecode,
	// between reads of a speaker's output; and the worst of those that
	// came while the machine did not hold the speaker back.
	var worstGap, worstUnheldGap int64
	for i, tr := range traces {
		for _, k := range killedAt {
			gap, _ := playlog.Gap(tr.external, pipeRate, k-int64(time.Second), k+int64(*every)-int64(time.Second))
			worstGap = max(worstGap, gap)
			worstUnheldGap = max(worstUnheldGap, worstUnheldGapOf(tr.external, held[i], k-int64(time.Second), k+int64(*every)-int64(time.Second)))
		}
	}
	var heldNs int64
	for _, spans := range held {
		for _, s := range spans {
			heldNs += s.ToNs - s.FromNs
		}
	}
	fmt.Fprintf(b.stdout, "takeover (fault to the new holder's claim): %s\n", takeovers.stats())
	fmt.Fprintf(b.stdout, "fault to the first command answered: %s\n", answers.stats())
	fmt.Fprintf(b.stdout, "worst audio gap around the faults (silence or position jump, any speaker): %.3f ms\n", float64(worstGap)/1e6)
	fmt.Fprintf(b.stdout, "skew of the engines' schedules through the faults (their block logs): %s\n", engine)
	fmt.Fprintf(b.stdout, "skew between speakers through the faults, from outside (their pipe outputs read and timed): %s\n", skew)
	fmt.Fprintf(b.stdout, "the machine held a speaker back (a thread of it waited for a CPU, or a CPU was taken away, %v or more between samples %v apart) for %.0f ms in all (over the speakers; stretches may overlap), at most %.0f ms between two samples; left out:\n",
		heldWait, cpuWaitEvery, float64(heldNs)/1e6, ms(longestWait))
	fmt.Fprintf(b.stdout, "  worst audio gap while no speaker was held back: %.3f ms\n", float64(worstUnheldGap)/1e6)
	fmt.Fprintf(b.stdout, "  skew from outside while no speaker was held back: %s\n", unheldSkew)
	b.result(map[string]any{
		"speakers": *speakers, "controllers": *controllers, "kills": *kills, "fault": *how,
		"takeover_ms": ms(slices.Max(takeovers)), "takeover_p50_ms": takeovers.stats().P50Ms,
		"answer_ms":    ms(slices.Max(answers)),
		"audio_gap_ms": float64(worstGap) / 1e6, "skew_p99_ms": skew.P99Ms, "skew_max_ms": skew.Max,
		"engine_skew_p99_ms":  engine.P99Ms,
		"audio_gap_unheld_ms": float64(worstUnheldGap) / 1e6, "skew_unheld_p99_ms": unheldSkew.P99Ms, "skew_unheld_n": unheldSkew.N,
		"cpu_held_ms": float64(heldNs) / 1e6, "cpu_wait_max_ms": ms(longestWait),
	})
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leaseWatch follows the lease topic.
type leaseWatch struct {
	conn mqtt.Client
	mu   sync.Mutex
	seen []observedLease
	news chan struct{}
}

type observedLease struct {
	protocol.Lease
	at time.Time
}

func watchLease(ctx context.Context, brokerURL string) (*leaseWatch, error) {
	w := &leaseWatch{news: make(chan struct{}, 1)}
	w.conn = mqtt.NewClient(mqttclient.Options(brokerURL, "tutti-bench-lease-"+randomID(), "", "").SetAutoReconnect(false))
	if err := wait(ctx, w.conn.Connect(), 5*time.Second); err != nil {
		return nil, err
	}
	tok := w.conn.Subscribe(protocol.LeaseTopic, 1, func(_ mqtt.Client, m mqtt.Message) {
		at := time.Now()
		l, err := protocol.Decode[protocol.Lease](m.Payload())
		if err != nil {
			return
		}
		w.mu.Lock()
		w.seen = append(w.seen, observedLease{l, at})
		w.mu.Unlock()
		select {
		case w.news <- struct{}{}:
		default:
		}
	})
	if err := wait(ctx, tok, 5*time.Second); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *leaseWatch) close() { w.conn.Disconnect(100) }

// current is the latest lease seen.
func (w *leaseWatch) current() (observedLease, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) == 0 {
		return observedLease{}, false
	}
	return w.seen[len(w.seen)-1], true
}

// await returns the first lease of a term above term: a takeover.
func (w *leaseWatch) await(ctx context.Context, term uint64, timeout time.Duration) (observedLease, error) {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		for _, l := range w.seen {
			if l.Term > term {
				w.mu.Unlock()
				return l, nil
			}
		}
		w.mu.Unlock()
		select {
		case <-w.news:
		case <-deadline:
			return observedLease{}, fmt.Errorf("no controller took over the lease within %s", timeout)
		case <-ctx.Done():
			return observedLease{}, ctx.Err()
		}
	}
}

// firstAnswer sends status until a controller answers it, retrying while
// the answer is that a takeover is under way, for at most patience.
func firstAnswer(ctx context.Context, cmd *commander, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	for {
		sent, err := cmd.send(ctx, protocol.SessionCommandTopic(protocol.DefaultSession), protocol.Request{Cmd: protocol.CmdStatus})
		if err != nil {
			return err
		}
		r, err := sent.await(ctx)
		if err == nil || r.Error != controller.ErrNoHolder.Error() || time.Now().After(deadline) {
			return err
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
