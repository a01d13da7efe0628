package main

import (
	"math"
	"testing"
	"time"
)

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}} {
		got := h.quantile(c.q)
		if rel := math.Abs(float64(got-c.want)) / float64(c.want); rel > 0.02 {
			t.Errorf("q%g = %v, want %v ±2%%", c.q, got, c.want)
		}
	}
	if s := h.summary(); s.Samples != 10000 || s.MaxMS != 10 {
		t.Errorf("summary %+v", s)
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		lo := bucketMid(bucketOf(v))
		if math.Abs(lo-float64(v)) > float64(v)/64+1 {
			t.Fatalf("value %d lands in a bucket around %g", v, lo)
		}
	}
}

func TestEventFields(t *testing.T) {
	frame := []byte(`{"op":"event","job_id":"01KB","event":{"job_id":"01KB","type":"demo","seq":42,"kind":"progress","status":"running","message":"a \"time\":\"x\" b","time":"2026-01-02T03:04:05.123456789Z","result":{"time":"no"}}}`)
	if got := string(stringField(frame, keyJobID)); got != "01KB" {
		t.Errorf("job id %q", got)
	}
	if got := eventSeq(frame); got != 42 {
		t.Errorf("seq %d", got)
	}
	if got := eventStatus(frame); got != "running" {
		t.Errorf("status %q", got)
	}
	at, ok := eventTime(frame)
	if want := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC); !ok || !at.Equal(want) {
		t.Errorf("time %v %v", at, ok)
	}
}
