// jobwire.js: follow jobwire jobs from any web page. An ES module with no
// dependencies and no build step; the gateway serves it at
// /static/jobwire.js (and a copy works from any origin's files).
//
//   import { connect } from "https://jobs.example.com/static/jobwire.js";
//   const w = connect({ token });            // url: the gateway (default: where this module came from)
//   const stop = w.watch(id, { onEvent(ev) { ... }, onEnd(ev) { ... } });
//
// One WebSocket per connection carries every watched job. It reconnects by
// itself (backoff with jitter) and resumes each job after the last seq it
// delivered, so a caller sees every event once, in order, also across
// gateway restarts. Where the WebSocket cannot connect at all it falls
// back to Server-Sent Events (one stream per job). The element
// <jobwire-progress> (defined below) is built on it. Types: jobwire.d.ts.
// docs/embed.md has the whole of it.

const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
// Errors after which watching a job again cannot help.
const FINAL_ERRORS = new Set(["not_found", "expired", "invalid_id", "forbidden", "too_many_watches", "unauthenticated", "bad_request"]);
const BACKOFF_MIN = 250;   // ms, first reconnect
const BACKOFF_MAX = 10000; // ms
const IDLE_CLOSE = 1000;   // ms a socket stays open with nothing watched
const WS_TRIES_BEFORE_SSE = 2; // failed first connects before the SSE fallback

// The gateway this module was served by: the default url.
const moduleOrigin = (() => {
  try {
    return new URL(import.meta.url).origin;
  } catch {
    return "";
  }
})();

/** JobwireError is a refused request: HTTP status and the API's error code. */
export class JobwireError extends Error {
  constructor(status, code, message, body) {
    super(message || code || "request failed");
    this.name = "JobwireError";
    this.status = status;
    this.code = code || "";
    this.body = body;
  }
}

// backoff is the wait before reconnect attempt n (0, 1, 2 …): doubling,
// capped, with "equal jitter" so many clients do not come back at once.
function backoff(n) {
  const d = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** n);
  return d / 2 + Math.random() * (d / 2);
}

function wsURL(base) {
  const u = new URL("/ws", base);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
}

// Watch is one job followed through a Connection.
class Watch {
  constructor(conn, id, opts) {
    this.conn = conn;
    this.id = id;
    this.opts = opts || {};
    // lastSeq is the last seq delivered; null: nothing yet.
    this.lastSeq = typeof this.opts.afterSeq === "number" ? this.opts.afterSeq : null;
    // awaitSeq: while set, the replay this watch asked for has not begun
    // (events still on their way from before it are not for this watch).
    this.awaitSeq = null;
    this.done = false;
    this.state = "";
    this.timer = 0;    // a pending SSE reconnect
    this.sse = null;   // AbortController of the SSE stream, in SSE mode
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    call(this.opts.onState, s);
  }

  // deliver hands one event to the caller, once: events at or below the
  // last seq delivered are dropped.
  deliver(ev, truncated) {
    if (this.done || !ev || typeof ev.seq !== "number") return;
    if (this.lastSeq !== null && ev.seq <= this.lastSeq) return;
    if (this.awaitSeq !== null) {
      if (ev.seq !== this.awaitSeq && !truncated) return;
      this.awaitSeq = null;
    }
    this.lastSeq = ev.seq;
    this.setState("live");
    call(this.opts.onEvent, ev, { truncated: !!truncated });
    if (TERMINAL.has(ev.status)) {
      this.finish("ended");
      call(this.opts.onEnd, ev);
    }
  }

  // fail reports an error; a final one ends the watch.
  fail(code, message) {
    if (this.done) return;
    const err = new JobwireError(0, code, message);
    if (FINAL_ERRORS.has(code)) {
      this.finish(code === "not_found" || code === "expired" ? code : "error");
    }
    call(this.opts.onError, err);
  }

  finish(state) {
    this.done = true;
    this.setState(state);
    this.conn._drop(this);
  }
}

function call(f, ...args) {
  if (typeof f !== "function") return;
  try {
    f(...args);
  } catch (e) {
    setTimeout(() => { throw e; }); // the caller's bug: report it, keep going
  }
}

/**
 * Connection is one gateway as one caller: a shared WebSocket for every
 * job watched through it, and the HTTP API.
 */
export class Connection {
  constructor(opts) {
    const o = opts || {};
    this.url = new URL(o.url || moduleOrigin || location.origin).origin;
    this.token = o.token || "";
    this.transport = o.transport || "auto"; // "auto", "websocket" or "sse"
    // topics: job id → {watches: Set<Watch>, last: the newest event seen}.
    // The socket watches each job once, however many callers follow it.
    this.topics = new Map();
    this.ws = null;
    this.wsOpen = false;
    this.wsEverOpened = false;
    this.failures = 0;  // connects in a row that failed or delivered nothing
    this.timer = 0;     // pending reconnect
    this.idle = 0;      // pending close of an unused socket
    this.closed = false;
    this.useSSE = this.transport === "sse";
  }

  /** watch follows job id; it returns the function that stops it. */
  watch(id, opts) {
    if (this.closed) throw new Error("jobwire: connection closed");
    const w = new Watch(this, String(id), opts);
    w.setState("connecting");
    if (this.useSSE) {
      this._topic(w.id).watches.add(w);
      this._sse(w);
      return () => this.unwatch(w);
    }
    const known = this.topics.get(w.id);
    const topic = this._topic(w.id);
    topic.watches.add(w);
    if (!known) {
      this._sendWatch(w.id);
    } else if (w.lastSeq === null && topic.last) {
      const last = topic.last; // the current state, now
      queueMicrotask(() => w.deliver(last, false));
    } else if (w.lastSeq !== null && w.lastSeq < topic.covers() && this.wsOpen) {
      // It asks for history the socket has passed, or did not ask for:
      // replay from there (the others drop what they have seen).
      w.awaitSeq = w.lastSeq + 1;
      this.ws.send(JSON.stringify({ op: "unwatch", job_id: w.id }));
      this._sendWatch(w.id);
    }
    return () => this.unwatch(w);
  }

  _topic(id) {
    let t = this.topics.get(id);
    if (!t) {
      t = {
        watches: new Set(),
        last: null,        // the newest event seen
        sentAfter: null,   // the after_seq of the last watch sent (null: none, the current state)
        retry: 0,          // "unavailable" answers in a row
        timer: 0,          // a pending watch retry
        // covers is the seq after which the events the socket will bring
        // start: a new watch with a lower afterSeq needs a replay.
        covers() {
          if (this.last) return this.last.seq;
          return this.sentAfter === null ? Infinity : this.sentAfter;
        },
      };
      this.topics.set(id, t);
    }
    return t;
  }

  unwatch(w) {
    const t = this.topics.get(w.id);
    if (!t || !t.watches.has(w)) return;
    w.done = true;
    this._drop(w);
    w.setState("closed");
  }

  // _drop forgets w, and tells the server when nobody follows its job.
  _drop(w) {
    if (w.sse) w.sse.abort();
    clearTimeout(w.timer);
    const t = this.topics.get(w.id);
    if (!t || !t.watches.delete(w) || t.watches.size > 0) return;
    clearTimeout(t.timer);
    this.topics.delete(w.id);
    if (this.wsOpen) this.ws.send(JSON.stringify({ op: "unwatch", job_id: w.id }));
    if (this.topics.size === 0 && this.ws) {
      clearTimeout(this.idle);
      this.idle = setTimeout(() => {
        if (this.topics.size === 0) this._closeSocket();
      }, IDLE_CLOSE);
    }
  }

  // _watchMessage asks for job id after the least seq its watchers have
  // seen (none: its current state first).
  _watchMessage(id) {
    const t = this.topics.get(id);
    const m = { op: "watch", job_id: id };
    for (const w of t.watches) {
      if (w.lastSeq !== null && (m.after_seq === undefined || w.lastSeq < m.after_seq)) m.after_seq = w.lastSeq;
    }
    t.sentAfter = m.after_seq === undefined ? null : m.after_seq;
    t.last = null; // what comes now starts after sentAfter
    return JSON.stringify(m);
  }

  // ---- WebSocket ---------------------------------------------------------

  _sendWatch(id) {
    if (this.wsOpen) this.ws.send(this._watchMessage(id));
    else this._ensureSocket();
  }

  _ensureSocket() {
    if (this.ws || this.timer || this.closed) return;
    const protocols = this.token ? ["jobwire", "jobwire.bearer." + this.token] : ["jobwire"];
    let ws;
    try {
      ws = new WebSocket(wsURL(this.url), protocols);
    } catch {
      this._socketLost();
      return;
    }
    this.ws = ws;
    let heard = false;
    ws.onopen = () => {
      this.wsOpen = true;
      this.wsEverOpened = true;
      for (const id of this.topics.keys()) ws.send(this._watchMessage(id));
    };
    ws.onmessage = (e) => {
      if (!heard) {
        heard = true;
        this.failures = 0;
      }
      this._onMessage(e.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.wsOpen = false;
      this._socketLost();
    };
  }

  _closeSocket() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    this.wsOpen = false;
    ws.onclose = null;
    ws.close(1000, "nothing watched");
  }

  _watchers() {
    const all = [];
    for (const t of this.topics.values()) all.push(...t.watches);
    return all;
  }

  _socketLost() {
    if (this.closed || this.topics.size === 0) return;
    this.failures++;
    if (this.transport === "auto" && !this.wsEverOpened && this.failures >= WS_TRIES_BEFORE_SSE) {
      // WebSockets never got through (a proxy that blocks them): SSE.
      this.useSSE = true;
      for (const w of this._watchers()) this._sse(w);
      return;
    }
    for (const w of this._watchers()) w.setState("reconnecting");
    this.timer = setTimeout(() => {
      this.timer = 0;
      if (this.topics.size > 0) this._ensureSocket();
    }, backoff(this.failures - 1));
  }

  _onMessage(data) {
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    const t = this.topics.get(m.job_id);
    if (!t) return;
    if (m.op === "event" && m.event) {
      t.retry = 0;
      if (!t.last || m.event.seq > t.last.seq) t.last = m.event;
      for (const w of [...t.watches]) w.deliver(m.event, m.truncated);
    } else if (m.op === "error") {
      if (m.code === "unavailable" || m.code === "internal") {
        // The gateway could not read the job now: ask again later.
        for (const w of t.watches) w.setState("reconnecting");
        clearTimeout(t.timer);
        t.timer = setTimeout(() => {
          if (this.topics.get(m.job_id) === t) this._sendWatch(m.job_id);
        }, backoff(t.retry++));
        return;
      }
      for (const w of [...t.watches]) w.fail(m.code, m.message);
    }
  }

  // ---- Server-Sent Events (fallback) ---------------------------------------

  // _sse follows w over GET /api/jobs/<id>/events. fetch, not
  // EventSource: only fetch sends the bearer token.
  async _sse(w) {
    let attempt = 0;
    while (!w.done && !this.closed) {
      const ctl = new AbortController();
      w.sse = ctl;
      let delivered = false;
      try {
        const q = w.lastSeq !== null ? "?after_seq=" + w.lastSeq : "";
        const res = await this._fetch("/api/jobs/" + encodeURIComponent(w.id) + "/events" + q, {
          headers: { Accept: "text/event-stream" }, signal: ctl.signal,
        });
        if (!res.ok) {
          const err = await errorOf(res);
          if (err.code === "unavailable" || res.status >= 500 || res.status === 429) throw err;
          w.fail(err.code || "http_" + res.status, err.message);
          return;
        }
        delivered = await readSSE(res.body, (ev, truncated) => {
          attempt = 0;
          w.deliver(ev, truncated);
        });
      } catch (e) {
        if (ctl.signal.aborted) return;
        // the gateway is away: try again below
      }
      if (w.done || this.closed) return;
      if (!delivered) attempt++;
      w.setState("reconnecting");
      await new Promise((r) => { w.timer = setTimeout(r, backoff(attempt)); });
    }
  }

  // ---- HTTP API ------------------------------------------------------------

  _fetch(path, init) {
    const opts = Object.assign({}, init || {});
    const headers = new Headers(opts.headers || {});
    if (!headers.has("Accept")) headers.set("Accept", "application/json");
    if (this.token) headers.set("Authorization", "Bearer " + this.token);
    opts.headers = headers;
    opts.credentials = "same-origin"; // cookies only on the gateway's own pages
    opts.mode = "cors";
    return fetch(this.url + path, opts);
  }

  async _json(path, init) {
    const res = await this._fetch(path, init);
    if (!res.ok) throw await errorOf(res);
    return res.json();
  }

  _post(path, body, headers) {
    const init = { method: "POST", headers: Object.assign({}, headers || {}) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return this._json(path, init);
  }

  /** submit queues a job; it resolves to its snapshot. */
  submit(type, input, opts) {
    const o = Object.assign({}, opts || {});
    const headers = {};
    if (o.idempotencyKey) headers["Idempotency-Key"] = o.idempotencyKey;
    delete o.idempotencyKey;
    const body = Object.assign({ type }, o);
    if (input !== undefined) body.input = input;
    return this._post("/api/jobs", body, headers);
  }

  /** cancel asks the job to stop; it resolves to its snapshot. */
  cancel(id, reason) {
    return this._post("/api/jobs/" + encodeURIComponent(id) + "/cancel", reason ? { reason } : undefined);
  }

  /** get reads a job's snapshot (with its input and retried_as). */
  get(id) {
    return this._json("/api/jobs/" + encodeURIComponent(id));
  }

  /** close stops every watch and the socket. */
  close() {
    for (const w of this._watchers()) this.unwatch(w);
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.idle);
    this._closeSocket();
  }
}

async function errorOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON (a proxy's page)
  }
  const e = (body && body.error) || {};
  const code = e.code || (res.status === 401 ? "unauthenticated" : "http_" + res.status);
  return new JobwireError(res.status, code, e.message || res.statusText || "HTTP " + res.status, body);
}

// readSSE reads an event stream, calling onEvent(event, truncated) for each
// message; it reports whether any came.
async function readSSE(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let any = false;
  let truncated = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return any;
    buf += value;
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trimStart();
      }
      if (name === "truncated") {
        truncated = true;
      } else if (name === "message" && data) {
        any = true;
        let ev;
        try {
          ev = JSON.parse(data);
        } catch {
          continue;
        }
        onEvent(ev, truncated);
        truncated = false;
      }
    }
  }
}

/** connect makes a Connection (a new one each call). */
export function connect(opts) {
  return new Connection(opts);
}

const shared = new Map();

/**
 * sharedConnection is the page's one connection to url as token: every
 * <jobwire-progress> with the same url and token uses it.
 */
export function sharedConnection(url, token) {
  const key = new URL(url || moduleOrigin || location.origin).origin + " " + (token || "");
  let c = shared.get(key);
  if (!c || c.closed) {
    c = connect({ url, token });
    shared.set(key, c);
  }
  return c;
}

export default { connect, sharedConnection, Connection, JobwireError };

// ---- <jobwire-progress job-id="…"> ---------------------------------------------

const CSS = `
:host { display: block; font: inherit; color: var(--jobwire-fg, inherit);
  --_bar: var(--jobwire-bar, #2563eb); --_track: var(--jobwire-track, rgba(127, 127, 127, 0.25));
  --_err: var(--jobwire-error, #c62828); --_ok: var(--jobwire-success, #2e7d32); }
:host([hidden]) { display: none; }
.box { background: var(--jobwire-bg, transparent); border-radius: var(--jobwire-radius, 6px);
  padding: var(--jobwire-padding, 0); }
.row { display: flex; align-items: center; gap: 0.6em; }
.track { flex: 1; height: var(--jobwire-bar-height, 0.6em); background: var(--_track);
  border-radius: var(--jobwire-radius, 6px); overflow: hidden; }
.fill { height: 100%; width: 0; background: var(--_bar); transition: width 0.2s ease-out; }
.fill.indeterminate { width: 30%; opacity: 0.6; animation: jobwire-busy 1.2s ease-in-out infinite alternate; }
@keyframes jobwire-busy { from { margin-left: 0; } to { margin-left: 70%; } }
@media (prefers-reduced-motion: reduce) { .fill, .fill.indeterminate { transition: none; animation: none; } }
:host([data-status="succeeded"]) .fill { background: var(--_ok); }
:host([data-status="failed"]) .fill, :host([data-status="canceled"]) .fill { background: var(--_err); }
.pct { min-width: 4.5ch; text-align: right; font-variant-numeric: tabular-nums; }
.line { margin-top: 0.3em; font-size: 0.9em; }
.status { font-weight: 600; }
.muted { opacity: 0.75; }
.error { color: var(--_err); }
pre { margin: 0.4em 0 0; padding: 0.4em; overflow: auto; max-height: 12em; font-size: 0.85em;
  background: var(--jobwire-code-bg, rgba(127, 127, 127, 0.12)); border-radius: 4px; white-space: pre-wrap; }
ol.log { list-style: none; margin: 0.4em 0 0; padding: 0.4em; max-height: var(--jobwire-log-height, 10em);
  overflow: auto; font-family: var(--jobwire-mono, ui-monospace, monospace); font-size: 0.85em;
  background: var(--jobwire-code-bg, rgba(127, 127, 127, 0.12)); border-radius: 4px; }
ol.log:empty, [hidden] { display: none; }
`;

let sheet = null;
function styleFor(root) {
  // A constructed stylesheet needs no 'unsafe-inline' in the page's CSP.
  if ("adoptedStyleSheets" in Document.prototype && typeof CSSStyleSheet === "function") {
    try {
      if (!sheet) {
        sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
      }
      root.adoptedStyleSheets = [sheet];
      return;
    } catch {
      // an old browser: a <style> below (needs style-src 'unsafe-inline')
    }
  }
  const s = document.createElement("style");
  s.textContent = CSS;
  root.append(s);
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

const Base = typeof HTMLElement === "function" ? HTMLElement : class {};

/**
 * JobwireProgress is <jobwire-progress job-id="…" [url] [token] [log="N"]
 * [label]>: a job's progress bar, percent, status, stage, message, result
 * or error, and with log="N" the last N log lines, live.
 */
export class JobwireProgress extends Base {
  static get observedAttributes() {
    return ["job-id", "url", "token", "log", "label"];
  }

  constructor() {
    super();
    this._conn = null;     // set by the connection property
    this._pending = false; // a restart is scheduled
    this._stop = null;
    this._event = null;
    const root = this.attachShadow({ mode: "open" });
    styleFor(root);
    const box = el("div", "box");
    box.setAttribute("part", "box");
    this._bar = el("div", "track");
    this._bar.setAttribute("role", "progressbar");
    this._bar.setAttribute("aria-valuemin", "0");
    this._bar.setAttribute("aria-valuemax", "100");
    this._bar.setAttribute("part", "bar");
    this._fill = el("div", "fill");
    this._bar.append(this._fill);
    this._pct = el("span", "pct", "");
    this._pct.setAttribute("part", "percent");
    const row = el("div", "row");
    row.append(this._bar, this._pct);
    this._text = el("div", "line");
    this._text.setAttribute("aria-live", "polite");
    this._text.setAttribute("part", "text");
    this._status = el("span", "status", "connecting…");
    this._status.setAttribute("part", "status");
    this._stage = el("span", "muted");
    this._stage.setAttribute("part", "stage");
    this._message = el("span");
    this._message.setAttribute("part", "message");
    this._text.append(this._status, " ", this._stage, " ", this._message);
    this._error = el("div", "line error");
    this._error.setAttribute("role", "alert");
    this._error.setAttribute("part", "error");
    this._error.hidden = true;
    this._result = el("pre");
    this._result.setAttribute("part", "result");
    this._result.hidden = true;
    this._log = el("ol", "log");
    this._log.setAttribute("part", "log");
    this._log.setAttribute("aria-label", "Log");
    box.append(row, this._text, this._error, this._result, this._log);
    root.append(box);
  }

  /** connection is the Connection to use (default: the shared one for url and token). */
  get connection() {
    return this._conn || sharedConnection(this.getAttribute("url") || undefined, this.getAttribute("token") || "");
  }

  set connection(c) {
    this._conn = c;
    this._schedule();
  }

  /** event is the last event shown (null before the first). */
  get event() {
    return this._event;
  }

  get jobId() {
    return this.getAttribute("job-id") || "";
  }

  set jobId(v) {
    this.setAttribute("job-id", v);
  }

  connectedCallback() {
    this._schedule();
  }

  disconnectedCallback() {
    this._unwatch();
  }

  attributeChangedCallback(name, oldValue, value) {
    if (oldValue === value) return;
    if (name === "label") this._setLabel();
    else if (name !== "log") this._schedule();
    else this._trimLog();
  }

  // _schedule restarts the watch once the attributes set together are all
  // there (the parser and an upgrade set them one by one).
  _schedule() {
    if (this._pending) return;
    this._pending = true;
    queueMicrotask(() => {
      this._pending = false;
      this._restart();
    });
  }

  _unwatch() {
    if (this._stop) this._stop();
    this._stop = null;
  }

  _restart() {
    this._unwatch();
    if (!this.isConnected) return;
    const id = this.jobId;
    this._reset();
    if (!id) return;
    this._stop = this.connection.watch(id, {
      afterSeq: this._logSize() > 0 ? 0 : undefined, // the log from its first line
      onEvent: (ev, info) => this._render(ev, info),
      onError: (err) => this._showError(err),
      onState: (s) => this._state(s),
    });
  }

  _logSize() {
    const n = parseInt(this.getAttribute("log") || "0", 10);
    return isNaN(n) || n < 0 ? 0 : n;
  }

  _reset() {
    this._event = null;
    this.removeAttribute("data-status");
    this.removeAttribute("data-state");
    this._log.replaceChildren();
    this._error.hidden = true;
    this._result.hidden = true;
    this._status.textContent = "connecting…";
    this._stage.textContent = "";
    this._message.textContent = "";
    this._setPercent(null, "");
  }

  _setLabel() {
    const ev = this._event;
    const label = this.getAttribute("label") || "Job " + this.jobId + (ev && ev.type ? " (" + ev.type + ")" : "");
    this._bar.setAttribute("aria-label", label);
  }

  _setPercent(p, status) {
    if (typeof p !== "number" && status === "succeeded") p = 100;
    if (typeof p !== "number" && (status === "queued" || status === "scheduled")) p = 0;
    this._fill.classList.toggle("indeterminate", typeof p !== "number" && status === "running");
    if (typeof p === "number") {
      const v = Math.max(0, Math.min(100, p));
      this._fill.style.width = v + "%"; // CSSOM: allowed by any style-src
      this._bar.setAttribute("aria-valuenow", String(Math.floor(v)));
      this._pct.textContent = Math.floor(v) + "%";
    } else {
      this._fill.style.width = "";
      this._bar.removeAttribute("aria-valuenow");
      this._pct.textContent = "";
    }
    this._setLabel();
  }

  _render(ev, info) {
    this._event = ev;
    this.setAttribute("data-status", ev.status || "");
    this._setPercent(ev.percent, ev.status);
    this._status.textContent = ev.status || "";
    this._stage.textContent = ev.stage || "";
    this._message.textContent = ev.message || "";
    if (info && info.truncated && this._logSize() > 0) {
      this._addLog("… earlier log lines are no longer stored", 0, "gap");
    }
    if (ev.kind === "log" && ev.log) this._addLog(ev.log, ev.seq);
    const hasResult = ev.result !== undefined && ev.result !== null;
    this._result.hidden = !hasResult;
    this._result.textContent = hasResult ? JSON.stringify(ev.result, null, 2) : "";
    if (ev.error) {
      this._error.textContent = (ev.error.code ? ev.error.code + ": " : "") + (ev.error.message || "");
      this._error.hidden = false;
    } else {
      this._error.hidden = true;
    }
    this.dispatchEvent(new CustomEvent("jobwire-event", { detail: { event: ev, truncated: !!(info && info.truncated) } }));
  }

  _addLog(text, seq, kind) {
    const n = this._logSize();
    if (n === 0) return;
    const li = el("li", kind || "", text);
    if (seq) li.dataset.seq = String(seq);
    this._log.append(li);
    this._trimLog();
    this._log.scrollTop = this._log.scrollHeight;
  }

  _trimLog() {
    const n = this._logSize();
    while (this._log.children.length > n) this._log.firstElementChild.remove();
  }

  _state(s) {
    this.setAttribute("data-state", s);
    if (s === "not_found") {
      this._status.textContent = "not found";
      this._message.textContent = "There is no job with this id that you may see.";
      this._setPercent(null, "");
    } else if (s === "expired") {
      this._status.textContent = "expired";
      this._message.textContent = "This job has ended and its records have expired.";
    } else if (s === "error") {
      this._status.textContent = "error";
    } else if (s === "reconnecting" && !this._event) {
      this._status.textContent = "connecting…";
    }
    this.dispatchEvent(new CustomEvent("jobwire-state", { detail: { state: s } }));
  }

  _showError(err) {
    if (err.code === "not_found" || err.code === "expired") return; // told by _state
    this._error.textContent = (err.code ? err.code + ": " : "") + err.message;
    this._error.hidden = false;
  }
}

if (typeof customElements !== "undefined" && !customElements.get("jobwire-progress")) {
  customElements.define("jobwire-progress", JobwireProgress);
}
