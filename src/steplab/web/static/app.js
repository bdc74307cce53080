// steplab web lab: the page. Plain JavaScript, no build step, no external assets.
//
// The page keeps one `state` object (problem, start, optimizers and their hyperparameters,
// steps, noise, seed, sweep range). Every control writes into it; the URL's hash mirrors it
// (so a view can be bookmarked or shared), and the server computes from it: /api/grid for
// the contours, /api/run for the trajectories, /api/sweep for the step-size sweep.
// window.steplab exposes the state and the last results (the browser tests read them).
"use strict";

const SIZE = 560; // the contour plot, in pixels
// One colour per optimizer, in sl.OPTIMIZERS order; the seed's three get the clearest ones.
const COLORS = ["#7f7f7f", "#8c564b", "#bcbd22", "#ff7f0e", "#1f77b4", "#17becf",
  "#d62728", "#9467bd", "#e377c2", "#2ca02c", "#393b79", "#637939"];
const LOG_LR = { min: -5, max: 1 }; // the step-size slider spans 1e-5 … 10
const SVG_NS = "http://www.w3.org/2000/svg"; // a namespace name, not a URL that is fetched

const $ = (id) => document.getElementById(id);
const lab = (window.steplab = {
  meta: null, state: null, grid: null, result: null, sweep: null,
  frame: 0, runs: 0, sweeps: 0, busy: false, errors: {},
});

// ---------------------------------------------------------------------------------------
// State and the URL
// ---------------------------------------------------------------------------------------

function defaultState(meta) {
  const opts = {};
  const defaults = { adagrad: 0.5, rmsprop: 0.05, adam: 0.1 };
  for (const name of meta.seed_optimizers) {
    opts[name] = { preset: "seed", hp: { ...presetValues(name, "seed"), lr: defaults[name] ?? 0.05 } };
  }
  return {
    problem: "rosenbrock", expr: null, noise: 0, steps: 300, seed: 0, start: null, opts,
    sweep: { lr_min: 1e-4, lr_max: 1, points: 25 }, showStepSize: false,
  };
}

function optimizerMeta(name) {
  return lab.meta.optimizers.find((o) => o.name === name);
}

function scheduleMeta(name) {
  return lab.meta.schedules.find((s) => s.name === name);
}

// A schedule with its parameters' defaults; step counts default to a fraction of the run.
function defaultSchedule(name) {
  const schedule = { name };
  for (const p of scheduleMeta(name).parameters) {
    schedule[p.name] = p.default !== null ? p.default
      : Math.max(p.ge ?? 1, Math.round((p.of_steps ?? 1) * lab.state.steps));
  }
  return schedule;
}

function presetValues(name, preset) {
  const meta = optimizerMeta(name);
  const values = {};
  for (const hp of meta.hyperparameters) values[hp.name] = hp.default;
  return { ...values, ...(meta.presets[preset] || {}) };
}

function readHash(meta) {
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.has("s")) return defaultState(meta);
  try {
    const saved = JSON.parse(params.get("s"));
    const state = { ...defaultState(meta), ...saved };
    state.opts = {};
    for (const [name, opt] of Object.entries(saved.opts || {})) {
      if (!optimizerMeta(name)) continue; // an optimizer this version does not know
      state.opts[name] = { preset: opt.preset || "seed", hp: { ...presetValues(name, opt.preset || "seed"), ...opt.hp } };
      if (opt.schedule && scheduleMeta(opt.schedule.name)) state.opts[name].schedule = opt.schedule;
    }
    return state;
  } catch (err) {
    showError("run-error", "The link's state could not be read; starting from the defaults.");
    return defaultState(meta);
  }
}

function writeHash() {
  const hash = "#" + new URLSearchParams({ s: JSON.stringify(lab.state) }).toString();
  history.replaceState(null, "", hash);
  $("share").value = location.href;
}

// ---------------------------------------------------------------------------------------
// Talking to the server
// ---------------------------------------------------------------------------------------

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({ message: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.message || `HTTP ${response.status}`);
  return data;
}

function problemSpec() {
  const s = lab.state;
  return s.expr !== null ? { expression: s.expr, noise: s.noise } : { name: s.problem, noise: s.noise };
}

function optimizerSpecs() {
  // A schedule other than "constant" goes with the request; lr is then its scale α.
  return Object.entries(lab.state.opts).map(([name, opt]) => ({
    name, preset: opt.preset, hyperparameters: opt.hp,
    ...(opt.schedule && opt.schedule.name !== "constant" ? { schedule: opt.schedule } : {}),
  }));
}

function showError(id, message) {
  $(id).textContent = message || "";
  lab.errors[id] = message || "";
}

async function loadGrid() {
  showError("problem-error", "");
  try {
    lab.grid = await api("/api/grid", { problem: problemSpec(), resolution: 140 });
  } catch (err) {
    showError("problem-error", err.message);
    return false;
  }
  const info = lab.grid.problem;
  $("problem-description").textContent = info.gradient
    ? `${info.description};  ∇f = (${info.gradient.join(", ")})` : info.description;
  drawContours();
  return true;
}

let runToken = 0;
async function run() {
  const token = ++runToken;
  writeHash();
  if (!lab.grid) return;
  if (Object.keys(lab.state.opts).length === 0) {
    lab.result = null;
    showError("run-error", "Tick at least one optimizer.");
    redraw();
    return;
  }
  lab.busy = true;
  $("status").textContent = "running…";
  try {
    const result = await api("/api/run", {
      problem: problemSpec(), optimizers: optimizerSpecs(), start: lab.state.start,
      steps: lab.state.steps, seed: lab.state.seed,
    });
    if (token !== runToken) return; // a newer request is on its way
    showError("run-error", "");
    lab.result = result;
    lab.frame = result.steps;
    lab.runs += 1;
    $("frame").max = result.steps;
    const diverged = result.runs.filter((r) => r.diverged_at !== null).map((r) => r.name);
    $("status").textContent = `${result.runs.length} optimizer(s), ${result.steps} steps` +
      (diverged.length ? ` — diverged: ${diverged.join(", ")}` : "");
  } catch (err) {
    if (token !== runToken) return;
    showError("run-error", err.message);
    $("status").textContent = "error";
  } finally {
    if (token === runToken) lab.busy = false;
  }
  redraw();
}

async function runSweep() {
  writeHash();
  showError("sweep-error", "");
  if (Object.keys(lab.state.opts).length === 0) return showError("sweep-error", "Tick at least one optimizer.");
  $("status").textContent = "sweeping…";
  try {
    lab.sweep = await api("/api/sweep", {
      problem: problemSpec(), optimizers: optimizerSpecs(), start: lab.state.start,
      steps: lab.state.steps, seed: lab.state.seed, ...lab.state.sweep,
    });
    lab.sweeps += 1;
    $("status").textContent = `sweep of ${lab.sweep.lrs.length} step sizes done`;
  } catch (err) {
    showError("sweep-error", err.message);
    $("status").textContent = "error";
  }
  drawSweep();
}

let runTimer = null;
function scheduleRun() {
  clearTimeout(runTimer);
  runTimer = setTimeout(run, 200);
}

// ---------------------------------------------------------------------------------------
// The contour plot
// ---------------------------------------------------------------------------------------

function bounds() { return lab.grid.problem.bounds; }
function toPixel([x, y]) {
  const [[x0, x1], [y0, y1]] = bounds();
  return [((x - x0) / (x1 - x0)) * SIZE, SIZE - ((y - y0) / (y1 - y0)) * SIZE];
}
function toWorld(px, py) {
  const [[x0, x1], [y0, y1]] = bounds();
  return [x0 + (px / SIZE) * (x1 - x0), y0 + ((SIZE - py) / SIZE) * (y1 - y0)];
}

// Loss values span many decades: colour and contour lines follow log10(f − min + δ).
function logGrid(z) {
  const finite = z.flat().filter((v) => v !== null);
  const low = Math.min(...finite), high = Math.max(...finite);
  const delta = Math.max((high - low) * 1e-6, 1e-12);
  return z.map((row) => row.map((v) => (v === null ? null : Math.log10(v - low + delta))));
}

const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function colormap(t) {
  const u = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(u), VIRIDIS.length - 2), f = u - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

function drawContours() {
  const canvas = $("contour"), ctx = canvas.getContext("2d");
  const { z } = lab.grid.grid;
  const L = logGrid(z), n = L.length;
  const finite = L.flat().filter((v) => v !== null);
  const low = Math.min(...finite), high = Math.max(...finite);
  // Filled background: one grid cell per block of pixels, pale so the paths stand out.
  const image = ctx.createImageData(SIZE, SIZE);
  for (let py = 0; py < SIZE; py++) {
    const i = Math.round(((SIZE - 1 - py) / (SIZE - 1)) * (n - 1));
    for (let px = 0; px < SIZE; px++) {
      const j = Math.round((px / (SIZE - 1)) * (n - 1));
      const v = L[i][j];
      const [r, g, b] = v === null ? [255, 255, 255] : colormap((v - low) / (high - low || 1));
      const o = 4 * (py * SIZE + px);
      image.data[o] = 255 - 0.45 * (255 - r);
      image.data[o + 1] = 255 - 0.45 * (255 - g);
      image.data[o + 2] = 255 - 0.45 * (255 - b);
      image.data[o + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
  // Contour lines by marching squares at 18 levels evenly spaced in log space.
  ctx.strokeStyle = "rgba(40, 40, 60, 0.45)";
  ctx.lineWidth = 1;
  const cell = SIZE / (n - 1);
  const at = (i, j) => [j * cell, SIZE - i * cell];
  for (let k = 1; k < 18; k++) {
    const level = low + ((high - low) * k) / 18;
    ctx.beginPath();
    for (let i = 0; i < n - 1; i++) {
      for (let j = 0; j < n - 1; j++) {
        const c = [L[i][j], L[i][j + 1], L[i + 1][j + 1], L[i + 1][j]];
        if (c.includes(null)) continue;
        const corners = [at(i, j), at(i, j + 1), at(i + 1, j + 1), at(i + 1, j)];
        const crossings = [];
        for (let e = 0; e < 4; e++) {
          const a = c[e], b = c[(e + 1) % 4];
          if ((a < level) !== (b < level)) {
            const t = (level - a) / (b - a), p = corners[e], q = corners[(e + 1) % 4];
            crossings.push([p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])]);
          }
        }
        for (let m = 0; m + 1 < crossings.length; m += 2) {
          ctx.moveTo(...crossings[m]);
          ctx.lineTo(...crossings[m + 1]);
        }
      }
    }
    ctx.stroke();
  }
}

function svg(tag, attrs = {}, parent = null) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function colorOf(name) {
  // The server sends each optimizer's color from steplab.viz.palette (as in every figure).
  const i = lab.meta.optimizers.findIndex((o) => o.name === name);
  return lab.meta.optimizers[i].color || COLORS[i % COLORS.length];
}

// Round x values along the bottom edge and y values along the left edge, inside the plot
// (white halo), so a start point or a path can be read off in coordinates.
function drawAxisTicks(root) {
  const [[x0, x1], [y0, y1]] = bounds();
  for (const t of niceTicks(x0, x1)) {
    const [px] = toPixel([t, y0]);
    if (px < 14 || px > SIZE - 14) continue;
    svg("line", { x1: px, x2: px, y1: SIZE, y2: SIZE - 6, stroke: "#222", "stroke-width": 1 }, root);
    svg("text", { x: px, y: SIZE - 9, "text-anchor": "middle", class: "tick x-tick" }, root).textContent = tickText(t);
  }
  for (const t of niceTicks(y0, y1)) {
    const [, py] = toPixel([x0, t]);
    if (py < 10 || py > SIZE - 24) continue;
    svg("line", { x1: 0, x2: 6, y1: py, y2: py, stroke: "#222", "stroke-width": 1 }, root);
    svg("text", { x: 9, y: py + 4, "text-anchor": "start", class: "tick y-tick" }, root).textContent = tickText(t);
  }
}

// Trajectories up to the current frame, the start point and the known minima.
function drawPaths() {
  const root = $("paths");
  root.replaceChildren();
  if (!lab.grid) return;
  for (const m of lab.grid.problem.minima) {
    const [px, py] = toPixel(m);
    svg("path", { d: `M${px - 6},${py}h12M${px},${py - 6}v12`, stroke: "#fff", "stroke-width": 3, class: "minimum" }, root);
    svg("path", { d: `M${px - 6},${py}h12M${px},${py - 6}v12`, stroke: "#111", "stroke-width": 1.5 }, root);
  }
  drawAxisTicks(root);
  const start = lab.state.start || lab.grid.problem.x0;
  const [sx, sy] = toPixel(start);
  svg("circle", { id: "start", cx: sx, cy: sy, r: 6, fill: "#fff", stroke: "#111", "stroke-width": 2 }, root);
  if (!lab.result) return;
  for (const r of lab.result.runs) {
    const upto = Math.min(lab.frame, r.path.length - 1);
    const points = [];
    for (let t = 0; t <= upto; t++) {
      if (r.path[t][0] === null || r.path[t][1] === null) break;
      points.push(toPixel(r.path[t]).map((v) => Math.max(-1e4, Math.min(1e4, v)).toFixed(1)).join(","));
    }
    const color = colorOf(r.name);
    svg("polyline", { points: points.join(" "), fill: "none", stroke: "#fff", "stroke-width": 4, "stroke-opacity": 0.6 }, root);
    svg("polyline", {
      points: points.join(" "), fill: "none", stroke: color, "stroke-width": 2,
      class: "trajectory", "data-optimizer": r.name, "data-points": points.length,
    }, root);
    if (points.length) {
      const [hx, hy] = points[points.length - 1].split(",");
      svg("circle", { cx: hx, cy: hy, r: 4, fill: color, stroke: "#fff", "stroke-width": 1.5, class: "head" }, root);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Charts: loss vs step, step size vs step, final loss vs step size
// ---------------------------------------------------------------------------------------

// Decades on a log axis, at most `most` of them: a loss falling from 1e1 to 1e-49 gets a
// label every 10 decades, not 50 labels on top of each other.
function niceLogTicks(lo, hi, most = 6) {
  const first = Math.ceil(lo - 1e-9), last = Math.floor(hi + 1e-9);
  const every = [1, 2, 3, 5, 10, 20, 50, 100].find((k) => (last - first) / k < most) || 200;
  const ticks = [];
  for (let e = Math.ceil(first / every) * every; e <= last; e += every) ticks.push(e);
  return ticks;
}

// About `most` round values between lo and hi (1, 2 or 5 times a power of ten apart).
function niceTicks(lo, hi, most = 5) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / most, power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((v) => span / v <= most) || 10 * power;
  const ticks = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Math.abs(t) < step * 1e-9 ? 0 : +t.toPrecision(12)); // no "1e-17" for zero
  }
  return ticks;
}

function tickText(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(0).replace("e+", "e") : String(+v.toPrecision(4));
}

// series: [{color, points: [[x, y] …], dash}]; log axes take log10 of positive values only.
function lineChart(root, series, { logX = false, logY = true, xlabel = "", ylabel = "", markerX = null, dots = false, vlines = [] }) {
  root.replaceChildren();
  const W = 420, H = 250, M = { l: 64, r: 20, t: 10, b: 38 };
  const fx = (v) => (logX ? (v > 0 ? Math.log10(v) : null) : v);
  // Values of both signs spanning many decades (a run escaping down a saddle) go on a
  // signed log axis, sign(v)·log10(1 + |v|): linear, the last steps would flatten the rest.
  const raw = series.flatMap((s) => s.points.map(([, y]) => y)).filter((v) => v !== null && isFinite(v));
  const big = Math.max(...raw.map(Math.abs), 0);
  const symlog = !logY && big >= 1e4;
  const fy = (v) => (v === null || !isFinite(v) ? null
    : logY ? (v > 0 ? Math.log10(v) : null)
    : symlog ? Math.sign(v) * Math.log10(1 + Math.abs(v)) : v);
  const all = series.flatMap((s) => s.points.map(([x, y]) => [fx(x), fy(y)])).filter(([x, y]) => x !== null && y !== null);
  if (!all.length) {
    svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, root).textContent = "nothing to show";
    return;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const px = (x) => M.l + ((x - x0) / (x1 - x0)) * (W - M.l - M.r);
  const py = (y) => H - M.b - ((y - y0) / (y1 - y0)) * (H - M.t - M.b);
  // Axes and ticks.
  const yt = logY || symlog ? niceLogTicks(y0, y1) : niceTicks(y0, y1);
  const yText = (t) => (logY ? `1e${t}` : !symlog ? tickText(t) : t === 0 ? "0" : `${t < 0 ? "−" : ""}1e${Math.abs(t)}`);
  for (const t of yt) {
    svg("line", { x1: M.l, x2: W - M.r, y1: py(t), y2: py(t), class: "grid" }, root);
    svg("text", { x: M.l - 4, y: py(t) + 4, "text-anchor": "end", class: "tick" }, root).textContent = yText(t);
  }
  const xt = logX ? niceLogTicks(x0, x1) : niceTicks(x0, x1);
  for (const t of xt) {
    svg("text", { x: px(t), y: H - M.b + 14, "text-anchor": "middle", class: "tick" }, root).textContent = logX ? `1e${t}` : tickText(t);
  }
  svg("line", { x1: M.l, x2: M.l, y1: M.t, y2: H - M.b, class: "axis" }, root);
  svg("line", { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b, class: "axis" }, root);
  svg("text", { x: (M.l + W - M.r) / 2, y: H - 4, "text-anchor": "middle" }, root).textContent = xlabel;
  svg("text", { x: 11, y: (M.t + H - M.b) / 2, transform: `rotate(-90 11 ${(M.t + H - M.b) / 2})`, "text-anchor": "middle" }, root).textContent = ylabel + (symlog ? " (signed log)" : "");
  for (const { x, color } of vlines) {
    const v = fx(x);
    if (v !== null && v >= x0 && v <= x1) svg("line", { x1: px(v), x2: px(v), y1: M.t, y2: H - M.b, stroke: color, "stroke-dasharray": "2 3", "stroke-width": 1 }, root);
  }
  for (const s of series) {
    // Break the line where a value is missing (diverged, or ≤ 0 on a log axis).
    let d = "", pen = false;
    for (const [x, y] of s.points) {
      const a = fx(x), b = fy(y);
      if (a === null || b === null) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${px(a).toFixed(1)},${py(b).toFixed(1)}`;
      pen = true;
      if (dots) svg("circle", { cx: px(a), cy: py(b), r: 2.5, fill: s.color }, root);
    }
    svg("path", { d, fill: "none", stroke: s.color, "stroke-width": 1.6, "stroke-dasharray": s.dash || "", "data-optimizer": s.name || "" }, root);
  }
  if (markerX !== null) {
    const v = fx(markerX);
    if (v !== null) svg("line", { x1: px(v), x2: px(v), y1: M.t, y2: H - M.b, stroke: "#333", "stroke-width": 1, class: "marker" }, root);
  }
}

function drawLoss() {
  const runs = lab.result ? lab.result.runs : [];
  // Loss minus the known minimum, when there is one, so convergence shows on a log axis.
  const fmin = lab.grid && lab.grid.problem.f_min !== null ? lab.grid.problem.f_min : null;
  const series = runs.map((r) => ({
    name: r.name, color: colorOf(r.name),
    points: r.loss.map((v, t) => [t, v === null ? null : fmin !== null ? v - fmin : v]),
  }));
  // Log scale unless a value is negative; an exact 0 (a run that reached the minimum to
  // the last bit) just ends its line there.
  const logY = series.every((s) => s.points.every(([, v]) => v === null || v >= 0));
  lineChart($("loss"), series, {
    xlabel: "step", ylabel: fmin !== null ? "f − f*" : "f", logY, markerX: lab.frame,
  });
  const legend = $("legend");
  legend.replaceChildren();
  for (const r of runs) {
    const span = document.createElement("span");
    span.style.setProperty("--swatch", colorOf(r.name));
    const last = r.loss[Math.min(lab.frame, r.loss.length - 1)];
    span.textContent = `${r.label}: f=${last === null ? "diverged" : last.toPrecision(4)}`;
    legend.appendChild(span);
  }
}

function drawStepSize() {
  const root = $("step-size");
  root.toggleAttribute("hidden", !lab.state.showStepSize); // an SVG element has no .hidden
  if (!lab.state.showStepSize || !lab.result) return;
  const series = [];
  for (const r of lab.result.runs) {
    for (const [k, dash] of [[0, ""], [1, "5 3"]]) {
      series.push({ name: r.name, color: colorOf(r.name), dash, points: r.step_size.map((s, t) => [t + 1, s[k]]) });
    }
  }
  lineChart(root, series, { xlabel: "step", ylabel: "effective step size", markerX: lab.frame });
}

function sweepHint() {
  const root = $("sweep");
  root.replaceChildren();
  const text = svg("text", { x: 210, y: 125, "text-anchor": "middle" }, root);
  text.textContent = "press Sweep: final loss for each step size, per ticked optimizer";
}

function drawSweep() {
  if (!lab.sweep) return sweepHint();
  const series = lab.sweep.results.map((r) => ({
    name: r.name, color: colorOf(r.name), points: lab.sweep.lrs.map((lr, k) => [lr, r.final_loss[k]]),
  }));
  // Log scale unless a value is negative; an exact 0 (a run that reached the minimum to
  // the last bit) just ends its line there.
  const logY = series.every((s) => s.points.every(([, v]) => v === null || v >= 0));
  const vlines = Object.entries(lab.state.opts).map(([name, o]) => ({ x: o.hp.lr, color: colorOf(name) }));
  const scheduled = Object.values(lab.state.opts).some((o) => o.schedule && o.schedule.name !== "constant");
  lineChart($("sweep"), series, {
    logX: true, logY, xlabel: `step size α${scheduled ? " (a schedule's scale)" : ""} (dashed: current)`,
    ylabel: `f after ${lab.sweep.steps} steps`, dots: true, vlines,
  });
}

function redraw() {
  $("frame").value = lab.frame;
  $("frame-label").textContent = lab.result ? `step ${lab.frame} / ${lab.result.steps}` : "";
  drawPaths();
  drawLoss();
  drawStepSize();
}

// ---------------------------------------------------------------------------------------
// Lecture scenes: one click sets up a comparison as the lecture shows it
// ---------------------------------------------------------------------------------------

// The quadratic is the lecture's ½θᵀAθ, A = diag(1/50, 1), scaled by 0.3 to fit the
// formula's [−3, 3] box: SGD and Momentum are linear, so their paths keep their shape; Adam
// moves about α per step, so its α is scaled by 0.3 too (steplab demo: 0.3 from (−9, 1.5)).
const SCENES = {
  saddle: {
    title: "Saddle race",
    note: "x² − y² from (1, 0.001), α = 0.05 for all (AdaDelta: its own step). Play it: "
      + "SGD creeps along the ridge, the adaptive methods turn off it at once.",
    problem: "saddle", steps: 150, start: [1, 0.001],
    opts: { sgd: { lr: 0.05 }, momentum: { lr: 0.05 }, nesterov: { lr: 0.05 }, adagrad: { lr: 0.05 },
      adadelta: {}, rmsprop: { lr: 0.05 }, adam: { lr: 0.05 } },
  },
  quadratic: {
    title: "Quadratic form",
    note: "½θᵀAθ with A = diag(1/50, 1): SGD (α = 1.8) zig-zags across the valley, Momentum "
      + "(α = 0.5, ρ = 0.9) overshoots and swings back, Adam (α = 0.09) heads straight in.",
    expr: "x**2/100 + y**2/2", steps: 80, start: [-2.7, 0.45],
    opts: { sgd: { lr: 1.8 }, momentum: { lr: 0.5, rho: 0.9 }, adam: { lr: 0.09 } },
  },
  decay: {
    title: "AdaGrad's decay vs RMSProp",
    note: "Rosenbrock, the same α = 0.01: AdaGrad's step size (shown below the loss) only "
      + "falls and it stalls; RMSProp's moving average keeps it walking the valley.",
    problem: "rosenbrock", steps: 2000, start: null, showStepSize: true,
    opts: { adagrad: { lr: 0.01 }, rmsprop: { lr: 0.01 } },
  },
};

async function applyScene(key) {
  const scene = SCENES[key];
  const state = defaultState(lab.meta);
  Object.assign(state, {
    problem: scene.problem || state.problem, expr: scene.expr ?? null, steps: scene.steps,
    start: scene.start, showStepSize: !!scene.showStepSize, opts: {},
  });
  for (const [name, hp] of Object.entries(scene.opts)) {
    state.opts[name] = { preset: "seed", hp: { ...presetValues(name, "seed"), ...hp } };
  }
  pause();
  lab.state = state;
  lab.result = null;
  lab.sweep = null;
  lab.scene = key;
  buildOptimizerList();
  sweepHint();
  $("scene-note").textContent = scene.note;
  if (await loadGrid()) { syncFields(); await run(); } else { writeHash(); redraw(); }
}

function buildScenes() {
  const box = $("scenes");
  for (const [key, scene] of Object.entries(SCENES)) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = scene.title;
    button.dataset.scene = key;
    button.addEventListener("click", () => applyScene(key));
    box.append(button);
  }
  const note = document.createElement("p");
  note.className = "hint";
  note.id = "scene-note";
  box.append(note);
}

// ---------------------------------------------------------------------------------------
// Controls
// ---------------------------------------------------------------------------------------

function formatNumber(v) {
  if (v === 0) return "0";
  return Math.abs(v) >= 1e-3 && Math.abs(v) < 1e4 ? String(+v.toPrecision(4)) : v.toExponential(2);
}

function hyperControl(name, hp, opt) {
  const label = document.createElement("label");
  label.title = `${hp.doc} — ${hp.interval}`;
  label.append(hp.name);
  const value = opt.hp[hp.name];
  const onChange = (v) => { opt.hp[hp.name] = v; scheduleRun(); };
  if (hp.kind === "bool") {
    label.className = "bool";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = Boolean(value);
    box.dataset.hyper = `${name}.${hp.name}`;
    box.addEventListener("change", () => onChange(box.checked));
    label.append(box);
    return label;
  }
  if (hp.kind === "log") {
    // A log-scale slider plus a field for exact values.
    const slider = document.createElement("input");
    slider.type = "range";
    slider.min = LOG_LR.min; slider.max = LOG_LR.max; slider.step = 0.01;
    slider.value = Math.log10(value);
    slider.dataset.hyper = `${name}.${hp.name}`;
    const field = document.createElement("input");
    field.type = "number"; field.step = "any"; field.min = 0;
    field.value = formatNumber(value);
    field.dataset.hyperField = `${name}.${hp.name}`;
    slider.addEventListener("input", () => {
      const v = +(10 ** +slider.value).toPrecision(3);
      field.value = formatNumber(v);
      onChange(v);
    });
    field.addEventListener("change", () => {
      const v = Number(field.value);
      slider.value = Math.log10(v);
      onChange(v); // the server says what is wrong with a bad value (shown under the list)
    });
    label.append(slider, field);
    return label;
  }
  const field = document.createElement("input");
  field.type = "number"; field.step = "any";
  field.value = formatNumber(value);
  field.dataset.hyper = `${name}.${hp.name}`;
  field.addEventListener("change", () => onChange(Number(field.value)));
  if (hp.kind === "unit") {
    // Decay rates: a slider over [0, 1) as well; values near 1 matter, so the field stays exact.
    const slider = document.createElement("input");
    slider.type = "range"; slider.min = 0; slider.max = 0.999; slider.step = 0.001;
    slider.value = value;
    slider.addEventListener("input", () => { field.value = slider.value; onChange(Number(slider.value)); });
    field.addEventListener("change", () => { slider.value = field.value; });
    label.append(slider, field);
  } else {
    label.append(document.createElement("span"), field);
  }
  return label;
}

// The step size's schedule: a select (constant, 1/√t, step decay, cosine, warm-up +
// cosine) and a field per parameter of the chosen one; α (lr above) is its scale.
function scheduleControl(name, opt) {
  const box = document.createElement("div");
  box.className = "schedule";
  const label = document.createElement("label");
  label.className = "bool";
  label.title = "how α changes with the step t; α above is the schedule's scale";
  label.append("schedule");
  const select = document.createElement("select");
  select.dataset.schedule = name;
  const current = opt.schedule ? opt.schedule.name : "constant";
  for (const s of lab.meta.schedules) select.add(new Option(s.label, s.name, false, s.name === current));
  label.append(select);
  const params = document.createElement("div");
  params.className = "schedule-params";
  const fillParams = () => {
    params.replaceChildren();
    const schedule = opt.schedule;
    if (!schedule) return;
    select.title = scheduleMeta(schedule.name).doc;
    for (const p of scheduleMeta(schedule.name).parameters) {
      const field = document.createElement("input");
      field.type = "number";
      field.step = p.kind === "int" ? "1" : "any";
      if (p.ge !== undefined) field.min = p.ge;
      if (p.le !== undefined) field.max = p.le;
      field.value = schedule[p.name];
      field.dataset.scheduleParam = `${name}.${p.name}`;
      field.addEventListener("change", () => {
        // Sent as typed: the server says what is wrong with a bad value (under the list).
        schedule[p.name] = Number(field.value);
        scheduleRun();
      });
      const row = document.createElement("label");
      row.title = p.doc;
      const title = document.createElement("span");
      title.className = "name";
      title.textContent = p.title;
      row.append(document.createElement("span"), title, field);
      params.append(row);
    }
  };
  select.addEventListener("change", () => {
    if (select.value === "constant") delete opt.schedule;
    else opt.schedule = defaultSchedule(select.value);
    fillParams();
    scheduleRun();
  });
  fillParams();
  box.append(label, params);
  return box;
}

function buildOptimizerList() {
  const box = $("optimizers");
  box.replaceChildren();
  for (const meta of lab.meta.optimizers) {
    const name = meta.name;
    const on = name in lab.state.opts;
    const div = document.createElement("div");
    div.className = "optimizer" + (on ? " on" : "");
    const head = document.createElement("label");
    head.className = "check";
    head.title = meta.summary;
    const toggle = document.createElement("input");
    toggle.type = "checkbox";
    toggle.checked = on;
    toggle.dataset.optimizer = name;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colorOf(name);
    head.append(toggle, swatch, name);
    div.append(head);
    const hyper = document.createElement("div");
    hyper.className = "hyper";
    div.append(hyper);
    const fill = () => {
      hyper.replaceChildren();
      const opt = lab.state.opts[name];
      if (!opt) return;
      const presetLabel = document.createElement("label");
      presetLabel.className = "bool";
      presetLabel.append("preset");
      const select = document.createElement("select");
      for (const p of Object.keys(meta.presets)) select.add(new Option(p, p, false, p === opt.preset));
      select.dataset.preset = name;
      select.addEventListener("change", () => {
        const lr = opt.hp.lr; // keep the chosen step size; the preset sets the conventions
        opt.preset = select.value;
        opt.hp = { ...presetValues(name, select.value), lr };
        fill();
        scheduleRun();
      });
      presetLabel.append(select);
      hyper.append(presetLabel);
      for (const hp of meta.hyperparameters) {
        hyper.append(hyperControl(name, hp, opt));
        if (hp.name === "lr") hyper.append(scheduleControl(name, opt));
      }
    };
    toggle.addEventListener("change", () => {
      if (toggle.checked) lab.state.opts[name] = { preset: "seed", hp: presetValues(name, "seed") };
      else delete lab.state.opts[name];
      div.classList.toggle("on", toggle.checked);
      fill();
      scheduleRun();
    });
    fill();
    box.append(div);
  }
}

function syncFields() {
  const s = lab.state;
  $("problem").value = s.expr !== null ? "" : s.problem;
  $("expression").value = s.expr ?? "";
  $("steps").value = s.steps; $("noise").value = s.noise; $("seed").value = s.seed;
  $("lr-min").value = s.sweep.lr_min; $("lr-max").value = s.sweep.lr_max; $("points").value = s.sweep.points;
  $("show-step-size").checked = s.showStepSize;
  const start = s.start || (lab.grid ? lab.grid.problem.x0 : null);
  $("start-label").textContent = start ? `(${start.map((v) => formatNumber(v)).join(", ")})` : "";
}

async function changeProblem() {
  lab.state.start = null;
  lab.result = null;
  lab.sweep = null;
  sweepHint();
  if (await loadGrid()) { syncFields(); run(); } else { writeHash(); redraw(); }
}

function wireControls() {
  const select = $("problem");
  select.add(new Option("(formula below)", ""));
  for (const f of lab.meta.functions) select.add(new Option(f.name, f.name));
  select.addEventListener("change", () => {
    if (!select.value) return $("expression").focus();
    lab.state.problem = select.value;
    lab.state.expr = null;
    changeProblem();
  });
  $("expression").title = `Allowed: ${lab.meta.expression_grammar}`;
  $("expression-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("expression").value.trim();
    if (!text) return showError("problem-error", "Type a formula in x and y, e.g. x**2 + 10*y**2");
    lab.state.expr = text;
    $("problem").value = "";
    changeProblem();
  });
  const numberField = (id, key, integer) => $(id).addEventListener("change", () => {
    const v = Number($(id).value);
    lab.state[key] = integer ? Math.round(v) : v;
    scheduleRun();
  });
  numberField("steps", "steps", true);
  numberField("noise", "noise", false);
  numberField("seed", "seed", true);
  for (const [id, key] of [["lr-min", "lr_min"], ["lr-max", "lr_max"], ["points", "points"]]) {
    $(id).addEventListener("change", () => { lab.state.sweep[key] = Number($(id).value); writeHash(); });
  }
  $("sweep-run").addEventListener("click", runSweep);
  $("show-step-size").addEventListener("change", () => {
    lab.state.showStepSize = $("show-step-size").checked;
    writeHash();
    drawStepSize();
  });
  $("paths").addEventListener("click", (event) => {
    if (!lab.grid) return;
    const rect = $("paths").getBoundingClientRect();
    const px = ((event.clientX - rect.left) / rect.width) * SIZE;
    const py = ((event.clientY - rect.top) / rect.height) * SIZE;
    lab.state.start = toWorld(px, py).map((v) => +v.toPrecision(4));
    syncFields();
    drawPaths();
    scheduleRun();
  });
  $("start-reset").addEventListener("click", () => { lab.state.start = null; syncFields(); scheduleRun(); });
  // The player.
  $("play").addEventListener("click", () => (timer ? pause() : play()));
  $("step-forward").addEventListener("click", () => { pause(); setFrame(lab.frame + 1); });
  $("step-back").addEventListener("click", () => { pause(); setFrame(lab.frame - 1); });
  $("frame").addEventListener("input", () => { pause(); setFrame(Number($("frame").value)); });
  // Export.
  $("export-png").addEventListener("click", () => download("steplab.png", exportPNG()));
  $("export-csv").addEventListener("click", () => download("steplab-runs.csv", blobURL(exportCSV(), "text/csv")));
  $("export-json").addEventListener("click", () => download("steplab-runs.json", blobURL(exportJSON(), "application/json")));
}

// ---------------------------------------------------------------------------------------
// Animation
// ---------------------------------------------------------------------------------------

let timer = null;
function setFrame(t) {
  if (!lab.result) return;
  lab.frame = Math.max(0, Math.min(lab.result.steps, t));
  redraw();
}
function play() {
  if (!lab.result) return;
  if (lab.frame >= lab.result.steps) lab.frame = 0;
  $("play").textContent = "Pause";
  timer = setInterval(() => {
    setFrame(lab.frame + Number($("speed").value));
    if (lab.frame >= lab.result.steps) pause();
  }, 40);
}
function pause() {
  clearInterval(timer);
  timer = null;
  $("play").textContent = "Play";
}

// ---------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------

function exportPNG() {
  // The contour plot with the trajectories up to the current frame, and a legend.
  const canvas = document.createElement("canvas");
  canvas.width = SIZE; canvas.height = SIZE + 24 + 18 * (lab.result ? lab.result.runs.length : 0);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage($("contour"), 0, 0);
  ctx.font = "13px sans-serif";
  const runs = lab.result ? lab.result.runs : [];
  runs.forEach((r, i) => {
    ctx.strokeStyle = colorOf(r.name);
    ctx.lineWidth = 2;
    ctx.beginPath();
    for (let t = 0; t <= Math.min(lab.frame, r.path.length - 1); t++) {
      if (r.path[t][0] === null) break;
      const [x, y] = toPixel(r.path[t]);
      t === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y);
    }
    ctx.stroke();
    ctx.fillStyle = colorOf(r.name);
    ctx.fillRect(10, SIZE + 14 + 18 * i, 16, 4);
    ctx.fillStyle = "#222";
    ctx.fillText(r.label, 32, SIZE + 20 + 18 * i);
  });
  if (lab.grid) {
    // The known minima (crosses) and the start point (a ring), as on the page.
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 1.5;
    for (const m of lab.grid.problem.minima) {
      const [x, y] = toPixel(m);
      ctx.beginPath();
      ctx.moveTo(x - 6, y); ctx.lineTo(x + 6, y); ctx.moveTo(x, y - 6); ctx.lineTo(x, y + 6);
      ctx.stroke();
    }
    const [sx, sy] = toPixel(lab.state.start || lab.grid.problem.x0);
    ctx.fillStyle = "#fff";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(sx, sy, 6, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }
  const title = lab.grid ? lab.grid.problem.description : "";
  ctx.fillStyle = "#222";
  ctx.fillText(`${title} — step ${lab.frame}`, 10, SIZE + 16 + 18 * runs.length);
  return canvas.toDataURL("image/png");
}

function exportCSV() {
  const lines = ["optimizer,preset,label,step,x,y,loss,step_size_x,step_size_y"];
  for (const r of lab.result ? lab.result.runs : []) {
    r.path.forEach((p, t) => {
      const s = t > 0 ? r.step_size[t - 1] : ["", ""];
      const cell = (v) => (v === null ? "nan" : v);
      lines.push([r.name, r.preset, `"${r.label}"`, t, cell(p[0]), cell(p[1]), cell(r.loss[t]), cell(s[0]), cell(s[1])].join(","));
    });
  }
  return lines.join("\n") + "\n";
}

function exportJSON() {
  return JSON.stringify({ state: lab.state, run: lab.result, sweep: lab.sweep }, null, 1);
}

function blobURL(text, type) {
  return URL.createObjectURL(new Blob([text], { type }));
}

function download(filename, url) {
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
}

Object.assign(lab, { exportPNG, exportCSV, exportJSON, play, pause, setFrame, run, runSweep, applyScene, SCENES });

// ---------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------

async function main() {
  try {
    lab.meta = await api("/api/meta");
  } catch (err) {
    $("status").textContent = `cannot reach the steplab server: ${err.message}`;
    return;
  }
  lab.state = readHash(lab.meta);
  wireControls();
  buildScenes();
  buildOptimizerList();
  sweepHint();
  syncFields();
  if (await loadGrid()) {
    syncFields();
    await run();
  } else {
    writeHash();
    $("status").textContent = "fix the problem above";
  }
}

main();
