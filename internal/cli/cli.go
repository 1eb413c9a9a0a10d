// Package cli implements tutti's subcommands. Each file holds one command
// (or one family of commands); Main dispatches, so tests run the CLI in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what every command gets: where to write and how to log.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

func commands() []command {
	return append([]command{
		{"hub", "run the broker and the controller in one process", runHub},
		{"broker", "run the embedded MQTT broker", runBroker},
		{"controller", "run the controller: library, playlists, sessions, song server, time master", runController},
		{"speaker", "run a speaker", runSpeaker},
		{"homeassistant", "make tutti appear in Home Assistant (MQTT discovery)", runHomeAssistant},
		{"demo", "run a hub and three virtual speakers playing generated songs, with live status", runDemo},
		{"user", "manage the broker's users file (user add|passwd|remove NAME)", runUser},
		{"image-config", "apply the Raspberry Pi image's boot configuration (tutti.toml) at boot", runImageConfig},
		{"load", "add audio files to the library (uploads only unknown ones)", runLoad},
		{"enqueue", "add songs, albums, artists or saved playlists to the session's playlist (--next, --now)", clientCommand("enqueue")},
		{"dequeue", "remove a playlist entry (by entry id or index)", clientCommand("dequeue")},
		{"move", "move a playlist entry to another position", clientCommand("move")},
		{"shuffle", "shuffle the entries after the current one (on), or put them back in order (off)", clientCommand("shuffle")},
		{"clear", "empty the playlist", clientCommand("clear")},
		{"play", "start or resume playback [INDEX]", clientCommand("play")},
		{"pause", "pause playback", clientCommand("pause")},
		{"next", "skip to the next song", clientCommand("next")},
		{"prev", "restart the current song", clientCommand("previous")},
		{"seek", "jump to a position in the current song (m:ss or seconds)", clientCommand("seek")},
		{"volume", "set the session volume (0-100)", clientCommand("volume")},
		{"replaygain", "level songs by their ReplayGain: off, track or album", clientCommand("replaygain")},
		{"repeat", "repeat the playlist (all), the current song (one), or not (off)", clientCommand("repeat")},
		{"crossfade", "overlap consecutive songs by SECONDS (0-12; 0: gapless)", clientCommand("crossfade")},
		{"status", "show the session: what plays, the playlist, the speakers", runStatus},
		{"search", "search the library by title, artist, album or album artist, the best matches first", clientCommand("search")},
		{"artists", "list the library's artists (--genre to narrow)", clientCommand("artists")},
		{"albums", "list the albums, of an artist if given its link (--genre to narrow)", clientCommand("albums")},
		{"tracks", "list the songs of an album or an artist (by its link), in order", clientCommand("tracks")},
		{"recent", "list the albums most recently added first", clientCommand("recent")},
		{"genres", "list the genres and how many songs each holds", clientCommand("genres")},
		{"remove", "remove a song from the library and every playlist (admins)", clientCommand("remove")},
		{"playlists", "list the saved playlists", clientCommand("playlists")},
		{"playlist", "show a saved playlist, or create, rename, delete, add to or remove from one", clientCommand("playlist")},
		{"scan", "rescan the music folders now and show the progress (admins)", runScan},
		{"join", "move a speaker into the session (mid-song, in sync)", clientCommand("join")},
		{"leave", "take a speaker out of the session", clientCommand("leave")},
		{"sessions", "list the sessions you may see", clientCommand("list")},
		{"create", "create a session (admins)", clientCommand("create")},
		{"rename", "give a session another title (admins)", clientCommand("rename")},
		{"delete", "delete a session (admins)", clientCommand("delete")},
		{"grant", "set who may see, join and control a session (admins)", clientCommand("grant")},
		{"forget", "forget a speaker that is gone for good (admins)", clientCommand("forget")},
	}, benchCommands()...)
}

// Main runs tutti with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	e.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel()}))
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, context.Canceled) && ctx.Err() != nil:
			return 0
		default:
			fmt.Fprintf(stderr, "tutti %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "tutti: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "tutti: synchronized multi-room audio over MQTT")
	fmt.Fprintln(w, "\nUsage: tutti COMMAND [flags] [args]   (tutti COMMAND -h for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEnvironment: TUTTI_BROKER, TUTTI_USER, TUTTI_PASSWORD, TUTTI_SESSION set the client flags' defaults; TUTTI_LOG=debug for more logging.")
}

func logLevel() slog.Level {
	if strings.EqualFold(os.Getenv("TUTTI_LOG"), "debug") {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(e *env, name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet("tutti "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: tutti %s %s\n", name, usageLine)
		fs.PrintDefaults()
	}
	return fs
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
