// index.js: the jobs page. A live table of the caller's jobs (GET
// /api/jobs, then the live feed over /ws: watch_all for admins, watch_mine
// for everyone else), filters and paging kept in the URL, "go to job", and
// the queue form generated from the selected type's JSON Schema. The queue
// form also works as a plain HTML form without scripts.
"use strict";

const $ = (id) => document.getElementById(id);
const { el } = jw;

// ---- The jobs table ----------------------------------------------------

const params = new URLSearchParams(location.search);
const view = {
  status: params.get("status") || "",
  type: params.get("type") || "",
  limit: Math.min(Math.max(parseInt(params.get("limit"), 10) || 20, 1), 500),
  cursor: "",    // the cursor of the page shown ("" for the newest)
  newer: [],     // the cursors of the pages before it, for "Newer"
  next: "",      // the next_cursor of the page shown
};
const rows = new Map(); // job id -> {tr, job}
let feed = "";          // "all" or "mine" once the feed is on; "poll" when refused
let pollTimer = 0;
let loadSeq = 0;        // ignores answers to superseded loads

$("filter-status").value = view.status;

function firstPage() {
  return view.cursor === "";
}

function matches(job) {
  return (!view.status || job.status === view.status) && (!view.type || job.type === view.type);
}

// saveURL keeps the filters (and a non-default limit) in the address bar,
// so a reload or a shared link shows the same jobs.
function saveURL() {
  const q = new URLSearchParams();
  if (view.status) q.set("status", view.status);
  if (view.type) q.set("type", view.type);
  if (params.has("limit")) q.set("limit", String(view.limit));
  const s = q.toString();
  history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
}

async function load() {
  const seq = ++loadSeq;
  const q = new URLSearchParams({ limit: String(view.limit) });
  if (view.status) q.set("status", view.status);
  if (view.type) q.set("type", view.type);
  if (view.cursor) q.set("cursor", view.cursor);
  let res, body;
  try {
    res = await jw.api("/api/jobs?" + q);
    if (res.status === 401 && seq === loadSeq) {
      jw.signInNeeded();
      showNote("Sign in with a token to see your jobs.", true);
      return;
    }
    if (!res.ok) {
      showNote(await jw.errorText(res, "Could not load jobs"), true);
      return;
    }
    body = await res.json();
  } catch (err) {
    if (seq === loadSeq) showNote("Could not load jobs (" + err.message + ").", true);
    return;
  }
  if (seq !== loadSeq) return;
  view.next = body.next_cursor || "";
  renderRows(body.jobs || []);
}

function showNote(text, isError) {
  const note = $("list-note");
  note.textContent = text;
  note.classList.toggle("error-text", !!isError);
}

function renderRows(list) {
  const tbody = $("jobs");
  const shown = [...tbody.querySelectorAll("tr[data-id]")].map((tr) => tr.dataset.id);
  if (list.length > 0 && shown.length === list.length && list.every((j, i) => j.id === shown[i])) {
    // The same jobs: update them in place, so focus and selection stay.
    for (const j of list) {
      const row = rows.get(j.id);
      if (typeof row.job.seq === "number" && typeof j.seq === "number" && j.seq < row.job.seq) continue; // the feed was ahead
      row.job = j;
      fillRow(row.tr, j);
    }
    showNote("");
    updatePager(list.length);
    return;
  }
  rows.clear();
  tbody.replaceChildren(...list.map((j) => {
    const tr = makeRow(j);
    rows.set(j.id, { tr, job: j });
    return tr;
  }));
  if (list.length === 0) {
    const filtered = view.status || view.type;
    let text = filtered ? "No jobs match these filters." : (firstPage() ? "No jobs yet. Queue one below." : "No older jobs.");
    if (view.next) text = "No matching jobs among the newest examined; “Older” looks further back.";
    const tr = el("tr", "empty");
    const td = el("td", "hint", text);
    td.colSpan = 6;
    tr.append(td);
    tbody.append(tr);
  }
  showNote("");
  updatePager(list.length);
}

function updatePager(shown) {
  $("older").disabled = !view.next;
  $("newer").disabled = firstPage();
  const page = view.newer.length + (firstPage() ? 0 : 1) + 1;
  $("page-info").textContent = "Page " + page + (shown ? " · " + shown + (shown === 1 ? " job" : " jobs") : "");
}

function makeRow(j) {
  const tr = el("tr");
  tr.dataset.id = j.id;
  const idCell = el("td", "id");
  const a = el("a");
  a.href = "/jobs/" + encodeURIComponent(j.id);
  a.append(el("code", "", j.id));
  idCell.append(a);
  const typeCell = el("td", "type", j.type || "");
  typeCell.dataset.label = "Type";
  const statusCell = el("td", "status-cell");
  statusCell.dataset.label = "Status";
  const prio = el("span", "prio");
  statusCell.append(jw.statusChip(j.status), prio);
  const progCell = el("td", "prog");
  progCell.dataset.label = "Progress";
  progCell.append(jw.progressBar("Progress of job " + j.id));
  const createdCell = el("td", "created");
  createdCell.dataset.label = "Created";
  createdCell.append(jw.timeEl(j.created_at));
  const timeCell = el("td", "elapsed");
  timeCell.dataset.label = "Time";
  tr.append(idCell, typeCell, statusCell, progCell, createdCell, timeCell);
  fillRow(tr, j);
  return tr;
}

function fillRow(tr, j) {
  tr.dataset.status = j.status;
  const chip = tr.querySelector(".status");
  chip.textContent = j.status;
  chip.dataset.status = j.status;
  // Only high and low are marked: normal is what most jobs are.
  const prio = tr.querySelector(".prio");
  const p = jw.priorityName(j.priority);
  prio.hidden = p === "normal";
  prio.dataset.priority = String(j.priority || 2);
  prio.textContent = p === "high" ? "↑ high" : p === "low" ? "↓ low" : "";
  prio.title = p + " priority";
  jw.setProgress(tr.querySelector(".bar"), j.percent, j.status);
  tr.querySelector(".elapsed").textContent = elapsedText(j);
}

// elapsedText is how long a job ran (or has been running, or waiting).
function elapsedText(j) {
  if (j.status === "canceled" && j.error && j.error.code === "expired") return "expired, never started";
  if (typeof j.duration_ms === "number") return jw.duration(j.duration_ms);
  const now = Date.now();
  if (j.status === "scheduled" && j.run_at) return jw.countdown(j.run_at);
  if (j.status === "running" && j.started_at) return jw.duration(now - Date.parse(j.started_at)) + " so far";
  if (j.status === "queued" && j.next_attempt_at) return "retry in " + jw.duration(Math.max(Date.parse(j.next_attempt_at) - now, 0));
  if (j.status === "queued" && j.created_at) return "waiting " + jw.duration(now - Date.parse(j.created_at));
  return "";
}

// jobOf is the snapshot an event describes (every event carries the
// job's whole state).
function jobOf(id, ev) {
  const j = Object.assign({}, ev, { id });
  if (ev.started_at && ev.ended_at) j.duration_ms = Math.max(Date.parse(ev.ended_at) - Date.parse(ev.started_at), 0);
  return j;
}

function onEvent(id, ev) {
  const row = rows.get(id);
  if (row) {
    if (typeof ev.seq === "number" && typeof row.job.seq === "number" && ev.seq <= row.job.seq) return;
    const before = row.job.status;
    row.job = jobOf(id, ev);
    fillRow(row.tr, row.job);
    if (before !== row.job.status && jw.TERMINAL.has(row.job.status)) {
      $("announce").textContent = "Job " + id + " " + row.job.status + ".";
    }
    return;
  }
  const job = jobOf(id, ev);
  if (!firstPage() || !matches(job)) return;
  const tbody = $("jobs");
  const empty = tbody.querySelector("tr.empty");
  if (empty) empty.remove();
  const tr = makeRow(job);
  rows.set(id, { tr, job });
  tbody.prepend(tr);
  updatePager(rows.size);
  $("announce").textContent = "New job " + id + " (" + (job.type || "job") + "), " + job.status + ".";
}

// Running and waiting jobs' times tick.
setInterval(() => {
  for (const { tr, job } of rows.values()) {
    if (!jw.TERMINAL.has(job.status)) tr.querySelector(".elapsed").textContent = elapsedText(job);
  }
}, 1000);

$("older").addEventListener("click", () => {
  if (!view.next) return;
  view.newer.push(view.cursor);
  view.cursor = view.next;
  load();
});

$("newer").addEventListener("click", () => {
  if (firstPage()) return;
  view.cursor = view.newer.pop() || "";
  load();
});

function onFilter() {
  view.status = $("filter-status").value;
  view.type = $("filter-type").value;
  view.cursor = "";
  view.newer = [];
  saveURL();
  load();
}
$("filter-status").addEventListener("change", onFilter);
$("filter-type").addEventListener("change", onFilter);
$("filters").addEventListener("submit", (ev) => {
  ev.preventDefault();
  onFilter();
});

$("goto-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = $("goto-id").value.trim();
  if (!jw.ID_PATTERN.test(id)) {
    $("goto-id").setCustomValidity("A job id is 1 to 64 letters, digits, - or _.");
    $("goto-id").reportValidity();
    return;
  }
  location.assign("/jobs/" + encodeURIComponent(id));
});
$("goto-id").addEventListener("input", () => $("goto-id").setCustomValidity(""));

// ---- The live feed -----------------------------------------------------

let delay = 500;
let connectedBefore = false;

function setConn(text) {
  $("conn").textContent = text;
}

function startPolling() {
  clearInterval(pollTimer);
  pollTimer = setInterval(load, 10000);
}

function connect() {
  const ws = jw.socket();
  feed = "";
  ws.addEventListener("open", () => {
    // Admins follow every job; anyone else is refused watch_all
    // (forbidden) and follows their own jobs instead.
    ws.send(JSON.stringify({ op: "watch_all" }));
    feed = "all?";
    setConn("live");
    clearInterval(pollTimer);
    if (connectedBefore) load(); // what happened while there was no feed
    connectedBefore = true;
  });
  ws.addEventListener("message", (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return;
    }
    if (msg.op === "event" && msg.event && msg.job_id) {
      delay = 500;
      if (feed === "all?") feed = "all";
      onEvent(msg.job_id, msg.event);
    } else if (msg.op === "error" && !msg.job_id) {
      if (feed === "all?" && msg.code === "forbidden") {
        feed = "mine?";
        ws.send(JSON.stringify({ op: "watch_mine" }));
      } else if (feed === "mine?" && msg.code === "bad_request") {
        // A gateway without watch_mine: read the list now and then.
        feed = "poll";
        setConn("refreshing every 10 s");
        startPolling();
      } else if (msg.code === "unavailable") {
        ws.close(1000, "retry later");
      }
    }
  });
  ws.addEventListener("close", () => {
    setConn("reconnecting…");
    startPolling();
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 10000);
  });
}

// ---- The queue form ----------------------------------------------------

const typeSelect = $("job-type");
const input = $("job-input");
const description = $("type-description");
const formError = $("form-error");
const fieldsBox = $("schema-fields");
const rawToggle = $("raw-toggle");
let types = [];
let fields = []; // the generated fields of the selected type: {name, prop, control, kind, required}

function pretty(v) {
  return JSON.stringify(v === undefined ? {} : v, null, 2);
}

function selectedType() {
  return types.find((t) => t.type === typeSelect.value);
}

// kindOf is how a form field can edit schema property prop, or "" if it
// cannot (objects, arrays, unions: those need the raw JSON).
function kindOf(prop) {
  if (!prop || typeof prop !== "object") return "";
  if (Array.isArray(prop.enum) && prop.enum.length > 0) return "enum";
  if (["string", "number", "integer", "boolean"].includes(prop.type)) return prop.type;
  return "";
}

// buildFields makes a field for each property of the selected type's
// schema that a field can edit, and says whether the form can make every
// input the type needs (else the raw JSON is the way).
function buildFields(t) {
  fields = [];
  fieldsBox.replaceChildren();
  const schema = t && t.input_schema;
  if (!schema || schema.type !== "object" || !schema.properties || typeof schema.properties !== "object") return false;
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  const example = t.example_input && typeof t.example_input === "object" ? t.example_input : {};
  let complete = true;
  for (const [name, prop] of Object.entries(schema.properties)) {
    const kind = kindOf(prop);
    if (!kind) {
      if (required.has(name)) complete = false;
      continue;
    }
    const id = "field-" + name.replace(/[^A-Za-z0-9_-]/g, "_");
    const wrap = el("div", kind === "boolean" ? "field check" : "field");
    const label = el("label", "", prop.title || name);
    label.htmlFor = id;
    if (required.has(name)) label.append(el("span", "req", " (required)"));
    let control;
    if (kind === "enum") {
      control = el("select");
      if (!required.has(name)) control.append(new Option("—", ""));
      prop.enum.forEach((v, i) => control.append(new Option(String(v), String(i))));
    } else if (kind === "boolean") {
      control = el("input");
      control.type = "checkbox";
    } else {
      control = el("input");
      if (kind === "string") {
        control.type = "text";
        if (typeof prop.minLength === "number") control.minLength = prop.minLength;
        if (typeof prop.maxLength === "number") control.maxLength = prop.maxLength;
        if (typeof prop.pattern === "string") control.pattern = prop.pattern;
      } else {
        control.type = "number";
        control.step = kind === "integer" ? "1" : "any";
        const min = typeof prop.minimum === "number" ? prop.minimum : prop.exclusiveMinimum;
        const maxv = typeof prop.maximum === "number" ? prop.maximum : prop.exclusiveMaximum;
        if (typeof min === "number") control.min = String(min);
        if (typeof maxv === "number") control.max = String(maxv);
        control.inputMode = kind === "integer" ? "numeric" : "decimal";
      }
    }
    control.id = id;
    control.name = "field." + name; // never posted: the raw box is the plain form's input
    control.required = required.has(name) && kind !== "boolean";
    const hintText = [prop.description, rangeText(prop)].filter(Boolean).join(" ");
    if (hintText) {
      const hint = el("p", "hint", hintText);
      hint.id = id + "-hint";
      control.setAttribute("aria-describedby", hint.id);
      if (kind === "boolean") wrap.append(control, label, hint);
      else wrap.append(label, control, hint);
    } else if (kind === "boolean") {
      wrap.append(control, label);
    } else {
      wrap.append(label, control);
    }
    fieldsBox.append(wrap);
    fields.push({ name, prop, control, kind, required: required.has(name) });
  }
  setFields(Object.assign(defaultsOf(schema), example));
  return complete && fields.length > 0;
}

function rangeText(prop) {
  const lo = typeof prop.minimum === "number" ? prop.minimum : null;
  const hi = typeof prop.maximum === "number" ? prop.maximum : null;
  if (lo !== null && hi !== null) return "From " + lo + " to " + hi + ".";
  if (lo !== null) return "At least " + lo + ".";
  if (hi !== null) return "At most " + hi + ".";
  return "";
}

function defaultsOf(schema) {
  const d = {};
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    if (prop && "default" in prop) d[name] = prop.default;
  }
  return d;
}

function setFields(values) {
  for (const f of fields) {
    const v = values[f.name];
    if (f.kind === "boolean") f.control.checked = v === true;
    else if (f.kind === "enum") {
      const i = f.prop.enum.findIndex((e) => JSON.stringify(e) === JSON.stringify(v));
      f.control.value = i >= 0 ? String(i) : (f.required ? "0" : "");
    } else f.control.value = v === undefined || v === null ? "" : String(v);
  }
}

// fieldValues is the input the fields describe; empty optional fields are left out.
function fieldValues() {
  const out = {};
  for (const f of fields) {
    const c = f.control;
    if (f.kind === "boolean") {
      out[f.name] = c.checked;
    } else if (f.kind === "enum") {
      if (c.value !== "") out[f.name] = f.prop.enum[Number(c.value)];
    } else if (c.value !== "") {
      out[f.name] = f.kind === "string" ? c.value : Number(c.value);
    }
  }
  return out;
}

function setRaw(raw) {
  rawToggle.checked = raw;
  $("raw-box").hidden = !raw;
  fieldsBox.hidden = raw;
  for (const f of fields) f.control.disabled = raw; // skipped by validation while raw
}

rawToggle.addEventListener("change", () => {
  formError.hidden = true;
  if (rawToggle.checked) {
    input.value = pretty(fieldValues());
    setRaw(true);
    return;
  }
  let v;
  try {
    v = input.value.trim() === "" ? {} : JSON.parse(input.value);
  } catch (err) {
    showFormError("Fix the JSON before going back to the form: " + err.message);
    rawToggle.checked = true;
    return;
  }
  setFields(v && typeof v === "object" ? v : {});
  setRaw(false);
});

// showType describes the selected type and builds its form; with
// replaceInput it also puts the type's example into the raw box.
function showType(replaceInput) {
  const t = selectedType();
  description.textContent = t ? t.description || "" : "";
  if (t && replaceInput) input.value = pretty(t.example_input);
  const usable = buildFields(t);
  $("raw-toggle-row").hidden = fields.length === 0;
  setRaw(!usable);
}

async function loadTypes() {
  const res = await jw.api("/api/job-types");
  if (!res.ok) throw new Error("HTTP " + res.status);
  types = (await res.json()).job_types || [];
  const filter = $("filter-type");
  filter.replaceChildren(new Option("any", ""), ...types.map((t) => new Option(t.type, t.type)));
  if (view.type && !types.some((t) => t.type === view.type)) filter.append(new Option(view.type, view.type));
  filter.value = view.type;
  if (types.length === 0) return;
  const selected = typeSelect.value;
  typeSelect.replaceChildren(...types.map((t) => new Option(t.type, t.type)));
  if (types.some((t) => t.type === selected)) typeSelect.value = selected;
  // Keep what the user typed; only replace the untouched static default.
  showType(input.value === input.defaultValue);
}

typeSelect.addEventListener("change", () => {
  formError.hidden = true;
  showType(true);
});

const form = $("queue-form");
const queueButton = $("queue-button");
const queueLabel = queueButton.textContent;

function showFormError(text) {
  formError.textContent = text;
  formError.hidden = false;
}

function setBusy(busy) {
  queueButton.disabled = busy;
  queueButton.textContent = busy ? "Queuing…" : queueLabel;
  form.setAttribute("aria-busy", busy ? "true" : "false");
}

// timing adds the "Timing and priority" choices to body, or says what is
// wrong with them.
function timing(body) {
  const runAt = $("run-at").value, delay = $("delay").value.trim();
  if (runAt && delay) return "Give either Run at or Delay, not both.";
  if (runAt) {
    body.run_at = jw.localToISO(runAt);
    if (!body.run_at) return "Run at is not a date and time.";
  }
  if (delay) body.delay = delay;
  if ($("expires-at").value) {
    body.expires_at = jw.localToISO($("expires-at").value);
    if (!body.expires_at) return "Expires at is not a date and time.";
  }
  if ($("priority").value !== "2") body.priority = Number($("priority").value);
  return "";
}

async function submitJob() {
  const body = { type: typeSelect.value };
  const timingError = timing(body);
  if (timingError) {
    showFormError(timingError);
    $("timing").open = true;
    return;
  }
  if (!rawToggle.checked && fields.length > 0) {
    body.input = fieldValues();
  } else if (input.value.trim() !== "") {
    try {
      body.input = JSON.parse(input.value);
    } catch (err) {
      showFormError("Input is not valid JSON: " + err.message);
      input.focus();
      return;
    }
  }
  formError.hidden = true;
  setBusy(true);
  let res;
  try {
    res = await jw.postJSON("/api/jobs", body);
  } catch (err) {
    showFormError("Could not reach the server (" + err.message + "). Check your connection and try again; the jobs above show whether it was queued.");
    setBusy(false);
    return;
  }
  try {
    if (res.status === 202) {
      const job = await res.json();
      if (job && typeof job.id === "string" && job.id !== "") {
        location.assign("/jobs/" + encodeURIComponent(job.id));
        return; // stays busy while the browser leaves the page
      }
      showFormError("The server accepted the job but did not say its id; see the jobs above.");
      load();
    } else {
      showFormError(await jw.errorText(res, "The server refused the job"));
    }
  } catch (err) {
    showFormError("Could not read the server's answer (" + err.message + "); the job may have been queued, see the jobs above.");
    load();
  }
  setBusy(false);
}

// With JavaScript the form submits itself to the JSON API, so that an error
// shows next to the button and the user's input stays; without it the
// browser posts the form to /jobs as usual.
form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (queueButton.disabled) return; // one submission at a time
  submitJob();
});

// Coming back to this page from the job page (back/forward cache) must not
// leave the button disabled.
window.addEventListener("pageshow", (ev) => {
  if (ev.persisted) setBusy(false);
});

jw.prioritySelect($("priority"));
$("timing").hidden = false;

loadTypes().catch((err) => {
  description.textContent = "Could not load job types (" + err.message + ").";
});
load();
connect();
