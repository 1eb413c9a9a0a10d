package firmwareimage

import (
	"os"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIASGXrPitF2NyNuFbIhQsMD2Yp6SQqxhn3WVoj8zeDMA me@laptop"

func TestParseContractExample(t *testing.T) {
	cfg, err := Parse(readTestdata(t, "contract.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Name:     "kitchen",
		Hostname: "tutti-kitchen",
		Session:  "home",
		Broker:   Broker{URL: "tcp://hub.local:1883", User: "kitchen"},
		Audio:    Audio{Device: "default", Volume: 100},
		SSH:      SSH{AuthorizedKeys: []string{}},
	}
	assertConfig(t, cfg, want)
}

func TestParseMinimalFillsDefaults(t *testing.T) {
	cfg, err := Parse([]byte("name = \"bath_room\"\n[broker]\nurl = \"tcp://10.0.0.2:1883\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Name:     "bath_room",
		Hostname: "tutti-bath-room", // '_' is not allowed in host names
		Session:  "home",
		Broker:   Broker{URL: "tcp://10.0.0.2:1883", User: "bath_room"},
		Audio:    Audio{Device: "default", Volume: 100},
	}
	assertConfig(t, cfg, want)
}

func TestParseHubNeedsNoBrokerURL(t *testing.T) {
	cfg, err := Parse([]byte("name = \"den\"\n[hub]\nenabled = true\nadmin_password = \"s3cret!\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Hub.Enabled || cfg.Hub.AdminPassword != "s3cret!" || cfg.Broker.URL != "" {
		t.Fatalf("got %+v", cfg)
	}
}

func TestParseFull(t *testing.T) {
	cfg, err := Parse(readTestdata(t, "full.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Audio.CalibrationMs != -12.5 || cfg.Audio.Volume != 70 || cfg.WiFi.Country != "DE" ||
		len(cfg.SSH.AuthorizedKeys) != 1 || !strings.Contains(cfg.Broker.CA, "BEGIN CERTIFICATE") {
		t.Fatalf("got %+v", cfg)
	}
}

// A file saved by Notepad: byte order mark and CRLF line ends.
func TestParseWindowsFile(t *testing.T) {
	data := "\ufeffname = \"kitchen\"\r\n[broker]\r\nurl = \"tcp://hub.local:1883\"\r\n[audio]\r\nvolume = 0\r\n"
	cfg, err := Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "kitchen" || cfg.Audio.Volume != 0 {
		t.Fatalf("got %+v", cfg)
	}
}

func TestParseErrors(t *testing.T) {
	const base = "name = \"kitchen\"\n[broker]\nurl = \"tcp://hub.local:1883\"\n"
	cases := []struct {
		name, toml string
		want       []string // substrings of the error, each naming the key
	}{
		{"syntax", "name = kitchen", []string{"line 1"}},
		{"wrong type", base + "[audio]\nvolume = \"loud\"\n", []string{"audio.volume"}},
		{"unknown key", base + "[audio]\nvolum = 3\n", []string{"audio.volum: unknown key"}},
		{"unknown table", base + "[audoi]\ndevice = \"x\"\n", []string{"audoi"}},
		{"unknown top key", "nmae = \"x\"\n" + base, []string{"nmae: unknown key"}},
		{"no name", "[broker]\nurl = \"tcp://h:1\"\n", []string{"name: required"}},
		{"bad name", "name = \"Kitchen\"\n[broker]\nurl = \"tcp://h:1\"\n", []string{"name: invalid name"}},
		{"bad hostname", "hostname = \"my host\"\n" + base, []string{"hostname:"}},
		{"hostname underscore", "hostname = \"a_b\"\n" + base, []string{"hostname:"}},
		{"bad session", "session = \"a/b\"\n" + base, []string{"session:"}},
		{"no url", "name = \"kitchen\"\n", []string{"broker.url: required"}},
		{"http url", "name = \"k\"\n[broker]\nurl = \"http://h:1883\"\n", []string{"broker.url:", "tcp:// or tls://"}},
		{"url without port", "name = \"k\"\n[broker]\nurl = \"tcp://hub.local\"\n", []string{"broker.url:", "host:port"}},
		{"url bad port", "name = \"k\"\n[broker]\nurl = \"tcp://hub.local:99999\"\n", []string{"broker.url:", "port"}},
		{"url with path", "name = \"k\"\n[broker]\nurl = \"tcp://hub.local:1883/x\"\n", []string{"broker.url:"}},
		{"url with user", "name = \"k\"\n[broker]\nurl = \"tcp://u:p@hub.local:1883\"\n", []string{"broker.url:"}},
		{"url with space", "name = \"k\"\n[broker]\nurl = \"tcp://hub.local:1883 --demo\"\n", []string{"broker.url:"}},
		{"bad user", base + "user = \"a b\"\n", []string{"broker.user:"}},
		{"password newline", base + "password = \"a\\nb\"\n", []string{"broker.password:", "control character"}},
		{"password too long", base + "password = \"" + strings.Repeat("x", 73) + "\"\n", []string{"broker.password:", "at most 72"}},
		{"ca not pem", base + "ca = \"hello\"\n", []string{"broker.ca:", "no PEM"}},
		{"relative music folder", base + "[library]\nmusic = [\"music\"]\n", []string{"library.music:", "absolute"}},
		{"music folder with a space", base + "[library]\nmusic = [\"/mnt/my music\"]\n", []string{"library.music:", "no spaces"}},
		{"music folder unclean", base + "[library]\nmusic = [\"/mnt/../etc\"]\n", []string{"library.music:"}},
		{"ca private key", base + "ca = \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\"\n", []string{"broker.ca:", "PRIVATE KEY"}},
		{"device with space", base + "[audio]\ndevice = \"hw:0 --demo\"\n", []string{"audio.device:"}},
		{"device empty", base + "[audio]\ndevice = \"\"\n", []string{"audio.device:"}},
		{"device quote", base + "[audio]\ndevice = \"a\\\"b\"\n", []string{"audio.device:"}},
		{"calibration high", base + "[audio]\ncalibration_ms = 501\n", []string{"audio.calibration_ms:"}},
		{"calibration low", base + "[audio]\ncalibration_ms = -500.5\n", []string{"audio.calibration_ms:"}},
		{"calibration nan", base + "[audio]\ncalibration_ms = nan\n", []string{"audio.calibration_ms:"}},
		{"calibration inf", base + "[audio]\ncalibration_ms = inf\n", []string{"audio.calibration_ms:"}},
		{"volume high", base + "[audio]\nvolume = 101\n", []string{"audio.volume:"}},
		{"volume negative", base + "[audio]\nvolume = -1\n", []string{"audio.volume:"}},
		{"hub without admin password", base + "[hub]\nenabled = true\n", []string{"hub.admin_password: required"}},
		{"hub other user", base + "user = \"other\"\n[hub]\nenabled = true\nadmin_password = \"x\"\n", []string{"broker.user:"}},
		{"hub speaker named admin", "name = \"admin\"\n[hub]\nenabled = true\nadmin_password = \"x\"\n", []string{"name:", "hub's own users"}},
		{"admin password newline", base + "[hub]\nenabled = true\nadmin_password = \"x\\n\"\n", []string{"hub.admin_password:"}},
		{"passphrase short", base + "[wifi]\nssid = \"home\"\npassphrase = \"short\"\ncountry = \"DE\"\n", []string{"wifi.passphrase:", "8-63"}},
		{"passphrase long", base + "[wifi]\nssid = \"home\"\npassphrase = \"" + strings.Repeat("x", 64) + "\"\ncountry = \"DE\"\n", []string{"wifi.passphrase:"}},
		{"passphrase not ascii", base + "[wifi]\nssid = \"home\"\npassphrase = \"pässwörter\"\ncountry = \"DE\"\n", []string{"wifi.passphrase:", "printable ASCII"}},
		{"passphrase without ssid", base + "[wifi]\npassphrase = \"password\"\n", []string{"wifi.ssid: required"}},
		{"ssid without country", base + "[wifi]\nssid = \"home\"\npassphrase = \"password\"\n", []string{"wifi.country: required"}},
		{"country lowercase", base + "[wifi]\nssid = \"home\"\npassphrase = \"password\"\ncountry = \"de\"\n", []string{"wifi.country:", "two capital letters"}},
		{"ssid too long", base + "[wifi]\nssid = \"" + strings.Repeat("s", 33) + "\"\ncountry = \"DE\"\n", []string{"wifi.ssid:", "at most 32"}},
		{"ssh without keys", base + "[ssh]\nenabled = true\n", []string{"ssh.authorized_keys: required"}},
		{"ssh key garbage", base + "[ssh]\nauthorized_keys = [\"hello\"]\n", []string{"ssh.authorized_keys[0]:"}},
		{"ssh key not base64", base + "[ssh]\nauthorized_keys = [\"ssh-ed25519 !!!\"]\n", []string{"ssh.authorized_keys[0]:", "base64"}},
		{"ssh key type mismatch", base + "[ssh]\nauthorized_keys = [\"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIASGXrPitF2NyNuFbIhQsMD2Yp6SQqxhn3WVoj8zeDMA\"]\n", []string{"ssh.authorized_keys[0]:", "does not match"}},
		{"ssh key two lines", base + "[ssh]\nauthorized_keys = [\"" + testKey + "\\n" + testKey + "\"]\n", []string{"ssh.authorized_keys[0]:", "line break"}},
		{"ssh key options", base + "[ssh]\nauthorized_keys = [\"command=\\\"x\\\" " + testKey + "\"]\n", []string{"ssh.authorized_keys[0]:"}},
		{"several at once", "name = \"\"\n[audio]\nvolume = 200\n", []string{"name: required", "broker.url: required", "audio.volume:"}},
		{"oversized", base + "#" + strings.Repeat("x", MaxConfigSize) + "\n", []string{"exceeds"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.toml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// Errors about secrets say what is wrong without quoting them.
func TestParseErrorsHideSecrets(t *testing.T) {
	const secret = "hunter2-\u00e4\u00f6"
	data := "name = \"k\"\n[broker]\nurl = \"tcp://h:1\"\npassword = \"" + secret + "\\n\"\n" +
		"[hub]\nadmin_password = \"" + secret + "\\n\"\n[wifi]\nssid = \"x\"\ncountry = \"DE\"\npassphrase = \"" + secret + "\"\n"
	_, err := Parse([]byte(data))
	if err == nil {
		t.Fatal("accepted")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error quotes a secret: %v", err)
	}
}

func assertConfig(t *testing.T, got, want Config) {
	t.Helper()
	if got.Name != want.Name || got.Hostname != want.Hostname || got.Session != want.Session ||
		got.Broker != want.Broker || got.Audio != want.Audio || got.Hub != want.Hub || got.WiFi != want.WiFi ||
		got.SSH.Enabled != want.SSH.Enabled || len(got.SSH.AuthorizedKeys) != len(want.SSH.AuthorizedKeys) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// The commented example the image ships on its boot partition must parse.
func TestParseShippedExample(t *testing.T) {
	data, err := os.ReadFile("tutti.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(data); err != nil {
		t.Fatalf("the shipped tutti.toml: %v", err)
	}
}
