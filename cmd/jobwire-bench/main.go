// Command jobwire-bench measures jobwire against raw NATS on the same
// server, with the same payload sizes, in the same run, and prints the two
// side by side with their ratio.
//
// By default it builds the gateway, starts it with --dev (embedded NATS
// server, gateway and runner in one process) on loopback ports with a data
// directory of its own, and stops it at the end. With --url and --nats-url
// it measures a system that is already running instead.
//
//	go run ./cmd/jobwire-bench                       # every measurement, 10s phases
//	go run ./cmd/jobwire-bench --smoke               # a short run that proves it works
//	go run ./cmd/jobwire-bench --watchers 1000 --idle 10000 --json bench.json
//
// docs/BENCHMARKS.md describes the measurements and the results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "jobwire-bench:", err)
		}
		os.Exit(1)
	}
}
