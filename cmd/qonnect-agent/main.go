// Command qonnect-agent runs in every cluster of a qonnect fleet: it
// reports the cluster to the leads and applies what they place there.
// See package agent.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"qonnect.io/qonnect/agent"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "qonnect-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	o := agent.NewOptions()
	fs := flag.NewFlagSet("qonnect-agent", flag.ExitOnError)
	o.AddFlags(fs)
	_ = fs.Parse(os.Args[1:]) // ExitOnError: a bad flag exits with the usage
	if err := o.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return o.Run(ctx, o.Logger(os.Stderr))
}
