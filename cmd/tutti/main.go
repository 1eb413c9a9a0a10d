// Command tutti is synchronized multi-room audio over MQTT: the broker, the
// controller, the speaker and the remote control, in one binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tutti-audio/tutti/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
