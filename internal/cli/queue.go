package cli

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"

	"github.com/tutti-audio/tutti/protocol"
)

// queueFlags say where enqueue and playlist add put what they add.
type queueFlags struct {
	next, now bool // enqueue: right after the current entry; before it, playing at once
	index     int  // playlist add: insert before this index; -1: at the end
}

func (q *queueFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&q.next, "next", false, "enqueue: right after the current entry (play next)")
	fs.BoolVar(&q.now, "now", false, "enqueue: play at once, before the current entry (which follows what is added)")
	fs.IntVar(&q.index, "index", -1, "playlist add: insert before this index (default: at the end)")
}

// place sets where reqs add their songs, one request a song, so the songs
// end up in the order given: --next adds them right after the current entry
// in reverse order; --now plays the first at once and adds the others
// after it, as --next does.
func (q queueFlags) place(reqs []protocol.Request) ([]protocol.Request, error) {
	if len(reqs) == 0 {
		return reqs, nil
	}
	switch reqs[0].Cmd {
	case protocol.CmdEnqueue:
	case protocol.CmdPlaylistAdd:
		if q.index >= 0 {
			for i := range reqs {
				at := q.index + i
				reqs[i].Index = &at
			}
		}
		return reqs, nil
	default:
		return reqs, nil
	}
	switch {
	case q.next && q.now:
		return nil, errors.New("enqueue: --next or --now, not both")
	case q.now:
		reqs[0].At = protocol.EnqueueNow
		rest := reqs[1:]
		slices.Reverse(rest)
		for i := range rest {
			rest[i].At = protocol.EnqueueNext
		}
	case q.next:
		slices.Reverse(reqs)
		for i := range reqs {
			reqs[i].At = protocol.EnqueueNext
		}
	}
	return reqs, nil
}

// queueRequests builds move (ENTRY|INDEX TO) and shuffle (on|off).
func queueRequests(cmd string, args []string) ([]protocol.Request, error) {
	req := protocol.Request{Cmd: cmd}
	switch cmd {
	case protocol.CmdMove:
		if len(args) != 2 {
			return nil, fmt.Errorf("move: %s", clientUsage[cmd])
		}
		if i, err := strconv.Atoi(args[0]); err == nil {
			req.Index = &i
		} else {
			req.Entry = args[0]
		}
		to, err := strconv.Atoi(args[1])
		if err != nil {
			return nil, fmt.Errorf("move: position %q is not a number", args[1])
		}
		req.To = &to
	case protocol.CmdShuffle:
		if len(args) != 1 || args[0] != "on" && args[0] != "off" {
			return nil, errors.New("shuffle: say on or off")
		}
		on := args[0] == "on"
		req.On = &on
	}
	return []protocol.Request{req}, nil
}

// linkRef accepts a link to a song, an album, an artist or a saved
// playlist, or a file whose hash is a song's reference.
func linkRef(arg string) (string, error) {
	if _, err := protocol.ParseLink(arg); err == nil {
		return arg, nil
	}
	return songRef(arg)
}
