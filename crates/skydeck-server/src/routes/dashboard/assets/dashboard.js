// Skydeck dashboard: asks before a form changes something, keeps tables
// and logs live, and points at a config mistake.
"use strict";

document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// A request's log: streamed from /api/stream (plain text, one line at a
// time) into the page until the request ends. Control lines the official
// client reads (heartbeats) are not shown.
async function followLog(pre) {
  const response = await fetch(pre.dataset.follow, { credentials: "same-origin" });
  if (!response.ok || !response.body) {
    pre.textContent = "The log cannot be read (" + response.status + ").";
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop();
    const shown = lines.filter((line) => !line.startsWith("<sky-payload>"));
    if (shown.length) {
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(shown.join("\n") + "\n");
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
  }
  pre.dataset.ended = "true";
}

// Selects the line a config mistake is on.
function pointAtMistake(error) {
  const line = Number(error.dataset.line);
  const area = document.querySelector("textarea.config");
  if (!line || !area) return;
  const lines = area.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  area.focus();
  area.setSelectionRange(start, start + (lines[line - 1] || "").length);
}

// A live table: the server sends its rows again when they change (see
// live.rs), for the same filters as the page's own address. A hidden tab
// closes its stream, so that a tab left in the background costs the
// server nothing, and resumes it (with the rows as they are) when shown.
function keepLive(table) {
  let source = null;
  const open = (resume) => {
    const query = new URLSearchParams(window.location.search);
    if (resume) query.set("resume", "true");
    const search = query.toString();
    source = new EventSource(table.dataset.live + (search ? "?" + search : ""));
    source.addEventListener("rows", (event) => {
      const holder = document.createElement("table");
      holder.innerHTML = event.data;
      const rows = holder.querySelector("tbody");
      const current = table.querySelector("tbody");
      if (rows && current) current.replaceWith(rows);
    });
  };
  open(false);
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && source) {
      source.close();
      source = null;
    } else if (!document.hidden && !source) {
      open(true);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table[data-live]").forEach(keepLive);
  document.querySelectorAll("pre[data-follow]").forEach((pre) => {
    followLog(pre).catch((err) => { pre.append("\n(" + err + ")"); });
  });
  const error = document.getElementById("config-error");
  if (error) pointAtMistake(error);
});
