// Package firmwareimage reads the boot configuration of tutti's Raspberry Pi
// image: tutti.toml on the boot partition, edited on another computer and
// read at every boot. Parse checks it; NewPlan turns it into the files,
// arguments and users the Pi's services need, without touching anything, so
// `tutti image-config` can apply the plan or just print it.
package firmwareimage

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/tutti-audio/tutti/protocol"
)

// MaxConfigSize bounds tutti.toml: a few KiB is plenty, even with keys and a CA.
const MaxConfigSize = 64 << 10

// maxPassword is bcrypt's limit: the hub stores passwords as bcrypt hashes.
const maxPassword = 72

// Config is tutti.toml. Parse fills in the defaults, so the fields hold the
// values in effect.
type Config struct {
	Name     string  `toml:"name"`     // required: the speaker's name, also its MQTT user by default
	Hostname string  `toml:"hostname"` // default "tutti-" + Name
	Session  string  `toml:"session"`  // the session to play until the controller assigns one
	Broker   Broker  `toml:"broker"`
	Audio    Audio   `toml:"audio"`
	Hub      Hub     `toml:"hub"`
	Library  Library `toml:"library"`
	WiFi     WiFi    `toml:"wifi"`
	SSH      SSH     `toml:"ssh"`
}

// Broker is where the speaker connects, unless the hub runs on this Pi.
type Broker struct {
	URL      string `toml:"url"`      // tcp://host:port or tls://host:port
	User     string `toml:"user"`     // default: Name
	Password string `toml:"password"` // "" = anonymous, or generated when the hub runs here
	CA       string `toml:"ca"`       // PEM of the broker's CA, for tls://
}

// Audio is the speaker's output.
type Audio struct {
	Device        string  `toml:"device"`         // ALSA PCM
	CalibrationMs float64 `toml:"calibration_ms"` // extra output latency of the hardware
	Volume        int     `toml:"volume"`         // 0-100
	BitExact      bool    `toml:"bit_exact"`      // whole-frame placement, the song's frames bit for bit
}

// Hub says whether the broker and the controller also run on this Pi.
type Hub struct {
	Enabled       bool   `toml:"enabled"`
	AdminPassword string `toml:"admin_password"` // required when enabled
}

// Library is the hub's music library.
type Library struct {
	// Music are the folders the hub's controller indexes in place,
	// read-only: absolute paths, a USB disk or a NAS mounted on this Pi.
	Music []string `toml:"music"`
}

// maxMusicFolders bounds [library] music: a household has a folder or
// two, one per disk or share.
const maxMusicFolders = 16

// WiFi is the wireless network to join; no SSID means none.
type WiFi struct {
	SSID       string `toml:"ssid"`
	Passphrase string `toml:"passphrase"` // 8-63 printable ASCII, or the 64 hex digits of the PSK; "" = open network
	Country    string `toml:"country"`    // ISO 3166 code, required with an SSID
}

// SSH says whether sshd runs, and who may log in (by key only).
type SSH struct {
	Enabled        bool     `toml:"enabled"`
	AuthorizedKeys []string `toml:"authorized_keys"`
}

// defaults are the values of the keys tutti.toml leaves out (the hostname
// and the MQTT user follow the name, so Parse sets them afterwards).
func defaults() Config {
	return Config{
		Session: protocol.DefaultSession,
		Audio:   Audio{Device: "default", Volume: 100},
	}
}

// Parse reads tutti.toml, fills in the defaults and checks every value. The
// error lists every problem found, each naming its key.
func Parse(data []byte) (Config, error) {
	if len(data) > MaxConfigSize {
		return Config{}, fmt.Errorf("file of %d bytes exceeds %d", len(data), MaxConfigSize)
	}
	// Editors on other computers may add a byte order mark.
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	cfg := defaults()
	meta, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&cfg)
	if err != nil {
		return Config{}, err
	}
	var errs []error
	for _, key := range meta.Undecoded() {
		errs = append(errs, fmt.Errorf("%s: unknown key", key))
	}
	if cfg.Hostname == "" && cfg.Name != "" {
		cfg.Hostname = defaultHostname(cfg.Name)
	}
	if cfg.Broker.User == "" {
		cfg.Broker.User = cfg.Name
	}
	if err := errors.Join(append(errs, cfg.Validate())...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// defaultHostname is "tutti-" + name, made a valid host name label.
func defaultHostname(name string) string {
	h := "tutti-" + strings.ReplaceAll(name, "_", "-")
	if len(h) > 63 {
		h = h[:63]
	}
	return strings.TrimRight(h, "-")
}

// Validate checks a Config whose defaults are filled in. The error lists
// every problem, each naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	check := func(key string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}

	if c.Name == "" {
		bad("name", "required (the speaker's name: a-z 0-9 _ -)")
	} else {
		check("name", protocol.ValidName(c.Name))
	}
	if c.Hostname != "" || c.Name != "" { // else the name's error says it
		check("hostname", validHostname(c.Hostname))
	}
	check("session", protocol.ValidName(c.Session))

	if c.Broker.URL == "" {
		if !c.Hub.Enabled {
			bad("broker.url", "required unless [hub] enabled (e.g. \"tcp://hub.local:1883\")")
		}
	} else {
		check("broker.url", validBrokerURL(c.Broker.URL))
	}
	if c.Broker.User != c.Name { // else the name's error says it
		check("broker.user", protocol.ValidName(c.Broker.User))
	}
	check("broker.password", validPassword(c.Broker.Password))
	if c.Broker.CA != "" {
		check("broker.ca", validCA(c.Broker.CA))
	}

	check("audio.device", validArgument(c.Audio.Device))
	if math.IsNaN(c.Audio.CalibrationMs) || math.Abs(c.Audio.CalibrationMs) > protocol.MaxCalibrationMs {
		bad("audio.calibration_ms", "%v is outside ±%d", c.Audio.CalibrationMs, protocol.MaxCalibrationMs)
	}
	if c.Audio.Volume < 0 || c.Audio.Volume > 100 {
		bad("audio.volume", "%d is outside 0-100", c.Audio.Volume)
	}

	if c.Hub.Enabled {
		if c.Hub.AdminPassword == "" {
			bad("hub.admin_password", "required when [hub] enabled")
		}
		if c.Broker.User != c.Name {
			bad("broker.user", "must be the speaker's name %q when [hub] enabled (the hub's broker knows a speaker by its user name)", c.Name)
		}
		if c.Name == AdminUser || c.Name == ControllerUser {
			bad("name", "%q is the name of one of the hub's own users", c.Name)
		}
	}
	check("hub.admin_password", validPassword(c.Hub.AdminPassword))
	if len(c.Library.Music) > maxMusicFolders {
		bad("library.music", "%d folders: at most %d", len(c.Library.Music), maxMusicFolders)
	}
	for _, dir := range c.Library.Music {
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
			bad("library.music", "%q: want a clean absolute path, e.g. \"/mnt/music\"", dir)
		} else {
			check("library.music", validArgument(dir))
		}
	}

	w := c.WiFi
	switch {
	case w.SSID == "":
		if w.Passphrase != "" {
			bad("wifi.ssid", "required with wifi.passphrase")
		}
	case len(w.SSID) > 32:
		bad("wifi.ssid", "%d bytes long: at most 32", len(w.SSID))
	case w.Country == "":
		bad("wifi.country", "required with wifi.ssid: the two capital letters of the country (e.g. \"DE\"), for the radio rules")
	}
	if w.Passphrase != "" {
		check("wifi.passphrase", validPassphrase(w.Passphrase))
	}
	if w.Country != "" && !countryPattern.MatchString(w.Country) {
		bad("wifi.country", "%q is not two capital letters (e.g. \"DE\")", w.Country)
	}

	if c.SSH.Enabled && len(c.SSH.AuthorizedKeys) == 0 {
		bad("ssh.authorized_keys", "required when ssh enabled: logins are by key only")
	}
	for i, key := range c.SSH.AuthorizedKeys {
		check(fmt.Sprintf("ssh.authorized_keys[%d]", i), validAuthorizedKey(key))
	}
	return errors.Join(errs...)
}

var (
	hostnamePattern = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	countryPattern  = regexp.MustCompile(`^[A-Z]{2}$`)
	// argumentPattern is what a value that becomes a command line argument
	// may hold: it lands unquoted in a systemd EnvironmentFile and is split
	// at whitespace by $VAR in ExecStart, so no spaces, quotes, backslashes
	// or dollars.
	argumentPattern = regexp.MustCompile(`^[A-Za-z0-9._:,=/@+%\[\]-]+$`)
	keyTypePattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9@.-]*$`)
)

func validHostname(h string) error {
	if !hostnamePattern.MatchString(h) {
		return fmt.Errorf("%q is not a host name: want 1-63 of a-z A-Z 0-9 -, not starting or ending with -", h)
	}
	return nil
}

func validArgument(v string) error {
	if !argumentPattern.MatchString(v) {
		return fmt.Errorf("%q: want a non-empty value of letters, digits and . _ : , = / @ + %% [ ] - (no spaces or quotes)", v)
	}
	return nil
}

// validBrokerURL accepts tcp://host:port and tls://host:port, nothing more.
func validBrokerURL(raw string) error {
	if err := validArgument(raw); err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	if u.Scheme != "tcp" && u.Scheme != "tls" {
		return fmt.Errorf("%q: want scheme tcp:// or tls://", raw)
	}
	if u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("%q: want only scheme://host:port (user and password go in their own keys)", raw)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return fmt.Errorf("%q: want host:port, e.g. tcp://hub.local:1883", raw)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not 1-65535", raw, port)
	}
	return nil
}

// validPassword refuses what would not survive a password file or bcrypt.
// The error never quotes the password.
func validPassword(p string) error {
	if len(p) > maxPassword {
		return fmt.Errorf("%d bytes long: at most %d", len(p), maxPassword)
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errors.New("holds a control character (a line break?)")
	}
	return nil
}

// validPassphrase accepts a WPA passphrase (8-63 printable ASCII) or a raw
// PSK (64 hex digits). The error never quotes the passphrase.
func validPassphrase(p string) error {
	if len(p) == 64 && isHex(p) {
		return nil
	}
	if len(p) < 8 || len(p) > 63 {
		return fmt.Errorf("%d characters long: want 8-63 (or the 64 hex digits of the PSK)", len(p))
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return errors.New("holds a character outside printable ASCII")
	}
	return nil
}

func isHex(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F')
	})
}

// validCA checks that the PEM holds certificates and nothing else.
func validCA(p string) error {
	rest := []byte(p)
	n := 0
	for {
		block, after := pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %q PEM block: want only CERTIFICATE blocks", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %v", n+1, err)
		}
		n++
		rest = after
	}
	if n == 0 {
		return errors.New("no PEM certificate (want -----BEGIN CERTIFICATE----- ...)")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return errors.New("text after the last certificate")
	}
	return nil
}

// validAuthorizedKey accepts an OpenSSH public key line: type, base64 key
// blob (which names the same type), optional comment, on one line.
func validAuthorizedKey(line string) error {
	if strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
		return errors.New("holds a line break or control character: one key per string")
	}
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return errors.New("want \"TYPE BASE64 [COMMENT]\", e.g. \"ssh-ed25519 AAAA... me@laptop\"")
	}
	keyType, blob := fields[0], fields[1]
	if !keyTypePattern.MatchString(keyType) {
		return fmt.Errorf("key type %q: want e.g. ssh-ed25519 (options before the key are not supported)", keyType)
	}
	raw, err := base64.StdEncoding.DecodeString(blob)
	if err != nil {
		return fmt.Errorf("the key after %q is not base64", keyType)
	}
	// The blob starts with its type as an SSH string: uint32 length, bytes.
	if len(raw) < 4 {
		return fmt.Errorf("the key after %q is too short", keyType)
	}
	n := binary.BigEndian.Uint32(raw)
	if uint64(n) > uint64(len(raw)-4) || string(raw[4:4+n]) != keyType {
		return fmt.Errorf("the key's data does not match its type %q", keyType)
	}
	return nil
}
