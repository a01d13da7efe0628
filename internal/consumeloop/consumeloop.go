// Package consumeloop runs the messages of a durable pull consumer
// through a handler on a few workers, as the gateways' background
// consumers do (the job indexer, the timers): messages with the same key
// go to the same worker, in order; when the consumer goes away (deleted,
// or lost with the server's storage) the loop looks it up again, waiting
// longer after each failure, until the set-up makes it anew.
package consumeloop

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/jobwire/jobwire/internal/backoff"
	"github.com/nats-io/nats.go/jetstream"
)

// Loop is one consumer's loop.
type Loop struct {
	JS       jetstream.JetStream
	Stream   string
	Consumer jetstream.Consumer // named Name on Stream
	Name     string
	Workers  int
	Log      *slog.Logger
	// Route picks a message's worker (the same key, the same worker). It
	// runs for each message in the consumer's order, one at a time, and
	// may start work whose result (data) goes to Handle with the message.
	Route func(jetstream.Msg) (key string, data any)
	// Handle acks, naks or terms each message.
	Handle func(ctx context.Context, m jetstream.Msg, data any)
}

// routed is a message with what Route made of it.
type routed struct {
	m    jetstream.Msg
	data any
}

// Run handles messages until ctx ends. Messages taken but not yet handled
// then are handed back (nak) for another process.
func (l Loop) Run(ctx context.Context) {
	seed := maphash.MakeSeed()
	queues := make([]chan routed, max(l.Workers, 1))
	var wg sync.WaitGroup
	for i := range queues {
		q := make(chan routed, 64)
		queues[i] = q
		wg.Go(func() {
			for r := range q {
				if ctx.Err() != nil {
					_ = r.m.Nak()
					continue
				}
				l.Handle(ctx, r.m, r.data)
			}
		})
	}
	defer wg.Wait()
	defer func() {
		for _, q := range queues {
			close(q)
		}
	}()
	wait := backoff.Backoff{Base: 100 * time.Millisecond, Max: 30 * time.Second}
	warn := backoff.Warner{Log: l.Log}
	cons := l.Consumer
	for {
		err := consume(ctx, cons, func(m jetstream.Msg) {
			wait.Reset()
			key, data := l.Route(m)
			queues[maphash.String(seed, key)%uint64(len(queues))] <- routed{m, data}
		})
		if ctx.Err() != nil {
			return
		}
		warn.Warn("reading the consumer failed", err, "consumer", l.Name, "failures", wait.Failures()+1)
		if !wait.Wait(ctx) {
			return
		}
		if c, err := l.JS.Consumer(ctx, l.Stream, l.Name); err == nil {
			cons = c
		} else if ctx.Err() == nil {
			warn.Warn("cannot find the consumer; jobwire-setup makes it", err, "consumer", l.Name)
		}
	}
}

// consume hands each message of cons to take until ctx ends or the
// consumer cannot be read any more.
func consume(ctx context.Context, cons jetstream.Consumer, take func(jetstream.Msg)) error {
	if cons == nil {
		return jetstream.ErrConsumerNotFound
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		switch {
		case err == nil:
			take(m)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, jetstream.ErrMsgIteratorClosed), errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			return err
		}
		// Otherwise (missed heartbeats and the like) the iterator goes on
		// by itself.
	}
}
