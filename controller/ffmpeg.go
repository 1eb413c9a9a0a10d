package controller

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// Running ffmpeg to convert an M4A into FLAC (convert.go).

const (
	// conversionNice is ffmpeg's niceness: conversions give way to the
	// controller's own work.
	conversionNice = 10
	// ffmpegErrBytes is how much of ffmpeg's error output a failure keeps.
	ffmpegErrBytes = 2 << 10
)

// ffmpegArgs converts the M4A at in to FLAC at out. Both are passed as
// "file:" URLs, so no file name is read as an option or a protocol. Only
// the first audio stream, no tags or pictures (the records hold them), and
// bitexact (no encoder version in the output), so the same input gives the
// same bytes. AAC decodes to floating point and becomes 16-bit without
// dither; ALAC keeps its own bit depth, losslessly. -t and -fs stop a
// conversion past the library's limits.
func ffmpegArgs(in, out string, aac bool, maxBytes int64) []string {
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1",
		"-i", "file:" + in,
		"-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1",
		"-t", strconv.Itoa(int(maxSongDuration.Seconds()) + 1),
		"-fflags", "+bitexact", "-flags:a", "+bitexact",
		"-c:a", "flac", "-compression_level", "5"}
	if aac {
		args = append(args, "-sample_fmt", "s16")
	}
	return append(args, "-fs", strconv.FormatInt(maxBytes, 10), "-f", "flac", "-y", "file:"+out)
}

// ffmpegToFLAC runs ffmpeg on the M4A at in, within conversionTimeout.
func (cv *converter) ffmpegToFLAC(ctx context.Context, in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	var info m4aInfo
	if err == nil {
		info, err = probeM4A(f, st.Size())
	}
	f.Close()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, conversionTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cv.ffmpeg, ffmpegArgs(in, out, info.codec == "mp4a", cv.lib.maxSize)...)
	stderr := &tailBuffer{max: ffmpegErrBytes}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("ffmpeg: %w", err)
	}
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, conversionNice); err != nil {
		cv.log.Debug("ffmpeg's niceness not set", "err", err)
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("ffmpeg: not done within %v", conversionTimeout)
		}
		return fmt.Errorf("ffmpeg: %v: %s", err, stderr.b)
	}
	if st, err := os.Stat(out); err != nil {
		return err
	} else if st.Size() >= cv.lib.maxSize {
		return fmt.Errorf("%w: converted to over %d bytes", errTooLarge, cv.lib.maxSize)
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = t.b[over:]
	}
	return len(p), nil
}
