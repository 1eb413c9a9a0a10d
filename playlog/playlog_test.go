package playlog

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/tutti-audio/tutti/audiogen"
)

// logOf writes log lines for blocks of 441 frames heard 10 ms apart from
// t0, the first block starting at frame first; frames[i], if set, replaces
// block i's first frame (a misread).
func logOf(t0 int64, first int64, blocks int, misread map[int]int64) string {
	var b strings.Builder
	for i := range blocks {
		frame := first + int64(i)*441
		if f, ok := misread[i]; ok {
			frame = f
		}
		tc := audiogen.Timecode(frame)
		fmt.Fprintf(&b, `{"t_ns":%d,"frames":441,"l":%d,"r":%d,"n_sound":441}`+"\n", t0+int64(i)*10_000_000, tc.L, tc.R)
	}
	return b.String()
}

func TestReadDropsMisreadBlocks(t *testing.T) {
	// Block 4 is misread mid-play: its neighbours continue each other across
	// it, so it is kept at the frames between them. Block 0 reads wrong as
	// the first block after a fade-in would: dropped.
	log := logOf(0, 1000, 10, map[int]int64{0: 77777, 4: 99999}) + `{"t_ns":1,"underrun":true}` + "\nnot json\n" + `{"t_ns":2,"frames":441,"l":0,"r":0,"n_sound":0}` + "\n"
	blocks, err := Read(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 9 {
		t.Fatalf("%d blocks, want 9 (the first misread, silence and junk dropped): %+v", len(blocks), blocks)
	}
	for _, b := range blocks {
		if b.Frame == 99999 || b.Frame == 77777 {
			t.Error("a misread frame number was kept")
		}
	}
	if blocks[3].Frame != 1000+4*441 {
		t.Errorf("the misread block in the middle reads frame %d, want %d", blocks[3].Frame, 1000+4*441)
	}
	if g, _ := Gap(blocks, 44100, 0, 1e9); g > 1000 {
		t.Errorf("a misread block shows as a gap of %d ns", g)
	}
}

// TestReadSaysWhereSoundBegan: play resumes mid-song with a fade-in, whose
// first blocks read as no frame or a wrong one; the first block read right
// after it says where in the log the sound leading into it began (the line
// that shows the fade-in's silent first frame), and a log read in pieces,
// line by line, gives what the whole log gives.
func TestReadSaysWhereSoundBegan(t *testing.T) {
	// Sound begins 141 frames before the end of the first block (3.2 ms),
	// the second has no timecode, the third reads as a wrong frame.
	begins := `{"t_ns":0,"frames":441,"l":0,"r":0,"n_sound":0,"n_tail":141,"rate":44100}` + "\n"
	faded := `{"t_ns":10000000,"frames":441,"l":3,"r":0,"n_sound":441,"n_tail":441,"rate":44100}` + "\n"
	log := begins + faded + logOf(20_000_000, 5000, 6, map[int]int64{0: 123})
	whole, err := Read(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(300) * 1e9 / 44100; len(whole) != 5 || whole[0].Frame != 5441 || whole[0].SoundFromNs != want || whole[4].SoundFromNs != want {
		t.Fatalf("blocks %+v, want 5 from frame 5441, sound from %d ns on", whole, want)
	}
	var rd Reader
	var pieces []Block
	for _, line := range strings.SplitAfter(log, "\n") {
		b, err := rd.Read(strings.NewReader(line))
		if err != nil {
			t.Fatal(err)
		}
		pieces = append(pieces, b...)
	}
	pieces = append(pieces, rd.Flush()...)
	if fmt.Sprint(pieces) != fmt.Sprint(whole) {
		t.Errorf("read line by line %+v, whole %+v", pieces, whole)
	}
	// Silence ends the sound: what comes after began anew.
	again := log + `{"t_ns":90000000,"frames":441,"l":0,"r":0,"n_sound":0,"n_tail":0,"rate":44100}` + "\n" + logOf(100_000_000, 9000, 2, nil)
	if b, _ := Read(strings.NewReader(again)); len(b) != 7 || b[5].SoundFromNs != 100_000_000 {
		t.Errorf("after silence: %+v, want sound from 100 ms on", b)
	}
}

func TestSpreadMeasuresSkew(t *testing.T) {
	const late = 250_000 // ns
	a, _ := Read(strings.NewReader(logOf(1e9, 0, 200, nil)))
	b, _ := Read(strings.NewReader(logOf(1e9+late, 0, 200, nil)))
	// c starts 7 frames into its blocks, on time: blocks are not aligned.
	c, _ := Read(strings.NewReader(logOf(1_000_000_000+7_000_000_000/44100, 7, 200, nil)))
	spreads := Spread(a, []*Timeline{NewTimeline(b, 44100), NewTimeline(c, 44100)}, 0, 3e9)
	st := Summarize(spreads)
	if st.N < 190 || st.P50Ms < 0.249 || st.P50Ms > 0.251 || st.Max > 0.251 {
		t.Errorf("spread %s, want 0.25 ms over ~199 blocks", st)
	}
	if _, ok := NewTimeline(b, 44100).HeardAt(1e7, 0); ok {
		t.Error("a frame never played was found")
	}
}

func TestLastSound(t *testing.T) {
	// Five blocks, a sixth that stops after 100 frames (a pause), then
	// playing again two seconds later.
	log := logOf(0, 0, 5, nil) + fmt.Sprintf(`{"t_ns":50000000,"frames":441,"l":%d,"r":%d,"n_sound":100}`+"\n", audiogen.Timecode(2205).L, audiogen.Timecode(2205).R) +
		logOf(2e9, 9000, 3, nil)
	blocks, _ := Read(strings.NewReader(log))
	frame, at, ok := LastSound(blocks, 44100, 100_000_000)
	if !ok || frame != 2304 || at != 50_000_000+99_000_000_000/44100 {
		t.Errorf("last sound frame %d at %d (%v), want 2304", frame, at, ok)
	}
}

// TestReadSubFrame: a speaker playing between frames logs the unrounded
// left sample; the block's instant is moved to when the whole frame was heard.
func TestReadSubFrame(t *testing.T) {
	tc := audiogen.Timecode(1000)
	line := fmt.Sprintf(`{"t_ns":1000000000,"frames":441,"l":%d,"r":%d,"n_sound":441,"lx":%v,"rate":44100}`, tc.L, tc.R, float64(tc.L)+0.25)
	blocks, err := Read(strings.NewReader(line + "\n" + logOf(1010000000, 1441, 1, nil)))
	if err != nil || len(blocks) != 2 {
		t.Fatalf("%v %v", blocks, err)
	}
	if want := int64(1e9) - 5669; blocks[0].TNs != want || blocks[0].Frame != 1000 {
		t.Errorf("block %+v, want frame 1000 heard at %d", blocks[0], want)
	}
}

func TestGap(t *testing.T) {
	read := func(log string) []Block {
		b, err := Read(strings.NewReader(log))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Continuous: 20 blocks of 10 ms.
	if g, _ := Gap(read(logOf(0, 0, 20, nil)), 44100, 0, 1e9); g > 1000 {
		t.Errorf("continuous sound: gap %d ns", g)
	}
	// 300 ms of silence, resumed in sync (frames skipped as time passed).
	silent := logOf(0, 0, 10, nil) + logOf(400_000_000, 400*441/10, 10, nil)
	if g, at := Gap(read(silent), 44100, 0, 1e9); g < 299_000_000 || g > 301_000_000 || at != 90_000_000 {
		t.Errorf("300 ms silence: gap %.1f ms after the block at %d", float64(g)/1e6, at)
	}
	// No silence, but the position jumps 50 ms ahead.
	jumped := logOf(0, 0, 10, nil) + logOf(100_000_000, 441*10+2205, 10, nil)
	if g, _ := Gap(read(jumped), 44100, 0, 1e9); g < 49_000_000 || g > 51_000_000 {
		t.Errorf("50 ms jump: gap %.1f ms", float64(g)/1e6)
	}
	// Outside the window: not counted.
	if g, _ := Gap(read(silent), 44100, 0, 90_000_000); g > 1000 {
		t.Errorf("gap outside the window counted: %d", g)
	}
}

func TestUnderruns(t *testing.T) {
	log := logOf(0, 0, 3, nil) + `{"t_ns":42,"underrun":true}` + "\n" + logOf(1e9, 0, 2, nil) + `{"t_ns":77,"underrun":true}` + "\n"
	at, err := Underruns(strings.NewReader(log))
	if err != nil || fmt.Sprint(at) != "[42 77]" {
		t.Errorf("underruns %v, %v", at, err)
	}
}

// FuzzRead: no log line crashes the reader, and what it returns is ordered
// as the log was.
func FuzzRead(f *testing.F) {
	f.Add([]byte(logOf(0, 1000, 3, nil)))
	f.Add([]byte(`{"t_ns":1,"underrun":true}` + "\n" + `{"t_ns":2,"frames":441,"l":1,"r":2,"n_sound":900,"lx":1.7,"rate":44100}`))
	f.Add([]byte("not json\n{}\n{\"frames\":-5}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		blocks, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, bl := range blocks {
			if bl.Frames < 0 {
				t.Fatalf("block with %d frames", bl.Frames)
			}
		}
		Underruns(bytes.NewReader(b))
		Gap(blocks, 44100, math.MinInt64, math.MaxInt64)
	})
}
