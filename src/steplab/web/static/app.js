// steplab web lab: the page. Plain JavaScript, no build step, no external assets.
//
// The page keeps one `state` object (problem, start, optimizers and their hyperparameters,
// steps, noise, seed, sweep range). Every control writes into it; the URL's hash mirrors it
// (so a view can be bookmarked or shared), and the server computes from it: /api/grid for
// the contours, /api/run for the trajectories, /api/sweep for the step-size sweep.
// window.steplab exposes the state and the last results (the browser tests read them).
"use strict";

const SIZE = 560; // the contour plot, in pixels
// Each optimizer's color, marker and name: static/palette.js, generated from
// steplab.viz.palette (the same as in every steplab figure).
const PALETTE = window.STEPLAB_PALETTE || {};
const LOG_LR = { min: -5, max: 1 }; // the step-size slider spans 1e-5 … 10
const PLAY_SECONDS = 8; // the default speed plays any run in this many seconds
// A run whose loss rises above this multiple of max(1, |initial loss|) has diverged: the
// rule of sl.minimize (and so of the sweep); its points then leave the loss chart's range.
const DIVERGENCE_FACTOR = 1e8;
const SVG_NS = "http://www.w3.org/2000/svg"; // a namespace name, not a URL that is fetched

const $ = (id) => document.getElementById(id);
const lab = (window.steplab = {
  meta: null, state: null, grid: null, result: null, sweep: null,
  frame: 0, runs: 0, sweeps: 0, grids: 0, busy: false, errors: {}, suggested: {},
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
  // Everything on screen is here, so the URL (which mirrors it) restores the whole view:
  // the scene, the frame of the plot, the player's step and speed, whether a sweep is shown.
  return {
    problem: "rosenbrock", expr: null, noise: 0, steps: 300, seed: 0, start: null, opts,
    sweep: { lr_min: 1e-4, lr_max: 1, points: 25 }, showStepSize: false,
    scene: null, fit: true, bounds: null, frame: null, speed: "auto", sweepShown: false,
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

function modifierMeta(name) {
  return (lab.meta.modifiers || []).find((m) => m.name === name);
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
    if (!(state.scene in SCENES)) state.scene = null;
    if (state.speed !== "auto" && !(Number(state.speed) > 0)) state.speed = "auto";
    state.opts = {};
    for (const [name, opt] of Object.entries(saved.opts || {})) {
      if (!optimizerMeta(name)) continue; // an optimizer this version does not know
      state.opts[name] = { preset: opt.preset || "seed", hp: { ...presetValues(name, opt.preset || "seed"), ...opt.hp } };
      if (opt.schedule && scheduleMeta(opt.schedule.name)) state.opts[name].schedule = opt.schedule;
      const known = (opt.modifiers || []).filter((m) => m && modifierMeta(m.name));
      if (known.length) state.opts[name].modifiers = known.map((m) => ({ name: m.name, settings: { ...(m.settings || {}) } }));
    }
    return state;
  } catch (err) {
    lab.errors["run-error"] = "The link's state could not be read; starting from the defaults.";
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
  if (!response.ok) {
    const error = new Error(data.message || `HTTP ${response.status}`);
    const first = (data.detail || [])[0];
    error.loc = first && Array.isArray(first.loc) ? first.loc.filter((p) => p !== "body") : [];
    error.msg = first ? first.msg : error.message;
    throw error;
  }
  return data;
}

function problemSpec(s = lab.state, bounds = null) {
  const spec = s.expr !== null ? { expression: s.expr, noise: s.noise } : { name: s.problem, noise: s.noise };
  return bounds ? { ...spec, bounds } : spec;
}

function optimizerSpecs() {
  // A schedule other than "constant" goes with the request; lr is then its scale α.
  return Object.entries(lab.state.opts).map(([name, opt]) => ({
    name, preset: opt.preset, hyperparameters: opt.hp,
    ...(opt.schedule && opt.schedule.name !== "constant" ? { schedule: opt.schedule } : {}),
    ...(opt.modifiers && opt.modifiers.length ? { modifiers: opt.modifiers } : {}),
  }));
}

// Errors sit next to the field they are about (the element `id`, an optimizer's box), the
// field is marked invalid, and the header repeats the message, so it is seen above the fold.
function showError(id, message, field = null) {
  const box = $(id);
  if (box) box.textContent = message || "";
  lab.errors[id] = message || "";
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", id);
  }
}

function clearErrors(ids) {
  for (const id of ids) showError(id, "");
  for (const el of document.querySelectorAll("[aria-invalid]")) {
    if (ids.includes(el.getAttribute("aria-describedby"))) {
      el.removeAttribute("aria-invalid");
      el.removeAttribute("aria-describedby");
    }
  }
}

function nameOf(name) {
  return (PALETTE[name] && PALETTE[name].label) || name;
}

// A run's legend label as the lecture spells the name: "adam α=0.1" → "Adam α=0.1".
function runLabel(r) {
  return r.label.startsWith(r.name) ? nameOf(r.name) + r.label.slice(r.name.length) : r.label;
}

// The server's 422 names the field by its place (loc), e.g. ["optimizers", 2,
// "hyperparameters"] or ["optimizers", 0, "schedule", "cosine", "decay_steps"]: show the
// message next to that field, naming the optimizer ("Adam: lr must be in (0, inf) …").
function showRequestError(err, names, fallback) {
  const loc = err.loc || [];
  let id = fallback, field = null, text = err.msg || err.message;
  if (loc[0] === "optimizers" && typeof loc[1] === "number" && names[loc[1]] !== undefined) {
    const name = names[loc[1]];
    id = `error-${name}`;
    const rest = loc.slice(2).filter((p) => p !== "hyperparameters");
    if (rest[0] === "schedule") {
      const param = rest[rest.length - 1];
      field = document.querySelector(`[data-schedule-param="${name}.${param}"]`)
        || document.querySelector(`select[data-schedule="${name}"]`);
      text = `schedule ${rest.length > 2 ? `${param}: ` : ""}${text}`;
    } else if (rest[0] === "modifiers") {
      const modifier = (lab.state.opts[name].modifiers || [])[rest[1]];
      const setting = rest[2] === "settings" ? text.split(":")[1] : null;
      field = (modifier && setting && document.querySelector(
        `[data-modifier-setting="${name}.${modifier.name}.${setting.trim().split(" ")[0]}"]`))
        || document.querySelector(`select[data-modifier="${name}"]`);
      text = `modifier: ${text}`;
    } else if (rest[0] === "preset") {
      field = document.querySelector(`select[data-preset="${name}"]`);
    } else {
      const hp = (text.startsWith(`${nameOf(name)}: `) ? text.slice(nameOf(name).length + 2) : text).split(" ")[0];
      field = document.querySelector(`[data-hyper-field="${name}.${hp}"]`)
        || document.querySelector(`[data-hyper="${name}.${hp}"]`);
    }
    if (!text.startsWith(`${nameOf(name)}`)) text = `${nameOf(name)}: ${text}`;
  } else if (loc[0] === "problem" && loc[1] === "noise") {
    id = "settings-error";
    field = $("noise");
    text = err.message;
  } else if (loc[0] === "problem") {
    id = "problem-error";
    field = $("expression");
    text = err.message;
  } else if (["steps", "seed"].includes(loc[0])) {
    id = "settings-error";
    field = $(loc[0]);
    text = err.message;
  } else if (loc[0] === "start") {
    id = "start-error";
    field = $("start-x");
    text = err.message;
  } else if (["lr_min", "lr_max", "points"].includes(loc[0])) {
    id = "sweep-error";
    field = $({ lr_min: "lr-min", lr_max: "lr-max", points: "points" }[loc[0]]);
    text = err.message;
  } else {
    text = err.message;
  }
  if (!$(id)) id = fallback;
  showError(id, text, field);
  $("status").textContent = `✗ ${text}`;
  return id;
}

const RUN_ERRORS = () => ["run-error", "settings-error", "start-error",
  ...lab.meta.optimizers.map((o) => `error-${o.name}`)];

// The contours of `state`'s problem over `bounds` (null: the problem's own box). Nothing
// on the page changes unless it succeeds: a bad formula leaves the old view whole.
async function fetchGrid(state, bounds) {
  return api("/api/grid", { problem: problemSpec(state, bounds), resolution: 140 });
}

function useGrid(grid) {
  lab.grid = grid;
  lab.grids += 1;
  const info = grid.problem;
  $("problem-description").textContent = info.gradient
    ? `${info.description};  ∇f = (${info.gradient.join(", ")})` : info.description;
  drawContours();
}

async function loadGrid() {
  clearErrors(["problem-error"]);
  try {
    useGrid(await fetchGrid(lab.state, lab.state.fit ? lab.state.bounds : null));
  } catch (err) {
    showRequestError(err, [], "problem-error");
    return false;
  }
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
    $("status").textContent = "Tick at least one optimizer.";
    redraw();
    return;
  }
  lab.busy = true;
  $("status").textContent = "running…";
  const names = Object.keys(lab.state.opts);
  try {
    const result = await api("/api/run", {
      problem: problemSpec(), optimizers: optimizerSpecs(), start: lab.state.start,
      steps: lab.state.steps, seed: lab.state.seed,
    });
    if (token !== runToken) return; // a newer request is on its way
    clearErrors(RUN_ERRORS());
    lab.result = result;
    lab.frame = lab.state.frame !== null ? Math.min(lab.state.frame, result.steps) : result.steps;
    lab.runs += 1;
    $("frame").max = result.steps;
    if (lab.state.fit) await frameToPaths(token);
    if (token !== runToken) return;
    const diverged = result.runs.filter((r) => divergedAt(r) !== null).map((r) => nameOf(r.name));
    $("status").textContent = `${result.runs.length} optimizer(s), ${result.steps} steps` +
      (diverged.length ? ` — diverged: ${diverged.join(", ")}` : "");
  } catch (err) {
    if (token !== runToken) return;
    // The last good run stays on screen; the message sits next to the field it is about.
    showRequestError(err, names, "run-error");
    if (lab.result) $("status").textContent += " (the plot still shows the last good run)";
  } finally {
    if (token === runToken) lab.busy = false;
  }
  redraw();
  if (token === runToken && lab.state.sweepShown && !lab.sweep) runSweep();
}

async function runSweep() {
  writeHash();
  clearErrors(["sweep-error"]);
  if (Object.keys(lab.state.opts).length === 0) return showError("sweep-error", "Tick at least one optimizer.");
  $("status").textContent = "sweeping…";
  const names = Object.keys(lab.state.opts);
  try {
    lab.sweep = await api("/api/sweep", {
      problem: problemSpec(), optimizers: optimizerSpecs(), start: lab.state.start,
      steps: lab.state.steps, seed: lab.state.seed, ...lab.state.sweep,
    });
    lab.sweeps += 1;
    lab.state.sweepShown = true;
    writeHash();
    $("status").textContent = `sweep of ${lab.sweep.lrs.length} step sizes done`;
  } catch (err) {
    showRequestError(err, names, "sweep-error");
  }
  drawSweep();
}

// ---------------------------------------------------------------------------------------
// Framing: the contour plot shows the box the paths use, not a thin band of a big one
// ---------------------------------------------------------------------------------------

// The box around the start, every iterate and the known minima, each clipped to the
// problem's own box (a run escaping to 1e30 frames nothing), plus a 6 % margin; at least
// 5 % of the problem's box on each axis. Null when the problem's box is as good.
function fittedBounds(result, full) {
  const xs = [], ys = [];
  const add = ([x, y]) => {
    if (x === null || y === null || !isFinite(x) || !isFinite(y)) return;
    xs.push(Math.min(Math.max(x, full[0][0]), full[0][1]));
    ys.push(Math.min(Math.max(y, full[1][0]), full[1][1]));
  };
  add(result.start);
  // Diverged runs frame nothing (they would always stretch it to the whole box): they are
  // marked where they leave it.
  const healthy = result.runs.filter((r) => divergedAt(r) === null);
  for (const r of healthy.length ? healthy : result.runs) r.path.forEach(add);
  for (const m of lab.grid.problem.minima) {
    if (m[0] >= full[0][0] && m[0] <= full[0][1] && m[1] >= full[1][0] && m[1] <= full[1][1]) add(m);
  }
  // The low sides get more room: the plot's tick labels sit inside its left and bottom edges.
  const box = [[Math.min(...xs), Math.max(...xs)], [Math.min(...ys), Math.max(...ys)]].map(([lo, hi], k) => {
    const span = full[k][1] - full[k][0];
    const pad = Math.max(0.06 * (hi - lo), 0.025 * span);
    const low = Math.max(0.1 * (hi - lo), 0.025 * span);
    return [Math.max(full[k][0], lo - low), Math.min(full[k][1], hi + pad)].map((v) => +v.toPrecision(4));
  });
  const covers = box.every(([lo, hi], k) => hi - lo > 0.85 * (full[k][1] - full[k][0]));
  return covers ? null : box;
}

// Refit only when the paths leave the current box or fill less than 60 % of a side of it:
// small changes (a slider dragged) keep the frame still.
async function frameToPaths(token) {
  const full = lab.grid.problem.full_bounds;
  const want = fittedBounds(lab.result, full);
  const now = lab.state.bounds;
  const inside = (a, b) => a[0] >= b[0] - 1e-12 && a[1] <= b[1] + 1e-12;
  const fine = want === null ? now === null
    : now !== null && want.every((w, k) => inside(w, now[k]) && w[1] - w[0] >= 0.6 * (now[k][1] - now[k][0]));
  if (fine) return;
  try {
    const grid = await fetchGrid(lab.state, want);
    if (token !== runToken) return;
    lab.state.bounds = want;
    useGrid(grid);
    writeHash();
  } catch (err) {
    // The old frame stays; the paths are still drawn in it.
  }
}

function setFit(fit) {
  lab.state.fit = fit;
  if (!fit) lab.state.bounds = null;
  loadGrid().then((ok) => { if (ok) { if (fit && lab.result) frameToPaths(runToken).then(redraw); else redraw(); } writeHash(); });
}

let runTimer = null;
function scheduleRun() {
  lab.state.frame = null; // a new computation is shown at its last step
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
  renderContours($("contour").getContext("2d"), SIZE);
}

// The filled contours and contour lines on a `size` × `size` canvas.
function renderContours(ctx, size) {
  const SIZE = size; // this drawing's size: the page's plot, or the export's
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
  return (PALETTE[name] && PALETTE[name].color) || "#555";
}

function markerOf(name) {
  return (PALETTE[name] && PALETTE[name].marker) || "o";
}

// An SVG path for a matplotlib marker letter (steplab.viz.palette.MARKERS), centred at
// (x, y), about 2r across.
function markerPath(kind, x, y, r) {
  const poly = (n, r0, turn = 0, inner = null) => {
    const pts = [];
    const k = inner === null ? n : 2 * n;
    for (let i = 0; i < k; i++) {
      const a = turn + (i * 2 * Math.PI) / k - Math.PI / 2;
      const rr = inner !== null && i % 2 ? inner : r0;
      pts.push(`${(x + rr * Math.cos(a)).toFixed(2)},${(y + rr * Math.sin(a)).toFixed(2)}`);
    }
    return `M${pts.join("L")}Z`;
  };
  const cross = (turn) => {
    const w = r * 0.38, pts = [[-w, -r], [w, -r], [w, -w], [r, -w], [r, w], [w, w], [w, r], [-w, r], [-w, w], [-r, w], [-r, -w], [-w, -w]];
    const c = Math.cos(turn), s = Math.sin(turn);
    return `M${pts.map(([a, b]) => `${(x + a * c - b * s).toFixed(2)},${(y + a * s + b * c).toFixed(2)}`).join("L")}Z`;
  };
  switch (kind) {
    case "s": return `M${x - r * 0.85},${y - r * 0.85}h${1.7 * r}v${1.7 * r}h${-1.7 * r}Z`;
    case "D": return poly(4, r * 1.1);
    case "^": return poly(3, r * 1.15);
    case "v": return poly(3, r * 1.15, Math.PI);
    case "<": return poly(3, r * 1.15, -Math.PI / 2);
    case ">": return poly(3, r * 1.15, Math.PI / 2);
    case "P": return cross(0);
    case "X": return cross(Math.PI / 4);
    case "p": return poly(5, r * 1.05);
    case "h": return poly(6, r * 1.05);
    case "*": return poly(5, r * 1.3, 0, r * 0.55);
    default: return `M${x - r},${y}a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0Z`;
  }
}

function drawMarker(root, name, x, y, r, extra = {}) {
  return svg("path", {
    d: markerPath(markerOf(name), x, y, r), fill: colorOf(name), stroke: "#fff", "stroke-width": 1,
    "data-marker": markerOf(name), ...extra,
  }, root);
}

// The step at which a run diverged: its loss left the finite numbers, or rose above
// DIVERGENCE_FACTOR × max(1, |f at the start|) (sl.minimize's rule); null if it did not.
function divergedAt(r) {
  const limit = DIVERGENCE_FACTOR * Math.max(1, Math.abs(r.loss[0] ?? 1));
  const t = r.loss.findIndex((v) => v === null || !isFinite(v) || v > limit);
  if (t >= 0) return t;
  return r.diverged_at;
}

// Round x values along the bottom edge and y values along the left edge, inside the plot
// (white halo), so a start point or a path can be read off in coordinates.
function drawAxisTicks(root) {
  const [[x0, x1], [y0, y1]] = bounds();
  for (const t of niceTicks(x0, x1)) {
    const [px] = toPixel([t, y0]);
    if (px < 14 || px > SIZE - 14) continue;
    svg("line", { x1: px, x2: px, y1: SIZE, y2: SIZE - 6, stroke: "#222", "stroke-width": 1, class: "tick-mark" }, root);
    svg("text", { x: px, y: SIZE - 9, "text-anchor": "middle", class: "tick x-tick" }, root).textContent = tickText(t);
  }
  for (const t of niceTicks(y0, y1)) {
    const [, py] = toPixel([x0, t]);
    if (py < 10 || py > SIZE - 24) continue;
    svg("line", { x1: 0, x2: 6, y1: py, y2: py, stroke: "#222", "stroke-width": 1, class: "tick-mark" }, root);
    svg("text", { x: 9, y: py + 4, "text-anchor": "start", class: "tick y-tick" }, root).textContent = tickText(t);
  }
}

// Trajectories up to the current frame, the start point and the known minima. Each path
// carries its optimizer's marker at a few iterates (staggered between optimizers, so two
// paths of one colour family stay apart) and at its head; a diverged run ends in a ✕ with
// the step it diverged at.
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
  if (!lab.result) return describeCharts();
  const n = lab.result.runs.length;
  lab.result.runs.forEach((r, index) => {
    const when = divergedAt(r); // past it, a path is drawn no further
    const upto = Math.min(lab.frame, r.path.length - 1, when ?? Infinity);
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
    const inBox = (p) => p[0] >= 0 && p[0] <= SIZE && p[1] >= 0 && p[1] <= SIZE;
    const xy = points.map((p) => p.split(",").map(Number));
    const stride = Math.max(1, Math.round(r.path.length / 7));
    for (let t = Math.round(((index + 1) * stride) / (n + 1)); t < xy.length - 1; t += stride) {
      if (inBox(xy[t])) drawMarker(root, r.name, xy[t][0], xy[t][1], 3.5, { class: "path-marker" });
    }
    if (!xy.length) return;
    if (when !== null && lab.frame >= when) {
      // The last point inside the box, marked: the rest of the path left it.
      let k = xy.length - 1;
      while (k > 0 && !inBox(xy[k])) k--;
      const [hx, hy] = xy[k];
      svg("path", { d: `M${hx - 7},${hy - 7}l14,14m0,-14l-14,14`, stroke: "#fff", "stroke-width": 5 }, root);
      svg("path", { d: `M${hx - 7},${hy - 7}l14,14m0,-14l-14,14`, stroke: color, "stroke-width": 2.5, class: "diverged", "data-optimizer": r.name }, root);
      const text = svg("text", { x: Math.min(hx + 9, SIZE - 150), y: Math.max(hy - 8, 14), class: "tick diverged-label" }, root);
      text.textContent = `${nameOf(r.name)} diverged at step ${when}`;
    } else {
      const [hx, hy] = xy[xy.length - 1];
      drawMarker(root, r.name, hx, hy, 6, { class: "head", "data-optimizer": r.name });
    }
  });
  describeCharts();
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

// series: [{name, color, points: [[x, y] …], dash, diverged}]; log axes take log10 of
// positive values only. `diverged` (a point index or null): from there on the series is
// off the scale. The y range is that of the other series (a run at 1e250 must not flatten
// every other curve); a diverged series is drawn until it leaves that range, and ends in
// a ✕ at the edge.
function lineChart(root, series, { logX = false, logY = true, xlabel = "", ylabel = "", markerX = null, dots = false, vlines = [] }) {
  root.replaceChildren();
  const W = 420, H = 250, M = { l: 64, r: 20, t: 10, b: 38 };
  const fx = (v) => (logX ? (v > 0 ? Math.log10(v) : null) : v);
  const healthy = series.filter((s) => s.diverged === null || s.diverged === undefined);
  const ranged = healthy.some((s) => s.points.some(([, y]) => y !== null && isFinite(y))) ? healthy : series;
  const before = (s) => (s.diverged === null || s.diverged === undefined ? s.points : s.points.slice(0, s.diverged));
  // Values of both signs spanning many decades (a run escaping down a saddle) go on a
  // signed log axis, sign(v)·log10(1 + |v|): linear, the last steps would flatten the rest.
  const raw = ranged.flatMap((s) => before(s).map(([, y]) => y)).filter((v) => v !== null && isFinite(v));
  const big = Math.max(...raw.map(Math.abs), 0);
  const symlog = !logY && big >= 1e4;
  const fy = (v) => (v === null || !isFinite(v) ? null
    : logY ? (v > 0 ? Math.log10(v) : null)
    : symlog ? Math.sign(v) * Math.log10(1 + Math.abs(v)) : v);
  const all = ranged.flatMap((s) => before(s).map(([x, y]) => [fx(x), fy(y)])).filter(([x, y]) => x !== null && y !== null);
  if (!all.length) {
    svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, root).textContent = "nothing to show";
    return;
  }
  const xsAll = series.flatMap((s) => s.points.map(([x]) => fx(x))).filter((x) => x !== null);
  let [x0, x1] = [Math.min(...xsAll), Math.max(...xsAll)];
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
  series.forEach((s, index) => {
    // Break the line where a value is missing (≤ 0 on a log axis); a diverged series
    // stops where it leaves the range, at the edge, with a ✕.
    let d = "", pen = false, cross = null;
    const marks = [];
    const every = dots ? 1 : Math.max(1, Math.round(s.points.length / 6));
    const offset = dots ? 0 : Math.round(((index + 1) * every) / (series.length + 1));
    for (let i = 0; i < s.points.length; i++) {
      const [x, y] = s.points[i];
      const a = fx(x), b = fy(y);
      const gone = s.diverged !== null && s.diverged !== undefined && i >= s.diverged;
      if (a === null || (b === null && !gone)) { pen = false; continue; }
      if (gone || b > y1 || b < y0) {
        if (s.diverged !== null && s.diverged !== undefined) {
          const edge = b !== null && b < y0 ? y0 : y1;
          if (pen) d += `L${px(a).toFixed(1)},${py(edge).toFixed(1)}`;
          cross = [px(a), py(edge), s.diverged, i < s.diverged];
          break;
        }
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${px(a).toFixed(1)},${py(b).toFixed(1)}`;
      pen = true;
      if (i % every === offset % every) marks.push([px(a), py(b)]);
    }
    svg("path", { d, fill: "none", stroke: s.color, "stroke-width": 1.6, "stroke-dasharray": s.dash || "", "data-optimizer": s.name || "" }, root);
    if (!s.dash && s.name) for (const [mx, my] of marks) drawMarker(root, s.name, mx, my, dots ? 3.2 : 3, { class: "chart-marker" });
    if (cross) {
      const [cx, cy, at, early] = cross;
      svg("path", { d: `M${cx - 5},${cy - 5}l10,10m0,-10l-10,10`, stroke: s.color, "stroke-width": 2.2, class: "diverged", "data-optimizer": s.name || "" }, root);
      const text = svg("text", { x: Math.min(cx + 7, W - M.r - 100), y: cy < M.t + 12 ? cy + 14 : cy - 4, class: "tick diverged-label" }, root);
      // Off the scale before it diverged (its loss grew from the start), or diverged here.
      text.textContent = early ? `${nameOf(s.name)} off the scale, diverged at step ${at}`
        : `${nameOf(s.name)} diverged at step ${at}`;
    }
  });
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
    name: r.name, color: colorOf(r.name), diverged: divergedAt(r),
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
    span.dataset.optimizer = r.name;
    const key = svg("svg", { width: 26, height: 12, viewBox: "0 0 26 12", "aria-hidden": "true" });
    svg("line", { x1: 0, x2: 26, y1: 6, y2: 6, stroke: colorOf(r.name), "stroke-width": 2 }, key);
    drawMarker(key, r.name, 13, 6, 4.5);
    const last = r.loss[Math.min(lab.frame, r.loss.length - 1)];
    const when = divergedAt(r);
    const value = when !== null && lab.frame >= when ? `diverged at step ${when}`
      : `f=${last === null ? "—" : last.toPrecision(4)}`;
    span.append(key, `${runLabel(r)}: ${value}`);
    legend.appendChild(span);
  }
}

function drawStepSize() {
  const root = $("step-size");
  root.toggleAttribute("hidden", !lab.state.showStepSize); // an SVG element has no .hidden
  if (!lab.state.showStepSize || !lab.result) return;
  const series = [];
  for (const r of lab.result.runs) {
    const when = divergedAt(r);
    for (const [k, dash] of [[0, ""], [1, "5 3"]]) {
      series.push({
        name: r.name, color: colorOf(r.name), dash, diverged: when === null ? null : Math.max(0, when - 1),
        points: r.step_size.map((s, t) => [t + 1, s[k]]),
      });
    }
  }
  lineChart(root, series, { xlabel: "step", ylabel: "effective step size", markerX: lab.frame });
  describeCharts();
}

// A text alternative for each chart (aria-label of its role="img" SVG): what a sighted
// reader takes from it, in words.
function describeCharts() {
  const fmt = (v) => (v === null || v === undefined ? "—" : formatNumber(+(+v).toPrecision(3)));
  const runs = lab.result ? lab.result.runs : [];
  const where = lab.grid ? lab.grid.problem.description : "";
  const ends = runs.map((r) => {
    const when = divergedAt(r);
    if (when !== null && lab.frame >= when) return `${nameOf(r.name)} diverged at step ${when}`;
    const t = Math.min(lab.frame, r.path.length - 1);
    return `${nameOf(r.name)} at (${fmt(r.path[t][0])}, ${fmt(r.path[t][1])}), f = ${fmt(r.loss[t])}`;
  });
  const start = lab.state.start || (lab.grid ? lab.grid.problem.x0 : [0, 0]);
  $("paths").setAttribute("aria-label", `Contour plot of ${where}; paths from (${fmt(start[0])}, ${fmt(start[1])})`
    + (runs.length ? `, step ${lab.frame} of ${lab.result.steps}: ${ends.join("; ")}.` : "."));
  $("loss").setAttribute("aria-label", runs.length
    ? `Loss vs step, ${runs.length} optimizers: ` + runs.map((r) => {
      const when = divergedAt(r);
      return when !== null ? `${nameOf(r.name)} diverged at step ${when}`
        : `${nameOf(r.name)} from ${fmt(r.loss[0])} to ${fmt(r.loss[r.loss.length - 1])}`;
    }).join("; ") + "." : "Loss vs step: no run yet.");
  if (lab.state.showStepSize) {
    $("step-size").setAttribute("aria-label", "Effective step size per coordinate vs step: " + runs.map((r) => {
      const last = r.step_size[r.step_size.length - 1] || [null, null];
      return `${nameOf(r.name)} ends at ${fmt(last[0])} (x), ${fmt(last[1])} (y)`;
    }).join("; ") + ".");
  }
}

function describeSweep() {
  if (!lab.sweep) return $("sweep").setAttribute("aria-label", "Sweep: not run yet. Press Sweep.");
  const parts = lab.sweep.results.map((r) => {
    let best = null;
    r.final_loss.forEach((v, k) => { if (v !== null && (best === null || v < r.final_loss[best])) best = k; });
    return best === null ? `${nameOf(r.name)} diverged at every step size`
      : `${nameOf(r.name)} lowest f = ${formatNumber(r.final_loss[best])} at α = ${formatNumber(lab.sweep.lrs[best])}`;
  });
  $("sweep").setAttribute("aria-label", `Final loss after ${lab.sweep.steps} steps vs step size α: ${parts.join("; ")}.`);
}

function sweepHint() {
  const root = $("sweep");
  root.replaceChildren();
  describeSweep();
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
  describeSweep();
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
    // A newly ticked optimizer joins the race at the lecture's α = 0.05 (AdaDelta: its own).
    lr: 0.05, lrs: { adadelta: 1.0 },
  },
  quadratic: {
    title: "Quadratic form",
    note: "½θᵀAθ with A = diag(1/50, 1): SGD (α = 1.8) zig-zags across the valley, Momentum "
      + "(α = 0.5, ρ = 0.9) overshoots and swings back, Adam (α = 0.09) heads straight in.",
    expr: "x**2/100 + y**2/2", steps: 80, start: [-2.7, 0.45],
    opts: { sgd: { lr: 1.8 }, momentum: { lr: 0.5, rho: 0.9 }, adam: { lr: 0.09 } },
    // Newly ticked: Nesterov at Momentum's α; the methods whose step is about α per
    // coordinate (every adaptive one, Lion) at Adam's; AdaDelta at its own.
    lr: 0.09, lrs: { nesterov: 0.5, adadelta: 1.0 },
  },
  decay: {
    title: "AdaGrad's decay vs RMSProp",
    note: "Rosenbrock, the same α = 0.01: AdaGrad's step size (shown below the loss) only "
      + "falls and it stalls; RMSProp's moving average keeps it walking the valley.",
    problem: "rosenbrock", steps: 2000, start: null, showStepSize: true,
    opts: { adagrad: { lr: 0.01 }, rmsprop: { lr: 0.01 } },
    lr: null, lrs: {}, // newly ticked: the view's own sweep (suggestLr)
  },
};

async function applyScene(key) {
  const scene = SCENES[key];
  const state = defaultState(lab.meta);
  Object.assign(state, {
    problem: scene.problem || state.problem, expr: scene.expr ?? null, steps: scene.steps,
    start: scene.start, showStepSize: !!scene.showStepSize, opts: {}, scene: key,
  });
  for (const [name, hp] of Object.entries(scene.opts)) {
    state.opts[name] = { preset: "seed", hp: { ...presetValues(name, "seed"), ...hp } };
  }
  pause();
  let grid;
  try {
    grid = await fetchGrid(state, null);
  } catch (err) {
    return showRequestError(err, [], "problem-error"); // the old view stays whole
  }
  lab.state = state;
  lab.result = null;
  lab.sweep = null;
  clearErrors(RUN_ERRORS().concat(["problem-error", "sweep-error"]));
  buildOptimizerList();
  sweepHint();
  useGrid(grid);
  syncFields();
  await run();
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
  note.setAttribute("aria-live", "polite");
  box.append(note);
}

// The step size a newly ticked optimizer starts at, so that its path is neither a dot
// nor a blow-up (the library defaults, RMSProp's 1e-3 or Lion's 1e-4, are made for
// networks, not for a 2-D plot):
// - in a lecture scene, the scene's own choice (SCENES[…].lr and .lrs);
// - elsewhere, this view's own sweep: the α of 1e-4 … 1 (13 log-spaced values, the
//   /api/sweep endpoint, the optimizer's seed preset) with the lowest final loss, one
//   grid point lower (÷ 2.15) when that is within 2× as low: the edge of stability makes
//   lively but erratic paths. On a problem unbounded below (the saddle) the lowest loss
//   means the wildest run, so there the saddle race's α = 0.05 holds.
// Falls back to the library default (and says so) when the sweep fails.
async function suggestLr(name) {
  const scene = lab.state.scene ? SCENES[lab.state.scene] : null;
  if (scene && scene.lr !== null) return { lr: scene.lrs[name] ?? scene.lr, why: "the scene's α" };
  if (lab.state.problem === "saddle" && lab.state.expr === null) {
    return { lr: name === "adadelta" ? 1.0 : 0.05, why: "the saddle race's α" };
  }
  const sweep = await api("/api/sweep", {
    problem: problemSpec(), optimizers: [{ name, preset: "seed" }], start: lab.state.start,
    steps: lab.state.steps, seed: lab.state.seed, lr_min: 1e-4, lr_max: 1, points: 13,
  });
  const f = sweep.results[0].final_loss.map((v) => (v === null ? Infinity : v));
  let best = f.indexOf(Math.min(...f));
  if (!isFinite(f[best])) throw new Error("every step size diverged");
  const fmin = lab.grid.problem.f_min ?? Math.min(...f);
  if (best > 0 && f[best - 1] - fmin <= 2 * (f[best] - fmin)) best -= 1;
  return { lr: +sweep.lrs[best].toPrecision(2), why: "the lowest final loss of a 13-point sweep on this view" };
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
    box.setAttribute("aria-label", `${nameOf(name)} ${hp.name}`);
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
    slider.setAttribute("aria-label", `${nameOf(name)} ${hp.name} (log slider)`);
    slider.setAttribute("aria-valuetext", formatNumber(value));
    const field = document.createElement("input");
    field.type = "number"; field.step = "any"; field.min = 0;
    field.value = formatNumber(value);
    field.dataset.hyperField = `${name}.${hp.name}`;
    field.setAttribute("aria-label", `${nameOf(name)} ${hp.name}`);
    slider.addEventListener("input", () => {
      const v = +(10 ** +slider.value).toPrecision(3);
      field.value = formatNumber(v);
      slider.setAttribute("aria-valuetext", formatNumber(v));
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
  field.setAttribute("aria-label", `${nameOf(name)} ${hp.name}`);
  field.addEventListener("change", () => onChange(Number(field.value)));
  if (hp.kind === "unit") {
    // Decay rates: a slider over [0, 1) as well; values near 1 matter, so the field stays exact.
    const slider = document.createElement("input");
    slider.type = "range"; slider.min = 0; slider.max = 0.999; slider.step = 0.001;
    slider.value = value;
    slider.setAttribute("aria-label", `${nameOf(name)} ${hp.name} (slider)`);
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
  select.setAttribute("aria-label", `${nameOf(name)} step-size schedule`);
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
      field.setAttribute("aria-label", `${nameOf(name)} schedule ${p.title}`);
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

// Modifiers around the optimizer, as the command line's NAME+MODIFIER (adamw+cautious,
// adam+ema:decay=0.99): a select adds one, each shows its settings (empty: the modifier's
// default) and a button that removes it. The server checks names and settings.
function modifierControl(name, opt) {
  const box = document.createElement("div");
  box.className = "modifiers";
  const label = document.createElement("label");
  label.className = "bool";
  label.title = "wrap the optimizer: cautious mask, averaging (EMA, SWA, Lookahead: the path " +
    "shows the averaged point, where the run is judged) or a chain piece (clipping, weight decay)";
  label.append("modifier");
  const select = document.createElement("select");
  select.dataset.modifier = name;
  select.setAttribute("aria-label", `${nameOf(name)} add a modifier`);
  const list = document.createElement("div");
  list.className = "modifier-list";
  const fill = () => {
    const chosen = opt.modifiers || [];
    select.replaceChildren(new Option("add…", ""));
    for (const m of lab.meta.modifiers || []) {
      if (!chosen.some((c) => c.name === m.name)) select.add(new Option(m.name, m.name));
    }
    list.replaceChildren();
    chosen.forEach((modifier, index) => {
      const row = document.createElement("div");
      row.className = "modifier";
      row.dataset.modifierRow = `${name}.${modifier.name}`;
      const title = document.createElement("span");
      title.className = "name";
      title.textContent = `+${modifier.name}`;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `${nameOf(name)} remove ${modifier.name}`);
      remove.addEventListener("click", () => {
        opt.modifiers.splice(index, 1);
        if (!opt.modifiers.length) delete opt.modifiers;
        fill();
        scheduleRun();
      });
      row.append(title, remove);
      for (const setting of modifierMeta(modifier.name).settings) {
        const field = document.createElement("input");
        const key = setting.name;
        field.dataset.modifierSetting = `${name}.${modifier.name}.${key}`;
        field.setAttribute("aria-label", `${nameOf(name)} ${modifier.name} ${key}`);
        const wrap = document.createElement("label");
        wrap.title = `${key} in ${setting.interval}; empty: the default`;
        if (setting.kind === "bool") {
          field.type = "checkbox";
          field.checked = Boolean(modifier.settings[key] ?? setting.default);
          field.addEventListener("change", () => { modifier.settings[key] = field.checked; scheduleRun(); });
        } else {
          field.type = "number";
          field.step = "any";
          field.placeholder = setting.default ?? "default";
          field.value = modifier.settings[key] ?? "";
          field.addEventListener("change", () => {
            if (field.value === "") delete modifier.settings[key];
            else modifier.settings[key] = Number(field.value);
            scheduleRun();
          });
        }
        const text = document.createElement("span");
        text.className = "name";
        text.textContent = key;
        wrap.append(text, field);
        row.append(wrap);
      }
      list.append(row);
    });
  };
  select.addEventListener("change", () => {
    if (!select.value) return;
    opt.modifiers = [...(opt.modifiers || []), { name: select.value, settings: {} }];
    fill();
    scheduleRun();
  });
  fill();
  label.append(select);
  box.append(label, list);
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
    const swatch = svg("svg", { width: 14, height: 14, viewBox: "0 0 14 14", "aria-hidden": "true", class: "swatch" });
    drawMarker(swatch, name, 7, 7, 5.5);
    head.append(toggle, swatch, name);
    div.append(head);
    const error = document.createElement("p");
    error.className = "error";
    error.id = `error-${name}`;
    error.setAttribute("role", "alert");
    const hyper = document.createElement("div");
    hyper.className = "hyper";
    div.append(error, hyper);
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
      select.setAttribute("aria-label", `${nameOf(name)} preset`);
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
      hyper.append(modifierControl(name, opt));
    };
    toggle.addEventListener("change", async () => {
      clearErrors([`error-${name}`]);
      if (toggle.checked) {
        // It joins the state (and the runs) once its step size is known.
        const opt = { preset: "seed", hp: presetValues(name, "seed") };
        $("status").textContent = `finding a step size for ${nameOf(name)}…`;
        try {
          const { lr, why } = await suggestLr(name);
          opt.hp.lr = lr;
          lab.suggested[name] = { lr, why };
          $("status").textContent = `${nameOf(name)} starts at α = ${formatNumber(lr)} (${why})`;
        } catch (err) {
          lab.suggested[name] = { lr: opt.hp.lr, why: "the library default" };
          $("status").textContent = `${nameOf(name)} starts at its library default α = ${formatNumber(opt.hp.lr)} (no sweep: ${err.message})`;
        }
        if (!toggle.checked) return; // unticked meanwhile
        lab.state.opts[name] = opt;
        if (lab.state.scene && !(name in SCENES[lab.state.scene].opts)) leaveScene();
      } else {
        if (lab.state.scene) leaveScene();
        delete lab.state.opts[name];
      }
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
  $("fit-view").checked = s.fit;
  $("speed").value = String(s.speed);
  const start = s.start || (lab.grid ? lab.grid.problem.x0 : null);
  $("start-x").value = start ? +(+start[0]).toPrecision(4) : "";
  $("start-y").value = start ? +(+start[1]).toPrecision(4) : "";
  $("scene-note").textContent = s.scene ? SCENES[s.scene].note : "";
  for (const b of document.querySelectorAll("#scenes button")) {
    b.setAttribute("aria-pressed", String(b.dataset.scene === s.scene));
  }
}

// The view no longer is the scene (another problem, other optimizers): its note goes,
// it would describe what is not on screen.
function leaveScene() {
  lab.state.scene = null;
  $("scene-note").textContent = "";
  for (const b of document.querySelectorAll("#scenes button")) b.setAttribute("aria-pressed", "false");
}

// Another problem (a test function or a formula): the page changes only once its contours
// have come back; a formula the server refuses leaves the whole view as it was, with the
// message under the formula field.
async function changeProblem(problem, expr) {
  const candidate = {
    ...lab.state, problem, expr, start: null, bounds: null, scene: null, frame: null, sweepShown: false,
  };
  clearErrors(["problem-error"]);
  let grid;
  try {
    grid = await fetchGrid(candidate, null);
  } catch (err) {
    showRequestError(err, [], "problem-error");
    $("problem").value = lab.state.expr !== null ? "" : lab.state.problem; // what is shown
    $("status").textContent = `✗ ${err.message} — the plot still shows ${lab.grid ? lab.grid.problem.description : "the last problem"}`;
    return;
  }
  pause();
  lab.state = candidate;
  lab.result = null;
  lab.sweep = null;
  leaveScene();
  sweepHint();
  useGrid(grid);
  syncFields();
  run();
}

function wireControls() {
  const select = $("problem");
  select.add(new Option("(formula below)", ""));
  for (const f of lab.meta.functions) select.add(new Option(f.name, f.name));
  select.addEventListener("change", () => {
    if (!select.value) return $("expression").focus();
    changeProblem(select.value, null);
  });
  $("expression").title = `Allowed: ${lab.meta.expression_grammar}`;
  $("expression-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("expression").value.trim();
    if (!text) return showError("problem-error", "Type a formula in x and y, e.g. x**2 + 10*y**2", $("expression"));
    changeProblem(lab.state.problem, text);
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
  $("fit-view").addEventListener("change", () => setFit($("fit-view").checked));
  $("speed").addEventListener("change", () => {
    lab.state.speed = $("speed").value === "auto" ? "auto" : Number($("speed").value);
    writeHash();
    if (timer) { pause(); play(); }
  });
  // The start point by keyboard: two fields (the plot takes clicks too).
  for (const id of ["start-x", "start-y"]) {
    $(id).addEventListener("change", () => {
      const x = Number($("start-x").value), y = Number($("start-y").value);
      if ($("start-x").value === "" || $("start-y").value === "" || !isFinite(x) || !isFinite(y)) {
        return showError("start-error", "The start point needs two numbers, x and y.", $(id));
      }
      clearErrors(["start-error"]);
      lab.state.start = [x, y];
      if (lab.state.scene) leaveScene();
      drawPaths();
      scheduleRun();
    });
  }
  // The jump links: focus the control (the hash is the view's state, not an anchor).
  for (const a of document.querySelectorAll("#skip a")) {
    a.addEventListener("click", (event) => {
      event.preventDefault();
      const target = $(a.dataset.jump);
      target.scrollIntoView({ block: "nearest" });
      target.focus();
    });
  }
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
    if (lab.state.scene) leaveScene();
    syncFields();
    drawPaths();
    scheduleRun();
  });
  $("start-reset").addEventListener("click", () => { lab.state.start = null; syncFields(); scheduleRun(); });
  // The player.
  $("play").addEventListener("click", () => (timer ? pause() : play()));
  $("step-forward").addEventListener("click", () => { pause(); setFrame(lab.frame + 1); writeHash(); });
  $("step-back").addEventListener("click", () => { pause(); setFrame(lab.frame - 1); writeHash(); });
  $("frame").addEventListener("input", () => { pause(); setFrame(Number($("frame").value)); });
  $("frame").addEventListener("change", writeHash);
  // Export.
  $("export-png").addEventListener("click", async () => download("steplab.png", await exportPNG()));
  $("export-csv").addEventListener("click", () => download("steplab-runs.csv", blobURL(exportCSV(), "text/csv")));
  $("export-json").addEventListener("click", () => download("steplab-runs.json", blobURL(exportJSON(), "application/json")));
}

// ---------------------------------------------------------------------------------------
// Animation
// ---------------------------------------------------------------------------------------

// Time-based: the default ("auto") plays any run in PLAY_SECONDS seconds (the 150-step
// saddle race at about 19 steps/s), the others are steps per second.
let timer = null;
function setFrame(t) {
  if (!lab.result) return;
  lab.frame = Math.max(0, Math.min(lab.result.steps, Math.round(t)));
  lab.state.frame = lab.frame;
  redraw();
}
function stepsPerSecond() {
  const speed = lab.state.speed;
  return speed === "auto" ? Math.max(1, lab.result.steps / PLAY_SECONDS) : Number(speed);
}
function play() {
  if (!lab.result) return;
  if (lab.frame >= lab.result.steps) lab.frame = 0;
  $("play").textContent = "Pause";
  const from = lab.frame, began = performance.now(), rate = stepsPerSecond();
  timer = setInterval(() => {
    setFrame(from + ((performance.now() - began) / 1000) * rate);
    if (lab.frame >= lab.result.steps) pause();
  }, 40);
}
function pause() {
  if (timer) writeHash();
  clearInterval(timer);
  timer = null;
  $("play").textContent = "Play";
}

// ---------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------

// A projector-size PNG (1920 × 1080): the contour plot with the paths up to the current
// step, x and y axes with ticks outside the plot, the loss chart and a legend with each
// optimizer's colour and marker. The SVG parts are the page's own, redrawn at this size.
const EXPORT = { width: 1920, height: 1080, plot: { x: 150, y: 110, size: 860 }, chart: { x: 1110, y: 110, w: 760, h: 452 } };
const EXPORT_STYLE = `
  text { font-family: system-ui, sans-serif; fill: #222; }
  .chart text { font-size: 13px; fill: #444; }
  .axis { stroke: #9aa3b2; stroke-width: 1; }
  .grid { stroke: #e7eaf0; stroke-width: 1; }
  .tick { font-size: 12px; }
  .plot .diverged-label { font-size: 12px; paint-order: stroke; stroke: #fff; stroke-width: 3px; }`;

function exportSVG() {
  const { width, height, plot, chart } = EXPORT;
  const root = svg("svg", { xmlns: SVG_NS, width, height, viewBox: `0 0 ${width} ${height}` });
  svg("style", {}, root).textContent = EXPORT_STYLE;
  const title = lab.grid ? lab.grid.problem.description : "";
  const steps = lab.result ? ` — step ${lab.frame} of ${lab.result.steps}` : "";
  svg("text", { x: plot.x, y: 62, "font-size": 30, "font-weight": 600 }, root).textContent = `${title}${steps}`;
  // The plot: the page's paths (without its in-plot ticks), scaled from 560 to plot.size.
  const inner = svg("svg", { x: plot.x, y: plot.y, width: plot.size, height: plot.size, viewBox: `0 0 ${SIZE} ${SIZE}`, class: "plot" }, root);
  for (const child of $("paths").children) {
    const cls = child.getAttribute("class") || "";
    if (/\b(x-tick|y-tick|tick-mark)\b/.test(cls)) continue;
    inner.appendChild(child.cloneNode(true));
  }
  svg("rect", { x: plot.x, y: plot.y, width: plot.size, height: plot.size, fill: "none", stroke: "#333", "stroke-width": 1.5 }, root);
  if (lab.grid) {
    const [[x0, x1], [y0, y1]] = bounds();
    for (const t of niceTicks(x0, x1, 7)) {
      const px = plot.x + ((t - x0) / (x1 - x0)) * plot.size;
      svg("line", { x1: px, x2: px, y1: plot.y + plot.size, y2: plot.y + plot.size + 10, stroke: "#333", "stroke-width": 1.5, class: "export-tick" }, root);
      svg("text", { x: px, y: plot.y + plot.size + 34, "text-anchor": "middle", "font-size": 22, class: "export-x-tick" }, root).textContent = tickText(t);
    }
    for (const t of niceTicks(y0, y1, 7)) {
      const py = plot.y + plot.size - ((t - y0) / (y1 - y0)) * plot.size;
      svg("line", { x1: plot.x - 10, x2: plot.x, y1: py, y2: py, stroke: "#333", "stroke-width": 1.5, class: "export-tick" }, root);
      svg("text", { x: plot.x - 16, y: py + 8, "text-anchor": "end", "font-size": 22, class: "export-y-tick" }, root).textContent = tickText(t);
    }
    svg("text", { x: plot.x + plot.size / 2, y: plot.y + plot.size + 70, "text-anchor": "middle", "font-size": 26, "font-style": "italic" }, root).textContent = "x";
    svg("text", { x: 40, y: plot.y + plot.size / 2, "text-anchor": "middle", "font-size": 26, "font-style": "italic" }, root).textContent = "y";
  }
  // The loss chart, and the legend under it.
  svg("text", { x: chart.x, y: chart.y - 14, "font-size": 24, "font-weight": 600 }, root).textContent = "Loss vs step";
  const loss = svg("svg", { x: chart.x, y: chart.y, width: chart.w, height: chart.h, viewBox: "0 0 420 250", class: "chart" }, root);
  for (const child of $("loss").children) loss.appendChild(child.cloneNode(true));
  const runs = lab.result ? lab.result.runs : [];
  runs.forEach((r, i) => {
    const y = chart.y + chart.h + 50 + 36 * i;
    svg("line", { x1: chart.x, x2: chart.x + 44, y1: y - 8, y2: y - 8, stroke: colorOf(r.name), "stroke-width": 3 }, root);
    drawMarker(root, r.name, chart.x + 22, y - 8, 8);
    const when = divergedAt(r);
    const last = r.loss[Math.min(lab.frame, r.loss.length - 1)];
    const value = when !== null && lab.frame >= when ? `diverged at step ${when}` : `f = ${last === null ? "—" : last.toPrecision(4)}`;
    svg("text", { x: chart.x + 56, y, "font-size": 22 }, root).textContent = `${runLabel(r)}: ${value}`;
  });
  return root;
}

async function exportPNG() {
  const { width, height, plot } = EXPORT;
  const canvas = document.createElement("canvas");
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  if (lab.grid) {
    // The contours drawn afresh at the export's size (not the page's 560 px stretched).
    const contour = document.createElement("canvas");
    contour.width = contour.height = plot.size;
    renderContours(contour.getContext("2d"), plot.size);
    ctx.drawImage(contour, plot.x, plot.y);
  }
  const root = exportSVG();
  lab.lastExport = {
    width, height,
    xTicks: [...root.querySelectorAll(".export-x-tick")].map((t) => t.textContent),
    yTicks: [...root.querySelectorAll(".export-y-tick")].map((t) => t.textContent),
  };
  const url = URL.createObjectURL(new Blob([new XMLSerializer().serializeToString(root)], { type: "image/svg+xml" }));
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    ctx.drawImage(image, 0, 0, width, height);
  } finally {
    URL.revokeObjectURL(url);
  }
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
  const linkError = lab.errors["run-error"];
  if (await loadGrid()) {
    syncFields();
    await run();
    if (linkError) showError("run-error", linkError);
  } else {
    writeHash();
    $("status").textContent = `✗ ${lab.errors["problem-error"]}`;
  }
}

main();
