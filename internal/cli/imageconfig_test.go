package cli

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/tutti-audio/tutti/broker"
)

const imageTestKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIASGXrPitF2NyNuFbIhQsMD2Yp6SQqxhn3WVoj8zeDMA me@laptop"

// imageConfigDirs is a boot file, a run dir and a state dir in a temp dir.
type imageConfigDirs struct{ boot, run, state string }

func newImageConfigDirs(t *testing.T) imageConfigDirs {
	dir := t.TempDir()
	return imageConfigDirs{boot: filepath.Join(dir, "tutti.toml"), run: filepath.Join(dir, "run"), state: filepath.Join(dir, "state")}
}

// apply writes toml as the boot file and runs image-config on it.
func (d imageConfigDirs) apply(t *testing.T, toml string, extra ...string) (code int, stdout, stderr string) {
	t.Helper()
	if err := os.WriteFile(d.boot, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	args := append([]string{"image-config", "--boot", d.boot, "--run", d.run, "--state", d.state, "--hostname=false"}, extra...)
	code = Main(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", path, info.Mode().Perm(), want)
	}
}

func assertGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still there (%v)", path, err)
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertUser checks that the users file holds name with role and a bcrypt
// hash of password.
func assertUser(t *testing.T, usersFile, name, role, password string) {
	t.Helper()
	users, err := broker.LoadUsers(usersFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.Name == name {
			if u.Role != role {
				t.Errorf("user %s: role %s, want %s", name, u.Role, role)
			}
			if err := bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)); err != nil {
				t.Errorf("user %s: hash does not verify the password: %v", name, err)
			}
			return
		}
	}
	t.Errorf("users file lacks %s: %+v", name, users)
}

// hubWiFiSSH turns every feature on; the speaker's password is generated.
const hubWiFiSSH = `name = "kitchen"
[hub]
enabled = true
admin_password = "admin-pw-1"
[wifi]
ssid = "IEEE"
passphrase = "wifi-passphrase"
country = "DE"
[ssh]
enabled = true
authorized_keys = ["` + imageTestKey + `"]
`

// hubOnly keeps the hub, gives the speaker a password, drops Wi-Fi and SSH.
const hubOnly = `name = "kitchen"
[broker]
password = "speaker-pw-1"
[hub]
enabled = true
admin_password = "admin-pw-1"
`

const plainSpeaker = `name = "kitchen"
[broker]
url = "tcp://hub.local:1883"
`

// bcrypt costs ~1 s under -race: the test checks few hashes itself and
// sees the rest through hashes that stay unchanged (image-config rewrites
// a user only when its hash does not verify the password).
func TestImageConfigAppliesAndReconfigures(t *testing.T) {
	d := newImageConfigDirs(t)
	run := func(name string) string { return filepath.Join(d.run, name) }
	hubDir := filepath.Join(d.state, "hub")
	usersFile := filepath.Join(hubDir, "users.toml")
	controllerPass := filepath.Join(hubDir, "controller.pass")
	speakerPass := filepath.Join(hubDir, "kitchen.pass")
	authorizedKeys := filepath.Join(d.state, "ssh", "authorized_keys")
	noSecretsLogged := func(stderr string) {
		t.Helper()
		for _, secret := range []string{"speaker-pw-1", "admin-pw-1", "wifi-passphrase"} {
			if strings.Contains(stderr, secret) {
				t.Errorf("log holds a secret: %s", stderr)
			}
		}
	}

	// 1. Everything on.
	code, _, stderr := d.apply(t, hubWiFiSSH)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	noSecretsLogged(stderr)
	speakerEnv := readString(t, run("speaker.env"))
	if !strings.HasPrefix(speakerEnv, "TUTTI_SPEAKER_ARGS=--name kitchen --broker tcp://127.0.0.1:1883 --user kitchen --password-file "+speakerPass+" ") {
		t.Errorf("speaker.env: %s", speakerEnv)
	}
	if hubEnv := readString(t, run("hub.env")); !strings.Contains(hubEnv, "--users "+usersFile) {
		t.Errorf("hub.env: %s", hubEnv)
	}
	wpa := readString(t, run("wpa_supplicant-wlan0.conf"))
	if !strings.Contains(wpa, "country=DE\n") || !strings.Contains(wpa, "ssid=49454545\n") || strings.Contains(wpa, "wifi-passphrase") {
		t.Errorf("wpa_supplicant config:\n%s", wpa)
	}
	if got := readString(t, authorizedKeys); got != imageTestKey+"\n" {
		t.Errorf("authorized_keys %q", got)
	}
	for _, f := range []string{"speaker.env", "hub.env", "wpa_supplicant-wlan0.conf"} {
		assertMode(t, run(f), 0o600)
	}
	assertMode(t, run("ssh-enabled"), 0o644)
	assertMode(t, authorizedKeys, 0o600)
	assertMode(t, filepath.Join(d.state, "ssh"), 0o700)
	for _, f := range []string{controllerPass, speakerPass, usersFile} {
		assertMode(t, f, 0o600)
	}
	assertGone(t, run("password"))
	generated := strings.TrimSpace(readString(t, controllerPass))
	if len(generated) < 20 {
		t.Fatalf("generated controller password %q is short", generated)
	}
	// Step 2 shows the controller's hash verifies the generated password:
	// image-config keeps it only if it does.
	hashes := userHashes(t, usersFile)
	if len(hashes) != 3 || hashes["admin"] == "" || hashes["controller"] == "" || hashes["kitchen"] == "" {
		t.Fatalf("users %v", hashes)
	}
	// A user added by hand (with a cheap hash) stays through every boot.
	cheap, err := bcrypt.GenerateFromPassword([]byte("bedroom-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	appendFile(t, usersFile, "\n[[user]]\nname = \"bedroom\"\nrole = \"speaker\"\npassword_hash = \""+string(cheap)+"\"\n")

	// 2. Wi-Fi and SSH off; the speaker's password now from tutti.toml.
	code, _, stderr = d.apply(t, hubOnly)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	noSecretsLogged(stderr)
	assertGone(t, run("wpa_supplicant-wlan0.conf"))
	assertGone(t, run("ssh-enabled"))
	assertGone(t, authorizedKeys)
	if got := readString(t, run("password")); got != "speaker-pw-1\n" {
		t.Errorf("password file %q", got)
	}
	assertMode(t, run("password"), 0o600)
	if got := readString(t, run("speaker.env")); !strings.Contains(got, "--password-file "+run("password")+" ") {
		t.Errorf("speaker.env: %s", got)
	}
	assertUser(t, usersFile, "kitchen", "speaker", "speaker-pw-1")
	after := userHashes(t, usersFile)
	for _, name := range []string{"admin", "controller"} {
		if after[name] != hashes[name] {
			t.Errorf("user %s rewritten though its password still verified", name)
		}
	}
	if after["bedroom"] != string(cheap) {
		t.Errorf("the user added by hand is gone: %v", after)
	}
	if got := strings.TrimSpace(readString(t, controllerPass)); got != generated {
		t.Errorf("controller password changed: %q, was %q", got, generated)
	}

	// 3. The hub off too: a plain speaker of another hub.
	if code, _, stderr := d.apply(t, plainSpeaker); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	assertGone(t, run("hub.env"))
	assertGone(t, run("password"))
	if got := readString(t, run("speaker.env")); !strings.HasPrefix(got, "TUTTI_SPEAKER_ARGS=--name kitchen --broker tcp://hub.local:1883 --user kitchen --output alsa ") {
		t.Errorf("speaker.env: %s", got)
	}
	// The hub's data stays, for when it is turned on again.
	if got := strings.TrimSpace(readString(t, controllerPass)); got != generated {
		t.Errorf("controller password changed: %q", got)
	}
}

func userHashes(t *testing.T, usersFile string) map[string]string {
	t.Helper()
	users, err := broker.LoadUsers(usersFile)
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[string]string{}
	for _, u := range users {
		hashes[u.Name] = u.PasswordHash
	}
	return hashes
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func TestImageConfigBadFile(t *testing.T) {
	d := newImageConfigDirs(t)
	code, _, stderr := d.apply(t, "name = \"kitchen\"\n[broker]\nurl = \"http://hub\"\n[audio]\nvolum = 3\n")
	if code == 0 {
		t.Fatal("a bad file was applied")
	}
	for _, want := range []string{"broker.url", "audio.volum: unknown key"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("error lacks %q: %s", want, stderr)
		}
	}
	if _, err := os.Stat(d.run); !os.IsNotExist(err) {
		t.Errorf("run dir made for a bad file (%v)", err)
	}

	if code, _, _ := d.apply(t, strings.Repeat("#", 70<<10)); code == 0 {
		t.Fatal("an oversized file was applied")
	}
}

func TestImageConfigCheck(t *testing.T) {
	d := newImageConfigDirs(t)
	code, stdout, stderr := d.apply(t, hubWiFiSSH, "--check")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"hostname: tutti-kitchen", "tutti speaker --name kitchen", "tutti hub --data", "hub user: controller (controller), generated password", "ssh: on", "wifi: network \"IEEE\""} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--check output lacks %q:\n%s", want, stdout)
		}
	}
	for _, secret := range []string{"speaker-pw-1", "admin-pw-1", "wifi-passphrase"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("--check prints a secret:\n%s", stdout)
		}
	}
	if _, err := os.Stat(d.run); !os.IsNotExist(err) {
		t.Errorf("--check wrote files (%v)", err)
	}
}
