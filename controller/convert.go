package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"

	"github.com/tutti-audio/tutti/protocol"
)

// Songs speakers cannot decode. No maintained pure-Go AAC decoder exists,
// so the controller converts an M4A (AAC-LC or ALAC) with ffmpeg into a
// FLAC song of its own store: content-addressed like an upload, so every
// speaker fetches the same bytes and plays them as any FLAC. The M4A keeps
// its record (its hash is its identity: tags, browse and saved playlists
// refer to it), linked to the FLAC by songs.plays_as; the FLAC's record
// (derived_from set) stays out of search and browse. Playlist entries name
// the FLAC.
//
// Standbys learn a conversion from the FLAC's record, published with
// derived_from naming the M4A (mirrorSong), and fetch the FLAC from the
// holder as any song: after a takeover the new holder plays the M4A as the
// same FLAC bytes without converting it again. ffmpeg makes the same bytes
// from the same M4A only with the same build on the same architecture (its
// decoders and the FLAC encoder take SIMD paths), so a new holder that
// lacks the file converts again (reconvertMissing) and warns when the
// bytes differ.

const (
	// maxConversions run at once: each takes a core for seconds, and the
	// broker, the clock replies and the lease need the other.
	maxConversions = 1
	// maxWaitingConversions bounds the songs queued for conversion: an
	// album or two ahead; beyond, a request is refused rather than queued.
	maxWaitingConversions = 64
	// conversionTimeout bounds one conversion: a minute of AAC or ALAC
	// took 0.28-0.46 s here (ffmpeg, then the FLAC's analysis), up to
	// 1.4 s with the machine's two cores loaded by others, so the longest
	// song allowed (maxSongDuration) takes 2-9 minutes.
	conversionTimeout = 15 * time.Minute
	// DefaultMaxConvertedBytes is Options.MaxConvertedBytes's default:
	// about 20 hours of CD-quality FLAC, more than a day's listening, and
	// what the SD card of a small controller can spare.
	DefaultMaxConvertedBytes = 8 << 30
	// convertedKeep is how long a converted song is kept after its last
	// use whatever the disk bound says, so that a song just converted for
	// an enqueue is not dropped before the entry names it.
	convertedKeep = 10 * time.Minute
	// failedConversionKept is how long a song whose conversion failed is
	// answered with that failure, rather than converted again: the
	// request that waited for it runs again and must get the error.
	failedConversionKept = time.Minute
)

// needsConversion tells the formats speakers do not decode.
func needsConversion(s protocol.Song) bool { return s.Format == "m4a" }

// errNoFFmpeg is the answer for an M4A song when ffmpeg is not installed.
var errNoFFmpeg = errors.New("M4A songs need ffmpeg, which is not installed on this controller")

// converter converts songs, one conversion per song at a time, at most
// maxConversions at once, and keeps the converted songs within maxBytes.
type converter struct {
	lib      *library
	log      *slog.Logger
	ffmpeg   string // path; "" when not installed
	maxBytes int64
	now      func() time.Time
	source   func(sha string) string // where a song's file is: the song store's copy
	queue    chan *conversion
	// announce publishes a conversion's record and retract clears it, for
	// standbys (the controller sets them; no-ops otherwise).
	announce func(protocol.Song)
	retract  func(sha string)

	mu      sync.Mutex
	running map[string]*conversion // by source song
	failed  map[string]failure     // by source song, for failedConversionKept
	warned  bool                   // that ffmpeg is missing, once
}

// failure is a conversion's error and when it came.
type failure struct {
	err error
	at  time.Time
}

// conversion is one song's conversion, queued, running or done.
type conversion struct {
	src  protocol.Song
	done chan struct{}
	song protocol.Song // the FLAC, once done
	err  error
	then []func() // called once done
}

func newConverter(lib *library, log *slog.Logger, ffmpeg string, maxBytes int64, now func() time.Time) *converter {
	if path, err := exec.LookPath(ffmpeg); err == nil {
		ffmpeg = path
	} else {
		ffmpeg = ""
	}
	return &converter{lib: lib, log: log, ffmpeg: ffmpeg, maxBytes: maxBytes, now: now, source: lib.filePath,
		queue: make(chan *conversion, maxWaitingConversions), running: map[string]*conversion{}, failed: map[string]failure{},
		announce: func(protocol.Song) {}, retract: func(string) {}}
}

// available is nil when M4A songs can be converted, else why not, logged
// once.
func (cv *converter) available() error {
	if cv.ffmpeg != "" {
		return nil
	}
	cv.mu.Lock()
	defer cv.mu.Unlock()
	if !cv.warned {
		cv.warned = true
		cv.log.Warn("ffmpeg is not installed: M4A songs are refused (install ffmpeg to play them)")
	}
	return errNoFFmpeg
}

// playable is the song speakers play for s: s itself when they decode its
// format, else its FLAC conversion, converted first if need be.
func (c *Controller) playable(s protocol.Song) (protocol.Song, error) {
	song, err := c.playableSoon(s)
	if converting, ok := errors.AsType[*errConverting](err); ok {
		<-converting.conv.done
		return converting.conv.song, converting.conv.err
	}
	return song, err
}

// errConverting is playableSoon's answer while a conversion runs: the
// request that wants the song is to be run again once it is done.
type errConverting struct{ conv *conversion }

func (e *errConverting) Error() string { return "converting " + e.conv.src.SHA256 }

// playableSongs is playableSoon for each of songs, those missing passed as
// they are (enqueue skips them). Every conversion needed starts at once, so
// an album waits for them together rather than one after the other.
func (c *Controller) playableSongs(songs []protocol.Song) ([]protocol.Song, error) {
	present := slices.DeleteFunc(slices.Clone(songs), func(s protocol.Song) bool { return s.Missing })
	c.convertAhead(present)
	out := make([]protocol.Song, len(songs))
	for i, s := range songs {
		if s.Missing {
			out[i] = s
			continue
		}
		p, err := c.playableSoon(s)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// playableSoon is playable without waiting (the session loop must not):
// a song not converted yet comes back as an *errConverting.
func (c *Controller) playableSoon(s protocol.Song) (protocol.Song, error) {
	if !needsConversion(s) {
		return s, nil
	}
	if song, ok := c.converter.converted(s); ok {
		return song, nil
	}
	conv, err := c.converter.start(s)
	if err != nil {
		return protocol.Song{}, err
	}
	return protocol.Song{}, &errConverting{conv}
}

// retryWhenConverted runs msg again, as if it had just arrived, once the
// conversion it waits for is done; it tells whether err was such a wait.
func (c *Controller) retryWhenConverted(msg inbound, err error) bool {
	var wait *errConverting
	if !errors.As(err, &wait) {
		return false
	}
	c.converter.then(wait.conv, func() {
		msg.at = c.local.Now()
		if !c.sessionRequests.push(msg) {
			c.log.Warn("a request waiting for a conversion was dropped: the request queue is full")
		}
	})
	return true
}

// convertAhead starts converting songs that will be wanted soon (the rest
// of an album being enqueued), so that each is ready when its turn comes.
func (c *Controller) convertAhead(songs []protocol.Song) {
	for _, s := range songs {
		if !needsConversion(s) {
			continue
		}
		if _, ok := c.converter.converted(s); ok {
			continue
		}
		if _, err := c.converter.start(s); err != nil {
			c.log.Debug("not converting ahead", "sha256", s.SHA256, "err", err)
			return
		}
	}
}

// songUploaded announces a song uploaded over HTTP and, an M4A, converts
// it ahead, as a load does: a person adding songs means to play them.
func (c *Controller) songUploaded(s protocol.Song) {
	c.announceSong(s)
	c.convertAhead([]protocol.Song{s})
}

// converted is s's conversion when it is in the library, marked used.
func (cv *converter) converted(s protocol.Song) (protocol.Song, bool) {
	sha, err := cv.lib.store.playsAs(s.SHA256)
	if err != nil || sha == "" || !cv.lib.holds(sha) {
		return protocol.Song{}, false
	}
	flac, err := cv.lib.store.song(sha)
	if err != nil {
		return protocol.Song{}, false
	}
	if err := cv.lib.store.useConverted(sha, cv.now().UnixNano()); err != nil {
		cv.log.Warn("converted song's use not stored", "sha256", sha, "err", err)
	}
	return playedAs(s, flac), true
}

// playedAs is M4A song src's record as its FLAC conversion plays it. The
// FLAC carries no tags, and M4As of the same audio (a song on its album
// and on a compilation) share one FLAC, whose record took the tags of the
// last one converted: each plays with its own tags and ReplayGain, or,
// when its tags give none, what analysis measured of the FLAC.
func playedAs(src, flac protocol.Song) protocol.Song {
	song := src
	song.SHA256, song.URI, song.Format, song.Size = flac.SHA256, flac.URI, flac.Format, flac.Size
	song.Frames, song.SampleRate, song.DurationNs = flac.Frames, flac.SampleRate, flac.DurationNs
	song.Missing = false
	song.DerivedFrom = src.SHA256
	if song.ReplayGain == nil && flac.ReplayGain != nil && flac.ReplayGain.Measured {
		song.ReplayGain = flac.ReplayGain
	}
	return song
}

// start queues s's conversion, or returns the one queued or running.
func (cv *converter) start(s protocol.Song) (*conversion, error) {
	if err := cv.available(); err != nil {
		return nil, err
	}
	cv.mu.Lock()
	defer cv.mu.Unlock()
	if conv, ok := cv.running[s.SHA256]; ok {
		return conv, nil
	}
	if f, ok := cv.failed[s.SHA256]; ok && cv.now().Sub(f.at) < failedConversionKept {
		return nil, f.err
	}
	conv := &conversion{src: s, done: make(chan struct{})}
	select {
	case cv.queue <- conv:
	default:
		return nil, fmt.Errorf("too many songs waiting for conversion (%d): try again shortly", maxWaitingConversions)
	}
	cv.running[s.SHA256] = conv
	return conv, nil
}

// then calls fn once conv is done (now, if it is).
func (cv *converter) then(conv *conversion, fn func()) {
	cv.mu.Lock()
	select {
	case <-conv.done:
		cv.mu.Unlock()
		fn()
		return
	default:
	}
	conv.then = append(conv.then, fn)
	cv.mu.Unlock()
}

// run converts the queued songs until ctx is done.
func (cv *converter) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for range maxConversions {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case conv := <-cv.queue:
					song, err := cv.convert(ctx, conv.src)
					cv.finish(conv, song, err)
				}
			}
		})
	}
}

// finish records conv's outcome and tells whoever waits.
func (cv *converter) finish(conv *conversion, song protocol.Song, err error) {
	if err != nil {
		cv.log.Warn("conversion failed", "sha256", conv.src.SHA256, "title", conv.src.Title, "err", err)
	}
	cv.mu.Lock()
	conv.song, conv.err = song, err
	close(conv.done)
	delete(cv.running, conv.src.SHA256)
	for sha, f := range cv.failed {
		if cv.now().Sub(f.at) >= failedConversionKept {
			delete(cv.failed, sha)
		}
	}
	if err != nil {
		cv.failed[conv.src.SHA256] = failure{fmt.Errorf("converting the M4A: %w", err), cv.now()}
	}
	waiting := conv.then
	conv.then = nil
	cv.mu.Unlock()
	for _, fn := range waiting {
		fn()
	}
	if err == nil {
		cv.prune()
	}
}

// convert makes the FLAC song of src and links the two.
func (cv *converter) convert(ctx context.Context, src protocol.Song) (protocol.Song, error) {
	started := cv.now()
	tmp, err := os.CreateTemp(cv.lib.tmpDir, "convert-*.flac")
	if err != nil {
		return protocol.Song{}, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := cv.ffmpegToFLAC(ctx, cv.source(src.SHA256), tmp.Name()); err != nil {
		return protocol.Song{}, err
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return protocol.Song{}, err
	}
	defer f.Close()
	flac, _, err := cv.lib.add(f, "", src.Title)
	if err != nil {
		return protocol.Song{}, fmt.Errorf("converted song: %w", err)
	}
	song := playedAs(src, flac)
	if err := cv.lib.store.linkConverted(src.SHA256, song, cv.now().UnixNano()); err != nil {
		return protocol.Song{}, err
	}
	cv.log.Info("song converted", "sha256", src.SHA256, "flac", song.SHA256, "title", src.Title,
		"seconds", float64(song.DurationNs)/1e9, "took", cv.now().Sub(started).Round(time.Millisecond))
	cv.announce(song)
	return song, nil
}

// prune drops converted songs, least recently used first, while they take
// more than maxBytes: only those no playlist entry names and not used for
// convertedKeep. Their M4A converts again when next wanted.
func (cv *converter) prune() {
	list, err := cv.lib.store.convertedSongs()
	if err != nil {
		cv.log.Warn("converted songs not listed", "err", err)
		return
	}
	var total int64
	for _, s := range list {
		total += s.size
	}
	keepAfter := cv.now().Add(-convertedKeep).UnixNano()
	for _, s := range list { // least recently used first
		if total <= cv.maxBytes {
			return
		}
		if s.inPlaylist || s.usedNs > keepAfter {
			continue
		}
		if err := cv.lib.store.dropConverted(s.sha); err != nil {
			cv.log.Warn("converted song not dropped", "sha256", s.sha, "err", err)
			continue
		}
		if err := os.Remove(cv.lib.songPath(s.sha)); err != nil && !errors.Is(err, os.ErrNotExist) {
			cv.log.Warn("converted song's file not deleted", "sha256", s.sha, "err", err)
		}
		cv.retract(s.sha)
		total -= s.size
		cv.log.Info("converted song dropped to keep the disk bound", "sha256", s.sha, "bytes", s.size)
	}
}

// dropConversionOf removes the FLAC song sha was converted to, with its
// playlist entries, when sha is removed (session loop). It returns how
// many entries went.
func (c *Controller) dropConversionOf(sha string) (int, error) {
	flac, err := c.store.playsAs(sha)
	if err != nil || flac == "" {
		return 0, err
	}
	dropped, err := c.dropEntriesOf(flac)
	if err != nil {
		return dropped, err
	}
	if err := c.store.dropConverted(flac); err != nil {
		return dropped, fmt.Errorf("conversion not removed: %v", err)
	}
	c.retractSong(flac)
	if err := os.Remove(c.lib.songPath(flac)); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Error("removed conversion's file not deleted", "sha256", flac, "err", err)
	}
	return dropped, nil
}

// reconvertMissing converts again the sources of the converted songs our
// playlists name that we do not hold, at takeover: the holder that made
// them went before we fetched them. With the same ffmpeg build on the same
// architecture the FLAC is the same, and the entries play as they are;
// otherwise it is another song, and the entries wait for speakers that
// hold the old one (peers) or a new enqueue.
func (c *Controller) reconvertMissing() {
	sources, err := c.store.conversionSources()
	if err != nil {
		c.log.Error("converted songs not listed", "err", err)
		return
	}
	wanted := map[string]bool{}
	for _, s := range c.sessions {
		for _, e := range s.Playlist.Entries {
			if sources[e.Song] != "" && !e.Missing {
				wanted[e.Song] = true
			}
		}
	}
	for flac := range wanted {
		src, err := c.store.song(sources[flac])
		if c.lib.holds(flac) || err != nil || !c.lib.holds(src.SHA256) {
			continue
		}
		conv, err := c.converter.start(src)
		if err != nil {
			c.log.Warn("a playlist's converted song is not held and cannot be converted again", "flac", flac, "sha256", src.SHA256, "err", err)
			continue
		}
		c.log.Info("converting again a playlist's song the last holder converted", "flac", flac, "sha256", src.SHA256)
		c.converter.then(conv, func() {
			if conv.err == nil && conv.song.SHA256 != flac {
				c.log.Warn("converted again to other bytes than the last holder's (another ffmpeg build or architecture): entries of the old FLAC play only where speakers hold it",
					"sha256", src.SHA256, "flac", conv.song.SHA256, "was", flac)
			}
		})
	}
}

// announceConversion publishes a conversion's record, as announceSong does
// a new song's, while we hold the lease (called on the converter's
// goroutine): standbys learn the link, and speakers fetch the FLAC ahead.
func (c *Controller) announceConversion(s protocol.Song) {
	if c.holding() {
		c.announceSong(s)
	}
}
