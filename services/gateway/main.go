// Command gateway is jobwire's HTTP and WebSocket front door. With --dev it
// also runs an embedded NATS server and a runner: the whole system in one
// process.
package main

import "github.com/jobwire/jobwire/internal/cli"

func main() { cli.Main("gateway", run) }
