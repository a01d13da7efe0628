// common.js: what every page shares: the "Sign in with token" control
// (the token lives in sessionStorage and goes out as a bearer token on
// every request, and as a WebSocket subprotocol, since a browser cannot set
// headers on a WebSocket), small DOM and formatting helpers.
"use strict";

const jw = (() => {
  const TOKEN_KEY = "jobwire.token";
  const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
  const STATUSES = ["scheduled", "queued", "running", "succeeded", "failed", "canceled"];
  const PRIORITIES = { 1: "high", 2: "normal", 3: "low" }; // absent: normal
  const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  }

  function setToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage refused (private mode): the token lasts as long as the page
    }
  }

  // api fetches path with the signed-in token, if any.
  function api(path, options) {
    const opts = Object.assign({}, options || {});
    const headers = new Headers(opts.headers || {});
    if (!headers.has("Accept")) headers.set("Accept", "application/json");
    const t = token();
    if (t) headers.set("Authorization", "Bearer " + t);
    opts.headers = headers;
    return fetch(path, opts);
  }

  // postJSON posts body (if any) as JSON.
  function postJSON(path, body) {
    const opts = { method: "POST" };
    if (body !== undefined) {
      opts.headers = { "Content-Type": "application/json" };
      opts.body = JSON.stringify(body);
    }
    return api(path, opts);
  }

  // errorText turns a failed response into one line for the user.
  async function errorText(res, what) {
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
    return (what || "The request failed") + " (HTTP " + res.status + (res.statusText ? " " + res.statusText : "") + ").";
  }

  // socket opens the gateway's WebSocket as the signed-in caller.
  function socket() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = proto + "//" + location.host + "/ws";
    const t = token();
    return t ? new WebSocket(url, ["jobwire", "jobwire.bearer." + t]) : new WebSocket(url);
  }

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  // subject is the token's "sub" claim, for display only (the server
  // verifies the token; the page never trusts what it reads here).
  function subject(t) {
    try {
      const part = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
      return typeof claims.sub === "string" ? claims.sub : "";
    } catch {
      return "";
    }
  }

  function percentText(p) {
    return typeof p === "number" ? Math.floor(p) + "%" : "";
  }

  // duration is ms as "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min".
  function duration(ms) {
    if (typeof ms !== "number" || !isFinite(ms) || ms < 0) return "";
    if (ms < 1000) return Math.round(ms) + " ms";
    const s = ms / 1000;
    if (s < 60) return (s < 10 ? s.toFixed(1) : Math.floor(s)) + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
    return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleString();
  }

  // countdown is how long until iso: "in 42 s", "in 4 min 05 s", or "due
  // now" once it has passed.
  function countdown(iso) {
    const t = Date.parse(iso || "");
    if (isNaN(t)) return "";
    const left = t - Date.now();
    return left <= 0 ? "due now" : "in " + duration(left < 1000 ? 1000 : left);
  }

  // countdownMinutes is countdown for screen readers, in whole minutes, so
  // a live region that says it changes at most once a minute.
  function countdownMinutes(iso) {
    const t = Date.parse(iso || "");
    if (isNaN(t)) return "";
    const left = t - Date.now();
    if (left <= 0) return "due now";
    if (left < 60000) return "in less than a minute";
    const min = Math.round(left / 60000);
    return "in about " + min + (min === 1 ? " minute" : " minutes");
  }

  // priorityName is "high", "normal" or "low" for a job's or schedule's priority.
  function priorityName(p) {
    return PRIORITIES[p] || "normal";
  }

  // prioritySelect fills a select with the three priorities, normal chosen.
  function prioritySelect(select) {
    select.replaceChildren(...[1, 2, 3].map((p) => new Option(PRIORITIES[p], String(p))));
    select.value = "2";
  }

  // localToISO turns a datetime-local input's value (the browser's local
  // time) into RFC 3339 in UTC; "" stays "".
  function localToISO(value) {
    if (!value) return "";
    const d = new Date(value); // a date-time without an offset is local time
    return isNaN(d) ? "" : d.toISOString();
  }

  function timeEl(iso, className) {
    const t = el("time", className, when(iso));
    if (iso) t.dateTime = iso;
    return t;
  }

  // progressBar is a labelled progress bar with its percentage next to it.
  function progressBar(label) {
    const wrap = el("span", "bar");
    const bar = el("progress");
    bar.max = 100;
    bar.setAttribute("aria-label", label);
    const pct = el("span", "pct");
    wrap.append(bar, pct);
    return wrap;
  }

  // setProgress shows percent p (null: unknown) for a job in status.
  function setProgress(wrap, p, status) {
    const bar = wrap.querySelector("progress");
    const pct = wrap.querySelector(".pct");
    if (typeof p !== "number" && status === "succeeded") p = 100;
    if (typeof p !== "number" && status === "scheduled") p = 0; // not started: no busy bar
    if (typeof p === "number") {
      bar.value = p;
      pct.textContent = status === "scheduled" ? "" : Math.floor(p) + "%";
    } else {
      bar.removeAttribute("value"); // indeterminate
      pct.textContent = status === "queued" || status === "scheduled" ? "" : "–";
    }
    bar.dataset.status = status || "";
  }

  function statusChip(status) {
    const s = el("span", "status", status || "–");
    s.dataset.status = status || "";
    return s;
  }

  // Every page's header has the sign-in control.
  function initAuth() {
    const toggle = document.getElementById("signin-toggle");
    const form = document.getElementById("signin-form");
    const input = document.getElementById("token-input");
    const err = document.getElementById("signin-error");
    const who = document.getElementById("signed-in");
    const out = document.getElementById("signout");
    if (!toggle || !form) return;
    const t = token();
    if (t) {
      const sub = subject(t);
      document.getElementById("signed-in-as").textContent = sub ? "Token: " + sub : "Signed in with a token";
      who.hidden = false;
      toggle.hidden = true;
    }
    toggle.addEventListener("click", () => {
      form.hidden = !form.hidden;
      toggle.setAttribute("aria-expanded", String(!form.hidden));
      if (!form.hidden) input.focus();
    });
    document.getElementById("signin-cancel").addEventListener("click", () => {
      form.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      input.value = "";
      toggle.focus();
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      err.hidden = true;
      let res;
      try {
        res = await fetch("/api/jobs?limit=1", { headers: { Authorization: "Bearer " + value, Accept: "application/json" } });
      } catch (e) {
        err.textContent = "Could not reach the server (" + e.message + ").";
        err.hidden = false;
        return;
      }
      if (!res.ok) {
        err.textContent = "The token was refused: " + (await errorText(res));
        err.hidden = false;
        input.focus();
        return;
      }
      setToken(value);
      location.reload();
    });
    out.addEventListener("click", () => {
      setToken("");
      location.reload();
    });
  }

  // signInNeeded is for a 401 answer: the server does not know the caller
  // (a refused token is dropped) and the sign-in form opens.
  function signInNeeded() {
    const form = document.getElementById("signin-form");
    if (!form || !form.hidden) return;
    const err = document.getElementById("signin-error");
    if (token()) {
      setToken("");
      err.textContent = "The server refused your token (has it expired?). Sign in again.";
      err.hidden = false;
      document.getElementById("signed-in").hidden = true;
      document.getElementById("signin-toggle").hidden = false;
    }
    form.hidden = false;
    document.getElementById("signin-toggle").setAttribute("aria-expanded", "true");
  }

  document.addEventListener("DOMContentLoaded", initAuth);

  return {
    TERMINAL, STATUSES, ID_PATTERN, token, api, signInNeeded, postJSON, errorText, socket, el,
    percentText, duration, when, timeEl, progressBar, setProgress, statusChip,
    countdown, countdownMinutes, priorityName, prioritySelect, localToISO,
  };
})();
