package firmwareimage

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/pbkdf2"
)

// Names and roles of the users the hub's users file gets from tutti.toml
// (the roles are the broker's; this package does not import broker).
const (
	AdminUser      = "admin"
	ControllerUser = "controller"

	RoleAdmin      = "admin"
	RoleController = "controller"
	RoleSpeaker    = "speaker"
)

// Hub listen addresses: on the hub Pi, other speakers connect from the network.
const (
	hubMQTTPort = "1883"
	hubHTTPPort = "8080"
)

// Paths are where the plan puts things: Run is tmpfs, rewritten at every
// boot (/run/tutti); State is the writable partition (/var/lib/tutti).
type Paths struct {
	Run, State string
}

// DefaultPaths are the image's.
var DefaultPaths = Paths{Run: "/run/tutti", State: "/var/lib/tutti"}

// Plan is what the Pi needs from a Config: computed without side effects,
// applied by `tutti image-config`.
type Plan struct {
	Hostname    string
	SSH         bool
	SpeakerArgs []string // for `tutti speaker`, also in speaker.env
	HubArgs     []string // for `tutti hub`, also in hub.env; nil when the hub is off
	Dirs        []Dir    // made (if missing) before the files are written
	Files       []File   // written atomically
	Remove      []string // files of features turned off, removed if present
	UsersFile   string   // the hub's users file; "" when the hub is off
	Users       []User   // the users UsersFile must hold, with these passwords
}

// Dir is a directory the plan writes into.
type Dir struct {
	Path string
	Mode fs.FileMode
}

// File is one file to write. Content may be secret: never log it.
type File struct {
	Path    string
	Content []byte
	Mode    fs.FileMode
}

// User is one user of the hub's users file. A generated password is not
// part of the plan: PasswordFile then names the file that keeps it, which
// the applier fills with a random password once and reads ever after.
type User struct {
	Name     string
	Role     string
	Password string // "" = the one in PasswordFile
	// PasswordFile keeps a generated password; "" when Password is given.
	PasswordFile string
}

// File names in Paths.Run and Paths.State.
const (
	SpeakerEnvFile = "speaker.env"
	HubEnvFile     = "hub.env"
	PasswordFile   = "password"
	CAFile         = "ca.pem"
	WPAFile        = "wpa_supplicant-wlan0.conf"
	SSHMarkerFile  = "ssh-enabled"
)

// NewPlan computes the plan of cfg (which it validates) for paths.
func NewPlan(cfg Config, paths Paths) (Plan, error) {
	if err := cfg.Validate(); err != nil {
		return Plan{}, err
	}
	for _, dir := range []string{paths.Run, paths.State} {
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || validArgument(dir) != nil {
			return Plan{}, fmt.Errorf("directory %q: want a clean absolute path without spaces", dir)
		}
	}
	run := func(name string) string { return filepath.Join(paths.Run, name) }
	hubDir := filepath.Join(paths.State, "hub")
	sshDir := filepath.Join(paths.State, "ssh")
	authorizedKeys := filepath.Join(sshDir, "authorized_keys")

	p := Plan{Hostname: cfg.Hostname, SSH: cfg.SSH.Enabled, Dirs: []Dir{{paths.Run, 0o755}}}
	write := func(path string, content []byte, mode fs.FileMode) {
		p.Files = append(p.Files, File{Path: path, Content: content, Mode: mode})
	}

	brokerURL := cfg.Broker.URL
	passwordFile := ""
	if cfg.Broker.Password != "" {
		passwordFile = run(PasswordFile)
		write(passwordFile, []byte(cfg.Broker.Password+"\n"), 0o600)
	} else {
		p.Remove = append(p.Remove, run(PasswordFile))
	}
	if cfg.Hub.Enabled {
		brokerURL = "tcp://127.0.0.1:" + hubMQTTPort
		speakerUser := User{Name: cfg.Name, Role: RoleSpeaker, Password: cfg.Broker.Password}
		if speakerUser.Password == "" {
			// The hub's broker lets nobody in anonymously.
			speakerUser.PasswordFile = filepath.Join(hubDir, cfg.Name+".pass")
			passwordFile = speakerUser.PasswordFile
		}
		controllerPass := filepath.Join(hubDir, "controller.pass")
		p.UsersFile = filepath.Join(hubDir, "users.toml")
		p.Users = []User{
			{Name: AdminUser, Role: RoleAdmin, Password: cfg.Hub.AdminPassword},
			{Name: ControllerUser, Role: RoleController, PasswordFile: controllerPass},
			speakerUser,
		}
		p.HubArgs = []string{
			"--data", hubDir,
			"--users", p.UsersFile,
			"--user", ControllerUser,
			"--password-file", controllerPass,
			"--listen", "0.0.0.0:" + hubMQTTPort,
			"--http", "0.0.0.0:" + hubHTTPPort,
			// Speakers on other Pis fetch songs from here; the image
			// answers for its host name on mDNS, as in tcp://hub.local:1883.
			"--public-url", "http://" + cfg.Hostname + ".local:" + hubHTTPPort + "/",
			"--sessions", cfg.Session,
		}
		for _, dir := range cfg.Library.Music {
			p.HubArgs = append(p.HubArgs, "--music", dir)
		}
		p.Dirs = append(p.Dirs, Dir{hubDir, 0o700})
		write(run(HubEnvFile), envFile("TUTTI_HUB_ARGS", p.HubArgs), 0o600)
	} else {
		p.Remove = append(p.Remove, run(HubEnvFile))
	}

	p.SpeakerArgs = []string{"--name", cfg.Name, "--broker", brokerURL, "--user", cfg.Broker.User}
	if passwordFile != "" {
		p.SpeakerArgs = append(p.SpeakerArgs, "--password-file", passwordFile)
	}
	if cfg.Broker.CA != "" {
		p.SpeakerArgs = append(p.SpeakerArgs, "--ca", run(CAFile))
		write(run(CAFile), []byte(strings.TrimSpace(cfg.Broker.CA)+"\n"), 0o644)
	} else {
		p.Remove = append(p.Remove, run(CAFile))
	}
	calibration := time.Duration(cfg.Audio.CalibrationMs * float64(time.Millisecond))
	p.SpeakerArgs = append(p.SpeakerArgs,
		"--output", "alsa",
		"--alsa-device", cfg.Audio.Device,
		"--calibration", calibration.String(),
		"--cache", filepath.Join(paths.State, "cache"),
		"--session", cfg.Session,
		"--volume", strconv.Itoa(cfg.Audio.Volume),
	)
	if cfg.Audio.BitExact {
		p.SpeakerArgs = append(p.SpeakerArgs, "--bit-exact")
	}
	write(run(SpeakerEnvFile), envFile("TUTTI_SPEAKER_ARGS", p.SpeakerArgs), 0o600)

	if cfg.WiFi.SSID != "" {
		write(run(WPAFile), wpaSupplicantConf(cfg.WiFi), 0o600)
	} else {
		p.Remove = append(p.Remove, run(WPAFile))
	}

	if cfg.SSH.Enabled {
		p.Dirs = append(p.Dirs, Dir{sshDir, 0o700})
		write(run(SSHMarkerFile), nil, 0o644)
		var keys strings.Builder
		for _, k := range cfg.SSH.AuthorizedKeys {
			keys.WriteString(strings.TrimSpace(k) + "\n")
		}
		write(authorizedKeys, []byte(keys.String()), 0o600)
	} else {
		p.Remove = append(p.Remove, run(SSHMarkerFile), authorizedKeys)
	}

	for _, args := range [][]string{p.SpeakerArgs, p.HubArgs} {
		for _, a := range args {
			if err := validArgument(a); err != nil {
				return Plan{}, errors.New("bug: argument " + err.Error())
			}
		}
	}
	return p, nil
}

// envFile is a systemd EnvironmentFile setting name to args; ExecStart's
// $name splits them at the spaces again (validated: no value holds one).
func envFile(name string, args []string) []byte {
	return []byte(name + "=" + strings.Join(args, " ") + "\n")
}

// wpaSupplicantConf is the configuration for wpa_supplicant@wlan0. The
// passphrase is not written: only the PSK derived from it. The SSID is
// written in hex, which needs no quoting whatever bytes it holds.
func wpaSupplicantConf(w WiFi) []byte {
	var b strings.Builder
	b.WriteString("# Written by tutti image-config from tutti.toml at every boot: edit that file instead.\n")
	b.WriteString("ctrl_interface=DIR=/run/wpa_supplicant\n")
	b.WriteString("update_config=0\n")
	fmt.Fprintf(&b, "country=%s\n\n", w.Country)
	b.WriteString("network={\n")
	fmt.Fprintf(&b, "\tssid=%s\n", hex.EncodeToString([]byte(w.SSID)))
	b.WriteString("\tscan_ssid=1\n") // also finds a hidden network
	if w.Passphrase == "" {
		b.WriteString("\tkey_mgmt=NONE\n")
	} else {
		fmt.Fprintf(&b, "\tpsk=%s\n", WPAPSK(w.SSID, w.Passphrase))
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

// WPAPSK is the WPA pre-shared key of a network: PBKDF2-SHA1 of the
// passphrase salted with the SSID, 4096 rounds, 32 bytes, in hex (IEEE
// 802.11i). A passphrase of 64 hex digits already is the key.
func WPAPSK(ssid, passphrase string) string {
	if len(passphrase) == 64 && isHex(passphrase) {
		return strings.ToLower(passphrase)
	}
	return hex.EncodeToString(pbkdf2.Key([]byte(passphrase), []byte(ssid), 4096, 32, sha1.New))
}
