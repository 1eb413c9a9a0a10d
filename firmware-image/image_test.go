package firmwareimage

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/ssh"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/internal/testwait"
	"github.com/tutti-audio/tutti/mqttclient"
	"github.com/tutti-audio/tutti/protocol"
)

// The image test checks the built image (make image) and boots it under
// qemu-system-aarch64 against a hub on this machine. It runs with
// TUTTI_IMAGE_TEST=1 (make image-test): the build takes minutes and root.

// imageTest skips unless the image test was asked for.
func imageTest(t *testing.T) string {
	t.Helper()
	if os.Getenv("TUTTI_IMAGE_TEST") == "" {
		t.Skip("the image test needs root, qemu and a built image (about 20 minutes): make image-test, which CI runs, sets TUTTI_IMAGE_TEST=1")
	}
	matches, _ := filepath.Glob("out/tutti-*-arm64.img.zst")
	if len(matches) == 0 {
		t.Fatal("no out/tutti-*-arm64.img.zst: run make image first")
	}
	sort.Slice(matches, func(i, j int) bool { return modTime(matches[i]).After(modTime(matches[j])) })
	return matches[0]
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// partition is one entry of the image's partition table, in bytes.
type partition struct {
	start, size int64
	kind        string
}

// unpack decompresses the image into dir and reads its partition table.
func unpack(t *testing.T, zst, dir string) (string, []partition) {
	t.Helper()
	img := filepath.Join(dir, "tutti.img")
	run(t, "zstd", "-q", "-d", "-f", zst, "-o", img)
	var table struct {
		PartitionTable struct {
			Label      string `json:"label"`
			SectorSize int64  `json:"sectorsize"`
			Partitions []struct {
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Type  string `json:"type"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(run(t, "sfdisk", "--json", img)), &table); err != nil {
		t.Fatal(err)
	}
	sector := table.PartitionTable.SectorSize
	if sector == 0 {
		sector = 512
	}
	var parts []partition
	for _, p := range table.PartitionTable.Partitions {
		parts = append(parts, partition{p.Start * sector, p.Size * sector, p.Type})
	}
	if table.PartitionTable.Label != "dos" || len(parts) != 3 {
		t.Fatalf("partition table %+v: want an MBR with 3 partitions", table.PartitionTable)
	}
	return img, parts
}

// extract copies one partition of img into its own file.
func extract(t *testing.T, img string, p partition, dst string) {
	t.Helper()
	in, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, io.NewSectionReader(in, p.start, p.size)); err != nil {
		t.Fatal(err)
	}
}

// fat is an mtools image reference to the boot partition.
func fat(img string, p partition) string { return fmt.Sprintf("%s@@%d", img, p.start) }

func TestImageContents(t *testing.T) {
	zst := imageTest(t)
	dir := t.TempDir()
	img, parts := unpack(t, zst, dir)
	for i, want := range []string{"c", "83", "83"} {
		if strings.TrimLeft(parts[i].kind, "0x") != want {
			t.Errorf("partition %d has type %s, want %s", i+1, parts[i].kind, want)
		}
	}
	if parts[0].start != 4<<20 {
		t.Errorf("boot partition starts at %d, want 4 MiB", parts[0].start)
	}

	// Both file systems are clean.
	boot, root, data := filepath.Join(dir, "boot.vfat"), filepath.Join(dir, "root.ext4"), filepath.Join(dir, "data.ext4")
	extract(t, img, parts[0], boot)
	extract(t, img, parts[1], root)
	extract(t, img, parts[2], data)
	run(t, "fsck.vfat", "-n", boot)
	run(t, "e2fsck", "-fn", root)
	run(t, "e2fsck", "-fn", data)
	for file, label := range map[string]string{root: "RASPIROOT", data: "TUTTIDATA"} {
		if got := strings.TrimSpace(run(t, "e2label", file)); got != label {
			t.Errorf("%s labelled %q, want %q", filepath.Base(file), got, label)
		}
	}

	// The boot partition holds the firmware, the kernel and the config.
	listing := run(t, "mdir", "-b", "-i", fat(img, parts[0]), "::")
	for _, want := range []string{"config.txt", "cmdline.txt", "tutti.toml", "vmlinuz", "initrd.img", "bcm2837-rpi-3-b.dtb", "bcm2837-rpi-3-b-plus.dtb", "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2837-rpi-zero-2-w.dtb", "start4.elf", "bootcode.bin"} {
		if !strings.Contains(listing, want) {
			t.Errorf("boot partition lacks %s", want)
		}
	}
	cmdline := run(t, "mtype", "-i", fat(img, parts[0]), "::cmdline.txt")
	for _, want := range []string{"root=LABEL=RASPIROOT", " ro"} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("cmdline.txt %q lacks %q", cmdline, want)
		}
	}

	// The root holds tutti and its units, enabled.
	for _, path := range []string{
		"/usr/local/bin/tutti",
		"/etc/systemd/system/multi-user.target.wants/tutti-speaker.service",
		"/etc/systemd/system/multi-user.target.wants/tutti-hub.service",
		"/etc/fstab",
	} {
		if out := run(t, "debugfs", "-R", "stat "+path, root); strings.Contains(out, "File not found") {
			t.Errorf("root file system lacks %s", path)
		}
	}
	fstab := run(t, "debugfs", "-R", "cat /etc/fstab", root)
	if !strings.Contains(fstab, "LABEL=TUTTIDATA") {
		t.Errorf("fstab does not mount the data partition:\n%s", fstab)
	}

	// The example config parses.
	conf := filepath.Join(dir, "tutti.toml")
	run(t, "mcopy", "-i", fat(img, parts[0]), "::tutti.toml", conf)
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Errorf("the shipped tutti.toml: %v", err)
	}
}

// The boot test's song is a sequence of tones of toneSeconds each, no two
// neighbours alike, so that the order of the tones heard in qemu's capture
// shows which part of the song played, whatever the rates on the way.
var toneFreqs = []float64{400, 500, 630, 800, 1000, 1250, 1600, 2000}

const toneSeconds = 0.25

// toneSequence lists the tone index of every segment of a song of n segments.
func toneSequence(n int) []int {
	seq := make([]int, n)
	for i := 1; i < n; i++ {
		y := uint32(i)*2654435761 + 12345
		seq[i] = (seq[i-1] + 1 + int(y>>29)%(len(toneFreqs)-1)) % len(toneFreqs)
	}
	return seq
}

// writeToneSong writes the song, seconds long, as a 44.1 kHz WAV.
func writeToneSong(t *testing.T, path string, seconds int) []int {
	t.Helper()
	const rate = 44100
	perSegment := int64(toneSeconds * rate)
	frames := int64(seconds) * rate
	seq := toneSequence(int(frames/perSegment) + 1)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	err = audiogen.WriteWAV(w, rate, frames, func(i int64) audiogen.Frame {
		v := int16(16000 * math.Sin(2*math.Pi*toneFreqs[seq[i/perSegment]]*float64(i)/rate))
		return audiogen.Frame{L: v, R: v}
	})
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// readCapture reads the left channel of qemu's WAV capture. qemu writes the
// sizes in the header when it exits; killed, it leaves them zero, so the
// data runs to the end of the file.
func readCapture(t *testing.T, path string) (samples []float64, rate int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s is no WAV file (%d bytes)", path, len(b))
	}
	channels, bits := 2, 16
	for pos := 12; pos+8 <= len(b); {
		id, size := string(b[pos:pos+4]), int(binary.LittleEndian.Uint32(b[pos+4:]))
		body := b[pos+8:]
		switch id {
		case "fmt ":
			channels = int(binary.LittleEndian.Uint16(body[2:]))
			rate = int(binary.LittleEndian.Uint32(body[4:]))
			bits = int(binary.LittleEndian.Uint16(body[14:]))
		case "data":
			if bits != 16 {
				t.Fatalf("capture has %d-bit samples", bits)
			}
			frame := 2 * channels
			for i := 0; i+frame <= len(body); i += frame {
				samples = append(samples, float64(int16(binary.LittleEndian.Uint16(body[i:])))/32768)
			}
			return samples, rate
		}
		pos += 8 + size + size%2
	}
	t.Fatalf("%s has no data chunk", path)
	return nil, 0
}

// heardTones splits the capture into windows and names the tone each one
// holds (-1 for silence or no clear tone), by Goertzel power at each of
// the song's frequencies.
func heardTones(samples []float64, rate int, window int) []int {
	var tones []int
	for start := 0; start+window <= len(samples); start += window {
		best, bestPower, total := -1, 0.0, 0.0
		for _, v := range samples[start : start+window] {
			total += v * v
		}
		if total/float64(window) < 1e-4 {
			tones = append(tones, -1)
			continue
		}
		for k, f := range toneFreqs {
			coeff := 2 * math.Cos(2*math.Pi*f/float64(rate))
			var s1, s2 float64
			for _, v := range samples[start : start+window] {
				s1, s2 = v+coeff*s1-s2, s1
			}
			if p := s1*s1 + s2*s2 - coeff*s1*s2; p > bestPower {
				best, bestPower = k, p
			}
		}
		// A clear tone carries most of the window's energy.
		if bestPower/(total*float64(window)/2) < 0.5 {
			best = -1
		}
		tones = append(tones, best)
	}
	return tones
}

// longestMatch is the longest run of the capture's tones, merged into
// segments, that follows the song's sequence in order: how many segments of
// the song were heard as they are in the song.
func longestMatch(heard []int, windowsPerSegment int, song []int) int {
	// Merge windows into segments: runs of one tone at least half a segment
	// long. Shorter runs are the windows that straddle two tones: skipped.
	// Long runs of silence or noise break the sequence.
	var segments []int
	for i := 0; i < len(heard); {
		j := i
		for j < len(heard) && heard[j] == heard[i] {
			j++
		}
		if j-i >= windowsPerSegment/2 {
			for n := max(1, (j-i+windowsPerSegment/2)/windowsPerSegment); n > 0; n-- {
				segments = append(segments, heard[i])
			}
		}
		i = j
	}
	best := 0
	for start := range song {
		for i := range segments {
			n := 0
			for i+n < len(segments) && start+n < len(song) && segments[i+n] == song[start+n] {
				n++
			}
			best = max(best, n)
		}
	}
	return best
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// guestHost is where the guest reaches the host's forwarded ports.
const guestHost = "10.0.2.100"

// statusWatch records the speaker's statuses as they arrive.
type statusWatch struct {
	mu       sync.Mutex
	statuses []timedStatus
}

type timedStatus struct {
	at time.Time
	protocol.SpeakerStatus
}

func watchStatus(t *testing.T, brokerURL, speaker string) *statusWatch {
	t.Helper()
	w := &statusWatch{}
	client := paho.NewClient(mqttclient.Options(brokerURL, "image-test", "", ""))
	if tok := client.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { client.Disconnect(0) })
	tok := client.Subscribe(protocol.SpeakerStatusTopic(speaker), 1, func(_ paho.Client, m paho.Message) {
		if st, err := protocol.Decode[protocol.SpeakerStatus](m.Payload()); err == nil {
			w.mu.Lock()
			w.statuses = append(w.statuses, timedStatus{time.Now(), st})
			w.mu.Unlock()
		}
	})
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return w
}

// first returns the first status since from that satisfies cond.
func (w *statusWatch) first(from time.Time, cond func(protocol.SpeakerStatus) bool) (timedStatus, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.statuses {
		if !s.at.Before(from) && cond(s.SpeakerStatus) {
			return s, true
		}
	}
	return timedStatus{}, false
}

func (w *statusWatch) waitFor(t *testing.T, what string, from time.Time, timeout time.Duration, cond func(protocol.SpeakerStatus) bool) timedStatus {
	t.Helper()
	var s timedStatus
	if !testwait.Until(timeout, func() bool { var ok bool; s, ok = w.first(from, cond); return ok }) {
		w.mu.Lock()
		var last any = "none"
		if n := len(w.statuses); n > 0 {
			last = w.statuses[n-1].SpeakerStatus
		}
		w.mu.Unlock()
		t.Fatalf("timed out after %v waiting for %s; last status: %+v", timeout, what, last)
	}
	return s
}

// hubRemote sends requests to the hub, as a remote control does.
type hubRemote struct {
	t       *testing.T
	client  paho.Client
	replies chan protocol.Reply
	next    int
}

const remoteReplyTopic = protocol.DefaultReplyTopic + "/image-test"

func newHubRemote(t *testing.T, brokerURL string) *hubRemote {
	t.Helper()
	r := &hubRemote{t: t, replies: make(chan protocol.Reply, 10),
		client: paho.NewClient(mqttclient.Options(brokerURL, "image-test-remote", "", ""))}
	if tok := r.client.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { r.client.Disconnect(0) })
	tok := r.client.Subscribe(remoteReplyTopic, 1, func(_ paho.Client, m paho.Message) {
		if reply, err := protocol.Decode[protocol.Reply](m.Payload()); err == nil {
			r.replies <- reply
		}
	})
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil || tok.(*paho.SubscribeToken).Result()[remoteReplyTopic] >= 0x80 {
		t.Fatalf("subscribe: %v %v", tok.Error(), tok.(*paho.SubscribeToken).Result())
	}
	// Only the controller holding the lease answers: wait for it.
	ready := make(chan struct{})
	var once sync.Once
	tok = r.client.Subscribe(protocol.ControllerStatusTopic, 1, func(_ paho.Client, m paho.Message) {
		if st, err := protocol.Decode[protocol.ControllerStatus](m.Payload()); err == nil && st.Online && st.Term > 0 {
			once.Do(func() { close(ready) })
		}
	})
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatal("no controller holds the lease")
	}
	return r
}

// request sends req to topic and returns its reply, which must be ok.
func (r *hubRemote) request(topic string, req protocol.Request) protocol.Reply {
	r.t.Helper()
	r.next++
	req.ReqID, req.ReplyTo = strconv.Itoa(r.next), remoteReplyTopic
	if tok := r.client.Publish(topic, 1, false, protocol.Encode(req)); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		r.t.Fatalf("publish %s: %v", req.Cmd, tok.Error())
	}
	timeout := time.After(60 * time.Second)
	for {
		select {
		case reply := <-r.replies:
			if reply.ReqID != req.ReqID {
				continue
			}
			if !reply.OK {
				r.t.Fatalf("%s: %s", req.Cmd, reply.Error)
			}
			return reply
		case <-timeout:
			r.t.Fatalf("%s: no answer within 60 s", req.Cmd)
		}
	}
}

// qemu is one boot of the image.
type qemu struct {
	cmd     *exec.Cmd
	console string
	started time.Time
	done    chan struct{}
}

// bootImage boots img; rtc is the date the guest's clock starts at ("" for
// now).
func bootImage(t *testing.T, dir, img, kernel, initrd, wav, rtc, sshAddr string, ports ...string) *qemu {
	t.Helper()
	// Each guest connection to guestHost:port runs socat to the same port on
	// this machine's loopback (a tcp: chardev would carry only one
	// connection, and the speaker opens several: MQTT, song downloads).
	// The guest reaches nothing else; this machine reaches its SSH port.
	netdev := "user,id=net0,restrict=on,hostfwd=tcp:" + sshAddr + "-:22"
	for _, port := range ports {
		netdev += fmt.Sprintf(",guestfwd=tcp:%s:%s-cmd:socat - TCP:127.0.0.1:%s", guestHost, port, port)
	}
	console := filepath.Join(dir, fmt.Sprintf("console-%d.log", time.Now().UnixNano()))
	args := []string{
		"-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "1G",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "root=LABEL=RASPIROOT ro rootwait console=ttyAMA0",
		"-drive", "file=" + img + ",format=raw,if=virtio",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,romfile=",
		"-audiodev", "wav,id=snd0,path=" + wav, "-device", "intel-hda", "-device", "hda-output,audiodev=snd0",
		"-display", "none", "-monitor", "none", "-serial", "file:" + console,
	}
	if rtc != "" {
		args = append(args, "-rtc", "base="+rtc)
	}
	q := &qemu{cmd: exec.Command("qemu-system-aarch64", args...), console: console, done: make(chan struct{})}
	var stderr bytes.Buffer
	q.cmd.Stderr = &stderr
	q.started = time.Now()
	if err := q.cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	go func() { q.cmd.Wait(); close(q.done) }()
	t.Cleanup(func() {
		q.kill()
		if t.Failed() {
			b, _ := os.ReadFile(console)
			lines := strings.Split(string(b), "\n")
			t.Logf("qemu stderr: %s\n--- last console lines:\n%s", stderr.String(), strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	})
	return q
}

// kill pulls the power.
func (q *qemu) kill() {
	q.cmd.Process.Kill()
	<-q.done
}

// sshKey makes the key pair of the test's logins: the public key as a line
// of tutti.toml's authorized_keys, and the private key.
func sshKey(t *testing.T) (string, ssh.Signer) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " image-test", signer
}

// overSSH runs command on the guest as root, as a person would over SSH,
// and returns its output.
func overSSH(t *testing.T, addr string, key ssh.Signer, command string) string {
	t.Helper()
	conf := &ssh.ClientConfig{
		User: "root",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(key)},
		// The host key is made on the guest's first boot: nothing to pin.
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         time.Minute, // key exchange under emulation is slow
	}
	client, err := ssh.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatalf("ssh %s: %v", addr, err)
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		t.Fatalf("ssh session: %v", err)
	}
	defer session.Close()
	out, err := session.CombinedOutput(command)
	if err != nil {
		t.Fatalf("ssh %q: %v\n%s", command, err, out)
	}
	return string(out)
}

// hostTutti builds tutti for this machine, to run the hub.
func hostTutti(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tutti-host")
	run(t, "go", "build", "-tags", "sqlite_fts5", "-o", bin, "../cmd/tutti")
	return bin
}

func startProcess(t *testing.T, dir, name, bin string, args ...string) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			lines := strings.Split(string(b), "\n")
			t.Logf("--- last lines of %s:\n%s", name, strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
}

// TestImageBoot boots the image under qemu with a config pointing at a hub
// on this machine: the speaker registers, syncs its clock and plays the
// song the hub plays, which arrives in qemu's WAV capture; its log is read
// over SSH, and killed, it is restarted by systemd and plays again; after
// the power is pulled, it boots again, clean.
func TestImageBoot(t *testing.T) {
	zst := imageTest(t)
	dir := t.TempDir()
	img, parts := unpack(t, zst, dir)
	// A card larger than the image: the data partition grows into it.
	run(t, "truncate", "-s", "+512M", img)

	listing := run(t, "mdir", "-b", "-i", fat(img, parts[0]), "::")
	var kernelName, initrdName string
	for _, line := range strings.Fields(listing) {
		name := strings.TrimPrefix(line, "::/")
		switch {
		case strings.HasPrefix(name, "vmlinuz"):
			kernelName = name
		case strings.HasPrefix(name, "initrd.img"):
			initrdName = name
		}
	}
	if kernelName == "" || initrdName == "" {
		t.Fatalf("no kernel or initrd on the boot partition:\n%s", listing)
	}
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd")
	run(t, "mcopy", "-i", fat(img, parts[0]), "::"+kernelName, kernel)
	run(t, "mcopy", "-i", fat(img, parts[0]), "::"+initrdName, initrd)

	// The hub on this machine, playing a song before the Pi boots.
	bin := hostTutti(t, dir)
	brokerAddr, httpAddr := freeAddr(t), freeAddr(t)
	_, brokerPort, _ := net.SplitHostPort(brokerAddr)
	_, httpPort, _ := net.SplitHostPort(httpAddr)
	music := filepath.Join(dir, "music")
	if err := os.Mkdir(music, 0o755); err != nil {
		t.Fatal(err)
	}
	startProcess(t, dir, "hub", bin, "hub", "--demo", "--listen", brokerAddr, "--http", httpAddr,
		"--public-url", "http://"+guestHost+":"+httpPort, "--data", filepath.Join(dir, "hub"), "--import", music)
	brokerURL := "tcp://" + brokerAddr
	// The hub imports the song from its import directory: the song server's
	// URL is the one the guest reaches, not this machine.
	seq := writeToneSong(t, filepath.Join(music, "tones.wav"), 300)
	remote := newHubRemote(t, brokerURL)
	loaded := remote.request(protocol.LibraryCommandTopic, protocol.Request{Cmd: protocol.CmdLoad, Path: "tones.wav"})
	var song protocol.Song
	if err := json.Unmarshal(loaded.Result, &song); err != nil {
		t.Fatalf("load result %s: %v", loaded.Result, err)
	}
	session := protocol.SessionCommandTopic(protocol.DefaultSession)
	remote.request(session, protocol.Request{Cmd: protocol.CmdEnqueue, Song: song.SHA256})
	remote.request(session, protocol.Request{Cmd: protocol.CmdPlay})

	// The Pi's config, written into the boot partition as a person would.
	authorizedKey, sshSigner := sshKey(t)
	config := fmt.Sprintf("name = \"pi\"\n\n[broker]\nurl = \"tcp://%s:%s\"\n\n[audio]\ndevice = \"default\"\n\n[ssh]\nenabled = true\nauthorized_keys = [%q]\n",
		guestHost, brokerPort, authorizedKey)
	confPath := filepath.Join(dir, "tutti.toml")
	if err := os.WriteFile(confPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "mcopy", "-o", "-i", fat(img, parts[0]), confPath, "::tutti.toml")

	status := watchStatus(t, brokerURL, "pi")
	wav := filepath.Join(dir, "boot1.wav")
	sshAddr := freeAddr(t)
	q := bootImage(t, dir, img, kernel, initrd, wav, "", sshAddr, brokerPort, httpPort)
	online := status.waitFor(t, "the speaker to register", q.started, 5*time.Minute, func(s protocol.SpeakerStatus) bool { return s.Online })
	synced := status.waitFor(t, "the speaker's clock to sync", q.started, 2*time.Minute, func(s protocol.SpeakerStatus) bool {
		return s.Online && s.ClockErrorNs > 0 && s.ClockErrorNs < int64(5*time.Millisecond)
	})
	playing := status.waitFor(t, "the speaker to play", q.started, 2*time.Minute, func(s protocol.SpeakerStatus) bool {
		return s.State == protocol.Playing
	})
	t.Logf("boot to registered %v, to clock synced %v (error bound %v), to playing %v",
		online.at.Sub(q.started).Round(time.Millisecond), synced.at.Sub(q.started).Round(time.Millisecond),
		time.Duration(synced.ClockErrorNs), playing.at.Sub(q.started).Round(time.Millisecond))
	time.Sleep(25 * time.Second) // let it play

	// Over SSH with the key from tutti.toml: the speaker's log is there;
	// then the speaker crashes (kill -9) and systemd brings it back,
	// playing again.
	journal := overSSH(t, sshAddr, sshSigner, "journalctl -u tutti-speaker --no-pager")
	if !strings.Contains(journal, "connected to broker") {
		t.Errorf("journalctl -u tutti-speaker over SSH shows no \"connected to broker\":\n%s", journal)
	}
	crashed := time.Now()
	overSSH(t, sshAddr, sshSigner, "kill -9 $(systemctl show --property MainPID --value tutti-speaker)")
	restarted := status.waitFor(t, "the speaker to play again after a crash", crashed, 2*time.Minute, func(s protocol.SpeakerStatus) bool {
		return s.Instance != online.Instance && s.State == protocol.Playing
	})
	t.Logf("speaker killed (-9) to playing again %v", restarted.at.Sub(crashed).Round(time.Millisecond))
	q.kill() // pull the power

	samples, rate := readCapture(t, wav)
	window := int(toneSeconds * float64(rate) / 5)
	heard := heardTones(samples, rate, window)
	matched := longestMatch(heard, 5, seq)
	t.Logf("capture: %.1f s at %d Hz; longest run of the song heard in order: %d tones (%.1f s)",
		float64(len(samples))/float64(rate), rate, matched, float64(matched)*toneSeconds)
	if matched < 12 {
		t.Errorf("the capture matches only %d tones of the song in order, want at least 12 (3 s): by chance, 12 in a row would take 7^11 tries; heard (tone per %v): %v",
			matched, time.Duration(float64(window)/float64(rate)*float64(time.Second)), heard)
		// Keep the capture for a look: the test's directory goes.
		kept := filepath.Join(os.TempDir(), "tutti-image-capture.wav")
		if os.Rename(wav, kept) == nil {
			t.Logf("capture kept in %s", kept)
		}
	}

	// Power back on: it comes up clean and registers again, this time with
	// its clock in the past (a Pi has no battery clock, and the guest has
	// no way to NTP; systemd moves a clock that old up to its own release
	// date, still months behind): playback does not depend on the system
	// clock.
	first := restarted.Instance
	q2 := bootImage(t, dir, img, kernel, initrd, filepath.Join(dir, "boot2.wav"), "2021-03-04T05:06:07", sshAddr, brokerPort, httpPort)
	again := status.waitFor(t, "the speaker to register after the power cut", q2.started, 5*time.Minute, func(s protocol.SpeakerStatus) bool {
		return s.Online && s.Instance != first
	})
	t.Logf("second boot to registered %v", again.at.Sub(q2.started).Round(time.Millisecond))
	replaying := status.waitFor(t, "the speaker to play after the power cut", q2.started, 2*time.Minute, func(s protocol.SpeakerStatus) bool {
		return s.State == protocol.Playing
	})
	t.Logf("second boot (clock behind by %v) to playing %v", time.Duration(replaying.ClockOffsetNs).Round(time.Hour),
		replaying.at.Sub(q2.started).Round(time.Millisecond))
	if time.Duration(replaying.ClockOffsetNs) < 24*time.Hour {
		t.Errorf("the guest's clock was not behind: offset %v", time.Duration(replaying.ClockOffsetNs))
	}
	// The data partition's journal may replay after the power cut; nothing
	// may fail.
	b, _ := os.ReadFile(q2.console)
	for _, bad := range []string{"FAILED", "Kernel panic", "emergency mode"} {
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("second boot's console shows %q", bad)
		}
	}
}

// TestToneMatcher checks the boot test's ear on made-up captures: a stretch
// of the song at another rate, after silence, is recognised; tones out of
// order are not.
func TestToneMatcher(t *testing.T) {
	const rate = 48000
	song := toneSequence(200)
	capture := func(order func(segment int) int) []float64 {
		out := make([]float64, rate/3) // silence first
		for i := range 8 * rate {
			pos := 37.3 + float64(i)/rate/toneSeconds // in segments
			f := toneFreqs[order(int(pos))]
			out = append(out, 0.3*math.Sin(2*math.Pi*f*float64(i)/rate))
		}
		return out
	}
	window := int(toneSeconds * rate / 5)
	inOrder := longestMatch(heardTones(capture(func(s int) int { return song[s] }), rate, window), 5, song)
	if inOrder < 30 {
		t.Errorf("8 s of the song heard as %d tones in order, want about 32", inOrder)
	}
	shuffled := longestMatch(heardTones(capture(func(s int) int { return song[(s*7)%len(song)] }), rate, window), 5, song)
	// Chance runs of a few tones happen (8 tones, 200 places); the boot
	// test's 12 in a row by chance would take 7^11 tries.
	if shuffled > 8 {
		t.Errorf("tones out of order matched %d in a row", shuffled)
	}
}
