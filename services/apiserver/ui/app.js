// MiniKu dashboard: three watches (nodes, replicasets, pods) keep local maps
// current; every change re-renders the tables. No framework, no build step.
'use strict';

const TOKEN_KEY = 'miniku-token';
const state = { nodes: new Map(), replicasets: new Map(), pods: new Map() };
let selected = '';
let renderQueued = false;
const watches = [];

// The token comes from the login field or, once, from /ui?token=...; it is
// kept in sessionStorage (this tab only) and removed from the address bar
// at once so it does not stay in the history.
function takeTokenFromURL() {
  const u = new URL(location.href);
  const t = u.searchParams.get('token');
  if (t) {
    sessionStorage.setItem(TOKEN_KEY, t);
    u.searchParams.delete('token');
    history.replaceState(null, '', u.pathname + u.search + u.hash);
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

class Unauthorized extends Error {}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: 'Bearer ' + token() } };
  if (body !== undefined) {
    opts.body = JSON.stringify(body);
    opts.headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(path, opts);
  if (r.status === 401) { loggedOut('the token was refused'); throw new Unauthorized(); }
  return r;
}

async function apiJSON(method, path, body) {
  const r = await api(method, path, body);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${data.error || ''}`);
  return data;
}

// watch follows GET /<kind>?watch=true: NDJSON lines read as they arrive.
// When the stream ends (timeout, apiserver restart) it resumes after the
// last resourceVersion seen, so nothing is missed or repeated.
function watch(kind) {
  const ctl = { stop: false, abort: new AbortController() };
  watches.push(ctl);
  let rv = 0;
  const loop = async () => {
    while (!ctl.stop) {
      try {
        const q = rv ? `&resourceVersion=${rv}` : '';
        const r = await fetch(`/${kind}?watch=true${q}`, {
          headers: { Authorization: 'Bearer ' + token() }, signal: ctl.abort.signal,
        });
        if (r.status === 401) { loggedOut('the token was refused'); return; }
        if (!r.ok) throw new Error(`watch ${kind}: ${r.status}`);
        setConn(true);
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (line) rv = apply(kind, JSON.parse(line)) || rv;
          }
        }
      } catch (e) {
        if (ctl.stop) return;
        setConn(false, e.message);
      }
      if (!ctl.stop) await new Promise((res) => setTimeout(res, 1000));
    }
  };
  loop();
}

function apply(kind, ev) {
  const obj = ev.object || {};
  const m = state[kind];
  switch (ev.type) {
    case 'ADDED':
    case 'MODIFIED':
      m.set(obj.name, obj);
      break;
    case 'DELETED':
      m.delete(obj.name);
      break;
  }
  queueRender();
  return obj.resourceVersion;
}

function setConn(live, why) {
  const b = document.getElementById('conn');
  b.textContent = live ? 'live' : 'reconnecting…';
  b.title = why || '';
  b.className = 'badge ' + (live ? 'live' : 'down');
}

// setNoToken is the neutral state before any token was given: nothing was
// tried yet, so nothing is "reconnecting".
function setNoToken(why) {
  const b = document.getElementById('conn');
  b.textContent = 'no token';
  b.title = why || '';
  b.className = 'badge idle';
}

// showTokenHint names this apiserver's own token file (its --data-dir or
// --token-file), which the static page cannot know.
async function showTokenHint() {
  try {
    const r = await fetch('config.json', { cache: 'no-cache' });
    if (!r.ok) return;
    const c = await r.json();
    const hint = document.getElementById('token-hint');
    if (c.tokenFile) hint.textContent = 'sudo cat ' + c.tokenFile;
    else if (!c.authRequired) hint.textContent = 'this apiserver runs without authentication: any text will do';
  } catch (e) { /* keep the generic hint */ }
}

function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

// --- formatting -----------------------------------------------------------

function age(t) {
  if (!t) return '';
  let s = Math.max(0, Math.floor((Date.now() - new Date(t).getTime()) / 1000));
  if (s < 120) return s + 's';
  if (s < 7200) return Math.floor(s / 60) + 'm';
  if (s < 172800) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

function cpuMilli(v) {
  if (!v) return 0;
  return v.endsWith('m') ? parseFloat(v) : parseFloat(v) * 1000;
}

const memUnits = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
function memBytes(v) {
  if (!v) return 0;
  const m = /^([0-9.]+)([A-Za-z]*)$/.exec(v);
  return m ? parseFloat(m[1]) * (memUnits[m[2]] || 1) : 0;
}

function fmtCPU(milli) { return milli % 1000 === 0 ? String(milli / 1000) : milli + 'm'; }
function fmtMem(b) {
  for (const [u, n] of [['Gi', 2 ** 30], ['Mi', 2 ** 20], ['Ki', 2 ** 10]]) if (b >= n) return +(b / n).toFixed(1) + u;
  return String(b);
}

function podStatus(p) { return p.deletionTimestamp ? 'Terminating' : (p.status || 'Pending'); }
function terminal(p) { return p.status === 'Succeeded' || p.status === 'Failed'; }

// el builds an element; text only goes in through textContent.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? '' : String(k)));
  return e;
}

function fill(id, rows) {
  const tb = document.querySelector(`#${id} tbody`);
  tb.replaceChildren(...rows);
}

const byName = (a, b) => a.name.localeCompare(b.name);

// --- rendering ------------------------------------------------------------

// Rows are kept per object name and updated in place, cell by cell, so a
// re-render (every change, and every second for the ages) never replaces
// the field someone is typing in or the button they are about to click.
const rowCache = {};

// syncRows makes the table's rows those of items, in order: each row is
// made once by make(item, tr) (handlers, action buttons) and its cells set
// from cells(item, tr) on every render.
function syncRows(id, items, make, cells) {
  const tb = document.querySelector(`#${id} tbody`);
  const old = rowCache[id] || new Map();
  const now = new Map();
  const rows = items.map((it) => {
    let tr = old.get(it.name);
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.name = it.name;
      make(it, tr);
    }
    now.set(it.name, tr);
    setCells(tr, cells(it, tr));
    return tr;
  });
  rowCache[id] = now;
  const cur = tb.children;
  if (cur.length !== rows.length || rows.some((r, i) => cur[i] !== r)) tb.replaceChildren(...rows);
}

// A cell is {text, cls, title}, or {node} for an element made once per row.
function setCells(tr, specs) {
  while (tr.children.length < specs.length) tr.append(document.createElement('td'));
  specs.forEach((sp, i) => {
    const td = tr.children[i];
    if (sp.node) {
      if (td.firstChild !== sp.node) td.replaceChildren(sp.node);
      return;
    }
    const text = String(sp.text == null ? '' : sp.text);
    if (td.textContent !== text) td.textContent = text;
    if (td.className !== (sp.cls || '')) td.className = sp.cls || '';
    if ((td.getAttribute('title') || '') !== (sp.title || '')) td.setAttribute('title', sp.title || '');
  });
}

function render() {
  const pods = [...state.pods.values()].sort(byName);
  const alloc = {};
  for (const p of pods) {
    if (!p.nodeName || terminal(p)) continue;
    const a = alloc[p.nodeName] || (alloc[p.nodeName] = { cpu: 0, mem: 0, pods: 0 });
    a.cpu += cpuMilli(p.resources && p.resources.cpu);
    a.mem += memBytes(p.resources && p.resources.memory);
    a.pods++;
  }
  syncRows('nodes', [...state.nodes.values()].sort(byName), () => {}, (n) => {
    const a = alloc[n.name] || { cpu: 0, mem: 0, pods: 0 };
    const c = n.capacity || {};
    return [
      { text: n.name },
      { text: n.status + (n.unschedulable ? ',SchedulingDisabled' : ''), cls: 's-' + n.status, title: n.reason },
      { text: `${fmtCPU(a.cpu)} / ${c.cpu || '–'}` },
      { text: `${fmtMem(a.mem)} / ${c.memory ? fmtMem(memBytes(c.memory)) : '–'}` },
      { text: `${a.pods} / ${c.pods || '–'}` },
      { text: age(n.lastHeartbeat) + ' ago' },
    ];
  });

  syncRows('replicasets', [...state.replicasets.values()].sort(byName), (rs, tr) => {
    const input = el('input', { type: 'number', min: '0', class: 'scale', 'aria-label': 'replicas of ' + rs.name });
    // Edited by hand: the watch no longer overwrites it until Scale.
    input.addEventListener('input', () => { input.dataset.dirty = '1'; });
    tr.scaleInput = input;
    tr.actions = el('span', {}, input,
      el('button', { class: 'scale-btn', onclick: () => { delete input.dataset.dirty; scale(rs.name, input.value); } }, 'Scale'), ' ',
      el('button', { class: 'danger', onclick: () => remove('replicasets', rs.name) }, 'Delete'));
  }, (rs, tr) => {
    const input = tr.scaleInput;
    if (!input.dataset.dirty && document.activeElement !== input && input.value !== String(rs.desiredCount)) input.value = String(rs.desiredCount);
    return [
      { text: rs.name },
      { text: rs.desiredCount, cls: 'desired' },
      { text: rs.currentCount || 0, cls: 'current' },
      { text: rs.readyCount || 0, cls: 'ready' },
      { text: (rs.template && rs.template.image) || '' },
      { text: age(rs.createdAt) },
      { node: tr.actions },
    ];
  });

  document.getElementById('pod-count').textContent = `(${pods.length})`;
  syncRows('pods', pods, (p, tr) => {
    tr.addEventListener('click', () => select(p.name));
    tr.actions = el('button', { class: 'danger', onclick: (e) => { e.stopPropagation(); remove('pods', p.name); } }, 'Delete');
  }, (p, tr) => {
    const st = podStatus(p);
    tr.className = p.name === selected ? 'selected' : '';
    return [
      { text: p.name },
      { text: st + (p.reason && st !== 'Running' ? ` (${p.reason})` : ''), cls: 'status s-' + st, title: [p.reason, p.message].filter(Boolean).join(': ') },
      { text: p.restartCount || 0 },
      { text: p.nodeName || '' },
      { text: age(p.createdAt) },
      { node: tr.actions },
    ];
  });
}

// --- actions --------------------------------------------------------------

function showError(msg) { document.getElementById('error').textContent = msg || ''; }

// scale reads the replicaset afresh and PUTs it back with the
// resourceVersion it read: a concurrent change gets a 409, shown as is.
async function scale(name, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) { showError(`replicas for ${name} must be a whole number ≥ 0`); return; }
  try {
    const rs = await apiJSON('GET', `/replicasets/${encodeURIComponent(name)}`);
    rs.desiredCount = n;
    await apiJSON('PUT', `/replicasets/${encodeURIComponent(name)}`, rs);
    showError('');
  } catch (e) { if (!(e instanceof Unauthorized)) showError(e.message); }
}

async function remove(kind, name) {
  if (!confirm(`Delete ${kind === 'pods' ? 'pod' : 'replicaset'} ${name}?`)) return;
  try {
    await apiJSON('DELETE', `/${kind}/${encodeURIComponent(name)}`);
    showError('');
  } catch (e) { if (!(e instanceof Unauthorized)) showError(e.message); }
}

async function select(name) {
  selected = name;
  queueRender();
  document.getElementById('detail').hidden = false;
  document.getElementById('detail-name').textContent = name;
  await Promise.all([loadEvents(name), loadLogs(name)]);
}

async function loadEvents(name) {
  try {
    const evs = await apiJSON('GET', `/events?kind=Pod&name=${encodeURIComponent(name)}`);
    if (name !== selected) return;
    fill('events', (evs || []).map((e) => el('tr', {},
      el('td', { title: e.time }, age(e.time) + ' ago'), el('td', {}, e.type), el('td', {}, e.reason),
      el('td', {}, e.component + (e.node ? '/' + e.node : '')), el('td', {}, e.message))));
  } catch (e) { if (!(e instanceof Unauthorized)) fill('events', [el('tr', {}, el('td', { class: 'error', colspan: '5' }, e.message))]); }
}

async function loadLogs(name) {
  const pre = document.getElementById('logs');
  try {
    const r = await api('GET', `/pods/${encodeURIComponent(name)}/logs?tail=200`);
    const text = await r.text();
    if (name !== selected) return;
    if (!r.ok) {
      let msg = text;
      try { msg = JSON.parse(text).error; } catch (_) { /* not JSON */ }
      pre.textContent = `(no logs: ${msg})`;
      return;
    }
    pre.textContent = text || '(empty)';
    pre.scrollTop = pre.scrollHeight;
  } catch (e) { if (!(e instanceof Unauthorized)) pre.textContent = e.message; }
}

// --- login ----------------------------------------------------------------

function loggedOut(why) {
  for (const w of watches.splice(0)) { w.stop = true; w.abort.abort(); }
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById('main').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('login').hidden = false;
  document.getElementById('login-error').textContent = why || '';
  setNoToken(why);
}

function start() {
  for (const m of Object.values(state)) m.clear();
  document.getElementById('login').hidden = true;
  document.getElementById('main').hidden = false;
  document.getElementById('logout').hidden = false;
  const b = document.getElementById('conn');
  b.textContent = 'connecting…';
  b.title = '';
  b.className = 'badge idle';
  for (const kind of ['nodes', 'replicasets', 'pods']) watch(kind);
}

document.addEventListener('DOMContentLoaded', () => {
  takeTokenFromURL();
  showTokenHint();
  document.getElementById('login').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = document.getElementById('token').value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    document.getElementById('token').value = '';
    start();
  });
  document.getElementById('logout').addEventListener('click', () => loggedOut(''));
  document.getElementById('detail-close').addEventListener('click', () => {
    selected = '';
    document.getElementById('detail').hidden = true;
    queueRender();
  });
  document.getElementById('logs-refresh').addEventListener('click', () => selected && loadLogs(selected));
  setInterval(queueRender, 1000); // ages
  if (token()) start(); else loggedOut('');
});
