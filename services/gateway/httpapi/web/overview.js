// overview.js: per-type counts, the last hour's throughput and failures
// (an SVG chart drawn here, no library), queue depth and age, runners; from
// GET /api/stats, every few seconds.
"use strict";

const $ = (id) => document.getElementById(id);
const { el } = jw;
const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 5000;
const SERIES = ["succeeded", "failed", "canceled"];

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function sum(list, key) {
  return list.reduce((n, m) => n + (Number(m[key]) || 0), 0);
}

// chart draws one bar per minute, stacked succeeded / failed / canceled,
// oldest on the left.
function chart(type, minutes) {
  const W = 600, H = 120, top = 4, bottom = 2, left = 0, right = 0;
  const plotH = H - top - bottom, plotW = W - left - right;
  const most = Math.max(1, ...minutes.map((m) => SERIES.reduce((n, k) => n + (Number(m[k]) || 0), 0)));
  const titleID = "chart-title-" + type, descID = "chart-desc-" + type;
  const root = svg("svg", {
    viewBox: "0 0 " + W + " " + H, class: "chart", role: "img", "aria-labelledby": titleID + " " + descID,
    preserveAspectRatio: "none",
  });
  root.append(svg("title", { id: titleID }, "Jobs of type " + type + " that ended, per minute, over the last hour"));
  root.append(svg("desc", { id: descID },
    sum(minutes, "succeeded") + " succeeded, " + sum(minutes, "failed") + " failed, " + sum(minutes, "canceled") +
    " canceled; at most " + most + " in one minute."));
  // The grid line marks the busiest minute; the labels are HTML (axis()),
  // so they keep their size however wide the chart is drawn.
  root.append(svg("line", { x1: left, y1: top, x2: W - right, y2: top, class: "grid" }));
  root.append(svg("line", { x1: left, y1: top + plotH, x2: W - right, y2: top + plotH, class: "axis" }));
  const n = Math.max(minutes.length, 1);
  const slot = plotW / n;
  const barW = Math.max(slot - 1.5, 1);
  minutes.forEach((m, i) => {
    let y = top + plotH;
    const g = svg("g", { class: "minute" });
    const total = SERIES.reduce((s, k) => s + (Number(m[k]) || 0), 0);
    g.append(svg("title", {}, (m.minute ? new Date(m.minute).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + ": " : "") +
      SERIES.map((k) => (Number(m[k]) || 0) + " " + k).join(", ")));
    for (const k of SERIES) {
      const v = Number(m[k]) || 0;
      if (v <= 0) continue;
      const h = (v / most) * plotH;
      y -= h;
      g.append(svg("rect", { x: (left + i * slot).toFixed(2), y: y.toFixed(2), width: barW.toFixed(2), height: h.toFixed(2), class: "bar-" + k }));
    }
    if (total === 0) {
      g.append(svg("rect", { x: (left + i * slot).toFixed(2), y: top, width: barW.toFixed(2), height: plotH, class: "slot" }));
    }
    root.append(g);
  });
  return root;
}

// axis labels the chart: its time span and its busiest minute.
function axis(minutes) {
  const most = Math.max(0, ...minutes.map((m) => SERIES.reduce((n, k) => n + (Number(m[k]) || 0), 0)));
  const row = el("div", "chart-axis");
  row.setAttribute("aria-hidden", "true"); // the chart's description says it
  row.append(el("span", "", "60 min ago"), el("span", "", "busiest minute: " + most), el("span", "", "now"));
  return row;
}

function legend() {
  const ul = el("ul", "legend");
  for (const k of SERIES) {
    const li = el("li");
    li.append(el("span", "swatch swatch-" + k), k);
    ul.append(li);
  }
  return ul;
}

function fact(dl, label, value) {
  dl.append(el("dt", "", label), el("dd", "", value));
}

function typeCard(t) {
  const card = el("article", "type-card");
  card.dataset.type = t.type;
  const h = el("h2", "", t.type);
  card.append(h);
  const counts = el("ul", "counts");
  counts.setAttribute("aria-label", "Jobs of type " + t.type + " by status");
  for (const s of jw.STATUSES) {
    const li = el("li");
    li.dataset.status = s;
    li.append(el("span", "count", String((t.counts && t.counts[s]) || 0)), jw.statusChip(s));
    counts.append(li);
  }
  card.append(counts);
  const dl = el("dl", "facts");
  if (t.queued) {
    fact(dl, "Queue depth", String(t.queued.depth || 0));
    fact(dl, "Oldest waiting", t.queued.depth ? jw.duration((t.queued.oldest_age_seconds || 0) * 1000) : "–");
  }
  if (t.runners) {
    fact(dl, "Runners", String(t.runners.count || 0));
    fact(dl, "Concurrency", String(t.runners.concurrency || 0));
  }
  if (dl.children.length) card.append(dl);
  const minutes = Array.isArray(t.per_minute) ? t.per_minute : [];
  card.append(el("h3", "", "Last hour"));
  card.append(chart(t.type, minutes));
  card.append(axis(minutes));
  card.append(legend());
  return card;
}

let timer = 0;

async function refresh() {
  clearTimeout(timer);
  try {
    const res = await jw.api("/api/stats");
    if (res.status === 401) {
      jw.signInNeeded();
      $("overview-note").textContent = "Sign in with a token to see statistics.";
      $("overview-note").classList.add("error-text");
    } else if (res.status === 404) {
      $("overview-note").textContent = "This gateway does not serve statistics (GET /api/stats answered 404).";
      $("overview-note").classList.add("error-text");
    } else if (!res.ok) {
      $("overview-note").textContent = await jw.errorText(res, "Could not load statistics");
      $("overview-note").classList.add("error-text");
    } else {
      render(await res.json());
    }
  } catch (err) {
    $("overview-note").textContent = "Could not reach the server (" + err.message + "); trying again.";
    $("overview-note").classList.add("error-text");
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function render(stats) {
  const types = Array.isArray(stats.types) ? stats.types : [];
  const note = $("overview-note");
  note.classList.remove("error-text");
  note.textContent = (stats.scope === "all" ? "Every owner's jobs." : "Your jobs.") + (types.length ? "" : " No job types yet.");
  $("generated").textContent = stats.generated_at ? "Updated " + new Date(stats.generated_at).toLocaleTimeString() : "";
  $("types").replaceChildren(...types.map(typeCard));
}

refresh();
