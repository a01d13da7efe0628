// Package cli is the main function of jobwire's commands: each one's
// main only names it and hands over its run function, which tests call
// directly with their own arguments, environment and output.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Run is a whole command: it returns when ctx ends (SIGINT or SIGTERM)
// and everything has shut down, or with the error that stopped it.
type Run func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Main runs run with the process's arguments, environment and output
// until SIGINT or SIGTERM; an error is printed after name and exits 1.
func Main(name string, run Run) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
