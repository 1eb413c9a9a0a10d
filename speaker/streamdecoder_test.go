package speaker

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/tutti-audio/tutti/audiogen"
	"github.com/tutti-audio/tutti/protocol"
)

// songFixture plays song "p": with no path, a minute of a tune encoded
// as format ("mp3", "ogg" or "opus") from a download whose progress the test sets;
// with a path, that file, complete (verified). The playlist gives the
// song's length as the complete file's decoder reports it.
func songFixture(t *testing.T, format, path string) (*engineFixture, *download) {
	t.Helper()
	complete := path != ""
	if !complete {
		path = encodeTune(t, 60, audiogen.Tune(3, 44100), format, tuneEncoders[format])
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	files := &memFiles{}
	files.put("p", path)
	whole, err := openSong("p", path, nil, files.MP3Index, testRate, 0, subframe)
	if err != nil {
		t.Fatal(err)
	}
	frames := int64(whole.dec.Len())
	whole.close()

	f := newFixture(t)
	dl := &download{path: path, size: st.Size()}
	if complete {
		f.files.put("p", path)
	} else {
		f.files.mu.Lock()
		f.files.partials = map[string]*download{"p": dl}
		f.files.mu.Unlock()
	}
	f.pl = protocol.Playlist{V: 1, Session: "home", Version: 5, Entries: []protocol.Entry{{ID: "p1", Song: "p", Frames: frames, SampleRate: testRate}}}
	f.eng.setPlaylist(f.pl)
	f.eng.addState(f.state(f.t0, 0, 0, true, 100))
	return f, dl
}

// fill pulls blocks of 441 frames from the fixture's engine, the first
// heard at shared instant start.
func (f *engineFixture) fill(start int64, blocks int) [][2]float64 {
	out := make([][2]float64, 0, blocks*441)
	buf := make([][2]float64, 441)
	for k := range blocks {
		shared := start + framesToNsRound(int64(k*441), testRate)
		f.eng.Fill(buf, time.Unix(0, shared-int64(fixtureOffset)))
		out = append(out, buf...)
	}
	return out
}

// TestEnginePlaysCompressedWhileDownloading: an MP3, Ogg Vorbis or Opus song
// starts from the part downloaded so far, with the very samples the
// complete file gives; past what has arrived it waits (silence, buffering)
// instead of playing wrong audio, and once complete it plays on.
func TestEnginePlaysCompressedWhileDownloading(t *testing.T) {
	for _, format := range []string{"mp3", "ogg", "opus"} {
		t.Run(format, func(t *testing.T) {
			f, dl := songFixture(t, format, "")
			ref, _ := songFixture(t, format, dl.path) // the same song, complete

			// All but the last 16 KiB: the Ogg decoder's last page (its
			// length) and the MP3's last frames are missing.
			dl.setHead(dl.size - 16<<10)
			const blocks = 300 // 3 s
			got, want := f.fill(f.t0, blocks), ref.fill(ref.t0, blocks)
			loud := 0
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("frame %d: %v from the partial download (status %+v), %v from the complete file", i, got[i], f.eng.status(), want[i])
				}
				if math.Abs(got[i][0]) > 0.01 {
					loud++
				}
			}
			if loud < len(got)/2 {
				t.Fatalf("only %d of %d frames carry sound", loud, len(got))
			}
			if st := f.eng.status(); st.State != protocol.Playing {
				t.Fatalf("status %+v, want playing", st)
			}

			// Far past what has arrived: silence, buffering.
			late := f.t0 + int64(50*time.Second)
			for _, fr := range f.fill(late, 10) {
				if fr != [2]float64{} {
					t.Fatalf("past the download: heard %v, want silence", fr)
				}
			}
			if st := f.eng.status(); st.State != buffering || st.Error != stillDownloading {
				t.Errorf("past the download: status %+v, want buffering: %s", st, stillDownloading)
			}

			// All of it there and verified: playback goes on at the frame
			// due, as the complete file plays it (after a block of silence
			// and a fade-in: the player of the partial download cannot seek
			// that far, and the verified file's takes its place).
			dl.setHead(dl.size)
			dl.finish(downloadVerified)
			f.files.mu.Lock()
			delete(f.files.partials, "p")
			f.files.mu.Unlock()
			f.files.put("p", dl.path)
			after := late + int64(time.Second)
			got, want = f.fill(after, 10), ref.fill(after, 10)
			fade := fadeFrames * testRate / 1000
			// Opus plays at 48 kHz, resampled: the two players seek a block
			// apart, to other fractions of a 48 kHz frame, which moves the
			// resampler's output in the last bits of a float64.
			tolerance := 0.0
			if format == "opus" {
				tolerance = 1e-12
			}
			for i := 441 + fade; i < len(got); i++ {
				if math.Abs(got[i][0]-want[i][0]) > tolerance || math.Abs(got[i][1]-want[i][1]) > tolerance {
					t.Fatalf("after the download, frame %d: %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

// TestStreamDecoderSeeks: a compressed song still downloading seeks by
// decoding, forward or again from the start, to the same samples as the
// complete file gives, and refuses seeks further than partialSeekLimit.
func TestStreamDecoderSeeks(t *testing.T) {
	for _, format := range []string{"mp3", "ogg", "opus"} {
		t.Run(format, func(t *testing.T) {
			f, dl := songFixture(t, format, "")
			dl.setHead(dl.size)
			path := dl.path
			files := &memFiles{}
			files.put("p", path)
			whole, err := openSong("p", path, nil, files.MP3Index, testRate, 0, subframe)
			if err != nil {
				t.Fatal(err)
			}
			defer whole.close()
			ref := make([][2]float64, 20*testRate)
			if n := streamFull(whole.dec, ref); n != len(ref) {
				t.Fatalf("the complete file decodes to %d frames", n)
			}
			p, err := openSong("p", path, dl, nil, testRate, f.pl.Entries[0].Frames, subframe)
			if err != nil {
				t.Fatal(err)
			}
			defer p.close()
			sd, ok := p.dec.(*streamDecoder)
			if !ok {
				t.Fatalf("decoder of a song still downloading: %T, want a streamDecoder", p.dec)
			}
			got := make([][2]float64, 1000)
			for _, to := range []int{3 * testRate, 1 * testRate, 5 * testRate, 9 * testRate, 13*testRate + 7} {
				if err := sd.Seek(to); err != nil {
					t.Fatalf("seek to %d: %v", to, err)
				}
				if n := streamFull(sd, got); n != len(got) {
					t.Fatalf("after a seek to %d: %d frames", to, n)
				}
				for i := range got {
					if got[i] != ref[to+i] {
						t.Fatalf("after a seek to %d, frame %d: %v, want %v", to, to+i, got[i], ref[to+i])
					}
				}
			}
			for _, to := range []int{6 * testRate, 19 * testRate} { // back past the limit, ahead further than it
				if err := sd.Seek(to); err == nil {
					t.Errorf("seek to frame %d from %d: no error", to, sd.Position())
				}
			}
		})
	}
}
