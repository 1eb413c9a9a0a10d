package cli

import (
	"encoding/json"
	"math"
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

// betweenFrames is how far around the expected frame a block may match
// between two frames: a tune's waveform passes between many pairs of
// samples, so only near where the speaker should be is that a match.
const betweenFrames = 44

func (m *skewMeter) observe(speaker string, line playlog.Line) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.state.Anchor
	if !a.Playing {
		return
	}
	index, pos := timelineAt(a, m.playlist, line.TNs)
	if index < 0 || index >= len(m.playlist.Entries) {
		return
	}
	entry := m.playlist.Entries[index]
	song, ok := m.songs[entry.Song]
	if !ok {
		return
	}
	expected := protocol.NsToFrames(pos, m.rate)
	for d := int64(0); d <= searchFrames; d++ {
		for _, f := range []int64{expected - d, expected + d} {
			frac, ok := heardBetween(song, f, line, d <= betweenFrames)
			if !ok {
				continue
			}
			o := m.origins[speaker]
			if o == nil || o.entry != entry.ID {
				o = &songOrigin{entry: entry.ID}
				m.origins[speaker] = o
			}
			o.recent = append(o.recent, line.TNs-protocol.FramesToNs(f, m.rate)-int64(frac*1e9/float64(m.rate)))
			o.recent = o.recent[max(0, len(o.recent)-originBlocks):]
			o.seen = time.Now()
			return
		}
	}
}

// heardBetween says whether a block's first sample is the song's frame f,
// or lies between frames f and f+1, and where (0 to 1): a speaker steering
// its speed plays between frames, interpolating. The unrounded left sample
// (lx) gives the fraction; the right one must agree.
func heardBetween(song func(int64) audiogen.Frame, f int64, line playlog.Line, between bool) (frac float64, ok bool) {
	if f < 0 {
		return 0, false
	}
	a := song(f)
	if a.L == line.L && a.R == line.R {
		return 0, true
	}
	if !between || line.LX == 0 {
		return 0, false // exact frames only
	}
	b := song(f + 1)
	if a.L == b.L {
		return 0, false
	}
	frac = (line.LX - float64(a.L)) / float64(b.L-a.L)
	if frac < 0 || frac > 1 {
		return 0, false
	}
	r := float64(a.R) + frac*float64(b.R-a.R)
	return frac, math.Abs(r-float64(line.R)) <= 1
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
