// job.js: shows one job's progress live, through jobwire.js (the module
// other apps embed, so the watching, reconnecting and resuming are the
// same code): the job's whole stored history first (watch with afterSeq
// 0), then the live events; after a reconnect the module resumes after the
// last seq it delivered.
// The history also gives the attempts (started, retrying and final
// events). GET /api/jobs/{id} adds what events do not carry: the input and
// the job's retries. Cancel (after an inline confirmation) and retry.
import { connect } from "./jobwire.js";

// The gateway keeps at most EVENTS_MAX_PER_JOB (default 10 000) events per
// job; the page keeps as many lines, so it shows what a reload would.
const MAX_LOG_LINES = 10000;
const $ = (id) => document.getElementById(id);
const { el } = jw;

const jobID = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
let lastSeq = 0;   // the last event shown
let terminal = false;
let gone = false; // the job does not exist: stop trying
let current = null; // the last event shown
let stopWatching = () => {}; // ends the watch of the job
let snapshot = {}; // GET /api/jobs/{id}: what an event may leave out
const attempts = []; // {n, start, end, outcome, error, next}

$("job-id").textContent = jobID;
document.title = jobID + " · jobwire";

function setText(id, v) {
  $(id).textContent = v === undefined || v === null || v === "" ? "–" : String(v);
}

function render(ev) {
  current = ev;
  setText("type", ev.type);
  setText("status", ev.status);
  $("status").dataset.status = ev.status || "";
  setText("stage", ev.stage);
  setText("message", ev.message);
  setText("attempt", ev.attempt);
  setText("created", jw.when(ev.created_at));
  renderTiming();
  tick();

  let pct = typeof ev.percent === "number" ? ev.percent : null;
  if (pct === null && ev.status === "succeeded") pct = 100;
  const bar = $("bar");
  if (pct === null && ev.status === "scheduled") {
    bar.value = 0; // not started: no busy bar
    $("percent").textContent = "–";
  } else if (pct === null) {
    bar.removeAttribute("value"); // indeterminate
    $("percent").textContent = "–";
  } else {
    bar.value = pct;
    $("percent").textContent = Math.floor(pct) + "%";
  }
  bar.dataset.status = ev.status || "";

  const hasResult = ev.result !== undefined && ev.result !== null;
  $("result").textContent = hasResult ? JSON.stringify(ev.result, null, 2) : "";
  $("result-box").hidden = !hasResult;

  $("error").hidden = !ev.error;
  $("error").textContent = ev.error ? ev.error.code + ": " + ev.error.message : "";

  if (ev.kind === "log" && ev.log) {
    const when = ev.time ? new Date(ev.time).toLocaleTimeString() + "  " : "";
    addLogLine(when + ev.log);
  }

  document.title = jobID + " · " + ev.status + (pct === null ? "" : " " + Math.floor(pct) + "%") + " · jobwire";
  const wasTerminal = terminal;
  terminal = jw.TERMINAL.has(ev.status);
  if (ev.retry_of) showLink("retry-of", ev.retry_of);
  noteAttempt(ev);
  showActions();
  if (terminal && !wasTerminal) loadDetails(); // a retry may name this job by now
}

// field is the job's field from its last event, else from its snapshot.
function field(name) {
  const v = current && current[name];
  return v !== undefined && v !== null && v !== "" ? v : snapshot[name];
}

function showFact(id, shown) {
  $(id).hidden = !shown;
  $(id + "-label").hidden = !shown;
}

let countdownSpoken = "";

// renderTiming shows when a scheduled job is due (with a countdown), its
// priority, its deadline and the schedule that made it.
function renderTiming() {
  if (!current) return;
  const runAt = field("run_at");
  const scheduled = current.status === "scheduled" && !!runAt;
  showFact("scheduled", scheduled);
  if (scheduled) {
    $("scheduled-at").replaceChildren(jw.timeEl(runAt));
  } else {
    countdownSpoken = "";
    $("countdown-sr").textContent = "";
  }
  setText("priority", jw.priorityName(field("priority")));
  const expires = field("expires_at");
  const expired = current.status === "canceled" && current.error && current.error.code === "expired";
  showFact("expires", !!expires || expired);
  if (expired) {
    $("expires").textContent = "expired: not started by " + (expires ? jw.when(expires) : "its deadline");
    $("expires").classList.add("error-text");
  } else if (expires) {
    $("expires").textContent = "must start by " + jw.when(expires);
    $("expires").classList.remove("error-text");
  }
  const sched = field("schedule_id");
  if (sched) {
    const a = el("a");
    a.href = "/schedules#schedule-" + encodeURIComponent(sched);
    a.append(el("code", "", sched));
    $("schedule").replaceChildren(a);
  }
  showFact("schedule", !!sched);
}

// tickCountdown updates the visible countdown every second; screen readers
// hear a sentence that changes at most once a minute.
function tickCountdown() {
  if (!current || current.status !== "scheduled") return;
  const runAt = field("run_at");
  $("countdown").textContent = jw.countdown(runAt);
  const spoken = "Due " + jw.countdownMinutes(runAt) + ".";
  if (spoken !== countdownSpoken) {
    countdownSpoken = spoken;
    $("countdown-sr").textContent = spoken;
  }
}

// tick shows how long the job has run, or ran.
function tick() {
  const ev = current;
  if (!ev) return;
  let text = "";
  if (ev.started_at && ev.ended_at) text = jw.duration(Date.parse(ev.ended_at) - Date.parse(ev.started_at));
  else if (ev.status === "running" && ev.started_at) text = jw.duration(Date.now() - Date.parse(ev.started_at)) + " so far";
  else if (ev.status === "scheduled") text = "not started";
  else if (ev.status === "queued" && ev.next_attempt_at) text = "next attempt in " + jw.duration(Math.max(Date.parse(ev.next_attempt_at) - Date.now(), 0));
  else if (ev.status === "queued" && ev.created_at) text = "waiting " + jw.duration(Date.now() - Date.parse(ev.created_at));
  setText("elapsed", text);
  tickCountdown();
}
setInterval(() => {
  if (!terminal) tick();
}, 1000);

// ---- Attempts ------------------------------------------------------------

function attemptFor(ev) {
  const n = ev.attempt || 0;
  let a = attempts.find((x) => x.n === n);
  if (!a && n > 0) {
    a = { n, start: ev.started_at || "" };
    attempts.push(a);
  }
  return a;
}

// noteAttempt follows the attempts through the job's events: "started"
// opens one, "retrying" ends it with the time of the next, a final event
// ends the last.
function noteAttempt(ev) {
  switch (ev.kind) {
    case "started": {
      const a = attemptFor(ev);
      if (a) a.start = ev.time || ev.started_at || a.start;
      break;
    }
    case "retrying": {
      const a = attemptFor(ev);
      if (a) Object.assign(a, { end: ev.time, outcome: "failed; retried", error: ev.error, next: ev.next_attempt_at });
      break;
    }
    case "succeeded":
    case "failed":
    case "canceled": {
      const a = attemptFor(ev);
      if (a) Object.assign(a, { end: ev.ended_at || ev.time, outcome: ev.kind, error: ev.error, next: "" });
      break;
    }
    default:
      attemptFor(ev); // a snapshot in place of expired history
  }
  renderAttempts();
}

function renderAttempts() {
  const tbody = $("attempts");
  if (attempts.length === 0) {
    const tr = el("tr");
    const td = el("td", "hint", terminal ? "It never started." : "Not started yet.");
    td.colSpan = 5;
    tr.append(td);
    tbody.replaceChildren(tr);
    return;
  }
  tbody.replaceChildren(...attempts.map((a) => {
    const tr = el("tr");
    const outcome = el("td");
    if (a.outcome) outcome.append(jw.statusChip(a.outcome === "failed; retried" ? "failed" : a.outcome));
    if (a.outcome === "failed; retried") outcome.append(" retried");
    if (!a.outcome) outcome.append(jw.statusChip("running"));
    if (a.error) outcome.append(el("div", "error-text small", a.error.code + ": " + a.error.message));
    const cell = (label, child) => {
      const td = el("td");
      td.dataset.label = label;
      td.append(child);
      return td;
    };
    outcome.dataset.label = "Outcome";
    tr.append(cell("Attempt", String(a.n)), cell("Started", jw.timeEl(a.start)), cell("Ended", jw.timeEl(a.end)), outcome,
      cell("Next retry", jw.timeEl(a.next)));
    return tr;
  }));
}

// ---- Details from GET /api/jobs/{id} --------------------------------------

function showLink(id, target) {
  const dd = $(id);
  const a = el("a");
  a.href = "/jobs/" + encodeURIComponent(target);
  a.append(el("code", "", target));
  dd.replaceChildren(a);
  dd.hidden = false;
  $(id + "-label").hidden = false;
}

async function loadDetails() {
  let res;
  try {
    res = await jw.api("/api/jobs/" + encodeURIComponent(jobID));
  } catch {
    return; // the WebSocket says what is wrong
  }
  if (res.status === 401) {
    stopWatching();
    jw.signInNeeded();
    $("conn").textContent = "sign in to follow this job";
    return;
  }
  if (!res.ok) return;
  const snap = await res.json();
  snapshot = snap;
  renderTiming();
  tickCountdown();
  $("input").textContent = snap.input === undefined ? "(none)" : JSON.stringify(snap.input, null, 2);
  if (snap.retry_of) showLink("retry-of", snap.retry_of);
  if (snap.retried_as) showLink("retried-as", snap.retried_as);
}

// ---- Cancel and retry ----------------------------------------------------

function showActions() {
  const canCancel = !gone && !!current && !terminal;
  if (!canCancel) $("cancel-confirm").hidden = true;
  $("cancel").hidden = !canCancel || !$("cancel-confirm").hidden;
  $("retry").hidden = gone || !current || !(current.status === "failed" || current.status === "canceled");
}

function actionError(text) {
  $("action-error").textContent = text;
  $("action-error").hidden = !text;
}

$("cancel").addEventListener("click", () => {
  actionError("");
  $("cancel").hidden = true;
  $("cancel-confirm").hidden = false;
  $("cancel-no").focus(); // the safe choice first
});

$("cancel-no").addEventListener("click", () => {
  $("cancel-confirm").hidden = true;
  showActions();
  $("cancel").focus();
});

$("cancel-confirm").addEventListener("keydown", (ev) => {
  if (ev.key === "Escape") $("cancel-no").click();
});

$("cancel-yes").addEventListener("click", async () => {
  $("cancel-yes").disabled = true;
  try {
    const res = await jw.postJSON("/api/jobs/" + encodeURIComponent(jobID) + "/cancel", { reason: "canceled from the job page" });
    if (res.status === 202) {
      $("cancel-confirm").hidden = true;
      $("message").textContent = "cancel requested…";
    } else {
      actionError(await jw.errorText(res, "The cancel was refused"));
      $("cancel-confirm").hidden = true;
    }
  } catch (err) {
    actionError("Could not reach the server (" + err.message + ").");
  } finally {
    $("cancel-yes").disabled = false;
    showActions();
  }
});

$("retry").addEventListener("click", async () => {
  actionError("");
  $("retry").disabled = true;
  try {
    const res = await jw.postJSON("/api/jobs/" + encodeURIComponent(jobID) + "/retry");
    if (res.status === 202) {
      const job = await res.json();
      if (job && job.id) {
        location.assign("/jobs/" + encodeURIComponent(job.id));
        return;
      }
    }
    actionError(await jw.errorText(res, "The retry was refused"));
  } catch (err) {
    actionError("Could not reach the server (" + err.message + ").");
  }
  $("retry").disabled = false;
});

// ---- Snippets --------------------------------------------------------------

function snippets() {
  const auth = jw.token() ? "-H \"Authorization: Bearer $JOBWIRE_TOKEN\" " : "";
  const base = location.origin + "/api/jobs/" + encodeURIComponent(jobID);
  const list = [
    ["Current state (curl)", "curl -s " + auth + base],
    ["Live events (NATS)", "nats sub 'jobs." + jobID + ".progress'"],
    ["Live events (SSE)", "curl -N " + auth + base + "/events?after_seq=0"],
    ["Progress in your own page (HTML)", "<script type=\"module\" src=\"" + location.origin + "/static/jobwire.js\"></script>\n" +
      "<jobwire-progress job-id=\"" + jobID + "\" token=\"YOUR_TOKEN\" log=\"20\"></jobwire-progress>"],
  ];
  const box = $("snippets");
  const status = el("p", "sr-only");
  status.setAttribute("aria-live", "polite");
  box.replaceChildren(...list.map(([title, text], i) => {
    const wrap = el("div", "snippet");
    const h = el("h3", "", title);
    h.id = "snippet-" + i;
    const pre = el("pre");
    const code = el("code", "", text);
    code.id = "snippet-text-" + i;
    pre.append(code);
    const btn = el("button", "secondary copy", "Copy");
    btn.type = "button";
    btn.setAttribute("aria-describedby", h.id);
    btn.addEventListener("click", async () => {
      const ok = await copy(text, code);
      btn.textContent = ok ? "Copied" : "Select and copy";
      status.textContent = ok ? title + " copied." : "Copying is not allowed here; the text is selected.";
      setTimeout(() => { btn.textContent = "Copy"; }, 2000);
    });
    wrap.append(h, pre, btn);
    return wrap;
  }), status);
  box.append(el("p", "hint", "The element works on your own app's pages when the gateway lists their origin in ALLOWED_ORIGINS, with a bearer token of the job's owner (see docs/embed.md)."));
  if (!auth) {
    box.append(el("p", "hint", "curl and SSE need a bearer token (add -H \"Authorization: Bearer …\"): a browser session's cookie is not shared with them."));
  }
}

async function copy(text, node) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const range = document.createRange();
    range.selectNodeContents(node);
    const sel = getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    return false;
  }
}

// ---- The live feed -------------------------------------------------------

// addLogLine appends a line to the log, keeping the view at the newest line
// if it was there.
function addLogLine(text, className) {
  const log = $("log");
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  const li = document.createElement("li");
  li.textContent = text;
  if (className) li.className = className;
  log.append(li);
  while (log.children.length > MAX_LOG_LINES) log.firstElementChild.remove();
  if (atEnd) log.scrollTop = log.scrollHeight;
}

function showNotFound() {
  gone = true;
  $("job").hidden = true;
  $("snippets-card").hidden = true;
  $("notfound").hidden = false;
  $("conn").textContent = "";
  document.title = "Job not found · jobwire";
}

// onEvent shows one event; jobwire.js delivers each once, in seq order.
function onEvent(ev, info) {
  if (info.truncated) {
    // The events after lastSeq have expired: this is the current state.
    // Seq 1 is the job's request (its queued state, kept as long as the
    // job): a gap right after it means every earlier line is gone.
    addLogLine(lastSeq <= 1 ? "… earlier log lines are no longer stored" : "… some log lines are no longer stored", "log-gap");
  }
  lastSeq = ev.seq;
  render(ev);
}

const CONN_TEXT = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", ended: "finished" };

function follow() {
  const conn = connect({ url: location.origin, token: jw.token() });
  stopWatching = conn.watch(jobID, {
    afterSeq: 0, // the whole stored history: the log from its first line
    onEvent,
    onState: (s) => {
      if (s in CONN_TEXT) $("conn").textContent = CONN_TEXT[s];
    },
    onError: (err) => {
      if (err.code === "not_found" || err.code === "invalid_id") {
        showNotFound();
      } else {
        $("error").textContent = (err.code || "error") + ": " + (err.message || "");
        $("error").hidden = false;
      }
    },
  });
}

if (jobID) {
  snippets();
  loadDetails();
  follow();
} else {
  showNotFound();
}
