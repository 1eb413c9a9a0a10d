package speaker

import (
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/tutti-audio/tutti/clocksync"
	"github.com/tutti-audio/tutti/protocol"
)

// songFiles tells the engine where songs are on disk: the verified ones,
// and those still downloading, which it may start to play before they are
// complete.
type songFiles interface {
	Lookup(sha string) (path string, ok bool)
	Partial(sha string) (*download, bool)
	// MP3Index is the frame index of a verified MP3 song (built off the
	// audio path, when it was verified).
	MP3Index(sha string) (*mp3Index, error)
}

// State of a speaker that should play but cannot yet (status "state").
const buffering = "buffering"

// stillDownloading is the status error while the part of a song due now
// has not arrived.
const stillDownloading = "song still downloading"

// State of a speaker that went silent because it lost touch (status "state").
const silent = "silent"

// State of a speaker that muted because its state is inconsistent, while it
// repairs it (status "state"); see recovery.go.
const recovering = "recovering"

// State of a speaker that is assigned to no session (status "state"): it
// plays nothing until it is assigned one.
const unassigned = "unassigned"

// moveFade is how long the session a speaker leaves plays on, fading to
// silence, so that it stops without a click.
const moveFade = 5 * time.Millisecond

// volumeRamp is how long a change of the speaker's own volume takes from
// silence to full scale: a step would click.
const volumeRamp = 10 * time.Millisecond

// resyncThreshold is how far a decoder may be from the timeline before the
// engine seeks instead of sliding by whole frames (back to back, slides
// move 450 ppm, so 2 ms take 4.4 s to remove: beyond, a seek and a fade-in
// are the lesser evil).
const resyncThreshold = 2 * time.Millisecond

// engine is the Source an output pulls from: it maps each frame's heard
// instant to the session timeline and reads the song frame due then.
// Everything it holds is guarded by mu; Fill holds it for one block, which
// takes only local file reads.
type engine struct {
	rate  int
	place placement // how players follow the timeline
	files songFiles
	log   *slog.Logger

	mu        sync.Mutex
	clock     clocksync.Model   // shared clock as a function of the local one
	trust     clocksync.Trust   // whether to play by clock
	grace     time.Duration     // how long to play on without hearing the time master; 0 = forever
	lastHeard clocksync.LocalNs // the time master's latest answer
	ownVolume int               // the speaker's own volume, 0-100
	ownGain   float64           // its gain in effect, ramping towards ownVolume's
	sess      *followed         // the session the speaker plays
	// unassigned: the speaker plays no session (sess stays empty).
	unassigned bool
	// leaving is the session the speaker left, which plays on for the
	// fadeLeft frames of its fade-out; nil when none.
	leaving   *followed
	fadeLeft  int
	scratch   [][2]float64 // where leaving is rendered
	mix       [][2]float64 // where an entry fading in is rendered
	players   map[playerKey]*songPlayer
	bad       map[string]string  // song -> why it cannot be played
	damaged   map[string]*damage // songs whose cached file failed to play
	fetchWake chan<- struct{}    // wakes the fetch loop (damaged song, clock known, song changed); nil: none
	// statusWake wakes the status loop when what plays changes (state,
	// song, error): the status is published on change, not polled. nil: none.
	statusWake chan<- struct{}
	clockKnown bool     // a clock estimate arrived: where the timeline is, is known
	gen        uint64   // Fill counter, to close players no longer used
	now        playback // what the last Fill played at its first frame
	// notYet holds downloads a decoder failed to play from before they
	// were complete (it needed bytes not there yet): they play once verified.
	notYet map[*download]bool
	// calibration is how much later than the output says a block is really
	// heard: each block is rendered for its instant plus calibration.
	calibration  time.Duration
	chime        []float64 // the announcement chime, at rate (sounds.go)
	chimes       []int64   // shared instants the chimes scheduled start at
	identifyTone []float64 // the identify tone, at rate
	identifyLeft []float64 // what of it is still to play
}

// playerKey names a player: a song as one playlist entry plays it, so that
// an entry crossfading into another of the same song has a decoder of its own.
type playerKey struct {
	song, entry string
}

// playback is what a speaker is doing, for its status.
type playback struct {
	State      string // protocol.Playing, Paused, Stopped or buffering
	Song       string
	PositionNs int64
	Volume     int // session volume in effect
	Error      string
}

// followed is what the engine knows of the session it plays: the timeline
// of its states and the playlists they refer to.
type followed struct {
	timeline  timeline
	playlists map[uint64]protocol.Playlist // the latest and those anchors refer to
	hashes    map[uint64]string            // Hash() of each of playlists
	latest    uint64                       // version of the latest playlist
}

func newFollowed() *followed {
	return &followed{playlists: map[uint64]protocol.Playlist{}, hashes: map[uint64]string{}}
}

func newEngine(rate, ownVolume int, place placement, files songFiles, log *slog.Logger) *engine {
	return &engine{
		rate:      rate,
		place:     place,
		files:     files,
		log:       log,
		ownVolume: ownVolume,
		ownGain:   volumeGain(ownVolume),
		sess:      newFollowed(),
		players:   map[playerKey]*songPlayer{},
		bad:       map[string]string{},
		damaged:   map[string]*damage{},
		notYet:    map[*download]bool{},
		now:       playback{State: buffering, Error: "clock not synchronised"},

		chime:        makeChime(rate),
		identifyTone: makeIdentifyTone(rate),
	}
}

// setCalibration sets the output latency calibration. A change beyond
// resyncThreshold makes the decoders seek (and fade in), a smaller one is
// steered away, like any other offset from the timeline.
func (e *engine) setCalibration(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calibration = d
}

// heard notes that the time master answered at local instant at: the
// speaker is in touch with the broker and hears commands.
func (e *engine) heard(at clocksync.LocalNs) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastHeard = max(e.lastHeard, at)
}

func (e *engine) setPlaylist(pl protocol.Playlist) {
	hash := pl.Hash() // outside the lock: Fill waits for it
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.sess
	f.playlists[pl.Version] = pl
	f.hashes[pl.Version] = hash
	if pl.Version >= f.latest {
		f.latest = pl.Version
	}
	f.forgetPlaylists()
}

func (e *engine) addState(st protocol.SessionState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sess.timeline.add(anchor{Anchor: st.Anchor, state: st.State, playlistVersion: st.PlaylistVersion, playlistHash: st.PlaylistHash, volume: st.Volume})
	e.sess.forgetPlaylists()
}

// forgetPlaylists keeps only the latest playlist and those anchors refer to.
func (f *followed) forgetPlaylists() {
	for v := range f.playlists {
		used := v == f.latest
		for _, a := range f.timeline.anchors {
			used = used || a.playlistVersion == v
		}
		if !used {
			delete(f.playlists, v)
			delete(f.hashes, v)
		}
	}
}

// follow makes the engine play another session from scratch (none when
// assigned is false): it forgets the states and playlists of the one it
// played, which plays on only for a fade-out of moveFade, so that it stops
// without a click and nothing of it is heard after. The new session's states
// then start it at the timeline's current offset, as for a late joiner.
func (e *engine) follow(assigned bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// A second move within a fade: the session still fading goes on
	// fading, unless the one left now had begun (the older is then cut).
	if e.leaving == nil || len(e.sess.timeline.anchors) > 0 {
		e.leaving, e.fadeLeft = e.sess, int(nsToFramesRound(int64(moveFade), e.rate))
	}
	e.sess, e.unassigned = newFollowed(), !assigned
}

// setOwnVolume sets the speaker's own volume (0-100), which scales the
// session's; it ramps to it over volumeRamp.
func (e *engine) setOwnVolume(volume int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ownVolume = volume
}

// volumeGain is the gain of a volume of 0-100: its square, so that the
// steps sound about even.
func volumeGain(volume int) float64 {
	g := float64(volume) / 100
	return g * g
}

// mismatched tells whether an anchor names a playlist the engine holds with
// another hash: the speaker missed or mixed up a message.
func (e *engine) mismatched() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range e.sess.timeline.anchors {
		if got, ok := e.sess.hashes[a.playlistVersion]; ok && a.playlistHash != "" && a.playlistHash != got {
			return true
		}
	}
	return false
}

// holdsPlaylist tells whether the engine has playlist version, with Hash
// hash ("": any).
func (e *engine) holdsPlaylist(version uint64, hash string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	got, ok := e.sess.hashes[version]
	return ok && (hash == "" || hash == got)
}

func (e *engine) status() playback {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

// Fill implements Source. The identify tone sounds over whatever plays,
// even when the speaker is muted; announcement chimes need the clock, as
// the music does (a muted speaker could not chime in time).
func (e *engine) Fill(buf [][2]float64, heardAt time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(buf)
	e.gen++
	defer e.closeUnused()
	defer e.mixIdentify(buf)
	heardAt = heardAt.Add(e.calibration)
	if pb, muted := e.muted(heardAt); muted {
		if e.unassigned {
			pb.State = unassigned
		}
		e.setNow(pb)
		// Nothing is heard: nothing to fade out or ramp.
		e.leaving, e.ownGain = nil, volumeGain(e.ownVolume)
		return
	}
	base := e.clock.Shared(heardAt.UnixNano()) // shared instant of frame 0
	if e.unassigned {
		e.setNow(playback{State: unassigned})
	} else {
		e.setNow(e.render(e.sess, buf, base))
	}
	e.fadeOut(buf, base)
	e.duck(buf, base)
	e.mixChimes(buf, base)
	e.applyOwnVolume(buf)
}

// setNow records what a block played at its first frame and wakes those
// who act on a change of it: the status loop (state, song, error) and the
// fetch loop (another song plays: the one after it is wanted now).
func (e *engine) setNow(pb playback) {
	was := e.now
	e.now = pb
	if pb.State != was.State || pb.Song != was.Song || pb.Error != was.Error {
		wake(e.statusWake)
	}
	if pb.Song != was.Song {
		wake(e.fetchWake)
	}
}

// muted says what the speaker does instead of playing when it cannot play
// by its clock.
func (e *engine) muted(heardAt time.Time) (playback, bool) {
	switch {
	case !e.trust.Opened:
		return playback{State: buffering, Error: e.trust.Why()}, true
	case e.grace > 0 && time.Duration(clocksync.LocalNs(heardAt.UnixNano())-e.lastHeard) > e.grace:
		// Out of touch for longer than the grace period: a pause or a stop
		// may have been sent meanwhile, and playing on would ignore it.
		out := time.Duration(clocksync.LocalNs(heardAt.UnixNano()) - e.lastHeard)
		return playback{State: silent, Error: fmt.Sprintf("no answer from the time master for %v: silent until it is back", out.Round(time.Second))}, true
	case !e.trust.Open:
		return playback{State: recovering, Error: e.trust.Why()}, true
	}
	return playback{}, false
}

// render fills buf, whose frame 0 is heard at shared instant base, from
// session f's timeline, and says what it played at frame 0.
func (e *engine) render(f *followed, buf [][2]float64, base int64) playback {
	tolNs := int64(resyncThreshold)
	// Keep an anchor a pause replaced for one tolerance longer: a decoder
	// that lags may still owe frames up to the pause position.
	f.timeline.dropBefore(base - tolNs)
	anchors := f.timeline.anchors
	var first playback
	for i := 0; i < len(buf); {
		s := base + framesToNsRound(int64(i), e.rate)
		k := f.timeline.at(s)
		end := len(buf)
		if k+1 < len(anchors) {
			end = max(i+1, firstFrameAtOrAfter(base, anchors[k+1].AtNs, e.rate, len(buf)))
		}
		pb := playback{State: protocol.Stopped}
		if k >= 0 {
			a, stop := anchors[k], noStop
			switch {
			case k >= 1 && s < a.AtNs+tolNs && f.pausesAt(anchors[k-1], a):
				// A lagging decoder finishes up to the pause position.
				a, stop = anchors[k-1], stopAt(a)
				end = min(end, max(i+1, firstFrameAtOrAfter(base, anchors[k].AtNs+tolNs, e.rate, len(buf))))
			case k+1 < len(anchors) && f.pausesAt(a, anchors[k+1]):
				// A decoder that is ahead stops at the pause position.
				stop = stopAt(anchors[k+1])
			}
			pb = e.playRun(f, buf[i:end], s, a, stop)
		}
		if i == 0 {
			first = pb
		}
		i = end
	}
	return first
}

// fadeOut mixes into buf, whose frame 0 is heard at shared instant base,
// what is left of the fade-out of the session the speaker left.
func (e *engine) fadeOut(buf [][2]float64, base int64) {
	if e.leaving == nil {
		return
	}
	n := min(len(buf), e.fadeLeft)
	if cap(e.scratch) < n {
		e.scratch = make([][2]float64, n)
	}
	old := e.scratch[:n]
	clear(old)
	e.render(e.leaving, old, base)
	total := float64(nsToFramesRound(int64(moveFade), e.rate) + 1)
	for i, f := range old {
		gain := float64(e.fadeLeft-i) / total
		buf[i][0] += f[0] * gain
		buf[i][1] += f[1] * gain
	}
	e.fadeLeft -= n
	if e.fadeLeft == 0 {
		e.leaving = nil // its players close with the next Fill
	}
}

// applyOwnVolume scales buf by the speaker's own volume, ramping the gain
// towards a new volume's by at most 1/volumeRamp a second.
func (e *engine) applyOwnVolume(buf [][2]float64) {
	target := volumeGain(e.ownVolume)
	if e.ownGain == target {
		applyGain(buf, target)
		return
	}
	step := 1 / (volumeRamp.Seconds() * float64(e.rate))
	for i := range buf {
		if d := target - e.ownGain; math.Abs(d) <= step {
			e.ownGain = target
		} else {
			e.ownGain += math.Copysign(step, d)
		}
		buf[i][0] *= e.ownGain
		buf[i][1] *= e.ownGain
	}
}

// stopPoint is a playlist position playback must not pass: where a pause
// holds in entry index. index -1: none.
type stopPoint struct {
	index      int
	positionNs int64
}

var noStop = stopPoint{index: -1}

func stopAt(a anchor) stopPoint {
	return stopPoint{index: a.Index, positionNs: a.PositionNs}
}

// frames is the frame of entry index playback must not reach: none
// (math.MaxInt64) unless the stop is in that entry.
func (stop stopPoint) frames(index, rate int) int64 {
	if index != stop.index {
		return math.MaxInt64
	}
	return frameAtOrAfter(stop.positionNs, rate)
}

// pausesAt tells whether next pauses the timeline of prev where it stands:
// prev plays, next does not, and next holds the position prev reaches at
// next's instant. Playback then stops at that position, to the frame, on
// every speaker whatever its clock error, instead of at the instant.
func (f *followed) pausesAt(prev, next anchor) bool {
	if !prev.Playing || next.Playing || prev.playlistVersion != next.playlistVersion {
		return false
	}
	pl, ok := f.playlists[prev.playlistVersion]
	if !ok {
		return false
	}
	index, pos, ok := pl.Timeline().Locate(prev.Index, prev.PositionNs+next.AtNs-prev.AtNs)
	return ok && index == next.Index && pos == next.PositionNs
}

// playRun fills out, whose frame 0 is heard at shared instant s, following
// anchor a of session f but not past stop, and says what it played at frame 0.
func (e *engine) playRun(f *followed, out [][2]float64, s int64, a anchor, stop stopPoint) playback {
	pb := playback{State: a.state, Volume: a.volume}
	pl, ok := f.playlists[a.playlistVersion]
	if !ok {
		pb.State, pb.Error = buffering, "waiting for the playlist the session state refers to"
		return pb
	}
	if a.playlistHash != "" && a.playlistHash != f.hashes[a.playlistVersion] {
		pb.State, pb.Error = recovering, fmt.Sprintf("session state and playlist %d do not match: re-reading them", a.playlistVersion)
		return pb
	}
	if a.Index < 0 || a.Index >= len(pl.Entries) {
		if a.Playing {
			pb.State = protocol.Stopped
		}
		return pb
	}
	if pl.Entries[a.Index].ID != a.Entry {
		pb.State, pb.Error = buffering, "session state does not match the playlist"
		return pb
	}
	pos := a.PositionNs
	if a.Playing {
		pos += s - a.AtNs
	}
	if pos < 0 { // the song starts later: silence for the gap
		gap := int(min(int64(len(out)), max(0, nsToFramesRound(-pos, e.rate)))) // max: -pos may overflow
		out, pos = out[gap:], 0
	}
	tl := pl.Timeline()
	index, pos, ok := tl.Locate(a.Index, pos)
	if !ok {
		pb.State = protocol.Stopped
		return pb
	}
	current, currentPos := tl.Current(index, pos)
	pb.Song, pb.PositionNs = pl.Entries[current].Song, currentPos
	if !a.Playing {
		return pb
	}
	if why := e.playEntries(tl, out, index, pos, stop, volumeGain(a.volume)); why != "" {
		pb.State, pb.Error = buffering, why
		if d, ok := e.damaged[pl.Entries[index].Song]; ok {
			pb.State, pb.Error = recovering, d.why
		}
	}
	return pb
}

// playEntries fills out with timeline tl from entry index at position pos
// (as Locate gives them) on, entry after entry, crossfading where entries
// overlap, but not past stop, scaled by gain (the session volume's; the
// speaker's own scales the whole block, applyOwnVolume). It says why the
// first entry could not play, if it could not.
//
// It counts in frames of the output rate, to which every song is already
// resampled (openSong): an entry of length frames fades out over its last
// fade frames, while the next one plays its first fade frames. Only the
// frame's position in the fade sets the curves, so speakers mix alike.
func (e *engine) playEntries(tl protocol.Timeline, out [][2]float64, index int, pos int64, stop stopPoint, gain float64) string {
	want := nsToFramesRound(pos, e.rate)
	exact := float64(pos) * float64(e.rate) / 1e9 // the timeline's position, for steering
	first, firstWhy := true, ""
	for empty := 0; len(out) > 0 && empty <= len(tl.Entries); {
		entry := tl.Entries[index]
		length := entryFrames(entry, e.rate)
		fade := min(nsToFramesRound(tl.FadeNs(index), e.rate), length)
		fadeStart := length - fade
		next := tl.Next(index)
		limit := stop.frames(index, e.rate)
		var n int
		if fade > 0 && want >= fadeStart {
			n = int(min(int64(len(out)), max(0, length-want)))
			if n > 0 {
				incoming := tl.Entries[next]
				inLimit := min(stop.frames(next, e.rate), limit-fadeStart)
				why := e.playSong(entry, out[:n], exact, limit)
				applyEntryGain(out[:n], entry.GainDb)
				mix := e.mixBuffer(n)
				e.playSong(incoming, mix, exact-float64(fadeStart), inLimit)
				applyEntryGain(mix, incoming.GainDb)
				crossfade(out[:n], mix, want-fadeStart, fade)
				if first {
					firstWhy = why
				}
			}
		} else {
			n = int(min(int64(len(out)), max(0, fadeStart-want)))
			if n > 0 {
				if why := e.playSong(entry, out[:n], exact, limit); first {
					firstWhy = why
				}
				applyEntryGain(out[:n], entry.GainDb)
			}
		}
		if n > 0 {
			first, empty = false, 0
		} else {
			empty++ // entries too short for a frame: at most one lap of them
		}
		applyGain(out[:n], gain)
		out = out[n:]
		want += int64(n)
		exact += float64(n)
		if want < length {
			continue
		}
		if next < 0 {
			break
		}
		if next == index {
			// The entry follows itself (repeat one): its decoder starts
			// over, as for a new entry, rather than seek as if it had
			// drifted off the timeline.
			e.closeEntryPlayer(entry)
		}
		// The entry has ended: the next one goes on from where its fade-in
		// brought it, or from its start.
		index, want, exact = next, want-fadeStart, exact-float64(fadeStart)
		if fade == 0 {
			want, exact = 0, 0
		}
	}
	return firstWhy
}

// mixBuffer is n frames of silence to render the entry fading in into.
func (e *engine) mixBuffer(n int) [][2]float64 {
	if cap(e.mix) < n {
		e.mix = make([][2]float64, n)
	}
	clear(e.mix[:n])
	return e.mix[:n]
}

// crossfade mixes in (the entry fading in) into out (the one fading out),
// out[0] being frame k of a fade of fade frames, along equal-power curves:
// the entry fading out at cos, the one fading in at sin of
// (k+½)/fade·π/2, so that their summed power stays even.
func crossfade(out, in [][2]float64, k, fade int64) {
	step := math.Pi / 2 / float64(fade)
	for m := range out {
		up, down := math.Sincos((float64(k+int64(m)) + 0.5) * step)
		out[m][0] = out[m][0]*down + in[m][0]*up
		out[m][1] = out[m][1]*down + in[m][1]*up
	}
}

// playSong reads the entry's song frames from want into out, none at or
// past frame limit, or leaves silence and says why it could not.
func (e *engine) playSong(entry protocol.Entry, out [][2]float64, want float64, limit int64) string {
	sha := entry.Song
	if why, bad := e.bad[sha]; bad {
		return why
	}
	if d := e.damaged[sha]; d != nil && !d.checked {
		return d.why // wait for the fetch loop's check: do not open it again and again
	}
	key := playerKey{song: sha, entry: entry.ID}
	p := e.players[key]
	if p != nil && p.dl != nil && p.dl.result() == downloadFailed {
		e.log.Warn("song download failed; stopped playing what had arrived", "song", sha)
		e.closePlayer(sha)
		p = nil
	}
	if p == nil {
		var why string
		if p, why = e.open(entry); p == nil {
			return why
		}
		e.players[key] = p
	}
	p.usedGen = e.gen
	if !p.ready(want, len(out)) {
		return stillDownloading
	}
	if drift := time.Duration((p.position() - want) / float64(e.rate) * 1e9); p.stream.position() > 0 && drift.Abs() > resyncThreshold {
		e.log.Info("resync: playback is off the timeline; seeking", "song", sha, "off", drift)
	}
	if err := p.read(out, want, int64(resyncThreshold)*int64(e.rate)/1e9, limit); err != nil {
		clear(out)
		if p.dl != nil {
			// The decoder needs more than has arrived, or the bytes so far
			// are bad: whether the song is bad is told once it is verified.
			e.log.Debug("cannot play the song before it is complete; waiting for all of it", "song", sha, "err", err)
			e.notYet[p.dl] = true
			e.closePlayer(sha)
			return stillDownloading
		}
		return e.markDamaged(sha, err)
	}
	if _, ok := e.damaged[sha]; ok {
		e.log.Info("song playing again", "song", sha)
		delete(e.damaged, sha)
	}
	return ""
}

// open opens a player for the entry's song: over the verified file, or over
// the part of it downloaded so far, or says why it cannot.
func (e *engine) open(entry protocol.Entry) (*songPlayer, string) {
	sha := entry.Song
	if path, ok := e.files.Lookup(sha); ok {
		p, err := openSong(sha, path, nil, e.files.MP3Index, e.rate, entry.Frames, e.place)
		if err != nil {
			return nil, e.markDamaged(sha, err)
		}
		return p, ""
	}
	dl, ok := e.files.Partial(sha)
	if !ok {
		return nil, "song not cached yet"
	}
	if e.notYet[dl] || dl.result() != downloadRunning || !dl.has(0, headBytes) {
		return nil, stillDownloading
	}
	p, err := openSong(sha, dl.path, dl, nil, e.rate, entry.Frames, e.place)
	if err != nil {
		// Not bad: what is there may be too little for the decoder (or a
		// format that must be complete to open), or the file was renamed
		// a moment ago. Whether the song is bad is told once it is complete.
		e.log.Debug("cannot play the song before it is complete", "song", sha, "err", err)
		e.notYet[dl] = true
		return nil, stillDownloading
	}
	return p, ""
}

// closePlayer closes every player of song sha.
func (e *engine) closePlayer(sha string) {
	for key := range e.players {
		if key.song == sha {
			e.dropPlayer(key)
		}
	}
}

// closeEntryPlayer closes the player of one entry's song.
func (e *engine) closeEntryPlayer(entry protocol.Entry) {
	e.dropPlayer(playerKey{song: entry.Song, entry: entry.ID})
}

func (e *engine) dropPlayer(key playerKey) {
	if p := e.players[key]; p != nil {
		p.close()
		delete(e.players, key)
	}
}

func (e *engine) closeUnused() {
	for key, p := range e.players {
		if p.usedGen != e.gen {
			e.dropPlayer(key)
		}
	}
	for dl := range e.notYet {
		if dl.result() != downloadRunning {
			delete(e.notYet, dl)
		}
	}
}

// close releases the decoders; the engine stays usable.
func (e *engine) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for key := range e.players {
		e.dropPlayer(key)
	}
}

// wantedSong is a song to have on disk, and where in it (0-1) playback is
// or will be when it starts.
type wantedSong struct {
	sha       string
	startFrac float64
}

// wanted lists the songs to have on disk, most urgent first: the current and
// next entry at shared instant now, then those of anchors still to come.
func (e *engine) wanted(now int64) []wantedSong {
	e.mu.Lock()
	defer e.mu.Unlock()
	var songs []wantedSong
	add := func(entry protocol.Entry, posNs int64) {
		for _, s := range songs {
			if s.sha == entry.Song {
				return
			}
		}
		frac := 0.0
		if d := entry.DurationNs(); d > 0 {
			frac = min(max(float64(posNs)/float64(d), 0), 1)
		}
		songs = append(songs, wantedSong{sha: entry.Song, startFrac: frac})
	}
	for _, a := range e.sess.timeline.anchors {
		pl, ok := e.sess.playlists[a.playlistVersion]
		if !ok || a.Index < 0 || a.Index >= len(pl.Entries) {
			continue
		}
		pos := a.PositionNs
		if a.Playing && now > a.AtNs {
			pos += now - a.AtNs
		}
		tl := pl.Timeline()
		index, at, ok := tl.Locate(a.Index, max(pos, 0))
		if !ok {
			continue
		}
		add(pl.Entries[index], at)
		current, at := tl.Current(index, at)
		add(pl.Entries[current], at)
		if next := tl.Next(current); next >= 0 {
			add(pl.Entries[next], 0)
		}
	}
	return songs
}

func applyGain(buf [][2]float64, gain float64) {
	if gain == 1 {
		return
	}
	for i := range buf {
		buf[i][0] *= gain
		buf[i][1] *= gain
	}
}
