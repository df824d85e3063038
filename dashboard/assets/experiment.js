// kestrel dashboard: the experiment page. Starts from the experiment's event stream (the
// first event holds every trial, later ones what changed) and redraws the open tab.
"use strict";

(() => {
  const h = K.h, enc = K.enc;
  const TABS = ["History", "Parallel coordinates", "Importance", "Slices", "Contour", "Intermediate values", "Trials", "YAML"];
  const PAGE = 100;

  let S = null; // the page's state

  const better = () => (S.exp.objective.type === "maximize" ? (a, b) => a > b : (a, b) => a < b);
  const finished = () => [...S.trials.values()].filter((t) => typeof t.objective === "number").sort((a, b) => a.index - b.index);
  const params = () => S.exp.parameters;
  const numeric = (p) => p.domain.type === "double" || p.domain.type === "int" || p.domain.type === "discrete";
  const logScale = (p) => p.domain.distribution === "logUniform" || p.domain.distribution === "logNormal";
  const num = (p, v) => (p.domain.type === "discrete" ? parseFloat(v) : v);
  const open = (name) => { location.hash = `#/e/${enc(S.name)}/t/${enc(name)}`; };
  const label = (t) => `${t.name}: ${Plot.fmt(t.objective)}`;

  function header() {
    const e = S.exp, c = e.counts, best = e.bestTrial && S.trials.get(e.bestTrial);
    const total = e.maxTrialCount || c.total || 1;
    return h("div", { class: "panel", id: "head" },
      h("div", { class: "row spread" },
        h("div", {}, h("h1", {}, e.name), h("span", { class: "muted" },
          `${e.algorithm.name} · ${e.objective.type} ${e.objective.metric}${e.objective.goal !== null ? ` · goal ${e.objective.goal}` : ""} · created ${K.when(e.createdAt)}`)),
        h("div", { class: "row" }, K.badge(e.status.state),
          h("a", { class: "button", href: `/api/experiments/${enc(e.name)}/export.csv` }, "CSV"),
          h("a", { class: "button", href: `/api/experiments/${enc(e.name)}/export.json` }, "JSON"),
          h("button", { disabled: !K.running(e.status.state), onclick: () => K.act("stop", e.name) }, "Stop"),
          h("button", { class: "danger", disabled: K.running(e.status.state), onclick: () => K.act("delete", e.name, () => { location.hash = "#/"; }) }, "Delete"))),
      h("div", { class: "stats" },
        h("div", { class: "stat" }, h("b", {}, best ? Plot.fmt(best.objective) : "-"), h("span", {}, best ? h("a", { href: `#/e/${enc(e.name)}/t/${enc(best.name)}` }, `best: ${best.name}`) : "best")),
        h("div", { class: "stat" }, h("b", {}, `${c.total}/${e.maxTrialCount || "∞"}`), h("span", {}, h("span", { class: "bar" }, h("i", { style: `width:${Math.min(100, 100 * c.total / total)}%` })))),
        h("div", { class: "stat" }, h("b", {}, c.running), h("span", {}, "running")),
        h("div", { class: "stat" }, h("b", {}, c.succeeded), h("span", {}, "succeeded")),
        h("div", { class: "stat" }, h("b", {}, c.failed + c.metricsUnavailable), h("span", {}, "failed")),
        h("div", { class: "stat" }, h("b", {}, c.earlyStopped), h("span", {}, "early stopped"))),
      e.status.message ? h("p", { class: "muted" }, `${e.status.reason}: ${e.status.message}`) : null);
  }

  function history(box) {
    const by = S.historyBy || "number";
    const pick = h("select", { onchange: (ev) => { S.historyBy = ev.target.value; draw(); } },
      h("option", { value: "number", selected: by === "number" }, "by trial number"),
      h("option", { value: "time", selected: by === "time" }, "by completion time"));
    const canvas = h("canvas", { class: "plot tall", id: "history" });
    box.append(h("div", { class: "controls" }, pick), canvas,
      h("div", { class: "legend" }, h("span", {}, h("i", { style: "background:var(--accent)" }), "trial"),
        h("span", {}, h("i", { style: "background:var(--warn)" }), "early stopped"),
        h("span", {}, h("i", { style: "background:var(--good)" }), "best so far")));
    const done = finished();
    const x = (t) => (by === "time" ? new Date(t.completedAt || t.startedAt || t.createdAt).getTime() / 1000 : t.index);
    const order = done.slice().sort((a, b) => x(a) - x(b));
    const bestLine = [];
    const isBetter = better();
    let b = null;
    for (const t of order) { if (t.state === "Succeeded" && (b === null || isBetter(t.objective, b))) { b = t.objective; } if (b !== null) { bestLine.push([x(t), b]); } }
    const pts = (f) => order.filter(f).map((t) => [x(t), t.objective, t.name, label(t)]);
    Plot.xy(canvas, [
      { points: pts((t) => t.state !== "EarlyStopped"), kind: "dots" },
      { points: pts((t) => t.state === "EarlyStopped"), kind: "dots", color: "warn" },
      { points: bestLine, kind: "step", color: "good", width: 2, count: false },
    ], { xLabel: by === "time" ? "completed" : "trial number", yLabel: S.exp.objective.metric, onClick: open, xInteger: by !== "time",
      xFormat: by === "time" ? (v) => new Date(v * 1000).toLocaleTimeString() : undefined });
  }

  function parallel(box) {
    const done = finished();
    const canvas = h("canvas", { class: "plot tall", id: "parallel" });
    box.append(h("p", { class: "muted" }, "One line per finished trial; blue is better."), canvas);
    const ys = done.map((t) => t.objective);
    const lo = Math.min(...ys), hi = Math.max(...ys);
    const colors = ys.map((y) => { const v = hi > lo ? (y - lo) / (hi - lo) : 0.5; return S.exp.objective.type === "maximize" ? 1 - v : v; });
    const axes = params().map((p) => (numeric(p)
      ? { name: p.name, values: done.map((t) => num(p, t.assignments[p.name])) }
      : { name: p.name, values: done.map((t) => t.assignments[p.name]), categories: p.domain.values }));
    axes.push({ name: S.exp.objective.metric, values: ys });
    Plot.parallel(canvas, axes, colors);
  }

  function importance(box) {
    const items = (S.exp.importance || []).slice().sort((a, b) => b.share - a.share).map((i) => ({ label: i.name, value: i.share }));
    if (!items.length) { box.append(h("p", { class: "muted", id: "importance-empty" }, "Importance needs at least 5 finished trials.")); return; }
    const canvas = h("canvas", { class: "plot", id: "importance", style: `height:${30 + 26 * items.length}px` });
    box.append(h("p", { class: "muted" }, "PED-ANOVA: how far each parameter's values among the best 10% of trials are from its values among all of them."), canvas);
    Plot.bars(canvas, items);
  }

  function slices(box) {
    const done = finished();
    const grid = h("div", { class: "grid2" });
    box.append(grid);
    for (const p of params()) {
      const canvas = h("canvas", { class: "plot small slice", dataset: { param: p.name } });
      grid.append(h("div", {}, h("h2", {}, p.name), canvas));
      const cats = numeric(p) ? null : p.domain.values;
      const pts = done.map((t) => [cats ? cats.indexOf(t.assignments[p.name]) : num(p, t.assignments[p.name]), t.objective, t.name, label(t)]);
      Plot.xy(canvas, [{ points: pts, kind: "dots" }], {
        xLabel: p.name, yLabel: S.exp.objective.metric, xLog: logScale(p), onClick: open,
        xTicks: cats ? cats.map((_, i) => i) : undefined, xFormat: cats ? (i) => cats[i] || "" : undefined,
        xDomain: cats ? [-0.5, cats.length - 0.5] : undefined,
      });
    }
  }

  function contour(box) {
    const ps = params();
    if (ps.length < 2) { box.append(h("p", { class: "muted" }, "A contour needs two parameters.")); return; }
    S.pair = S.pair || [ps[0].name, ps[1].name];
    const select = (i) => h("select", { onchange: (ev) => { S.pair[i] = ev.target.value; draw(); } },
      ps.map((p) => h("option", { value: p.name, selected: S.pair[i] === p.name }, p.name)));
    const canvas = h("canvas", { class: "plot tall", id: "contour" });
    box.append(h("div", { class: "controls" }, "x", select(0), "y", select(1)), canvas);
    const [px, py] = S.pair.map((n) => ps.find((p) => p.name === n));
    const coord = (p, v) => (numeric(p) ? num(p, v) : p.domain.values.indexOf(v));
    const pts = finished().map((t) => [coord(px, t.assignments[px.name]), coord(py, t.assignments[py.name]), t.objective, t.name]);
    Plot.contour(canvas, pts, { xLabel: px.name, yLabel: py.name, xLog: logScale(px), yLog: logScale(py), lowIsGood: S.exp.objective.type !== "maximize", onClick: open });
  }

  function intermediate(box) {
    const canvas = h("canvas", { class: "plot tall", id: "intermediate" });
    box.append(h("p", { class: "muted" }, `Every report of ${S.exp.objective.metric}, one line per trial; early-stopped trials end in an orange mark.`), canvas);
    const now = Date.now();
    if (!S.reports || now - S.reportsAt > 5000) {
      S.reportsAt = now;
      K.api(`/api/experiments/${enc(S.name)}/reports`).then((r) => { S.reports = r; if (S.tab === "Intermediate values") { draw(); } }, () => {});
      if (!S.reports) { return; }
    }
    const series = [], ends = [];
    for (const [name, pts] of Object.entries(S.reports.trials)) {
      const line = pts.map((p) => [p[2], p[1], name, `${name}: report ${p[2]}: ${Plot.fmt(p[1])}`]);
      series.push({ points: line, kind: "line", alpha: 0.6, width: 1 });
      const t = S.trials.get(name);
      if (t && t.state === "EarlyStopped" && line.length) { ends.push(line[line.length - 1]); }
    }
    series.push({ points: ends, kind: "dots", color: "warn", count: false, size: 4 });
    Plot.xy(canvas, series, { xLabel: "report", yLabel: S.exp.objective.metric, onClick: open, xInteger: true });
  }

  function trials(box) {
    const ps = params(), extra = S.exp.objective.additionalMetrics || [];
    const cols = [["#", (t) => t.index], ["name", (t) => t.name], ["state", (t) => t.state], [S.exp.objective.metric, (t) => t.objective],
      ...extra.map((m) => [m, (t) => { const o = t.observation.find((x) => x.name === m); return o ? o.latest : null; }]),
      ...ps.map((p) => [p.name, (t) => t.assignments[p.name]]), ["duration", (t) => (t.startedAt ? K.duration(t.startedAt, t.completedAt) : "")]];
    const sort = S.sort || { col: 3, rev: S.exp.objective.type === "maximize" };
    const filter = (S.filter || "").toLowerCase();
    let rows = [...S.trials.values()];
    if (filter) { rows = rows.filter((t) => cols.some(([, f]) => String(f(t) ?? "").toLowerCase().includes(filter))); }
    const key = cols[sort.col][1];
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === null || x === undefined) { return 1; }
      if (y === null || y === undefined) { return -1; }
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
      return sort.rev ? -c : c;
    });
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    S.page = Math.min(S.page || 0, pages - 1);
    const input = h("input", { type: "search", placeholder: "filter", value: S.filter || "", id: "trial-filter" });
    input.addEventListener("input", () => { S.filter = input.value; S.page = 0; draw(); });
    const bestName = S.exp.bestTrial;
    box.append(
      h("div", { class: "controls" }, input, h("span", { class: "muted" }, `${rows.length} trials`),
        h("button", { disabled: S.page === 0, onclick: () => { S.page--; draw(); } }, "‹"),
        h("span", {}, `page ${S.page + 1} of ${pages}`),
        h("button", { disabled: S.page >= pages - 1, onclick: () => { S.page++; draw(); } }, "›")),
      h("div", { class: "scroll" }, h("table", { id: "trials" },
        h("thead", {}, h("tr", {}, cols.map(([c], i) => h("th", { class: i === sort.col ? `sorted${sort.rev ? " rev" : ""}` : null,
          onclick: () => { S.sort = { col: i, rev: i === sort.col ? !sort.rev : false }; draw(); } }, c)))),
        h("tbody", {}, rows.slice(S.page * PAGE, (S.page + 1) * PAGE).map((t) => h("tr", { class: t.name === bestName ? "best" : null },
          cols.map(([, f], i) => {
            const v = f(t);
            if (i === 1) { return h("td", {}, h("a", { href: `#/e/${enc(S.name)}/t/${enc(t.name)}` }, v)); }
            if (i === 2) { return h("td", { title: [t.reason, t.message].filter(Boolean).join(": ") }, K.badge(v)); }
            return h("td", { class: typeof v === "number" ? "num" : null }, typeof v === "number" ? Plot.fmt(v) : (v ?? "-"));
          })))))));
  }

  // DARTS: the best genotype's cells as graphs.
  function genotype(box) {
    // The objective is the genotype itself (text): the newest succeeded trial's, else any.
    const found = (t) => (t.observation.find((o) => typeof o.latest === "string" && o.latest.startsWith("Genotype(")) || {}).latest;
    const withOne = [...S.trials.values()].filter(found).sort((a, b) => (a.state === "Succeeded") - (b.state === "Succeeded") || a.index - b.index);
    const trial = withOne[withOne.length - 1];
    if (!trial) { box.append(h("p", { class: "muted" }, "No genotype reported yet.")); return; }
    const text = found(trial);
    box.append(h("p", { class: "muted" }, "Reported by ", h("a", { href: `#/e/${enc(S.name)}/t/${enc(trial.name)}` }, trial.name), "."),
      h("pre", { class: "yaml", id: "genotype" }, text));
    for (const cell of ["normal", "reduce"]) {
      const m = text.match(new RegExp(`${cell}=\\[(\\[.*?\\])\\]`));
      if (!m) { continue; }
      const edges = [...m[1].matchAll(/\('([^']+)',\s*(\d+)\)/g)].map((x, i) => ({ op: x[1], from: +x[2], to: Math.floor(i / 2) }));
      const canvas = h("canvas", { class: "plot genotype", dataset: { cell } });
      box.append(h("h2", {}, `${cell} cell`), canvas);
      Plot.cell(canvas, edges);
    }
  }

  function yaml(box) { box.append(h("pre", { class: "yaml", id: "yaml" }, S.exp.yaml)); }

  const DRAW = { History: history, "Parallel coordinates": parallel, Importance: importance, Slices: slices, Contour: contour,
    "Intermediate values": intermediate, Trials: trials, YAML: yaml, Genotype: genotype };

  function draw() {
    if (!S || !S.exp) { return; }
    const tabs = S.exp.algorithm.name === "darts" ? [...TABS, "Genotype"] : TABS;
    const focused = document.activeElement && document.activeElement.id;
    const box = h("div", { class: "panel", id: "tab" });
    S.app.replaceChildren(header(),
      h("div", { class: "tabs" }, tabs.map((t) => h("button", { class: t === S.tab ? "on" : null, onclick: () => { S.tab = t; draw(); } }, t))),
      box);
    if (!finished().length && !["Trials", "YAML", "Intermediate values", "Genotype"].includes(S.tab)) {
      box.append(h("p", { class: "muted" }, "No finished trials yet."));
      return;
    }
    DRAW[S.tab](box);
    const again = focused && document.getElementById(focused);
    if (again) { again.focus(); if (again.setSelectionRange) { again.setSelectionRange(again.value.length, again.value.length); } }
  }

  K.experimentPage = (app, name) => {
    K.crumbs(h("a", { href: "#/" }, "experiments"), name);
    const keep = S && S.name === name ? S : null;
    S = { app, name, exp: null, trials: new Map(), tab: keep ? keep.tab : "History", sort: keep && keep.sort, pair: keep && keep.pair };
    app.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    let pending = false;
    K.redraw = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; draw(); }); } };
    K.listen(`/api/experiments/${enc(name)}/events`, {
      update: (msg) => {
        if (!S.exp && !keep && msg.experiment.algorithm.name === "darts") { S.tab = "Genotype"; }
        S.exp = msg.experiment;
        for (const t of msg.trials) { S.trials.set(t.name, t); }
        for (const n of msg.removed) { S.trials.delete(n); }
        document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
        K.redraw();
      },
      gone: () => { K.stopListening(); app.replaceChildren(h("p", {}, `Experiment ${name} was deleted.`)); },
      problem: (p) => K.toast(p.error),
    });
  };
})();
