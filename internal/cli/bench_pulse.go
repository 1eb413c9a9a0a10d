//go:build bench

package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// pulseServer is a private PulseAudio server with null sinks: a real ALSA
// PCM paced in real time (through ALSA's pulse plugin, as device
// "pulse:SINK") on a machine without a sound card.
type pulseServer struct {
	dir    string
	server string // its address, for pactl
	proc   *childProc
	env    []string // what a client needs to reach it: PULSE_SERVER and a HOME for its cookie
}

// pulseInstalled tells whether PulseAudio and ALSA's pulse plugin are there.
func pulseInstalled() error {
	for _, tool := range []string{"pulseaudio", "pactl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)", tool)
		}
	}
	if plugins, _ := filepath.Glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so"); len(plugins) == 0 {
		return fmt.Errorf("ALSA's pulse plugin is not installed (apt-get install libasound2-plugins)")
	}
	return nil
}

// startPulse runs PulseAudio with one 44.1 kHz null sink per name in sinks.
func startPulse(ctx context.Context, sinks ...string) (*pulseServer, error) {
	// A short path: a unix socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "pa")
	if err != nil {
		return nil, err
	}
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		return nil, err
	}
	args := []string{"--daemonize=no", "--exit-idle-time=-1", "-n", "--log-target=stderr",
		"--load=module-native-protocol-unix auth-anonymous=1"}
	for _, sink := range sinks {
		args = append(args, "--load=module-null-sink sink_name="+sink+" rate=44100 format=s16le channels=2")
	}
	cmd := exec.Command("pulseaudio", args...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir, "HOME="+home)
	proc, err := startCmd("pulseaudio", cmd, filepath.Join(dir, "pulseaudio.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	server := "unix:" + filepath.Join(dir, "pulse", "native")
	p := &pulseServer{dir: dir, server: server, proc: proc, env: []string{"PULSE_SERVER=" + server, "HOME=" + home}}
	for deadline := time.Now().Add(15 * time.Second); ; {
		out, err := exec.CommandContext(ctx, "pactl", "-s", server, "list", "short", "sinks").Output()
		if err == nil && strings.Count(string(out), "\n") >= len(sinks) {
			return p, nil
		}
		if err := proc.exited(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("pulseaudio did not come up: %v\n%s", err, proc.logTail())
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // pactl is the only way to ask
		}
	}
}

func (p *pulseServer) stop() {
	p.proc.stop()
	os.RemoveAll(p.dir)
}
