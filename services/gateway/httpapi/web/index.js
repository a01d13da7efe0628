// index.js: fills the job type list and the recent jobs of the index page,
// and submits the form through the JSON API. The form works without it.
"use strict";

const typeSelect = document.getElementById("job-type");
const input = document.getElementById("job-input");
const description = document.getElementById("type-description");
const formError = document.getElementById("form-error");
const jobList = document.getElementById("jobs");
let types = [];

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function pretty(v) {
  return JSON.stringify(v === undefined ? {} : v, null, 2);
}

// showType describes the selected type; with replaceInput it also puts the
// type's example into the input box.
function showType(replaceInput) {
  const t = types.find((t) => t.type === typeSelect.value);
  description.textContent = t ? t.description || "" : "";
  if (t && replaceInput) input.value = pretty(t.example_input);
}

async function loadTypes() {
  const res = await fetch("/api/job-types");
  if (!res.ok) throw new Error("job types: HTTP " + res.status);
  types = (await res.json()).job_types || [];
  if (types.length === 0) return;
  const selected = typeSelect.value;
  typeSelect.replaceChildren(...types.map((t) => {
    const o = el("option", "", t.type);
    o.value = t.type;
    return o;
  }));
  if (types.some((t) => t.type === selected)) typeSelect.value = selected;
  // Keep what the user typed; only replace the untouched static default.
  showType(input.value === input.defaultValue);
}

function percentText(p) {
  return typeof p === "number" ? Math.floor(p) + "%" : "";
}

async function loadJobs() {
  const res = await fetch("/api/jobs?limit=20");
  if (!res.ok) throw new Error("jobs: HTTP " + res.status);
  const jobs = (await res.json()).jobs || [];
  if (jobs.length === 0) {
    jobList.replaceChildren(el("li", "hint", "No jobs yet."));
    return;
  }
  jobList.replaceChildren(...jobs.map((j) => {
    const li = el("li");
    const a = el("a");
    a.href = "/jobs/" + encodeURIComponent(j.id);
    a.append(el("code", "", j.id));
    const status = el("span", "status", j.status);
    status.dataset.status = j.status;
    const created = el("time", "hint", j.created_at ? new Date(j.created_at).toLocaleString() : "");
    if (j.created_at) created.dateTime = j.created_at;
    li.append(a, el("span", "type", j.type || ""), status, el("span", "pct", percentText(j.percent)), created);
    return li;
  }));
}

let refreshTimer = 0;

async function refreshJobs() {
  clearTimeout(refreshTimer);
  try {
    await loadJobs();
  } catch (err) {
    jobList.replaceChildren(el("li", "error-text", "Could not load jobs (" + err.message + ")."));
  }
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshJobs, 5000);
}

typeSelect.addEventListener("change", () => showType(true));

// With JavaScript the form submits itself to the JSON API, so that an error
// shows next to the button and the user's input stays; without it the
// browser posts the form to /jobs as usual.
const form = document.getElementById("queue-form");
const queueButton = document.getElementById("queue-button");
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

// errorText turns a failed response into one line for the user.
async function errorText(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON (say, a proxy's error page)
  }
  const e = body && body.error;
  if (e && (e.message || e.code)) {
    return (e.message || "Request failed") + (e.code ? " (" + e.code + ")" : "");
  }
  return "The server refused the job (HTTP " + res.status + (res.statusText ? " " + res.statusText : "") + ").";
}

async function submitJob() {
  const body = { type: typeSelect.value };
  if (input.value.trim() !== "") {
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
    res = await fetch("/api/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (err) {
    showFormError("Could not reach the server (" + err.message + "). Check your connection and try again; the recent jobs below show whether it was queued.");
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
      showFormError("The server accepted the job but did not say its id; see the recent jobs below.");
      refreshJobs();
    } else {
      showFormError(await errorText(res));
    }
  } catch (err) {
    showFormError("Could not read the server's answer (" + err.message + "); the job may have been queued, see the recent jobs below.");
    refreshJobs();
  }
  setBusy(false);
}

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

loadTypes().catch((err) => { description.textContent = "Could not load job types (" + err.message + ")."; });
refreshJobs();
