// job.js: shows one job's progress live, from the gateway's WebSocket:
// the job's whole stored history first (watch with after_seq 0), then the
// live events; after a reconnect it resumes after the last seq it showed.
"use strict";

const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
// The gateway keeps at most EVENTS_MAX_PER_JOB (default 10 000) events per
// job; the page keeps as many lines, so it shows what a reload would.
const MAX_LOG_LINES = 10000;
const $ = (id) => document.getElementById(id);

const jobID = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
let lastSeq = 0;   // the last event shown; a (re)connect watches after it
let terminal = false;
let gone = false; // the job does not exist: stop trying
let delay = 500;  // reconnect backoff, ms

$("job-id").textContent = jobID;
document.title = jobID + " · jobwire";

function setText(id, v) {
  $(id).textContent = v === undefined || v === null || v === "" ? "–" : String(v);
}

function render(ev) {
  setText("type", ev.type);
  setText("status", ev.status);
  $("status").dataset.status = ev.status || "";
  setText("stage", ev.stage);
  setText("message", ev.message);
  setText("attempt", ev.attempt);

  let pct = typeof ev.percent === "number" ? ev.percent : null;
  if (pct === null && ev.status === "succeeded") pct = 100;
  const bar = $("bar");
  if (pct === null) {
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
  terminal = TERMINAL.has(ev.status);
}

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
  $("notfound").hidden = false;
  $("conn").textContent = "";
  document.title = "Job not found · jobwire";
}

function onMessage(ws, data) {
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    return;
  }
  if (msg.job_id && msg.job_id !== jobID) return;
  if (msg.op === "event" && msg.event) {
    delay = 500; // the connection works; reset the backoff
    if (msg.event.seq <= lastSeq) return; // shown already
    if (msg.truncated) {
      // The events after lastSeq have expired: this is the current state.
      // Seq 1 is the job's request (its queued state, kept as long as the
      // job): a gap right after it means every earlier line is gone.
      addLogLine(lastSeq <= 1 ? "… earlier log lines are no longer stored" : "… some log lines are no longer stored", "log-gap");
    }
    lastSeq = msg.event.seq;
    render(msg.event);
    if (terminal) {
      $("conn").textContent = "finished";
      ws.close(1000, "job finished");
    }
  } else if (msg.op === "error") {
    if (msg.code === "not_found" || msg.code === "invalid_id") {
      showNotFound();
      ws.close(1000, "no such job");
    } else if (msg.code === "unavailable") {
      ws.close(1000, "retry later"); // reconnects with backoff and watches again
    } else {
      $("error").textContent = (msg.code || "error") + ": " + (msg.message || "");
      $("error").hidden = false;
    }
  }
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(proto + "//" + location.host + "/ws");
  ws.addEventListener("open", () => {
    $("conn").textContent = "live";
    // after_seq 0 replays the whole stored history: the log from its first line.
    ws.send(JSON.stringify({ op: "watch", job_id: jobID, after_seq: lastSeq }));
  });
  ws.addEventListener("message", (e) => onMessage(ws, e.data));
  ws.addEventListener("close", () => {
    if (terminal || gone) return;
    $("conn").textContent = "reconnecting…";
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 5000);
  });
}

if (jobID) connect(); else showNotFound();
