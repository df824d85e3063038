// kestrel dashboard: plots drawn on canvas (scatter and lines, parallel coordinates,
// horizontal bars, contour). Each plot records how many data points it drew in the
// canvas's data-points attribute (the browser test reads it) and keeps its points for
// hover and click.
"use strict";

const Plot = (() => {
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const palette = () => ({
    fg: css("--fg"), muted: css("--muted"), grid: css("--grid"), accent: css("--accent"),
    good: css("--good"), bad: css("--bad"), warn: css("--warn"), bg: css("--panel"),
  });

  // Sets the canvas up for its CSS size at the device's pixel ratio.
  function setup(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 600, h = canvas.clientHeight || 320;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "12px system-ui, sans-serif";
    return { ctx, w, h };
  }

  // Round tick values covering [lo, hi].
  function ticks(lo, hi, n) {
    if (!(hi > lo)) { return [lo]; }
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) { out.push(v); }
    return out;
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) { return "-"; }
    if (typeof v !== "number") { return String(v); }
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) { return v.toExponential(2); }
    return Number(v.toPrecision(4)).toString();
  }

  function extent(values, log) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) {
      if (!Number.isFinite(v) || (log && v <= 0)) { continue; }
      if (v < lo) { lo = v; }
      if (v > hi) { hi = v; }
    }
    if (lo === Infinity) { return [0, 1]; }
    if (lo === hi) { const d = Math.abs(lo) * 0.1 || 1; return log ? [lo / 2, hi * 2] : [lo - d, hi + d]; }
    if (log) { return [lo, hi]; }
    const pad = (hi - lo) * 0.05;
    return [lo - pad, hi + pad];
  }

  // A linear or log scale from a domain to a pixel range.
  function scale(d0, d1, r0, r1, log) {
    if (log) {
      const l0 = Math.log10(d0), l1 = Math.log10(d1);
      const f = (v) => r0 + (Math.log10(v) - l0) / (l1 - l0 || 1) * (r1 - r0);
      f.ticks = (n) => {
        const out = [];
        for (let e = Math.floor(l0); e <= Math.ceil(l1); e++) { const v = Math.pow(10, e); if (v >= d0 && v <= d1) { out.push(v); } }
        return out.length >= 2 ? out : [d0, d1];
      };
      return f;
    }
    const f = (v) => r0 + (v - d0) / (d1 - d0 || 1) * (r1 - r0);
    f.ticks = (n) => ticks(d0, d1, n);
    return f;
  }

  function axes(ctx, box, sx, sy, opts, c) {
    ctx.strokeStyle = c.grid; ctx.fillStyle = c.muted; ctx.lineWidth = 1;
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    let xt = opts.xTicks || sx.ticks(Math.max(2, Math.floor(box.w / 90)));
    if (opts.xInteger) { xt = xt.filter((t) => Number.isInteger(Math.round(t * 1e9) / 1e9)); }
    for (const t of xt) {
      const x = sx(t);
      ctx.beginPath(); ctx.moveTo(x, box.y); ctx.lineTo(x, box.y + box.h); ctx.stroke();
      ctx.fillText(opts.xFormat ? opts.xFormat(t) : fmt(t), x, box.y + box.h + 4);
    }
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const t of sy.ticks(Math.max(2, Math.floor(box.h / 50)))) {
      const y = sy(t);
      ctx.beginPath(); ctx.moveTo(box.x, y); ctx.lineTo(box.x + box.w, y); ctx.stroke();
      ctx.fillText(fmt(t), box.x - 6, y);
    }
    ctx.fillStyle = c.fg; ctx.textAlign = "center"; ctx.textBaseline = "bottom";
    if (opts.xLabel) { ctx.fillText(opts.xLabel, box.x + box.w / 2, box.y + box.h + 34); }
    if (opts.yLabel) {
      ctx.save(); ctx.translate(14, box.y + box.h / 2); ctx.rotate(-Math.PI / 2);
      ctx.textBaseline = "top"; ctx.fillText(opts.yLabel, 0, -10); ctx.restore();
    }
  }

  // Nearest point under the mouse: a tooltip and an optional click.
  function interactive(canvas, hits, opts) {
    canvas.onmousemove = (ev) => {
      const r = canvas.getBoundingClientRect();
      const mx = ev.clientX - r.left, my = ev.clientY - r.top;
      let best = null, bd = 100;
      for (const h of hits) {
        const d = (h.x - mx) ** 2 + (h.y - my) ** 2;
        if (d < bd) { bd = d; best = h; }
      }
      canvas.title = best ? best.label : "";
      canvas.style.cursor = best && opts.onClick ? "pointer" : "default";
      canvas._hover = best;
    };
    canvas.onclick = () => { if (canvas._hover && opts.onClick) { opts.onClick(canvas._hover.id); } };
  }

  // Series of points: {points: [[x, y, id, label]], color, kind: "dots"|"line"|"step", size}.
  function xy(canvas, series, opts = {}) {
    const { ctx, w, h } = setup(canvas);
    const c = palette();
    const box = { x: 62, y: 12, w: w - 62 - 14, h: h - 12 - 44 };
    const all = series.flatMap((s) => s.points);
    const [x0, x1] = opts.xDomain || extent(all.map((p) => p[0]), opts.xLog);
    const [y0, y1] = opts.yDomain || extent(all.map((p) => p[1]), opts.yLog);
    const sx = scale(x0, x1, box.x, box.x + box.w, opts.xLog);
    const sy = scale(y0, y1, box.y + box.h, box.y, opts.yLog);
    axes(ctx, box, sx, sy, opts, c);
    ctx.save();
    ctx.beginPath(); ctx.rect(box.x, box.y, box.w, box.h); ctx.clip();
    const hits = [];
    let drawn = 0;
    for (const s of series) {
      const col = s.color ? (c[s.color] || s.color) : c.accent;
      const pts = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]) &&
        (!opts.yLog || p[1] > 0) && (!opts.xLog || p[0] > 0));
      if (s.kind === "line" || s.kind === "step") {
        ctx.strokeStyle = col; ctx.lineWidth = s.width || 1.5; ctx.globalAlpha = s.alpha || 1;
        ctx.beginPath();
        pts.forEach((p, i) => {
          const X = sx(p[0]), Y = sy(p[1]);
          if (i === 0) { ctx.moveTo(X, Y); } else if (s.kind === "step") { ctx.lineTo(X, sy(pts[i - 1][1])); ctx.lineTo(X, Y); } else { ctx.lineTo(X, Y); }
        });
        if (s.kind === "step" && pts.length) { ctx.lineTo(box.x + box.w, sy(pts[pts.length - 1][1])); }
        ctx.stroke(); ctx.globalAlpha = 1;
      }
      if (s.kind === "dots" || s.marks) {
        ctx.fillStyle = col; ctx.globalAlpha = s.alpha || 0.85;
        const r = s.size || (pts.length > 2000 ? 1.6 : 3);
        for (const p of pts) {
          const X = sx(p[0]), Y = sy(p[1]);
          ctx.beginPath(); ctx.arc(X, Y, r, 0, 2 * Math.PI); ctx.fill();
          if (p[2] !== undefined) { hits.push({ x: X, y: Y, id: p[2], label: p[3] || p[2] }); }
        }
        ctx.globalAlpha = 1;
      }
      if (s.count !== false) { drawn += pts.length; }
    }
    ctx.restore();
    canvas.dataset.points = String(drawn);
    interactive(canvas, hits, opts);
    return drawn;
  }

  // Parallel coordinates: axes [{name, values: [number|string], categories?: [string]}],
  // one line per row, coloured by `colors` (0..1, low = better).
  function parallel(canvas, axesIn, colors, opts = {}) {
    const { ctx, w, h } = setup(canvas);
    const c = palette();
    const n = axesIn.length;
    const top = 28, bottom = h - 18, left = 50, right = w - 50;
    const xs = axesIn.map((_, i) => left + (n > 1 ? i * (right - left) / (n - 1) : 0));
    const mappers = axesIn.map((a) => {
      if (a.categories) {
        const k = a.categories.length;
        return (v) => { const i = a.categories.indexOf(v); return i < 0 ? null : bottom - (k > 1 ? i / (k - 1) : 0.5) * (bottom - top); };
      }
      const nums = a.values.filter((v) => Number.isFinite(v));
      const lo = Math.min(...nums), hi = Math.max(...nums);
      return (v) => Number.isFinite(v) ? bottom - (hi > lo ? (v - lo) / (hi - lo) : 0.5) * (bottom - top) : null;
    });
    const rows = axesIn.length ? axesIn[0].values.length : 0;
    let drawn = 0;
    ctx.lineWidth = rows > 2000 ? 0.6 : 1.2;
    ctx.globalAlpha = rows > 2000 ? 0.25 : 0.6;
    for (let r = 0; r < rows; r++) {
      const ys = axesIn.map((a, i) => mappers[i](a.values[r]));
      if (ys.some((y) => y === null)) { continue; }
      const t = colors[r];
      ctx.strokeStyle = `hsl(${Math.round(210 - 210 * (1 - t))}, 70%, 50%)`;
      ctx.beginPath();
      ys.forEach((y, i) => (i === 0 ? ctx.moveTo(xs[i], y) : ctx.lineTo(xs[i], y)));
      ctx.stroke();
      drawn++;
    }
    ctx.globalAlpha = 1;
    ctx.strokeStyle = c.fg; ctx.fillStyle = c.fg; ctx.lineWidth = 1; ctx.textAlign = "center";
    axesIn.forEach((a, i) => {
      ctx.beginPath(); ctx.moveTo(xs[i], top); ctx.lineTo(xs[i], bottom); ctx.stroke();
      ctx.textBaseline = "bottom"; ctx.fillText(a.name, xs[i], top - 8);
      ctx.fillStyle = c.muted; ctx.textBaseline = "middle";
      if (a.categories) {
        a.categories.forEach((cat) => ctx.fillText(cat, xs[i], mappers[i](cat)));
      } else {
        const nums = a.values.filter((v) => Number.isFinite(v));
        if (nums.length) {
          ctx.fillText(fmt(Math.max(...nums)), xs[i], top - 1 + 8);
          ctx.fillText(fmt(Math.min(...nums)), xs[i], bottom + 9);
        }
      }
      ctx.fillStyle = c.fg;
    });
    canvas.dataset.points = String(drawn);
    return drawn;
  }

  // Horizontal bars: [{label, value (0..1)}].
  function bars(canvas, items) {
    const { ctx, w } = setup(canvas);
    const c = palette();
    const left = Math.min(220, Math.max(80, ...items.map((i) => ctx.measureText(i.label).width + 16)));
    const rowH = 26, right = w - 70;
    ctx.textBaseline = "middle";
    items.forEach((it, i) => {
      const y = 10 + i * rowH;
      ctx.fillStyle = c.fg; ctx.textAlign = "right"; ctx.fillText(it.label, left - 8, y + rowH / 2 - 2);
      ctx.fillStyle = c.accent;
      ctx.fillRect(left, y + 3, Math.max(1, (right - left) * it.value), rowH - 10);
      ctx.fillStyle = c.muted; ctx.textAlign = "left";
      ctx.fillText((it.value * 100).toFixed(1) + "%", left + (right - left) * it.value + 6, y + rowH / 2 - 2);
    });
    canvas.dataset.points = String(items.length);
    return items.length;
  }

  // Contour of z over (x, y): inverse-distance-weighted values on a grid, shaded, with the
  // trials as dots. `lowIsGood` colours low values as good.
  function contour(canvas, pts, opts = {}) {
    const { ctx, w, h } = setup(canvas);
    const c = palette();
    const box = { x: 62, y: 12, w: w - 62 - 14, h: h - 12 - 44 };
    const [x0, x1] = extent(pts.map((p) => p[0]), opts.xLog);
    const [y0, y1] = extent(pts.map((p) => p[1]), opts.yLog);
    const sx = scale(x0, x1, box.x, box.x + box.w, opts.xLog);
    const sy = scale(y0, y1, box.y + box.h, box.y, opts.yLog);
    const zs = pts.map((p) => p[2]);
    const zlo = Math.min(...zs), zhi = Math.max(...zs);
    const cells = 40, cw = box.w / cells, ch = box.h / cells;
    const px = pts.map((p) => [(sx(p[0]) - box.x) / box.w, (sy(p[1]) - box.y) / box.h, p[2]]);
    const sample = px.length > 1500 ? px.filter((_, i) => i % Math.ceil(px.length / 1500) === 0) : px;
    for (let i = 0; i < cells; i++) {
      for (let j = 0; j < cells; j++) {
        const u = (i + 0.5) / cells, v = (j + 0.5) / cells;
        let num = 0, den = 0;
        for (const p of sample) {
          const d2 = (p[0] - u) ** 2 + (p[1] - v) ** 2 + 1e-6;
          const wgt = 1 / (d2 * d2);
          num += wgt * p[2]; den += wgt;
        }
        const z = num / den;
        let t = zhi > zlo ? (z - zlo) / (zhi - zlo) : 0.5;
        if (!opts.lowIsGood) { t = 1 - t; }
        ctx.fillStyle = `hsl(${Math.round(210 * t)}, 65%, 55%)`;
        ctx.globalAlpha = 0.75;
        ctx.fillRect(box.x + i * cw, box.y + j * ch, cw + 0.5, ch + 0.5);
      }
    }
    ctx.globalAlpha = 1;
    axes(ctx, box, sx, sy, opts, c);
    ctx.fillStyle = c.fg;
    const hits = [];
    for (const p of pts) {
      const X = sx(p[0]), Y = sy(p[1]);
      ctx.beginPath(); ctx.arc(X, Y, 2.5, 0, 2 * Math.PI); ctx.fill();
      if (p[3] !== undefined) { hits.push({ x: X, y: Y, id: p[3], label: `${p[3]}: ${fmt(p[2])}` }); }
    }
    canvas.dataset.points = String(pts.length);
    interactive(canvas, hits, opts);
    return pts.length;
  }

  // A DARTS cell: edges [{op, from, to}] where `from` 0 and 1 are the cell's inputs and
  // k >= 2 is node k-2; every node feeds the output. Draws nodes, edges and op names.
  function cell(canvas, edges) {
    const { ctx, w, h } = setup(canvas);
    const c = palette();
    const n = Math.max(0, ...edges.map((e) => e.to + 1));
    const pos = {};
    // Inputs on the left, the nodes in a column in the middle, the output on the right.
    pos.in0 = [90, h * 0.3]; pos.in1 = [90, h * 0.7];
    for (let i = 0; i < n; i++) { pos[i] = [w * 0.5, 30 + (i + 0.5) * (h - 60) / Math.max(1, n)]; }
    pos.out = [w - 90, h / 2];
    const at = (k) => (k === 0 ? pos.in0 : k === 1 ? pos.in1 : pos[k - 2]);
    // A quadratic curve bent `bend` px off the straight line; returns where its label goes.
    const curve = (a, b, bend) => {
      const dx = b[0] - a[0], dy = b[1] - a[1], len = Math.hypot(dx, dy) || 1;
      const cx = (a[0] + b[0]) / 2 - dy / len * bend, cy = (a[1] + b[1]) / 2 + dx / len * bend;
      ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.quadraticCurveTo(cx, cy, b[0], b[1]); ctx.stroke();
      // The label's place: a third of the way, where crossing edges are still apart.
      const t = 0.33, u = 1 - t;
      return [u * u * a[0] + 2 * t * u * cx + t * t * b[0], u * u * a[1] + 2 * t * u * cy + t * t * b[1]];
    };
    ctx.lineWidth = 1.4; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
    ctx.setLineDash([4, 4]); ctx.strokeStyle = c.muted;
    for (let i = 0; i < n; i++) { curve(pos[i], pos.out, 0); }
    ctx.setLineDash([]);
    const labels = [];
    edges.forEach((e, i) => {
      ctx.strokeStyle = c.accent;
      // Between nodes of the middle column the curve bows out to the right.
      const bend = e.from >= 2 ? 70 + 20 * (e.to - e.from + 2) : (i % 2 ? 1 : -1) * 16;
      labels.push([curve(at(e.from), pos[e.to], bend), e.op]);
    });
    for (const [m, op] of labels) {
      const tw = ctx.measureText(op).width + 8;
      ctx.fillStyle = c.bg; ctx.fillRect(m[0] - tw / 2, m[1] - 8, tw, 16);
      ctx.fillStyle = c.fg; ctx.fillText(op, m[0], m[1]);
    }
    const node = (p, text, fill) => {
      ctx.fillStyle = fill; ctx.beginPath(); ctx.arc(p[0], p[1], 17, 0, 2 * Math.PI); ctx.fill();
      ctx.fillStyle = "#fff"; ctx.font = "bold 11px system-ui, sans-serif"; ctx.fillText(text, p[0], p[1]);
    };
    node(pos.in0, "c k-2", c.muted); node(pos.in1, "c k-1", c.muted);
    for (let i = 0; i < n; i++) { node(pos[i], String(i), c.accent); }
    node(pos.out, "c k", c.good);
    canvas.dataset.points = String(edges.length);
    return edges.length;
  }

  return { xy, parallel, bars, contour, cell, fmt };
})();
