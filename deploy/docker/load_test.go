//go:build dockertest

package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
)

// gateways knows the published addresses of the gateways (they change
// when a gateway's container starts again).
type gateways struct {
	mu    sync.Mutex
	addrs [2]string
}

func (g *gateways) get(i int) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addrs[i%2]
}

func (g *gateways) set(i int, addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.addrs[i%2] = addr
}

// tally counts what happened, per phase (warm-up, then one per fault).
type tally struct {
	mu        sync.Mutex
	phase     int
	accepted  map[string]int // job id → phase it was accepted in
	order     []string
	failed    []int           // submits given up, per phase
	failStart time.Time       // first failure since the last success
	longest   []time.Duration // longest window of failing submits, per phase
}

func newTally() *tally {
	return &tally{accepted: map[string]int{}, failed: make([]int, 8), longest: make([]time.Duration, 8)}
}

func (t *tally) setPhase(p int) { t.mu.Lock(); t.phase = p; t.mu.Unlock() }

func (t *tally) submitFailed(at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failStart.IsZero() {
		t.failStart = at
	}
}

func (t *tally) submitOK(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.failStart.IsZero() {
		t.longest[t.phase] = max(t.longest[t.phase], at.Sub(t.failStart))
		t.failStart = time.Time{}
	}
	if _, dup := t.accepted[id]; !dup {
		t.accepted[id] = t.phase
		t.order = append(t.order, id)
	}
}

func (t *tally) gaveUp() { t.mu.Lock(); t.failed[t.phase]++; t.mu.Unlock() }

func (t *tally) jobs() (ids []string, phase map[string]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	phase = make(map[string]int, len(t.accepted))
	for k, v := range t.accepted {
		phase[k] = v
	}
	return append([]string(nil), t.order...), phase
}

// client is one browser-like HTTP client: a cookie jar holding the
// anonymous session, which both gateways accept (one SESSION_SECRET).
func newClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 15 * time.Second}
}

// startSession gets the client its anonymous session (a signed cookie)
// before anything else uses it: watchers that dialled first would each get
// a session of their own, and see none of the jobs (another owner's).
func startSession(ctx context.Context, hc *http.Client, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/jobs?limit=1", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(hc.Jar.Cookies(req.URL)) == 0 {
		return fmt.Errorf("GET /api/jobs: %s, %d cookies", resp.Status, len(hc.Jar.Cookies(req.URL)))
	}
	return nil
}

// submitLoop submits a demo job every interval, alternating gateways,
// until ctx ends. A submit that fails is tried again with the same
// Idempotency-Key (on the other gateway) for up to a minute; each job
// accepted (202) goes to onAccepted.
func submitLoop(ctx context.Context, hc *http.Client, gws *gateways, tl *tally, interval time.Duration, onAccepted func(id string)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	body := []byte(`{"type":"demo","input":{"steps":8,"step_ms":250}}`)
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		key := randomHex(12)
		deadline := time.Now().Add(time.Minute)
		for try := 0; ; try++ {
			id, err := submit(ctx, hc, gws.get(n+try), key, body)
			if err == nil {
				tl.submitOK(id, time.Now())
				onAccepted(id)
				break
			}
			tl.submitFailed(time.Now())
			if ctx.Err() != nil {
				return
			}
			if time.Now().After(deadline) {
				tl.gaveUp()
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func submit(ctx context.Context, hc *http.Client, addr, key string, body []byte) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 12*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/jobs", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var snap struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("submit: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil || snap.ID == "" {
		return "", fmt.Errorf("submit: bad answer (%v)", err)
	}
	return snap.ID, nil
}

// seqLog checks one watcher's view of one job: each event's seq must be
// one more than the last seen.
type seqLog struct {
	seen   []uint64 // every seq, in the order seen
	last   uint64
	final  bool
	gaps   int
	dups   int
	errors []string // error codes the gateway answered watch requests with
}

func (l *seqLog) see(ev jobs.Event) {
	l.seen = append(l.seen, ev.Seq)
	switch {
	case ev.Seq <= l.last:
		l.dups++
	case ev.Seq != l.last+1:
		l.gaps++
		l.last = ev.Seq
	default:
		l.last = ev.Seq
	}
	if ev.Status.Terminal() {
		l.final = true
	}
}

// watcher watches every accepted job over one WebSocket, starting on
// gateway home; when its connection breaks it reconnects (to the other
// gateway first) and resumes each unfinished job after the last seq it
// saw.
type watcher struct {
	name       string
	home       int
	hc         *http.Client
	gws        *gateways
	mu         sync.Mutex
	logs       map[string]*seqLog
	reconnects int
	rewatches  int            // watch requests sent again after an error answer
	errCodes   map[string]int // error answers to watch requests, by code
	add        chan string
}

func newWatcher(name string, home int, hc *http.Client, gws *gateways) *watcher {
	return &watcher{name: name, home: home, hc: hc, gws: gws, logs: map[string]*seqLog{}, errCodes: map[string]int{}, add: make(chan string, 10000)}
}

func (w *watcher) watch(id string) {
	w.mu.Lock()
	w.logs[id] = &seqLog{}
	w.mu.Unlock()
	w.add <- id
}

// run keeps the watcher connected until ctx ends.
func (w *watcher) run(ctx context.Context) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		gw := w.home
		if attempt > 0 {
			gw = w.home + attempt // the other gateway first
			w.mu.Lock()
			w.reconnects++
			w.mu.Unlock()
		}
		_ = w.session(ctx, w.gws.get(gw))
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type wsFrame struct {
	Op    string     `json:"op"`
	JobID string     `json:"job_id"`
	Code  string     `json:"code"`
	Event jobs.Event `json:"event"`
}

// session is one WebSocket connection: it asks for every unfinished job
// after its last seq, then for each new job, and records every event.
func (w *watcher) session(ctx context.Context, addr string) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ws, _, err := websocket.Dial(dctx, "ws://"+addr+"/ws", &websocket.DialOptions{HTTPClient: w.hc})
	cancel()
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	send := func(id string, after uint64) error {
		b, _ := json.Marshal(map[string]any{"op": "watch", "job_id": id, "after_seq": after})
		wctx, cancel := context.WithTimeout(sctx, 5*time.Second)
		defer cancel()
		return ws.Write(wctx, websocket.MessageText, b)
	}
	w.mu.Lock()
	resume := map[string]uint64{}
	for id, l := range w.logs {
		if !l.final {
			resume[id] = l.last
		}
	}
	w.mu.Unlock()
	writeErr := make(chan error, 1)
	again := make(chan string, 1000) // jobs to watch again after an error answer
	go func() {
		// Each job is asked for once per connection (a job accepted just
		// before it started is both to resume and new); again only after an
		// error answer.
		asked := map[string]bool{}
		for id, after := range resume {
			asked[id] = true
			if err := send(id, after); err != nil {
				writeErr <- err
				return
			}
		}
		for {
			select {
			case <-sctx.Done():
				return
			case id := <-w.add:
				if asked[id] {
					continue
				}
				asked[id] = true
				// If this fails, the next connection resumes the job.
				if err := send(id, 0); err != nil {
					writeErr <- err
					return
				}
			case id := <-again:
				w.mu.Lock()
				after, final := w.logs[id].last, w.logs[id].final
				w.rewatches++
				w.mu.Unlock()
				if final {
					continue
				}
				if err := send(id, after); err != nil {
					writeErr <- err
					return
				}
			}
		}
	}()
	for {
		_, data, err := ws.Read(sctx)
		if err != nil {
			return err
		}
		select {
		case err := <-writeErr:
			return err
		default:
		}
		var f wsFrame
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		if f.Op == "error" && f.JobID != "" {
			// As a client should: watch again from the last seq seen.
			w.mu.Lock()
			w.errCodes[f.Code]++
			if l := w.logs[f.JobID]; l != nil {
				l.errors = append(l.errors, f.Code)
				id := f.JobID
				time.AfterFunc(500*time.Millisecond, func() {
					select {
					case again <- id:
					default: // full: the next connection watches it again
					}
				})
			}
			w.mu.Unlock()
			continue
		}
		if f.Op != "event" {
			continue
		}
		w.mu.Lock()
		if l := w.logs[f.JobID]; l != nil {
			l.see(f.Event)
		}
		w.mu.Unlock()
	}
}

// unfinished counts the jobs this watcher has not seen end.
func (w *watcher) unfinished() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, l := range w.logs {
		if !l.final {
			n++
		}
	}
	return n
}

// observer is an outside NATS client (user observer) subscribed to
// jobs.*.progress. A core subscription misses what is published while it
// reconnects; those gaps are counted apart and checked against the
// stored history at the end.
type observer struct {
	nc   *nats.Conn
	mu   sync.Mutex
	logs map[string]*seqLog
	sub  *nats.Subscription
}

func newObserver(urls, password string) (*observer, error) {
	nc, err := nats.Connect(urls, nats.UserInfo("observer", password), nats.CustomInboxPrefix("_INBOX_observer"),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.PingInterval(2*time.Second), nats.MaxPingsOutstanding(2),
		nats.Timeout(3*time.Second))
	if err != nil {
		return nil, err
	}
	o := &observer{nc: nc, logs: map[string]*seqLog{}}
	o.sub, err = nc.Subscribe(jobs.AllProgress, func(m *nats.Msg) {
		var ev jobs.Event
		if json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		o.mu.Lock()
		l := o.logs[ev.JobID]
		if l == nil {
			l = &seqLog{}
			o.logs[ev.JobID] = l
		}
		l.see(ev)
		o.mu.Unlock()
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return o, nil
}

// finals reads job id's stored history (as the observer) and counts its
// final events and the seqs missing or repeated.
func (o *observer) history(ctx context.Context, id string) (finals, gaps, dups int, err error) {
	var l seqLog
	for se, err := range jobs.History(ctx, o.nc, id, 0) {
		if err != nil {
			return 0, 0, 0, err
		}
		var ev jobs.Event
		if err := json.Unmarshal(se.Data, &ev); err != nil {
			return 0, 0, 0, err
		}
		l.see(ev)
		if ev.Status.Terminal() {
			finals++
		}
	}
	return finals, l.gaps, l.dups, nil
}
