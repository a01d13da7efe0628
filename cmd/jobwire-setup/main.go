// Command jobwire-setup creates or updates jobwire's streams and key-value
// buckets (the topology, jobs.Topology.CreateOrUpdate) with a NATS user
// that may, once, before the gateways and runners start with
// TOPOLOGY=check: their NATS users then need no right to create or change
// streams (deploy/nats: user "setup"). It waits while NATS or JetStream is
// not ready (up to --timeout), prints what it created, updated or left
// unchanged, and exits 0. Running it again changes nothing.
//
//	NATS_URL=nats://127.0.0.1:4222 go run ./cmd/jobwire-setup
//	NATS_URL=nats://nats:4222 NATS_USER=setup NATS_PASSWORD_FILE=/run/secrets/setup \
//	  NATS_INBOX_PREFIX=_INBOX_setup jobwire-setup
//
// It takes the retention settings of the services (EVENTS_MAX_AGE,
// EVENTS_MAX_PER_JOB, TOMBSTONE_TTL): give all three the same values, or
// the services in check mode report the difference and wait.
package main

import "github.com/jobwire/jobwire/internal/cli"

func main() { cli.Main("jobwire-setup", run) }
