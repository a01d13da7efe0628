package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// On a replicated stream that allows direct gets, any replica answers a
// direct get, and a follower may not have applied the latest writes yet:
// a job read right after its 202 could be "not found", or a later read
// could show an older state than an earlier one. nats-server 2.15 offers no
// way to ask a direct get for "at least this sequence" (the MinLastSeq of
// ADR-53 is not in JSApiMsgGetRequest), so the reads that must see every
// acknowledged write (a job's state and records) go to the stream's
// leader through the message get API, which only the leader answers.
// History replays keep using batched direct gets: the watchers' outbox
// finds a gap a lagging replica leaves and reads again (live.follow).

// LeaderReads is stream with its single-message reads (GetMsg and
// GetLastMsgForSubject) answered by the stream's leader, never by a
// lagging follower: what a JetStream ack acknowledged is read back. Other
// methods are stream's. For replicated streams (Topology.CreateOrUpdate
// uses it when Replicas > 1); on a single replica a direct get is as
// current and cheaper.
func LeaderReads(nc *nats.Conn, stream jetstream.Stream) jetstream.Stream {
	return leaderReads{Stream: stream, nc: nc, subject: "$JS.API.STREAM.MSG.GET." + stream.CachedInfo().Config.Name}
}

type leaderReads struct {
	jetstream.Stream
	nc      *nats.Conn
	subject string
}

// leaderGetTimeout bounds a read whose context has no deadline.
const leaderGetTimeout = 5 * time.Second

func (l leaderReads) GetLastMsgForSubject(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	return l.get(ctx, msgGetRequest{LastFor: subject})
}

func (l leaderReads) GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	if len(opts) > 0 {
		return l.Stream.GetMsg(ctx, seq, opts...)
	}
	return l.get(ctx, msgGetRequest{Seq: seq})
}

type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

// firstMsg reads the first message on subject (wildcards allowed) that
// stream holds, from its leader if stream is a LeaderReads.
func firstMsg(ctx context.Context, stream jetstream.Stream, subject string) (*jetstream.RawStreamMsg, error) {
	if l, ok := stream.(leaderReads); ok {
		return l.get(ctx, msgGetRequest{Seq: 1, NextFor: subject})
	}
	return stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subject))
}

func (l leaderReads) get(ctx context.Context, req msgGetRequest) (*jetstream.RawStreamMsg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, leaderGetTimeout)
		defer cancel()
	}
	body, _ := json.Marshal(req)
	m, err := l.nc.RequestWithContext(ctx, l.subject, body)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Error *struct {
			Code        int                 `json:"code"`
			ErrorCode   jetstream.ErrorCode `json:"err_code"`
			Description string              `json:"description"`
		} `json:"error"`
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Header  []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return nil, fmt.Errorf("message get answer: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, jetstream.ErrMsgNotFound
	case resp.Error != nil:
		return nil, &jetstream.APIError{Code: resp.Error.Code, ErrorCode: resp.Error.ErrorCode, Description: resp.Error.Description}
	case resp.Message == nil:
		return nil, jetstream.ErrInvalidJetStreamResponse
	}
	msg := &jetstream.RawStreamMsg{Subject: resp.Message.Subject, Sequence: resp.Message.Seq, Data: resp.Message.Data, Time: resp.Message.Time}
	if len(resp.Message.Header) > 0 {
		if msg.Header, err = nats.DecodeHeadersMsg(resp.Message.Header); err != nil {
			return nil, err
		}
	}
	return msg, nil
}
