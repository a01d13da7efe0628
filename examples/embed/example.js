// The example app: queue a demo job with the token, then show it with
// <jobwire-progress>. Every element on the page shares one WebSocket.
import { connect } from "http://localhost:8080/static/jobwire.js";

const $ = (id) => document.getElementById(id);
$("token").value = sessionStorage.getItem("token") || "";

$("queue").addEventListener("submit", async (e) => {
  e.preventDefault();
  const token = $("token").value.trim();
  sessionStorage.setItem("token", token);
  $("problem").textContent = "";
  try {
    const w = connect({ token });
    const job = await w.submit("demo", { steps: Number($("steps").value), step_ms: 100 }, { idempotencyKey: crypto.randomUUID() });
    const el = document.createElement("jobwire-progress");
    el.setAttribute("job-id", job.id);
    el.setAttribute("token", token);
    el.setAttribute("log", "5");
    $("jobs").prepend(el);
  } catch (err) {
    $("problem").textContent = err.message + (err.code ? " (" + err.code + ")" : "");
  }
});
