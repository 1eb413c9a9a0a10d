package speaker

/*
#cgo pkg-config: alsa
#include <alsa/asoundlib.h>
#include <errno.h>
#include <time.h>

// tutti_open opens a playback PCM and configures it for interleaved S16_LE
// stereo at exactly rate, with a buffer and period near the times asked,
// starting when the first period is written, and time stamps on the
// monotonic clock. On failure *op names the step that failed.
static int tutti_open(snd_pcm_t **out, const char *name, unsigned int rate,
		unsigned int buffer_us, unsigned int period_us,
		snd_pcm_uframes_t *buffer_frames, snd_pcm_uframes_t *period_frames, const char **op) {
	snd_pcm_t *pcm;
	snd_pcm_hw_params_t *hw;
	snd_pcm_sw_params_t *sw;
	int err;
	*op = "open";
	// Non-blocking: every wait in tutti goes through snd_pcm_wait with a
	// timeout, so a stuck device can never hang the caller.
	if ((err = snd_pcm_open(&pcm, name, SND_PCM_STREAM_PLAYBACK, SND_PCM_NONBLOCK)) < 0)
		return err;
	snd_pcm_hw_params_alloca(&hw);
	snd_pcm_sw_params_alloca(&sw);
#define STEP(what, call) do { *op = what; if ((err = (call)) < 0) goto fail; } while (0)
	STEP("read hw params", snd_pcm_hw_params_any(pcm, hw));
	STEP("set interleaved access", snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED));
	STEP("set format S16_LE", snd_pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE));
	STEP("set 2 channels", snd_pcm_hw_params_set_channels(pcm, hw, 2));
	STEP("set rate", snd_pcm_hw_params_set_rate(pcm, hw, rate, 0));
	STEP("set buffer time", snd_pcm_hw_params_set_buffer_time_near(pcm, hw, &buffer_us, NULL));
	STEP("set period time", snd_pcm_hw_params_set_period_time_near(pcm, hw, &period_us, NULL));
	STEP("apply hw params", snd_pcm_hw_params(pcm, hw));
	STEP("get buffer size", snd_pcm_hw_params_get_buffer_size(hw, buffer_frames));
	STEP("get period size", snd_pcm_hw_params_get_period_size(hw, period_frames, NULL));
	STEP("read sw params", snd_pcm_sw_params_current(pcm, sw));
	STEP("set start threshold", snd_pcm_sw_params_set_start_threshold(pcm, sw, *period_frames));
	STEP("set avail min", snd_pcm_sw_params_set_avail_min(pcm, sw, *period_frames));
	STEP("enable time stamps", snd_pcm_sw_params_set_tstamp_mode(pcm, sw, SND_PCM_TSTAMP_ENABLE));
	// Optional: without it the stamps are wall-clock time, which the age
	// check in delay() rejects, falling back to timing the call.
	snd_pcm_sw_params_set_tstamp_type(pcm, sw, SND_PCM_TSTAMP_TYPE_MONOTONIC);
	STEP("apply sw params", snd_pcm_sw_params(pcm, sw));
#undef STEP
	*out = pcm;
	return 0;
fail:
	snd_pcm_close(pcm);
	return err;
}

// tutti_rate_supported says whether the device plays S16_LE stereo at rate
// without resampling: opened with SND_PCM_NO_AUTO_RESAMPLE, even "default"
// or a plughw device answers for the hardware behind it. 1 yes, 0 no,
// negative: the device cannot be opened or read.
static int tutti_rate_supported(const char *name, unsigned int rate) {
	snd_pcm_t *pcm;
	snd_pcm_hw_params_t *hw;
	int err = snd_pcm_open(&pcm, name, SND_PCM_STREAM_PLAYBACK, SND_PCM_NONBLOCK | SND_PCM_NO_AUTO_RESAMPLE);
	if (err < 0)
		return err;
	snd_pcm_hw_params_alloca(&hw);
	if ((err = snd_pcm_hw_params_any(pcm, hw)) < 0)
		goto done;
	if (snd_pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE) < 0 ||
		snd_pcm_hw_params_set_channels(pcm, hw, 2) < 0) {
		err = 0;
		goto done;
	}
	err = snd_pcm_hw_params_test_rate(pcm, hw, rate, 0) == 0;
done:
	snd_pcm_close(pcm);
	return err;
}

*/
import "C"

import (
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"
)

// nativeRates are the rates NativeRate tries, in order of preference: the
// rate most DACs, HDMI and USB audio run at, then CD audio's.
var nativeRates = []int{48000, 44100, 96000, 88200, 32000}

// NativeRate is the first of 48, 44.1, 96, 88.2 and 32 kHz that device plays
// without resampling (its own converters, or ALSA's plug layer, would
// otherwise resample everything tutti has already resampled once).
func NativeRate(device string) (int, error) {
	name := C.CString(device)
	defer C.free(unsafe.Pointer(name))
	for _, rate := range nativeRates {
		rc := C.tutti_rate_supported(name, C.uint(rate))
		if rc < 0 {
			return 0, fmt.Errorf("alsa device %q: %w", device, &alsaError{op: "open", code: int(rc)})
		}
		if rc == 1 {
			return rate, nil
		}
	}
	return 0, fmt.Errorf("alsa device %q plays none of %v Hz without resampling", device, nativeRates)
}

// pcm is an open ALSA playback PCM. Its methods must not be called
// concurrently.
type pcm struct {
	h            *C.snd_pcm_t
	bufferFrames int
	periodFrames int
}

func openPCM(device string, rate int, buffer, period time.Duration) (*pcm, error) {
	name := C.CString(device)
	defer C.free(unsafe.Pointer(name))
	var h *C.snd_pcm_t
	var bufferFrames, periodFrames C.snd_pcm_uframes_t
	var op *C.char
	rc := C.tutti_open(&h, name, C.uint(rate), C.uint(buffer.Microseconds()), C.uint(period.Microseconds()),
		&bufferFrames, &periodFrames, &op)
	if rc < 0 {
		what := C.GoString(op)
		if what == "set rate" {
			what = fmt.Sprintf("set rate %d Hz", rate)
		}
		return nil, &alsaError{op: what, code: int(rc)}
	}
	if periodFrames == 0 {
		C.snd_pcm_close(h)
		return nil, errors.New("the device configured a period of 0 frames")
	}
	return &pcm{h: h, bufferFrames: int(bufferFrames), periodFrames: int(periodFrames)}, nil
}

// recover re-prepares the PCM after an underrun, or resumes it after a
// suspend (re-preparing when the device cannot resume). While a suspended
// device is still waking up it does nothing: the next wait reports the
// suspend again.
func (p *pcm) recover(err error) error {
	if errors.Is(err, syscall.ESTRPIPE) {
		switch rc := C.snd_pcm_resume(p.h); rc {
		case 0, -C.EAGAIN:
			return nil
		}
	}
	if rc := C.snd_pcm_prepare(p.h); rc < 0 {
		return &alsaError{op: "prepare", code: int(rc)}
	}
	return nil
}

// close drops what is still queued and closes the PCM.
func (p *pcm) close() {
	C.snd_pcm_drop(p.h)
	C.snd_pcm_close(p.h)
}

func alsaStrerror(code int) string { return C.GoString(C.snd_strerror(C.int(code))) }
