package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tutti-audio/tutti/protocol"
)

// runScan asks the controller to rescan its music folders now (admins),
// and shows the scan's progress from the controller's status until it is
// done: a progress bar on a terminal, a line per report otherwise.
func runScan(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "scan", "[flags]")
	var f clientFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("scan takes no arguments")
	}
	c, err := dial(ctx, f)
	if err != nil {
		return err
	}
	defer c.close()
	statuses := make(chan protocol.ControllerStatus, 64)
	sub := c.conn.Subscribe(protocol.ControllerStatusTopic, 1, func(_ mqtt.Client, m mqtt.Message) {
		if st, err := protocol.Decode[protocol.ControllerStatus](m.Payload()); err == nil && st.Scan != nil {
			select {
			case statuses <- st:
			default: // a later one comes
			}
		}
	})
	if err := wait(ctx, sub, f.timeout); err != nil {
		return fmt.Errorf("subscribe to the controller status: %w", err)
	}
	r, err := c.request(ctx, protocol.LibraryCommandTopic, protocol.Request{Cmd: protocol.CmdScan})
	if err != nil {
		return err
	}
	if f.json || !r.OK {
		if err := printReply(e, f.json, r); err != nil || f.json {
			return err
		}
	}
	var started protocol.ScanProgress
	if err := json.Unmarshal(r.Result, &started); err != nil {
		return fmt.Errorf("scan result: %w", err)
	}
	show := newScanDisplay(e.stdout)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case st := <-statuses:
			p := *st.Scan
			if p.Number < started.Number {
				continue // an earlier scan's
			}
			show.update(p)
			if p.Done {
				show.finish(p)
				return nil
			}
		}
	}
}

// scanDisplay shows a scan's progress.
type scanDisplay struct {
	w   io.Writer
	bar *progressbar.ProgressBar // nil: not a terminal
}

func newScanDisplay(w io.Writer) *scanDisplay {
	d := &scanDisplay{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		d.bar = progressbar.NewOptions64(1, progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("scanning the music folders"), progressbar.OptionSetPredictTime(true),
			progressbar.OptionFullWidth(), progressbar.OptionClearOnFinish())
	}
	return d
}

func (d *scanDisplay) update(p protocol.ScanProgress) {
	if d.bar == nil {
		fmt.Fprintf(d.w, "scanning: %d files found, %d of %d read (%s of %s)\n",
			p.Seen, p.Files, p.Total, mib(p.Bytes), mib(p.TotalBytes))
		return
	}
	d.bar.ChangeMax64(max(p.TotalBytes, 1))
	d.bar.Describe(fmt.Sprintf("scanning: %d of %d files", p.Files, p.Total))
	d.bar.Set64(p.Bytes)
}

func (d *scanDisplay) finish(p protocol.ScanProgress) {
	if d.bar != nil {
		d.bar.Finish()
	}
	fmt.Fprintf(d.w, "scan done: %d files in the music folders, %d new or changed read (%s)\n", p.Seen, p.Files, mib(p.Bytes))
	for _, u := range p.Unavailable {
		fmt.Fprintf(d.w, "music folder unavailable: %s (%s): its songs are kept as they were; it is scanned again once it is back\n",
			protocol.CleanText(u.Root, protocol.MaxTopicLength), protocol.CleanText(u.Reason, protocol.MaxTopicLength))
	}
}

// mib prints a byte count in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
