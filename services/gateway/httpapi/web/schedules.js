// schedules.js: the caller's recurring schedules (GET /api/schedules; an
// admin sees everyone's), each with its next run counting down, pause or
// resume, and delete after an inline confirmation; and a form that makes a
// new one (POST /api/schedules) from a type, its input as JSON, a cron
// expression or an interval, a time zone and a priority.
"use strict";

const $ = (id) => document.getElementById(id);
const { el } = jw;
const REFRESH_MS = 5000;

let list = [];       // the schedules shown
let refreshTimer = 0;
let confirming = ""; // the schedule whose delete awaits confirmation
let loadSeq = 0;

function note(text, isError) {
  $("schedules-note").textContent = text;
  $("schedules-note").classList.toggle("error-text", !!isError);
}

function announce(text) {
  $("schedules-announce").textContent = text;
}

async function load() {
  clearTimeout(refreshTimer);
  const seq = ++loadSeq;
  try {
    const res = await jw.api("/api/schedules");
    if (seq !== loadSeq) return;
    if (res.status === 401) {
      jw.signInNeeded();
      note("Sign in with a token to see your schedules.", true);
    } else if (res.status === 404) {
      note("This gateway does not serve schedules (GET /api/schedules answered 404).", true);
    } else if (!res.ok) {
      note(await jw.errorText(res, "Could not load schedules"), true);
    } else {
      const body = await res.json();
      if (seq !== loadSeq) return;
      list = Array.isArray(body.schedules) ? body.schedules : [];
      render();
    }
  } catch (err) {
    if (seq === loadSeq) note("Could not reach the server (" + err.message + "); trying again.", true);
  }
  if (seq === loadSeq) refreshTimer = setTimeout(load, REFRESH_MS);
}

function repeats(s) {
  if (s.every) return "every " + s.every;
  if (s.cron) return s.cron + (s.time_zone ? " (" + s.time_zone + ")" : "");
  return "–";
}

function cell(label, className, child) {
  const td = el("td", className);
  if (label) td.dataset.label = label;
  if (child !== undefined) td.append(child);
  return td;
}

function button(text, className, onClick) {
  const b = el("button", className, text);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

// render rebuilds the table, keeping the focus on the same control of the
// same schedule if it had it.
function render() {
  const active = document.activeElement;
  const focusKey = active && active.dataset && active.dataset.key;
  const tbody = $("schedules");
  if (list.length === 0) {
    note("No schedules yet. Make one below.");
    tbody.replaceChildren();
    return;
  }
  note(list.length === 1 ? "1 schedule." : list.length + " schedules.");
  tbody.replaceChildren(...list.map(row));
  if (focusKey) {
    const again = tbody.querySelector('[data-key="' + CSS.escape(focusKey) + '"]');
    if (again) again.focus();
  }
  highlight();
  tick();
}

function row(s) {
  const tr = el("tr");
  tr.id = "schedule-" + s.id;
  tr.dataset.id = s.id;
  const name = el("code", "", s.id);
  const type = cell("Type", "type", s.type || "");
  if (s.priority && s.priority !== 2) {
    const p = jw.priorityName(s.priority);
    const mark = el("span", "prio", p === "high" ? "↑ high" : "↓ low");
    mark.dataset.priority = String(s.priority);
    mark.title = p + " priority";
    type.append(mark);
  }
  const next = cell("Next run", "next");
  if (s.paused) {
    next.append("–");
  } else if (s.next_run_at) {
    next.append(jw.timeEl(s.next_run_at), " · ", el("span", "countdown", ""));
    next.dataset.at = s.next_run_at;
  } else {
    next.append("–");
  }
  const state = jw.statusChip(s.paused ? "paused" : "active");
  state.classList.add("state");
  tr.append(cell("", "id", name), type, cell("Repeats", "repeats", repeats(s)), next, cell("State", "state-cell", state), actions(s));
  return tr;
}

function actions(s) {
  const td = cell("Actions", "actions-cell");
  const what = "schedule " + s.id + " (" + (s.type || "job") + ")";
  if (confirming === s.id) {
    const box = el("span", "confirm");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Delete " + what + "?");
    const yes = button("Delete", "danger delete-yes", () => remove(s));
    yes.dataset.key = s.id + ":yes";
    const no = button("Keep", "secondary delete-no", () => {
      confirming = "";
      render();
      focusKey(s.id + ":delete");
    });
    no.dataset.key = s.id + ":no";
    box.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") no.click();
    });
    box.append(el("span", "", "Delete it?"), yes, no);
    td.append(box);
    return td;
  }
  const toggle = button(s.paused ? "Resume" : "Pause", "secondary " + (s.paused ? "resume" : "pause"), () => setPaused(s, !s.paused));
  toggle.dataset.key = s.id + ":toggle";
  toggle.setAttribute("aria-label", (s.paused ? "Resume " : "Pause ") + what);
  const del = button("Delete", "secondary delete", () => {
    confirming = s.id;
    render();
    focusKey(s.id + ":no"); // the safe choice first
  });
  del.dataset.key = s.id + ":delete";
  del.setAttribute("aria-label", "Delete " + what);
  td.append(toggle, del);
  return td;
}

function focusKey(key) {
  const b = $("schedules").querySelector('[data-key="' + CSS.escape(key) + '"]');
  if (b) b.focus();
}

async function setPaused(s, paused) {
  const path = "/api/schedules/" + encodeURIComponent(s.id) + (paused ? "/pause" : "/resume");
  try {
    const res = await jw.postJSON(path);
    if (!res.ok) {
      note(await jw.errorText(res, "Could not " + (paused ? "pause" : "resume") + " the schedule"), true);
      return;
    }
    const updated = await res.json();
    list = list.map((x) => (x.id === s.id ? Object.assign({}, x, updated) : x));
    render();
    announce("Schedule " + s.id + (paused ? " paused." : " resumed."));
  } catch (err) {
    note("Could not reach the server (" + err.message + ").", true);
  }
}

async function remove(s) {
  try {
    const res = await jw.api("/api/schedules/" + encodeURIComponent(s.id), { method: "DELETE" });
    if (!res.ok && res.status !== 404) {
      note(await jw.errorText(res, "Could not delete the schedule"), true);
      return;
    }
    confirming = "";
    list = list.filter((x) => x.id !== s.id);
    render();
    announce("Schedule " + s.id + " deleted.");
    $("new-title").focus();
  } catch (err) {
    note("Could not reach the server (" + err.message + ").", true);
  }
}

// tick counts the next runs down.
function tick() {
  for (const td of $("schedules").querySelectorAll("td.next[data-at]")) {
    td.querySelector(".countdown").textContent = jw.countdown(td.dataset.at);
  }
}
setInterval(tick, 1000);

// highlight marks the schedule the address names (#schedule-<id>, the
// link from a job page).
function highlight() {
  const id = decodeURIComponent(location.hash.replace(/^#schedule-/, ""));
  for (const tr of $("schedules").querySelectorAll("tr")) tr.classList.toggle("highlight", !!id && tr.dataset.id === id);
}
window.addEventListener("hashchange", highlight);

// ---- The form ------------------------------------------------------------

const form = $("schedule-form");
const typeSelect = $("schedule-type");
const input = $("schedule-input");
const formError = $("schedule-error");
let types = [];

function showError(text, focus) {
  formError.textContent = text;
  formError.hidden = !text;
  if (text && focus) focus.focus();
}

function setRepeat() {
  const cron = $("repeat-cron").checked;
  $("cron-box").hidden = !cron;
  $("every-box").hidden = cron;
}
$("repeat-every").addEventListener("change", setRepeat);
$("repeat-cron").addEventListener("change", setRepeat);

async function loadTypes() {
  const res = await jw.api("/api/job-types");
  if (!res.ok) throw new Error("HTTP " + res.status);
  types = (await res.json()).job_types || [];
  typeSelect.replaceChildren(...types.map((t) => new Option(t.type, t.type)));
  showType();
}

function showType() {
  const t = types.find((x) => x.type === typeSelect.value);
  $("schedule-type-description").textContent = t ? t.description || "" : "";
  input.value = JSON.stringify(t && t.example_input !== undefined ? t.example_input : {}, null, 2);
}
typeSelect.addEventListener("change", showType);

function initZone() {
  let zone = "UTC";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    // an old browser: UTC
  }
  $("schedule-zone").value = zone;
  try {
    $("zones").replaceChildren(...Intl.supportedValuesOf("timeZone").map((z) => new Option(z, z)));
  } catch {
    // no list of zones: the field still takes any name
  }
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const btn = $("schedule-create");
  if (btn.disabled) return;
  const body = { type: typeSelect.value };
  if (!body.type) return showError("Choose a type.", typeSelect);
  if (input.value.trim() !== "") {
    try {
      body.input = JSON.parse(input.value);
    } catch (err) {
      return showError("Input is not valid JSON: " + err.message, input);
    }
  }
  if ($("repeat-cron").checked) {
    body.cron = $("schedule-cron").value.trim();
    if (!body.cron) return showError("Give a cron expression.", $("schedule-cron"));
    if ($("schedule-zone").value.trim()) body.time_zone = $("schedule-zone").value.trim();
  } else {
    body.every = $("schedule-every").value.trim();
    if (!body.every) return showError("Give an interval, e.g. 30s.", $("schedule-every"));
  }
  if ($("schedule-priority").value !== "2") body.priority = Number($("schedule-priority").value);
  if ($("schedule-paused").checked) body.paused = true;
  showError("");
  btn.disabled = true;
  try {
    const res = await jw.postJSON("/api/schedules", body);
    if (res.status === 201 || res.status === 200) {
      const s = await res.json();
      if (s && s.id) {
        list = [s].concat(list.filter((x) => x.id !== s.id));
        render();
        announce("Schedule " + s.id + " created.");
      }
      load();
    } else if (res.status === 401) {
      jw.signInNeeded();
      showError("Sign in with a token first.");
    } else {
      showError(await jw.errorText(res, "The server refused the schedule"));
    }
  } catch (err) {
    showError("Could not reach the server (" + err.message + ").");
  } finally {
    btn.disabled = false;
  }
});

$("new-title").tabIndex = -1; // focus lands here after a delete
jw.prioritySelect($("schedule-priority"));
initZone();
setRepeat();
loadTypes().catch((err) => {
  $("schedule-type-description").textContent = "Could not load job types (" + err.message + ").";
});
load();
