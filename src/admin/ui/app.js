// weir's live dashboard. Every second it reads /stats/series (a sample a second per
// destination, kept five minutes by weir) and /stats/destinations, and draws: per route
// its split against the traffic each destination got, per destination requests/s, 5xx,
// p50/p95/p99 and connections. A route's weights change through the weights API
// (PUT/DELETE /routes/{route}/split). Everything shown is written as text, never as
// HTML. The admin token, when this weir wants one, lives only in the token field.
'use strict';

const POLL_MS = 1000;
const WINDOW_MS = 300 * 1000;
// A page opened on a young weir shows what there is, at least this much.
const MIN_SPAN_MS = 30 * 1000;
const SHARE_SAMPLES = 10;
const RATE_SAMPLES = 5;
// Okabe-Ito: told apart with any colour vision; canary and baseline as in the report.
const NAMED = { release: '#009e73', baseline: '#0072b2', canary: '#e69f00', prerelease: '#cc79a7' };
const SPARE = ['#56b4e9', '#d55e00', '#f0e442', '#7f7f7f', '#000000'];
const SVG = 'http://www.w3.org/2000/svg';

const state = {
  samples: [],
  last: null,
  writesNeedToken: false,
  totals: {},
  colours: new Map(),
  editing: new Set(),
  // Splits just set, shown in the inputs until a sample carries them (or for 5 s, if
  // something else changed the split meanwhile).
  applied: new Map(),
  routes: new Map(),
  charts: new Map(),
};

function colour(name) {
  if (!state.colours.has(name)) {
    const spares = [...state.colours.keys()].filter((k) => !(k in NAMED)).length;
    state.colours.set(name, NAMED[name] || SPARE[spares % SPARE.length]);
  }
  return state.colours.get(name);
}

function el(name, attrs, parent, text) {
  const ns = ['svg', 'path', 'line', 'text', 'rect', 'g', 'title', 'circle'].includes(name) ? SVG : null;
  const node = ns ? document.createElementNS(SVG, name) : document.createElement(name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function tokenHeaders(extra) {
  const headers = Object.assign({}, extra);
  const token = document.getElementById('token').value.trim();
  if (token) headers.Authorization = 'Bearer ' + token;
  return headers;
}

async function getJSON(path) {
  const r = await fetch(path, { headers: tokenHeaders(), cache: 'no-store' });
  if (r.status === 401) showToken();
  if (!r.ok) throw new Error(`${path} answered ${r.status}`);
  return r.json();
}

function showToken() {
  document.getElementById('token-box').hidden = false;
}

// --- numbers ---------------------------------------------------------------

function fmt(v, digits) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  const d = digits !== undefined ? digits : a >= 100 ? 0 : a >= 10 ? 1 : 2;
  return v.toFixed(d);
}

function recent(n) {
  return state.samples.slice(-n);
}

// Requests per second of `name` over the last `n` samples.
function rate(name, n) {
  let requests = 0;
  let seconds = 0;
  for (const s of recent(n)) {
    const d = s.destinations[name];
    if (d && d.requests !== null && s.seconds) {
      requests += d.requests;
      seconds += s.seconds;
    }
  }
  return seconds > 0 ? requests / seconds : null;
}

function errorShare(name, n) {
  let requests = 0;
  let errors = 0;
  for (const s of recent(n)) {
    const d = s.destinations[name];
    if (d && d.requests !== null) {
      requests += d.requests;
      errors += d['5xx'];
    }
  }
  return requests > 0 ? (100 * errors) / requests : null;
}

// Each destination's share (%) of a route's traffic in `samples`.
function shares(split, samples) {
  const names = Object.keys(split);
  const counts = Object.fromEntries(names.map((n) => [n, 0]));
  let total = 0;
  for (const s of samples) {
    for (const n of names) {
      const d = s.destinations[n];
      if (d && d.requests !== null) {
        counts[n] += d.requests;
        total += d.requests;
      }
    }
  }
  return total > 0 ? Object.fromEntries(names.map((n) => [n, (100 * counts[n]) / total])) : null;
}

function sameSplit(a, b) {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

function weightShares(split) {
  const total = Object.values(split).reduce((a, b) => a + b, 0);
  return Object.fromEntries(Object.entries(split).map(([n, w]) => [n, total > 0 ? (100 * w) / total : 0]));
}

// --- charts ----------------------------------------------------------------

// A y axis from 0 with four or five steps of 1, 2, 2.5 or 5 x 10^k.
function niceScale(max) {
  if (!(max > 0)) return { max: 1, step: 0.25 };
  const raw = max / 4;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

function decimals(step) {
  if (Number.isInteger(step)) return 0;
  return Math.min(6, (String(+step.toPrecision(2)).split('.')[1] || '').length);
}

// Draws a time chart into `fig`: `lines` are {label, colour, dash, width, points: [[t, v]]}.
function chart(fig, title, unit, lines, fixedMax) {
  const W = 560, H = 210, L = 48, R = 12, T = 10, B = 26;
  const now = state.samples.length ? state.samples[state.samples.length - 1].t : Date.now();
  const first = state.samples.length ? state.samples[0].t : now;
  const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, now - first));
  const t0 = now - span;
  let max = 0;
  for (const l of lines) for (const [, v] of l.points) if (v !== null && v > max) max = v;
  const scale = niceScale(fixedMax || max * 1.05);
  const ymax = scale.max;
  const x = (t) => L + ((t - t0) / span) * (W - L - R);
  const y = (v) => H - B - (v / ymax) * (H - T - B);
  fig.replaceChildren();
  el('figcaption', {}, fig, unit ? `${title} (${unit})` : title);
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, class: 'plot' }, fig);
  for (let i = 0; i * scale.step <= ymax + 1e-9; i++) {
    const v = i * scale.step;
    el('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }, svg);
    el('text', { class: 'tick', x: L - 5, y: y(v), dy: '0.32em', 'text-anchor': 'end' }, svg, fmt(v, decimals(scale.step)));
  }
  const step = [5000, 10000, 15000, 30000, 60000].find((st) => span / st <= 6) || 60000;
  for (let m = Math.ceil(t0 / step) * step; m <= now; m += step) {
    el('line', { class: 'axis', x1: x(m), x2: x(m), y1: H - B, y2: H - B + 4 }, svg);
    const clock = new Date(m).toTimeString().slice(0, step < 60000 ? 8 : 5);
    el('text', { class: 'tick', x: x(m), y: H - B + 15, 'text-anchor': 'middle' }, svg, clock);
  }
  for (const l of lines) {
    let d = '';
    let pen = false;
    for (const [t, v] of l.points) {
      if (v === null || v === undefined || t < t0) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)} ${y(Math.min(v, ymax)).toFixed(1)}`;
      pen = true;
    }
    const path = el('path', { class: 'line', d, stroke: l.colour, 'stroke-width': l.width || 1.8, 'data-series': l.label }, svg);
    if (l.dash) path.setAttribute('stroke-dasharray', l.dash);
  }
  const legend = el('div', { class: 'legend' }, fig);
  for (const l of lines) {
    const item = el('span', { class: 'legend-item' }, legend);
    const key = el('svg', { width: 22, height: 8, class: 'key' }, item);
    const k = el('line', { x1: 0, x2: 22, y1: 4, y2: 4, stroke: l.colour, 'stroke-width': l.width || 1.8 }, key);
    if (l.dash) k.setAttribute('stroke-dasharray', l.dash);
    item.appendChild(document.createTextNode(l.label));
  }
  hover(fig, svg, lines, unit, { x, t0, span, L, R, W, H, T, B });
}

// A crosshair and the values at the nearest sample, as Grafana shows them; it stays
// where the mouse is while the chart is redrawn every second.
function hover(fig, svg, lines, unit, g) {
  const tip = el('div', { class: 'tip', hidden: '' }, fig);
  const cross = el('line', { class: 'cross', y1: g.T, y2: g.H - g.B, x1: -10, x2: -10 }, svg);
  const update = (clientX) => {
    const box = svg.getBoundingClientRect();
    if (!box.width) return;
    const px = ((clientX - box.left) / box.width) * g.W;
    const t = g.t0 + ((px - g.L) / (g.W - g.L - g.R)) * g.span;
    let best = null;
    for (const s of state.samples) if (best === null || Math.abs(s.t - t) < Math.abs(best - t)) best = s.t;
    if (best === null) return;
    cross.setAttribute('x1', g.x(best));
    cross.setAttribute('x2', g.x(best));
    tip.replaceChildren();
    el('div', { class: 'tip-time' }, tip, new Date(best).toTimeString().slice(0, 8));
    for (const l of lines) {
      const p = l.points.find(([pt]) => pt === best);
      el('div', {}, tip, `${l.label}: ${p ? fmt(p[1]) : '-'}${unit ? ' ' + unit : ''}`).style.color = l.colour;
    }
    tip.hidden = false;
    tip.style.left = `${Math.max(0, Math.min(clientX - fig.getBoundingClientRect().left + 12, fig.clientWidth - 180))}px`;
  };
  svg.addEventListener('mousemove', (ev) => {
    fig.dataset.hoverX = String(ev.clientX);
    update(ev.clientX);
  });
  svg.addEventListener('mouseleave', () => {
    delete fig.dataset.hoverX;
    tip.hidden = true;
    cross.setAttribute('x1', -10);
    cross.setAttribute('x2', -10);
  });
  if (fig.dataset.hoverX) update(Number(fig.dataset.hoverX));
}

function series(name, pick) {
  return state.samples.map((s) => [s.t, s.destinations[name] ? pick(s.destinations[name], s) : null]);
}

// --- routes ----------------------------------------------------------------

function routeNode(name) {
  if (state.routes.has(name)) return state.routes.get(name);
  const card = el('div', { class: 'route', 'data-route': name }, document.getElementById('route-list'));
  el('h3', {}, card, `route ${name}`);
  const bars = el('div', { class: 'bars' }, card);
  el('span', { class: 'bar-label' }, bars, 'configured');
  const configured = el('div', { class: 'stack configured' }, bars);
  el('span', { class: 'bar-label' }, bars, `traffic, last ${SHARE_SAMPLES} s`);
  const actual = el('div', { class: 'stack actual' }, bars);
  const editor = el('div', { class: 'editor' }, card);
  const inputs = el('span', { class: 'inputs' }, editor);
  const apply = el('button', { class: 'apply', type: 'button' }, editor, 'Apply weights');
  const discard = el('button', { class: 'discard', type: 'button', hidden: '' }, editor, 'Discard edits');
  const reset = el('button', { class: 'reset', type: 'button' }, editor, "Back to the file's split");
  const message = el('span', { class: 'message', role: 'status', 'aria-live': 'polite' }, editor);
  const fig = el('figure', { class: 'chart share' }, card);
  const node = { card, configured, actual, inputs, apply, discard, reset, message, fig, fields: new Map() };
  apply.addEventListener('click', () => write(name, node, 'PUT'));
  reset.addEventListener('click', () => write(name, node, 'DELETE'));
  discard.addEventListener('click', () => {
    state.editing.delete(name);
    discard.hidden = true;
    render();
  });
  state.routes.set(name, node);
  return node;
}

function stack(container, parts) {
  container.replaceChildren();
  for (const [name, pct] of parts) {
    if (!(pct > 0)) continue;
    const label = pct >= 20 ? `${name} ${fmt(pct, 0)}%` : pct >= 6 ? `${fmt(pct, 0)}%` : '';
    const seg = el('span', { class: 'seg', title: `${name} ${fmt(pct, 1)} %` }, container, label);
    seg.style.width = `${pct}%`;
    seg.style.background = colour(name);
  }
}

async function write(route, node, method) {
  const body = {};
  for (const [dest, input] of node.fields) {
    const v = input.value.trim();
    if (v !== '' && (Number(v) !== 0 || input.dataset.inSplit === 'yes')) body[dest] = Number(v);
  }
  node.message.className = 'message';
  node.message.textContent = method === 'PUT' ? 'applying…' : 'returning to the file…';
  try {
    const r = await fetch(`/routes/${encodeURIComponent(route)}/split`, {
      method,
      headers: tokenHeaders({ 'Content-Type': 'application/json' }),
      body: method === 'PUT' ? JSON.stringify(body) : undefined,
      cache: 'no-store',
    });
    const answer = await r.json().catch(() => ({}));
    if (r.ok) {
      state.editing.delete(route);
      node.discard.hidden = true;
      const split = answer.split || {};
      state.applied.set(route, { split, until: Date.now() + 5000 });
      node.message.classList.add('ok');
      node.message.textContent = `set: ${Object.entries(split).map(([d, w]) => `${d} ${w}`).join(', ')} (${answer.source || 'api'})`;
    } else {
      if (r.status === 401) {
        showToken();
        document.getElementById('token').focus();
      }
      node.message.classList.add('bad');
      node.message.textContent = `refused (${r.status}): ${answer.error || r.statusText}`;
    }
  } catch (e) {
    node.message.classList.add('bad');
    node.message.textContent = `no answer: ${e.message}`;
  }
  render();
}

function renderRoutes(latest) {
  const names = Object.keys(latest.destinations);
  for (const [route, split] of Object.entries(latest.routes)) {
    const node = routeNode(route);
    const applied = state.applied.get(route);
    if (applied && (sameSplit(applied.split, split) || Date.now() > applied.until)) state.applied.delete(route);
    const shown = state.applied.has(route) ? state.applied.get(route).split : split;
    const configured = weightShares(split);
    stack(node.configured, Object.entries(configured));
    const got = shares(split, recent(SHARE_SAMPLES));
    stack(node.actual, got ? Object.entries(got) : []);
    for (const dest of names) {
      if (!node.fields.has(dest)) {
        const label = el('label', { class: 'weight' }, node.inputs);
        const chip = el('i', { class: 'chip' }, label);
        chip.style.background = colour(dest);
        label.appendChild(document.createTextNode(dest));
        const input = el('input', { type: 'number', min: 0, step: 1, inputmode: 'numeric', 'data-dest': dest }, label);
        input.addEventListener('input', () => {
          state.editing.add(route);
          node.discard.hidden = false;
        });
        node.fields.set(dest, input);
      }
      const input = node.fields.get(dest);
      input.dataset.inSplit = dest in shown ? 'yes' : 'no';
      if (!state.editing.has(route)) input.value = String(shown[dest] || 0);
    }
    const lines = [];
    for (const dest of Object.keys(split)) {
      lines.push({
        label: `${dest} traffic`,
        colour: colour(dest),
        points: state.samples.map((s) => {
          const sh = s.routes[route] ? shares(s.routes[route], [s]) : null;
          return [s.t, sh && dest in sh ? sh[dest] : null];
        }),
      });
      lines.push({
        label: `${dest} weight`,
        colour: colour(dest),
        dash: '5 4',
        width: 1.2,
        points: state.samples.map((s) => [s.t, s.routes[route] ? weightShares(s.routes[route])[dest] ?? 0 : null]),
      });
    }
    chart(node.fig, `Traffic share of route ${route}: each second (solid) against the weight (dashed)`, '%', lines, 100);
  }
  for (const [route, node] of state.routes) {
    if (!(route in latest.routes)) {
      node.card.remove();
      state.routes.delete(route);
    }
  }
}

// --- destinations and charts ----------------------------------------------

function renderDestinations(latest) {
  const rows = document.getElementById('destination-rows');
  rows.replaceChildren();
  for (const [name, d] of Object.entries(latest.destinations)) {
    const total = state.totals[name] || {};
    const tr = el('tr', { 'data-destination': name }, rows);
    const th = el('th', {}, tr);
    el('i', { class: 'chip' }, th).style.background = colour(name);
    th.appendChild(document.createTextNode(name));
    const cells = [
      fmt(rate(name, RATE_SAMPLES)),
      `${fmt(errorShare(name, RATE_SAMPLES))} %`,
      `${fmt(d.p50)} ms`,
      `${fmt(d.p95)} ms`,
      `${fmt(d.p99)} ms`,
      String(d.upstream_active),
      String(d.requests_active),
      total.requests === undefined ? '-' : String(total.requests),
      total.success_rate === null || total.success_rate === undefined ? '-' : `${fmt(100 * total.success_rate, 2)} %`,
    ];
    for (const c of cells) el('td', {}, tr, c);
  }
}

function figure(container, id) {
  if (!state.charts.has(id)) state.charts.set(id, el('figure', { class: 'chart', id }, container));
  return state.charts.get(id);
}

function renderCharts(latest) {
  const names = Object.keys(latest.destinations);
  const perSecond = (d, s) => (d.requests === null || !s.seconds ? null : d.requests / s.seconds);
  chart(document.getElementById('chart-rate'), 'Requests per second', 'req/s',
    names.map((n) => ({ label: n, colour: colour(n), points: series(n, perSecond) })));
  chart(document.getElementById('chart-errors'), '5xx responses', '%',
    names.map((n) => ({ label: n, colour: colour(n), points: series(n, (d) => (d.requests ? (100 * d['5xx']) / d.requests : null)) })));
  chart(document.getElementById('chart-connections'), 'Active connections', '',
    [{ label: 'clients (downstream)', colour: 'currentColor', width: 2.2, points: state.samples.map((s) => [s.t, s.downstream_active]) }]
      .concat(names.map((n) => ({ label: `${n} (upstream)`, colour: colour(n), points: series(n, (d) => d.upstream_active) }))));
  const box = document.getElementById('latency-charts');
  for (const n of names) {
    chart(figure(box, `latency-${n}`), `Latency of ${n}`, 'ms', [
      { label: 'p50', colour: colour(n), width: 1.2, dash: '2 3', points: series(n, (d) => d.p50) },
      { label: 'p95', colour: colour(n), width: 2.2, points: series(n, (d) => d.p95) },
      { label: 'p99', colour: colour(n), width: 1.4, dash: '6 3', points: series(n, (d) => d.p99) },
    ]);
  }
  for (const [id, fig] of state.charts) {
    if (!names.some((n) => `latency-${n}` === id)) {
      fig.remove();
      state.charts.delete(id);
    }
  }
}

function render() {
  const latest = state.samples[state.samples.length - 1];
  if (!latest) return;
  document.getElementById('version').textContent = String(latest.config_version);
  document.getElementById('downstream').textContent = String(latest.downstream_active);
  const names = Object.keys(latest.destinations);
  const all = names.map((n) => rate(n, RATE_SAMPLES)).filter((r) => r !== null);
  document.getElementById('total-rate').textContent = all.length ? fmt(all.reduce((a, b) => a + b, 0)) : '-';
  renderRoutes(latest);
  renderDestinations(latest);
  renderCharts(latest);
}

function status(ok, text) {
  const s = document.getElementById('status');
  s.className = ok ? 'status ok' : 'status bad';
  s.textContent = text;
}

async function poll() {
  try {
    const since = state.last === null ? '' : `?since=${state.last}`;
    const [series, destinations] = await Promise.all([getJSON('/stats/series' + since), getJSON('/stats/destinations')]);
    if (state.last !== null && (series.last === null || series.last < state.last)) {
      // A restarted weir counts from 0 again: start over.
      state.samples = [];
      state.last = null;
    } else {
      for (const s of series.samples) if (state.last === null || s.seq > state.last) state.samples.push(s);
      state.last = series.last;
    }
    const newest = state.samples.length ? state.samples[state.samples.length - 1].t : 0;
    state.samples = state.samples.filter((s) => s.t >= newest - WINDOW_MS);
    state.totals = destinations.destinations || {};
    if (series.writes_need_token) showToken();
    render();
    status(true, `live · updated ${new Date().toTimeString().slice(0, 8)} · every ${POLL_MS / 1000} s`);
  } catch (e) {
    status(false, `the admin API does not answer (retrying): ${e.message}`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
