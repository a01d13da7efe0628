package main

import (
	"bytes"
	"time"
)

// The watchers read a few fields of every event without decoding the JSON
// (the same code for WebSocket frames and NATS messages, so the clients
// cost the same on both sides). A JSON string cannot hold an unescaped
// quote, so the first `"seq":`, `"status":"` and `"time":"` of an event
// are its own top-level fields: they come before "result", the only field
// holding arbitrary JSON.

var (
	keySeq    = []byte(`"seq":`)
	keyStatus = []byte(`"status":"`)
	keyTime   = []byte(`"time":"`)
	keyJobID  = []byte(`"job_id":"`)
	keyEvent  = []byte(`"event":`)
)

// stringField returns the string value after key, or nil.
func stringField(b, key []byte) []byte {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return nil
	}
	return b[:j]
}

// eventSeq returns an event's seq, or 0.
func eventSeq(b []byte) uint64 {
	i := bytes.Index(b, keySeq)
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range b[i+len(keySeq):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// eventTime returns an event's time (when the runner made it).
func eventTime(b []byte) (time.Time, bool) {
	v := stringField(b, keyTime)
	if v == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	return t, err == nil
}

// eventStatus returns an event's status.
func eventStatus(b []byte) string { return string(stringField(b, keyStatus)) }

func terminalStatus(s string) bool { return s == "succeeded" || s == "failed" || s == "canceled" }
