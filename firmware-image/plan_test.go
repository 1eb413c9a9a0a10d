package firmwareimage

import (
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
)

var testPaths = Paths{Run: "/run/tutti", State: "/var/lib/tutti"}

func mustPlan(t *testing.T, data []byte) (Config, Plan) {
	t.Helper()
	cfg, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(cfg, testPaths)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, p)
	return cfg, p
}

func fileOf(t *testing.T, p Plan, path string) File {
	t.Helper()
	for _, f := range p.Files {
		if f.Path == path {
			return f
		}
	}
	t.Fatalf("plan writes no %s; it writes %v", path, paths(p.Files))
	return File{}
}

func paths(files []File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Path)
	}
	return out
}

func TestPlanContractExample(t *testing.T) {
	_, p := mustPlan(t, readTestdata(t, "contract.toml"))
	// The contract's example line, and the volume.
	const want = "--name kitchen --broker tcp://hub.local:1883 --user kitchen --output alsa --alsa-device default " +
		"--calibration 0s --cache /var/lib/tutti/cache --session home --volume 100"
	if got := strings.Join(p.SpeakerArgs, " "); got != want {
		t.Fatalf("speaker args\ngot  %s\nwant %s", got, want)
	}
	env := fileOf(t, p, "/run/tutti/speaker.env")
	if string(env.Content) != "TUTTI_SPEAKER_ARGS="+want+"\n" || env.Mode != 0o600 {
		t.Fatalf("speaker.env %q mode %v", env.Content, env.Mode)
	}
	if len(p.Files) != 1 {
		t.Fatalf("writes %v, want only speaker.env", paths(p.Files))
	}
	wantRemoved := []string{"/run/tutti/password", "/run/tutti/hub.env", "/run/tutti/ca.pem",
		"/run/tutti/wpa_supplicant-wlan0.conf", "/run/tutti/ssh-enabled", "/var/lib/tutti/ssh/authorized_keys"}
	for _, r := range wantRemoved {
		if !slices.Contains(p.Remove, r) {
			t.Errorf("does not remove %s: %v", r, p.Remove)
		}
	}
	if p.Hostname != "tutti-kitchen" || p.SSH || p.HubArgs != nil || p.UsersFile != "" || len(p.Users) != 0 {
		t.Fatalf("plan %+v", p)
	}
}

func TestPlanTLSBrokerWithPassword(t *testing.T) {
	data := "name = \"kitchen\"\nhostname = \"Kitchen-Pi\"\n[broker]\nurl = \"tls://hub.example.net:8883\"\npassword = \"pw\"\n" +
		"ca = '''\n" + caPEM(t) + "'''\n[audio]\ndevice = \"plughw:1,0\"\ncalibration_ms = -12.5\nvolume = 0\nbit_exact = true\n"
	_, p := mustPlan(t, []byte(data))
	const want = "--name kitchen --broker tls://hub.example.net:8883 --user kitchen --password-file /run/tutti/password " +
		"--ca /run/tutti/ca.pem --output alsa --alsa-device plughw:1,0 --calibration -12.5ms --cache /var/lib/tutti/cache " +
		"--session home --volume 0 --bit-exact"
	if got := strings.Join(p.SpeakerArgs, " "); got != want {
		t.Fatalf("speaker args\ngot  %s\nwant %s", got, want)
	}
	if f := fileOf(t, p, "/run/tutti/password"); string(f.Content) != "pw\n" || f.Mode != 0o600 {
		t.Fatalf("password file %q %v", f.Content, f.Mode)
	}
	if f := fileOf(t, p, "/run/tutti/ca.pem"); !strings.HasPrefix(string(f.Content), "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("ca.pem %q", f.Content)
	}
	if p.Hostname != "Kitchen-Pi" {
		t.Fatalf("hostname %q", p.Hostname)
	}
}

func caPEM(t *testing.T) string {
	data := string(readTestdata(t, "full.toml"))
	start := strings.Index(data, "-----BEGIN CERTIFICATE-----")
	end := strings.Index(data, "-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n")
	return data[start:end]
}

func TestPlanHub(t *testing.T) {
	_, p := mustPlan(t, readTestdata(t, "full.toml"))
	// The configured tls:// URL is ignored: the speaker uses the hub here.
	const wantSpeaker = "--name living_room --broker tcp://127.0.0.1:1883 --user living_room --password-file /run/tutti/password " +
		"--ca /run/tutti/ca.pem --output alsa --alsa-device plughw:1,0 --calibration -12.5ms --cache /var/lib/tutti/cache " +
		"--session downstairs --volume 70"
	if got := strings.Join(p.SpeakerArgs, " "); got != wantSpeaker {
		t.Fatalf("speaker args\ngot  %s\nwant %s", got, wantSpeaker)
	}
	const wantHub = "--data /var/lib/tutti/hub --users /var/lib/tutti/hub/users.toml --user controller " +
		"--password-file /var/lib/tutti/hub/controller.pass --listen 0.0.0.0:1883 --http 0.0.0.0:8080 " +
		"--public-url http://tutti-living-room.local:8080/ --sessions downstairs --music /mnt/music --music /mnt/nas/music"
	if got := strings.Join(p.HubArgs, " "); got != wantHub {
		t.Fatalf("hub args\ngot  %s\nwant %s", got, wantHub)
	}
	if f := fileOf(t, p, "/run/tutti/hub.env"); string(f.Content) != "TUTTI_HUB_ARGS="+wantHub+"\n" || f.Mode != 0o600 {
		t.Fatalf("hub.env %q %v", f.Content, f.Mode)
	}
	if p.UsersFile != "/var/lib/tutti/hub/users.toml" {
		t.Fatalf("users file %q", p.UsersFile)
	}
	wantUsers := []User{
		{Name: "admin", Role: "admin", Password: "admin secret"},
		{Name: "controller", Role: "controller", PasswordFile: "/var/lib/tutti/hub/controller.pass"},
		{Name: "living_room", Role: "speaker", Password: "speaker secret"},
	}
	if !slices.Equal(p.Users, wantUsers) {
		t.Fatalf("users %+v", p.Users)
	}
	if !slices.Contains(p.Dirs, Dir{"/var/lib/tutti/hub", 0o700}) {
		t.Fatalf("dirs %v", p.Dirs)
	}
}

// Without a configured password the hub's speaker gets a generated one.
func TestPlanHubGeneratesSpeakerPassword(t *testing.T) {
	_, p := mustPlan(t, []byte("name = \"den\"\n[hub]\nenabled = true\nadmin_password = \"a\"\n"))
	const pass = "/var/lib/tutti/hub/den.pass"
	if !slices.Contains(p.Users, User{Name: "den", Role: "speaker", PasswordFile: pass}) {
		t.Fatalf("users %+v", p.Users)
	}
	if i := slices.Index(p.SpeakerArgs, "--password-file"); i < 0 || p.SpeakerArgs[i+1] != pass {
		t.Fatalf("speaker args %v", p.SpeakerArgs)
	}
	if !slices.Contains(p.Remove, "/run/tutti/password") {
		t.Fatalf("keeps a stale password file: %v", p.Remove)
	}
}

func TestWPAPSK(t *testing.T) {
	// IEEE 802.11i-2004 annex H.4 test vector.
	if got := WPAPSK("IEEE", "password"); got != "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e" {
		t.Fatalf("PSK %s", got)
	}
	hexKey := strings.Repeat("AB", 32)
	if got := WPAPSK("x", hexKey); got != strings.ToLower(hexKey) {
		t.Fatalf("hex PSK %s", got)
	}
}

func TestPlanWiFi(t *testing.T) {
	_, p := mustPlan(t, readTestdata(t, "full.toml"))
	f := fileOf(t, p, "/run/tutti/wpa_supplicant-wlan0.conf")
	const want = "ctrl_interface=DIR=/run/wpa_supplicant\nupdate_config=0\ncountry=DE\n\nnetwork={\n" +
		"\tssid=49454545\n\tscan_ssid=1\n\tpsk=f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e\n}\n"
	if !strings.HasSuffix(string(f.Content), want) || f.Mode != 0o600 {
		t.Fatalf("wpa_supplicant config %v\n%s", f.Mode, f.Content)
	}
	if strings.Contains(string(f.Content), "password") {
		t.Fatal("the passphrase is written in clear")
	}

	// An SSID with quotes and a newline is still one hex token; no
	// passphrase is an open network.
	_, p = mustPlan(t, []byte("name = \"k\"\n[broker]\nurl = \"tcp://h:1\"\n[wifi]\nssid = \"a\\\"b\\n}\"\ncountry = \"FR\"\n"))
	f = fileOf(t, p, "/run/tutti/wpa_supplicant-wlan0.conf")
	if !strings.Contains(string(f.Content), "\tssid=6122620a7d\n") {
		t.Fatalf("ssid not in hex:\n%s", f.Content)
	}
	if !strings.Contains(string(f.Content), "\tkey_mgmt=NONE\n") || strings.Contains(string(f.Content), "psk=") {
		t.Fatalf("open network:\n%s", f.Content)
	}
}

func TestPlanSSH(t *testing.T) {
	data := "name = \"k\"\n[broker]\nurl = \"tcp://h:1\"\n[ssh]\nenabled = true\nauthorized_keys = [\"" + testKey + "  \", \"" + testKey + "\"]\n"
	_, p := mustPlan(t, []byte(data))
	if !p.SSH {
		t.Fatal("ssh off")
	}
	fileOf(t, p, "/run/tutti/ssh-enabled")
	f := fileOf(t, p, "/var/lib/tutti/ssh/authorized_keys")
	if string(f.Content) != testKey+"\n"+testKey+"\n" || f.Mode != 0o600 {
		t.Fatalf("authorized_keys %v %q", f.Mode, f.Content)
	}
	if !slices.Contains(p.Dirs, Dir{"/var/lib/tutti/ssh", 0o700}) {
		t.Fatalf("dirs %v", p.Dirs)
	}
	if slices.Contains(p.Remove, "/run/tutti/ssh-enabled") {
		t.Fatal("removes the marker it writes")
	}
}

func TestNewPlanRefusesBadInput(t *testing.T) {
	cfg, err := Parse(readTestdata(t, "contract.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPlan(cfg, Paths{Run: "run", State: "/var/lib/tutti"}); err == nil {
		t.Fatal("relative run dir accepted")
	}
	if _, err := NewPlan(cfg, Paths{Run: "/run/my tutti", State: "/var/lib/tutti"}); err == nil {
		t.Fatal("run dir with a space accepted")
	}
	cfg.Audio.Device = "hw:0 --demo"
	if _, err := NewPlan(cfg, testPaths); err == nil || !strings.Contains(err.Error(), "audio.device") {
		t.Fatalf("bad config planned: %v", err)
	}
}

// checkPlan holds for the plan of every accepted config.
func checkPlan(t *testing.T, p Plan) {
	t.Helper()
	for _, args := range [][]string{p.SpeakerArgs, p.HubArgs} {
		for _, a := range args {
			if a == "" || strings.ContainsFunc(a, func(r rune) bool { return r <= ' ' || r == '"' || r == '\'' || r == '\\' || r == '$' || r > '~' }) {
				t.Fatalf("argument %q in %q", a, args)
			}
		}
	}
	for _, f := range p.Files {
		if !strings.HasPrefix(f.Path, testPaths.Run+"/") && !strings.HasPrefix(f.Path, testPaths.State+"/") {
			t.Fatalf("writes outside the run and state dirs: %s", f.Path)
		}
		if f.Mode&fs.ModePerm&0o022 != 0 {
			t.Fatalf("%s mode %v", f.Path, f.Mode)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"contract.toml", "full.toml"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		p, err := NewPlan(cfg, testPaths)
		if err != nil {
			t.Fatalf("accepted config not planned: %v", err)
		}
		checkPlan(t, p)
	})
}
