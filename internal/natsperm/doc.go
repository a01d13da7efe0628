// Package natsperm holds the tests of deploy/nats/nats.conf: they start a
// NATS server from that file and run jobwire's real gateway, runner and
// client code as its users, proving that each role can do its work and
// nothing that the configuration says it must not.
package natsperm
