package speaker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tutti-audio/tutti/internal/atomicfile"
	"github.com/tutti-audio/tutti/protocol"
)

// The output latency calibration (see Options.Calibration) set by a
// calibrate command is kept in the cache directory, so that it survives
// restarts: it is what the user set last.

// calibrationFile is the calibration's file in the cache directory.
const calibrationFile = "calibration.json"

// maxCalibration bounds a calibration, from the protocol's limit.
const maxCalibration = protocol.MaxCalibrationMs * time.Millisecond

// savedCalibration is calibrationFile's content.
type savedCalibration struct {
	CalibrationNs int64 `json:"calibration_ns"`
}

func checkCalibration(d time.Duration) error {
	if d.Abs() > maxCalibration {
		return fmt.Errorf("calibration %v out of ±%v", d, maxCalibration)
	}
	return nil
}

// loadCalibration reads the saved calibration of cache directory dir; ok is
// false when there is none. A damaged file is an error.
func loadCalibration(dir string) (d time.Duration, ok bool, err error) {
	f, err := os.Open(filepath.Join(dir, calibrationFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096)) // the file holds one number
	if err != nil {
		return 0, false, err
	}
	var saved savedCalibration
	if err := json.Unmarshal(b, &saved); err != nil {
		return 0, false, fmt.Errorf("damaged calibration file: %w", err)
	}
	d = time.Duration(saved.CalibrationNs)
	if err := checkCalibration(d); err != nil {
		return 0, false, fmt.Errorf("damaged calibration file: %w", err)
	}
	return d, true, nil
}

// saveCalibration writes calibration d into cache directory dir: a temp
// file, synced, renamed over the old one, so that a crash leaves the old
// or the new value, never half of one.
func saveCalibration(dir string, d time.Duration) error {
	return atomicfile.Write(filepath.Join(dir, calibrationFile), protocol.Encode(savedCalibration{CalibrationNs: int64(d)}), 0o644)
}
