package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tutti-audio/tutti/protocol"
)

// How the session's playlist plays on: tutti repeat off|one|all, tutti
// crossfade SECONDS.

// playModeRequest builds a repeat or crossfade request from its argument.
func playModeRequest(cmd string, args []string) (protocol.Request, error) {
	req := protocol.Request{Cmd: cmd}
	if len(args) != 1 {
		return req, fmt.Errorf("%s: %s", cmd, strings.TrimPrefix(clientUsage[cmd], "[flags] "))
	}
	switch cmd {
	case protocol.CmdRepeat:
		req.Mode = args[0]
	case protocol.CmdFade:
		s, err := strconv.ParseFloat(args[0], 64)
		if err != nil || math.IsNaN(s) || math.IsInf(s, 0) {
			return req, fmt.Errorf("crossfade %q is not a number of seconds", args[0])
		}
		req.Seconds = &s
	}
	return req, nil
}

// playModes describes how a playlist plays, for the status line.
func playModes(pl protocol.Playlist) string {
	repeat := pl.Repeat
	if repeat == protocol.RepeatOff {
		repeat = "off"
	}
	shuffle := "off"
	if pl.Shuffle {
		shuffle = "on"
	}
	crossfade := "off"
	if pl.CrossfadeMs > 0 {
		crossfade = strconv.FormatFloat(float64(pl.CrossfadeMs)/1000, 'f', -1, 64) + " s"
	}
	return fmt.Sprintf("repeat %s, shuffle %s, crossfade %s", repeat, shuffle, crossfade)
}
