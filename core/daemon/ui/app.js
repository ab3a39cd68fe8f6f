// Junction's dashboard: plain JavaScript, no build step, nothing fetched from elsewhere.
// Data: GET /admin/status (connectors), GET /metrics (counters for the charts), GET /admin/dlq,
// GET /v1/regulations, and the live debugger's stream GET /admin/debug/events. Every call but
// /metrics carries the admin token as a Bearer header; the token lives in sessionStorage (this
// tab only), never in a URL. Everything from the daemon is shown as text (textContent): event
// bodies come from the internet.
'use strict';

const TOKEN_KEY = 'junction.admin_token';
const POLL_MS = 2000;
const HISTORY = 150;          // chart points: 5 minutes at 2 s
const DEBUG_ROWS = 500;       // debugger rows kept on screen
const COLORS = ['#3558d6', '#1a7f37', '#cf222e', '#9a6700', '#8250df', '#0a7ea4', '#bf3989', '#57606a'];

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem(TOKEN_KEY) || '';
let pollTimer = null;
let previous = null;          // the last metrics reading, for rates
const history = { in: {}, out: {}, errors: {} };
let debugAbort = null;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return e;
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: 'Bearer ' + token }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers, cache: 'no-store' }));
  if (response.status === 401) {
    signOut('The admin token was refused.');
    throw new Error('unauthorized');
  }
  return response;
}

// --- sign in ---------------------------------------------------------------------------------

function showLogin(message) {
  $('#app-view').hidden = true;
  $('#logout').hidden = true;
  $('#login-view').hidden = false;
  $('#login-error').textContent = message || '';
  $('#token').focus();
}

function signOut(message) {
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = null;
  stopDebugger();
  showLogin(message);
}

async function signIn(candidate) {
  const response = await fetch('/admin/status', { headers: { Authorization: 'Bearer ' + candidate } });
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    showLogin(response.status === 403 ? (body.error || 'The admin API is disabled.') : 'Wrong admin token.');
    return;
  }
  token = candidate;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('#login-view').hidden = true;
  $('#app-view').hidden = false;
  $('#logout').hidden = false;
  refresh();
  pollTimer = setInterval(refresh, POLL_MS);
}

// --- formatting ------------------------------------------------------------------------------

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return (u ? n.toFixed(1) : n) + ' ' + units[u];
}

function duration(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h' + String(Math.floor(s % 3600 / 60)).padStart(2, '0') + 'm';
  return Math.floor(s / 86400) + 'd' + String(Math.floor(s % 86400 / 3600)).padStart(2, '0') + 'h';
}

function ago(ms) { return ms > 0 ? duration((Date.now() - ms) / 1000) + ' ago' : 'never'; }
function rate(n) { return n >= 100 ? n.toFixed(0) : n.toFixed(1); }
function badge(text, prefix) { return el('span', { class: 'badge ' + prefix + '-' + text }, text); }

// --- metrics ---------------------------------------------------------------------------------

// Sums of a few counters by one label, from the Prometheus text format.
function readMetrics(text) {
  const wanted = {
    junction_events_received_total: ['in', 'source'],
    junction_events_delivered_total: ['out', 'destination'],
    junction_events_retried_total: ['retried', 'destination'],
    junction_events_dead_lettered_total: ['dead', 'destination'],
  };
  const out = { in: {}, out: {}, retried: {}, dead: {} };
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || !wanted[m[1]]) continue;
    const [group, label] = wanted[m[1]];
    const lm = new RegExp(label + '="((?:[^"\\\\]|\\\\.)*)"').exec(m[2]);
    if (!lm) continue;
    out[group][lm[1]] = (out[group][lm[1]] || 0) + Number(m[3]);
  }
  return out;
}

function rates(now, before, seconds) {
  const r = {};
  for (const [k, v] of Object.entries(now)) r[k] = Math.max(0, (v - ((before && before[k]) || 0)) / seconds);
  return r;
}

function push(series, values) {
  for (const key of new Set([...Object.keys(series), ...Object.keys(values)])) {
    const list = series[key] || (series[key] = []);
    list.push(values[key] || 0);
    if (list.length > HISTORY) list.shift();
  }
}

function drawChart(canvas, series) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  const keys = Object.keys(series).sort();
  let max = 1;
  for (const k of keys) for (const v of series[k]) max = Math.max(max, v);
  ctx.strokeStyle = '#e4e7ec';
  ctx.fillStyle = '#667085';
  ctx.font = '11px system-ui, sans-serif';
  for (let i = 0; i <= 2; i++) {
    const y = pad / 2 + (h - pad) * i / 2;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w, y); ctx.stroke();
    ctx.fillText(rate(max * (2 - i) / 2), 2, y + 4);
  }
  keys.forEach((k, i) => {
    const points = series[k];
    ctx.strokeStyle = COLORS[i % COLORS.length];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach((v, j) => {
      const x = pad + (w - pad) * (HISTORY - points.length + j) / (HISTORY - 1);
      const y = pad / 2 + (h - pad) * (1 - v / max);
      if (j === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    ctx.fillStyle = COLORS[i % COLORS.length];
    ctx.fillText(k, pad + 6 + (i % 4) * 130, h - 4 - Math.floor(i / 4) * 12);
  });
}

// --- refresh ---------------------------------------------------------------------------------

async function refresh() {
  let status;
  try {
    const [s, m] = await Promise.all([api('/admin/status'), fetch('/metrics', { cache: 'no-store' })]);
    status = await s.json();
    const metrics = readMetrics(await m.text());
    metrics.at = Date.now();
    const seconds = previous ? Math.max(0.5, (metrics.at - previous.at) / 1000) : 0;
    const inRate = seconds ? rates(metrics.in, previous.in, seconds) : {};
    const outRate = seconds ? rates(metrics.out, previous.out, seconds) : {};
    if (seconds) {
      push(history.in, inRate);
      push(history.out, outRate);
      const retried = Object.values(rates(metrics.retried, previous.retried, seconds)).reduce((a, b) => a + b, 0);
      const dead = Object.values(rates(metrics.dead, previous.dead, seconds)).reduce((a, b) => a + b, 0);
      push(history.errors, { retries: retried, 'dead letters': dead });
      drawChart($('#chart-in'), history.in);
      drawChart($('#chart-out'), history.out);
      drawChart($('#chart-errors'), history.errors);
    }
    renderStatus(status, metrics, inRate, outRate);
    previous = metrics;
  } catch (e) {
    if (e.message !== 'unauthorized') {
      $('#health').textContent = 'unreachable';
      $('#health').className = 'badge state-not-ready';
    }
    return;
  }
  refreshDlq();
  refreshRegulations();
  if (!refreshCatalog.at || Date.now() - refreshCatalog.at > 10000) refreshCatalog();
}

// --- event catalog ---------------------------------------------------------------------------

async function refreshCatalog() {
  refreshCatalog.at = Date.now();
  const body = await (await api('/admin/catalog')).json();
  const rows = [];
  for (const [source, s] of Object.entries(body.sources)) {
    for (const e of s.events) {
      const keys = e.keys.map((k) => k.in + '.' + k.key + ' ' + Math.round(k.share * 100) + '% ' + k.types.join('|')).join(', ');
      rows.push(el('tr', { 'data-event': e.name }, el('td', {}, source), el('td', {}, e.type), el('td', {}, e.name),
        el('td', { class: 'num' }, e.count), el('td', {}, e.last_seen), el('td', { class: 'keys' }, keys)));
    }
  }
  $('#catalog tbody').replaceChildren(...rows);
}

function renderStatus(status, metrics, inRate, outRate) {
  const health = $('#health');
  health.textContent = status.ready ? 'ready' : 'not ready';
  health.className = 'badge ' + (status.ready ? 'state-ready' : 'state-not-ready');
  const q = status.queue || {};
  $('#summary').textContent = 'v' + status.version + ' · up ' + duration(status.uptime_seconds) +
      ' · queue ' + bytes(q.disk_bytes || 0) + (q.max_bytes ? ' of ' + bytes(q.max_bytes) : '');
  const notReady = $('#not-ready');
  notReady.hidden = status.ready;
  notReady.textContent = status.ready ? '' : 'Not ready: ' + status.reasons.join('; ');

  const rows = status.destinations.map((d) => {
    const paused = d.state === 'paused';
    const error = d.last_error ? ago(d.last_error.at_ms) + ': ' + d.last_error.reason : '';
    return el('tr', { 'data-destination': d.id },
      el('td', {}, d.id), el('td', {}, d.plugin || ''), el('td', {}, badge(d.state, 'state')),
      el('td', { class: 'num' }, rate(outRate[d.id] || 0)),
      el('td', { class: 'num delivered' }, d.delivered),
      el('td', { class: 'num' }, d.pending),
      el('td', { class: 'num' }, bytes(d.backlog_bytes)),
      el('td', { class: 'num' }, duration(d.oldest_pending_age_seconds)),
      el('td', { class: 'num' }, d.dead_letters_stored),
      el('td', {}, ago(d.last_success_ms)),
      el('td', { class: d.last_error ? 'error' : '' }, error),
      el('td', {}, el('button', { onclick: () => setPaused(d.id, !paused) }, paused ? 'Resume' : 'Pause')));
  });
  $('#destinations tbody').replaceChildren(...rows);
  // Scheduled syncs: when each runs, how the run going on does, how the last one went.
  const syncs = status.destinations.filter((d) => d.sync);
  $('#syncs-section').hidden = syncs.length === 0;
  $('#syncs tbody').replaceChildren(...syncs.map((d) => {
    const s = d.sync;
    const run = s.running ? s.run.delivered + ' of ' + s.run.sent + ' delivered' : '';
    const next = s.next_run_ms > 0 ? new Date(s.next_run_ms).toISOString().replace('.000Z', 'Z') : '';
    return el('tr', { 'data-sync': d.id },
      el('td', {}, d.id), el('td', {}, s.schedule), el('td', {}, badge(s.running ? 'running' : 'waiting', 'state')),
      el('td', { class: 'num' }, run), el('td', {}, next), el('td', {}, ago(s.last_success_ms)),
      el('td', { class: 'num' }, s.last_success_ms > 0 ? duration(s.last_duration_ms / 1000) : ''),
      el('td', { class: 'num' }, s.last_people), el('td', { class: 'num' }, s.overruns),
      el('td', { class: s.last_error ? 'error' : '' }, s.last_error || ''));
  }));
  $('#sources tbody').replaceChildren(...status.sources.map((s) => el('tr', { 'data-source': s.id },
    el('td', {}, s.id), el('td', {}, s.plugin), el('td', {}, badge(s.state, 'state')),
    el('td', { class: 'num' }, rate(inRate[s.id] || 0)),
    el('td', { class: 'num' }, metrics.in[s.id] || 0))));
}

async function setPaused(id, paused) {
  await api('/admin/destinations/' + encodeURIComponent(id) + (paused ? '/pause' : '/resume'), { method: 'POST' });
  refresh();
}

// --- dead letters ----------------------------------------------------------------------------

async function refreshDlq() {
  const body = await (await api('/admin/dlq?limit=100')).json();
  const checked = new Set([...document.querySelectorAll('#dlq tbody input:checked')].map((c) => c.value));
  $('#dlq tbody').replaceChildren(...body.dead_letters.map((d) => el('tr', {},
    el('td', {}, Object.assign(el('input', { type: 'checkbox', value: String(d.id), 'aria-label': 'select ' + d.id }),
      { checked: checked.has(String(d.id)) })),
    el('td', {}, d.id), el('td', {}, d.destination), el('td', {}, d.failedAt), el('td', {}, d.messageId),
    el('td', { class: 'num' }, d.attempts), el('td', {}, d.reason))));
}

async function dlqAction(action) {
  const ids = [...document.querySelectorAll('#dlq tbody input:checked')].map((c) => Number(c.value));
  if (!ids.length) { $('#dlq-result').textContent = 'Select dead letters first.'; return; }
  if (action === 'purge' && !confirm('Purge ' + ids.length + ' dead letters? They cannot be replayed afterwards.')) return;
  const r = await api('/admin/dlq/' + action, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ids }) });
  const body = await r.json();
  $('#dlq-result').textContent = r.ok ? (action === 'replay' ? 'Replaying ' + body.replayed : 'Purged ' + body.purged)
                                      : 'Error: ' + body.error;
  $('#dlq-all').checked = false;
  refreshDlq();
}

// --- regulations -----------------------------------------------------------------------------

async function refreshRegulations() {
  const body = await (await api('/v1/regulations?limit=50')).json();
  $('#regulations tbody').replaceChildren(...body.regulations.map((r) => {
    const subject = Object.entries(r.subject || {}).map(([k, v]) => k + ': ' + v).join(', ');
    let progress = '';
    const destinations = r.destinations || {};
    const names = Object.keys(destinations);
    if (names.length) {
      const done = names.filter((n) => destinations[n].status === 'done').length;
      progress = done + ' of ' + names.length + ' destinations erased';
    }
    return el('tr', {}, el('td', {}, r.id), el('td', {}, r.type), el('td', {}, subject),
      el('td', {}, r.createdAt || ''), el('td', {}, badge(r.status, 'state')), el('td', {}, progress));
  }));
}

// --- live debugger ---------------------------------------------------------------------------

function stopDebugger() {
  if (debugAbort) debugAbort.abort();
  debugAbort = null;
  $('#debug-start').disabled = false;
  $('#debug-stop').disabled = true;
  $('#debug-state').textContent = '';
}

function debugRow(r) {
  const time = r.at_ms ? new Date(r.at_ms).toISOString().slice(11, 23) : '';
  if (r.kind === 'dropped') {
    return el('tr', {}, el('td', {}, time), el('td', {}, badge('dropped', 'kind')), el('td', { colspan: '5' },
      r.count + ' records not shown: ' + r.reason));
  }
  const route = r.source + (r.destination ? ' → ' + r.destination : '');
  const detail = r.body !== undefined ? el('pre', {}, JSON.stringify(r.body)) : (r.reason || '');
  return el('tr', { 'data-message-id': r.messageId, 'data-kind': r.kind },
    el('td', {}, time), el('td', {}, badge(r.kind, 'kind')), el('td', {}, route),
    el('td', {}, r.type + (r.event ? ' ' + r.event : '')), el('td', {}, r.person), el('td', {}, r.messageId),
    el('td', {}, detail));
}

async function startDebugger(event) {
  event.preventDefault();
  stopDebugger();
  const params = new URLSearchParams();
  for (const [k, v] of new FormData($('#debug-form'))) if (v) params.set(k, v);
  debugAbort = new AbortController();
  $('#debug-start').disabled = true;
  $('#debug-stop').disabled = false;
  $('#debug-state').textContent = 'watching…';
  const tbody = $('#debugger tbody');
  try {
    const response = await api('/admin/debug/events' + (params.toString() ? '?' + params : ''),
                               { signal: debugAbort.signal });
    if (!response.ok) {
      $('#debug-state').textContent = 'Error: ' + ((await response.json()).error || response.status);
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let end;
      while ((end = pending.indexOf('\n\n')) >= 0) {
        const block = pending.slice(0, end);
        pending = pending.slice(end + 2);
        if (!block.startsWith('data: ')) continue;
        tbody.prepend(debugRow(JSON.parse(block.slice(6))));
        while (tbody.rows.length > DEBUG_ROWS) tbody.lastChild.remove();
      }
    }
    $('#debug-state').textContent = 'the stream ended';
  } catch (e) {
    if (e.name !== 'AbortError' && e.message !== 'unauthorized') $('#debug-state').textContent = 'Error: ' + e.message;
  } finally {
    $('#debug-start').disabled = false;
    $('#debug-stop').disabled = true;
  }
}

// --- start -----------------------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  $('#login').addEventListener('submit', (e) => { e.preventDefault(); signIn($('#token').value); });
  $('#logout').addEventListener('click', () => signOut(''));
  $('#debug-form').addEventListener('submit', startDebugger);
  $('#debug-stop').addEventListener('click', stopDebugger);
  $('#dlq-replay').addEventListener('click', () => dlqAction('replay'));
  $('#dlq-purge').addEventListener('click', () => dlqAction('purge'));
  $('#dlq-all').addEventListener('change', (e) => {
    for (const c of document.querySelectorAll('#dlq tbody input')) c.checked = e.target.checked;
  });
  if (token) signIn(token); else showLogin('');
});
