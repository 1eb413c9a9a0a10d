package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/crypto/bcrypt"

	"github.com/tutti-audio/tutti/broker"
	firmwareimage "github.com/tutti-audio/tutti/firmware-image"
	"github.com/tutti-audio/tutti/internal/atomicfile"
)

// runImageConfig applies tutti.toml at every boot of the Raspberry Pi
// image: it writes the speaker's (and the hub's) arguments, the Wi-Fi and
// SSH files under the run directory, keeps the hub's users file up to date
// and sets the host name. Files of features turned off are removed, so
// editing tutti.toml on another computer really reconfigures the Pi.
func runImageConfig(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "image-config", "--boot FILE --run DIR --state DIR [--check]")
	boot := fs.String("boot", "/boot/firmware/tutti.toml", "the boot configuration")
	runDir := fs.String("run", firmwareimage.DefaultPaths.Run, "directory for the files made at every boot (tmpfs)")
	stateDir := fs.String("state", firmwareimage.DefaultPaths.State, "the writable data directory")
	check := fs.Bool("check", false, "only check the file and print what would be done (no secrets)")
	setHostname := fs.Bool("hostname", true, "set the transient host name (needs root)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	data, err := readBootConfig(*boot)
	if err != nil {
		return err
	}
	cfg, err := firmwareimage.Parse(data)
	if err != nil {
		return fmt.Errorf("%s:\n%w", *boot, err)
	}
	plan, err := firmwareimage.NewPlan(cfg, firmwareimage.Paths{Run: *runDir, State: *stateDir})
	if err != nil {
		return fmt.Errorf("%s: %w", *boot, err)
	}
	if *check {
		printPlan(e.stdout, *boot, cfg, plan)
		return nil
	}
	return applyPlan(e, plan, *setHostname)
}

// readBootConfig reads the file, refusing one too big to be a tutti.toml
// before it is read whole.
func readBootConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, firmwareimage.MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > firmwareimage.MaxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, firmwareimage.MaxConfigSize)
	}
	return data, nil
}

// printPlan says what applying would do, without file contents or passwords.
func printPlan(w io.Writer, boot string, cfg firmwareimage.Config, p firmwareimage.Plan) {
	fmt.Fprintf(w, "%s is valid.\n", boot)
	fmt.Fprintf(w, "hostname: %s\n", p.Hostname)
	fmt.Fprintf(w, "speaker: tutti speaker %s\n", strings.Join(p.SpeakerArgs, " "))
	if p.HubArgs != nil {
		fmt.Fprintf(w, "hub: tutti hub %s\n", strings.Join(p.HubArgs, " "))
		for _, u := range p.Users {
			from := "password from tutti.toml"
			if u.Password == "" {
				from = "generated password kept in " + u.PasswordFile
			}
			fmt.Fprintf(w, "hub user: %s (%s), %s, in %s\n", u.Name, u.Role, from, p.UsersFile)
		}
	} else {
		fmt.Fprintln(w, "hub: off")
	}
	if cfg.WiFi.SSID != "" {
		fmt.Fprintf(w, "wifi: network %q, country %s\n", cfg.WiFi.SSID, cfg.WiFi.Country)
	} else {
		fmt.Fprintln(w, "wifi: off")
	}
	if p.SSH {
		fmt.Fprintf(w, "ssh: on, %d authorized keys\n", len(cfg.SSH.AuthorizedKeys))
	} else {
		fmt.Fprintln(w, "ssh: off")
	}
	for _, f := range p.Files {
		fmt.Fprintf(w, "write %s (%v, %d bytes)\n", f.Path, f.Mode, len(f.Content))
	}
	for _, path := range p.Remove {
		fmt.Fprintf(w, "remove %s if present\n", path)
	}
}

// applyPlan makes the plan true on this machine. It stops at the first
// error: a Pi half configured should not start its speaker.
func applyPlan(e *env, p firmwareimage.Plan, setHostname bool) error {
	for _, d := range p.Dirs {
		if err := os.MkdirAll(d.Path, d.Mode); err != nil {
			return err
		}
	}
	for _, f := range p.Files {
		if err := atomicfile.Write(f.Path, f.Content, f.Mode); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
		e.log.Info("wrote", "file", f.Path, "mode", f.Mode)
	}
	for _, path := range p.Remove {
		err := os.Remove(path)
		switch {
		case err == nil:
			e.log.Info("removed (feature off)", "file", path)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	if p.UsersFile != "" {
		if err := ensureUsers(e, p.UsersFile, p.Users); err != nil {
			return err
		}
	}
	if setHostname {
		current, _ := os.Hostname()
		if current != p.Hostname {
			if err := syscall.Sethostname([]byte(p.Hostname)); err != nil {
				e.log.Error("host name not set", "hostname", p.Hostname, "err", err)
			} else {
				e.log.Info("host name set", "hostname", p.Hostname)
			}
		}
	}
	e.log.Info("boot configuration applied", "hostname", p.Hostname, "hub", p.HubArgs != nil, "ssh", p.SSH)
	return nil
}

// ensureUsers makes the users file hold users with their passwords and
// roles, leaving alone the users added by hand (other speakers, members). A
// user whose stored hash already verifies is not rewritten, so the file
// (and the running broker) change only when tutti.toml did.
func ensureUsers(e *env, usersFile string, users []firmwareimage.User) error {
	existing, err := broker.LoadUsers(usersFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, u := range users {
		password := u.Password
		if password == "" {
			if password, err = generatedPassword(u.PasswordFile); err != nil {
				return fmt.Errorf("password of hub user %s: %w", u.Name, err)
			}
		}
		if holds(existing, u.Name, u.Role, password) {
			continue
		}
		if err := broker.AddUser(usersFile, u.Name, u.Role, password); err != nil {
			return fmt.Errorf("hub user %s: %w", u.Name, err)
		}
		e.log.Info("hub user set", "user", u.Name, "role", u.Role, "users_file", usersFile)
	}
	return nil
}

// holds says whether users has name with role and a hash of password.
func holds(users []broker.User, name, role, password string) bool {
	for _, u := range users {
		if u.Name == name {
			return u.Role == role && bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) == nil
		}
	}
	return false
}

// generatedPassword reads the password kept in path, making a random one
// there on first use.
func generatedPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(trimNewline(b)) > 0 {
		return string(trimNewline(b)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	password := rand.Text() // 128 random bits
	if err := atomicfile.Write(path, []byte(password+"\n"), 0o600); err != nil {
		return "", err
	}
	return password, nil
}
