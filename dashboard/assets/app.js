// kestrel dashboard: routing, the experiments list, the trial page, and what every page
// shares (elements, requests, actions, live updates, theme). The experiment page is in
// experiment.js. Text from the store is always set as text, never parsed as HTML.
"use strict";

const K = {};

// An element: h("a", {href: "#/", class: "x"}, "text", child, ...).
K.h = (tag, attrs, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) { continue; }
    if (k.startsWith("on")) { el.addEventListener(k.slice(2), v); } else if (k === "style") { el.style.cssText = v; } else if (k === "dataset") { Object.assign(el.dataset, v); } else { el.setAttribute(k, v === true ? "" : v); }
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) { continue; }
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
};
const h = K.h;
const enc = encodeURIComponent;
K.enc = enc;

K.api = async (path, opts = {}) => {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, opts));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { throw new Error(body.error || `${r.status} ${r.statusText}`); }
  return body;
};

K.toast = (text) => {
  const t = document.getElementById("toast");
  t.textContent = text; t.hidden = false;
  clearTimeout(K.toastTimer);
  K.toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
};

// Stop or delete, after asking; `after` runs when it worked.
K.act = async (what, name, after) => {
  const ask = what === "stop" ? `Stop experiment ${name}? Its running trials are stopped.` : `Delete experiment ${name} with its trials and reports?`;
  if (!window.confirm(ask)) { return; }
  const path = what === "stop" ? `/api/experiments/${enc(name)}/stop` : `/api/experiments/${enc(name)}`;
  try {
    const r = await K.api(path, { method: what === "stop" ? "POST" : "DELETE", headers: { "x-kestrel-action": "1" } });
    K.toast(r.message || `${what}: done`);
    if (after) { after(); }
  } catch (e) { K.toast(`${what} refused: ${e.message}`); }
};

K.running = (state) => state === "Running" || state === "Created" || state === "Restarting";
K.badge = (state) => h("span", { class: `badge ${state}` }, state);
K.when = (t) => (t ? new Date(t).toLocaleString() : "-");
K.duration = (a, b) => {
  if (!a) { return "-"; }
  const s = Math.max(0, ((b ? new Date(b) : new Date()) - new Date(a)) / 1000);
  return s < 90 ? `${s.toFixed(1)} s` : s < 5400 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
};

// One live stream at a time: the page's.
K.stream = null;
K.listen = (path, handlers) => {
  if (K.stream) { K.stream.close(); }
  const live = document.getElementById("live");
  const es = new EventSource(path);
  es.onopen = () => live.classList.add("on");
  es.onerror = () => live.classList.remove("on");
  for (const [kind, fn] of Object.entries(handlers)) {
    es.addEventListener(kind, (ev) => fn(JSON.parse(ev.data)));
  }
  K.stream = es;
};
K.stopListening = () => { if (K.stream) { K.stream.close(); K.stream = null; } };

K.crumbs = (...parts) => {
  const c = document.getElementById("crumbs");
  c.replaceChildren(...parts.flatMap((p, i) => (i ? [" / ", p] : [p])));
};

// The experiments list.
function listPage(app) {
  K.crumbs(h("a", { href: "#/" }, "experiments"));
  const body = h("div", { class: "panel" }, h("p", { class: "muted" }, "Loading…"));
  app.replaceChildren(h("h1", {}, "Experiments"), h("p", { class: "muted" }, "Every experiment in the store, updated live."), body);
  const draw = (all) => {
    if (all.error) { body.replaceChildren(h("p", {}, all.error)); return; }
    if (!all.length) { body.replaceChildren(h("p", { class: "muted" }, "No experiments yet. Start one with kestrel run or kestrel submit.")); return; }
    const rows = all.slice().sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1)).map((e) => {
      const total = e.maxTrialCount || e.counts.total || 1;
      const done = e.counts.total - e.counts.running;
      return h("tr", { dataset: { name: e.name } },
        h("td", {}, h("a", { href: `#/e/${enc(e.name)}` }, e.name)),
        h("td", {}, K.badge(e.state)),
        h("td", {}, e.algorithm),
        h("td", {}, h("span", { class: "bar" }, h("i", { style: `width:${Math.min(100, 100 * done / total)}%` })), ` ${done}/${e.maxTrialCount || "∞"}`),
        h("td", { class: "num" }, e.best === null ? "-" : `${Plot.fmt(e.best)} (${e.objective.type === "maximize" ? "max" : "min"} ${e.objective.metric})`),
        h("td", {}, K.when(e.createdAt)),
        h("td", {},
          h("button", { disabled: !K.running(e.state), onclick: () => K.act("stop", e.name) }, "Stop"), " ",
          h("button", { class: "danger", disabled: K.running(e.state), onclick: () => K.act("delete", e.name) }, "Delete")));
    });
    body.replaceChildren(h("div", { class: "scroll" }, h("table", { id: "experiments" },
      h("thead", {}, h("tr", {}, ["Name", "State", "Algorithm", "Progress", "Best", "Created", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows))));
  };
  K.api("/api/experiments").then(draw, (e) => body.replaceChildren(h("p", {}, e.message)));
  K.listen("/api/events", { experiments: draw });
}

// A trial: values, state history, its objective's curve, its output.
async function trialPage(app, exp, name) {
  K.stopListening();
  K.crumbs(h("a", { href: "#/" }, "experiments"), h("a", { href: `#/e/${enc(exp)}` }, exp), name);
  let t, e;
  try {
    [t, e] = await Promise.all([K.api(`/api/experiments/${enc(exp)}/trials/${enc(name)}`), K.api(`/api/experiments/${enc(exp)}`)]);
  } catch (err) { app.replaceChildren(h("p", {}, err.message)); return; }
  const metric = e.objective.metric;
  const kv = (pairs) => h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  const curve = h("canvas", { class: "plot small", id: "trial-curve" });
  const log = h("pre", { class: "log", id: "trial-log" }, "");
  const follow = h("input", { type: "checkbox", id: "follow" });
  app.replaceChildren(
    h("div", { class: "panel" },
      h("div", { class: "row spread" }, h("h1", {}, name), K.badge(t.state)),
      h("div", { class: "stats" },
        h("div", { class: "stat" }, h("b", {}, Plot.fmt(t.objective)), h("span", {}, metric)),
        h("div", { class: "stat" }, h("b", {}, K.duration(t.startedAt, t.completedAt)), h("span", {}, "duration")),
        h("div", { class: "stat" }, h("b", {}, t.restarts), h("span", {}, "restarts")))),
    h("div", { class: "grid2" },
      h("div", { class: "panel" }, h("h2", {}, "Parameters"), kv(Object.entries(t.assignments).map(([k, v]) => [k, String(v)]))),
      h("div", { class: "panel" }, h("h2", {}, "Observation"),
        kv(t.observation.map((o) => [o.name, `latest ${Plot.fmt(o.latest)} · min ${Plot.fmt(o.min)} · max ${Plot.fmt(o.max)}`])),
        t.observation.length ? null : h("p", { class: "muted" }, "No metrics reported.")),
      h("div", { class: "panel" }, h("h2", {}, "State history"),
        kv([["Created", K.when(t.createdAt)],
          t.startedAt ? ["Running", `${K.when(t.startedAt)}${t.restarts ? ` (restarted ${t.restarts}×)` : ""}`] : null,
          t.completedAt ? [t.state, K.when(t.completedAt)] : null,
          ["reason", t.reason || "-"], ["message", t.message || "-"],
          ["labels", Object.entries(t.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "-"]].filter(Boolean)))),
    h("div", { class: "panel" }, h("h2", {}, `${metric}, report by report`), curve),
    h("div", { class: "panel" }, h("div", { class: "row spread" }, h("h2", {}, "Output"),
      h("label", {}, follow, " follow")), log));
  // The newest reports only when there were very many (observationLogSkipped earlier ones).
  const points = t.observationLog.filter((r) => r.metric === metric && typeof r.value === "number").map((r, i) => [i + 1, r.value, undefined]);
  const skipped = t.observationLogSkipped || 0;
  Plot.xy(curve, [{ points, kind: "line" }, { points, kind: "dots", count: false }],
    { xLabel: skipped ? `report (after ${skipped} older reports of all metrics)` : "report", yLabel: metric, xInteger: true });
  if (!t.log) { log.textContent = "This dashboard cannot read trial logs (they are kept where the trials ran)."; return; }
  let offset = 0;
  const more = async (tail) => {
    const q = tail ? "tail=200" : `from=${offset}`;
    const r = await K.api(`/api/experiments/${enc(exp)}/trials/${enc(name)}/log?${q}`);
    if (tail) { log.textContent = r.text || "(no output yet)"; } else if (r.text) { log.textContent += r.text; }
    offset = r.offset;
    log.scrollTop = log.scrollHeight;
    return r.finished;
  };
  await more(true).catch((err) => { log.textContent = err.message; });
  const tick = async () => {
    if (!document.body.contains(log) || !follow.checked) { return; }
    const finished = await more(false).catch(() => true);
    if (!finished) { setTimeout(tick, 1000); } else { follow.checked = false; }
  };
  follow.addEventListener("change", () => { if (follow.checked) { tick(); } });
}

function route() {
  const app = document.getElementById("app");
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "e" && parts[1] && parts[2] === "t" && parts[3]) { trialPage(app, parts[1], parts[3]); } else if (parts[0] === "e" && parts[1]) { K.experimentPage(app, parts[1]); } else { listPage(app); }
}

function theme(next) {
  const saved = next || localStorage.getItem("kestrel-theme") ||
    (window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  document.documentElement.dataset.theme = saved;
  if (next) { localStorage.setItem("kestrel-theme", next); }
}

window.addEventListener("DOMContentLoaded", () => {
  theme();
  document.getElementById("theme").addEventListener("click", () => {
    theme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
    if (K.redraw) { K.redraw(); }
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => { if (K.redraw) { K.redraw(); } });
  route();
});
