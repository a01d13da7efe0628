// index.js: fills the job type list and the recent jobs of the index page.
// The form works without it; this only adds convenience.
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

async function refreshJobs() {
  try {
    await loadJobs();
  } catch (err) {
    jobList.replaceChildren(el("li", "error-text", "Could not load jobs (" + err.message + ")."));
  }
  setTimeout(refreshJobs, 5000);
}

typeSelect.addEventListener("change", () => showType(true));

document.getElementById("queue-form").addEventListener("submit", (ev) => {
  try {
    JSON.parse(input.value);
    formError.hidden = true;
  } catch (err) {
    ev.preventDefault();
    formError.textContent = "Input is not valid JSON: " + err.message;
    formError.hidden = false;
  }
});

loadTypes().catch((err) => { description.textContent = "Could not load job types (" + err.message + ")."; });
refreshJobs();
