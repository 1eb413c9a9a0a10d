package cli

import (
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/playlog"
	"github.com/tutti-audio/tutti/protocol"
)

// skewMeter measures, while the demo plays, how far apart its virtual
// speakers really play. Each virtual device logs the first samples of every
// block and when it is heard; the demo made the songs itself, so it can find
// those samples in the song near where the session should be, and so tell
// when each speaker plays the song's first frame. The spread of those
// instants across speakers is the skew.
type skewMeter struct {
	rate  int
	songs map[string]func(int64) audiogen.Frame // by sha256

	mu       sync.Mutex
	state    protocol.SessionState
	playlist protocol.Playlist
	origins  map[string]*songOrigin // by speaker
}

// songOrigin is when a speaker would have heard frame 0 of an entry: the
// median of its last few blocks, so that a block whose samples happen to
// recur nearby in the song does not count.
type songOrigin struct {
	entry  string
	recent []int64
	seen   time.Time
}

const originBlocks = 9

func (o *songOrigin) median() int64 {
	s := slices.Clone(o.recent)
	slices.Sort(s)
	return s[len(s)/2]
}

func newSkewMeter(rate int) *skewMeter {
	return &skewMeter{rate: rate, songs: map[string]func(int64) audiogen.Frame{}, origins: map[string]*songOrigin{}}
}

func (m *skewMeter) addSong(sha string, sample func(int64) audiogen.Frame) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.songs[sha] = sample
}

func (m *skewMeter) setTimeline(st protocol.SessionState, pl protocol.Playlist) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state, m.playlist = st, pl
}

// logFor returns the log writer of speaker name's virtual device.
func (m *skewMeter) logFor(name string) *meterLog { return &meterLog{m: m, speaker: name} }

type meterLog struct {
	m       *skewMeter
	speaker string
}

// Write takes one log line (the virtual device writes a line per call).
func (l *meterLog) Write(p []byte) (int, error) {
	var line playlog.Line
	if json.Unmarshal(p, &line) == nil && !line.Underrun && line.Sound > 0 {
		l.m.observe(l.speaker, line)
	}
	return len(p), nil
}

// searchFrames is how far around the expected frame a block's samples are
// looked for: far more than any skew the demo could show.
const searchFrames = 2205

func (m *skewMeter) observe(speaker string, line playlog.Line) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.state.Anchor
	if !a.Playing {
		return
	}
	index, pos := timelineAt(a, m.playlist.Entries, line.TNs)
	if index < 0 || index >= len(m.playlist.Entries) {
		return
	}
	entry := m.playlist.Entries[index]
	song, ok := m.songs[entry.Song]
	if !ok {
		return
	}
	expected := protocol.NsToFrames(pos, m.rate)
	want := audiogen.Frame{L: line.L, R: line.R}
	for d := int64(0); d <= searchFrames; d++ {
		for _, f := range []int64{expected - d, expected + d} {
			if f < 0 || song(f) != want {
				continue
			}
			o := m.origins[speaker]
			if o == nil || o.entry != entry.ID {
				o = &songOrigin{entry: entry.ID}
				m.origins[speaker] = o
			}
			o.recent = append(o.recent, line.TNs-protocol.FramesToNs(f, m.rate))
			o.recent = o.recent[max(0, len(o.recent)-originBlocks):]
			o.seen = time.Now()
			return
		}
	}
}

// skew is the spread of the speakers' recent song origins for the entry most
// of them play, and how many speakers it covers.
func (m *skewMeter) skew() (time.Duration, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	byEntry := map[string][]int64{}
	for _, o := range m.origins {
		if time.Since(o.seen) < 2*time.Second && len(o.recent) == originBlocks {
			byEntry[o.entry] = append(byEntry[o.entry], o.median())
		}
	}
	var best []int64
	for _, origins := range byEntry {
		if len(origins) > len(best) {
			best = origins
		}
	}
	if len(best) < 2 {
		return 0, len(best)
	}
	lo, hi := best[0], best[0]
	for _, o := range best {
		lo, hi = min(lo, o), max(hi, o)
	}
	return time.Duration(hi - lo), len(best)
}
