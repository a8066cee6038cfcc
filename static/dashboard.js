// Supervisor dashboard: every agent as a tile, counts, filters, grouping and
// a freshness indicator, fed by presence-client.js.
//
// Performance model (5 000 agents, 200 changes/s must stay under 16 ms/frame):
//  - the client module patches its agent map as messages arrive (cheap);
//  - this page only marks what is dirty and paints once per animation frame;
//  - changed tiles that are on screen are repainted in that frame, but the
//    view (filter, sort, grouping, counts: O(n)) is rebuilt at most every
//    VIEW_REBUILD_MS for stream changes, at once for the user's own actions;
//  - only the visible rows exist in the DOM (a pool of tiles reused by the
//    virtualiser); the per-second tick rewrites only the visible timers.

import { createPresenceClient, computeCounts, presenceKey, fetchPresenceDefinitions } from './presence-client.js';
import { ensureAccess } from './auth-gate.js';

const TILE_H = 58;
const GAP = 6;
const ROW_H = TILE_H + GAP;
const HEAD_H = 36;
const MIN_TILE_W = 250;
const PAD = 12;
const OVERSCAN_PX = 300;
const VIEW_REBUILD_MS = 500;
/** Time in state beyond which the timer is highlighted (non-productive states). */
const LONG_MS = { BREAK: 15 * 60e3, MEAL: 45 * 60e3, AWAY: 10 * 60e3, IDLE: 10 * 60e3, BUSY: 30 * 60e3 };

/** Order and display names of the system presences in the counts strip. */
const PRESENCES = ['ON_QUEUE', 'AVAILABLE', 'BUSY', 'MEETING', 'TRAINING', 'AWAY', 'BREAK', 'MEAL', 'IDLE', 'OFFLINE'];
const SYS_LABEL = {
  AVAILABLE: 'Available', ON_QUEUE: 'On Queue', BUSY: 'Busy', MEETING: 'Meeting', TRAINING: 'Training',
  AWAY: 'Away', BREAK: 'Break', MEAL: 'Meal', IDLE: 'Idle', OFFLINE: 'Offline', UNKNOWN: 'Unknown',
};
const ROUTING = ['IDLE', 'INTERACTING', 'COMMUNICATING', 'NOT_RESPONDING'];
const ROUTING_LABEL = { IDLE: 'Idle', INTERACTING: 'Interacting', COMMUNICATING: 'Communicating', NOT_RESPONDING: 'Not responding', OFF_QUEUE: 'Off queue' };

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// ---- view state (mirrored in the URL so a wallboard can be bookmarked) ----
const view = {
  q: params.get('q') || '',
  state: params.get('state') || '',
  division: params.get('division') || '',
  queue: params.get('queue') || '',
  group: params.get('group') || '',
  sort: params.get('sort') || 'name',
};

/** definitionId → true when the definition is a primary one (from presence-definitions). */
const primaryDefs = new Map();

const client = createPresenceClient({
  baseUrl: params.get('gateway') || '',
  transport: params.get('transport') === 'ws' ? 'ws' : 'sse',
  onSnapshot: () => { nameOrderDirty = true; flashIds.clear(); requestView(true); },
  onDelta: (changes) => {
    for (const ch of changes) {
      dirtyIds.add(ch.id);
      if (ch.removed || !nameIndex.has(ch.id) || nameIndex.get(ch.id) !== ch.name) nameOrderDirty = true;
    }
    requestView(false);
  },
  onStatus: () => updateFreshness(),
  onConnectionChange: () => updateFreshness(),
  autoStart: false,
});
// For tests and the benchmark: the live agent map and the client state.
window.__presence = client;

// ---- derived data ----
/** Ids sorted by name; rebuilt only when names or membership change. */
let nameOrder = [];
let nameOrderDirty = true;
const nameIndex = new Map(); // id → name at the time nameOrder was built
const collator = new Intl.Collator(undefined, { sensitivity: 'base', numeric: true });
/** Parsed `since` per agent object (objects are replaced on change, so a WeakMap is exact). */
const sinceCache = new WeakMap();
function sinceMs(a) {
  let v = sinceCache.get(a);
  if (v === undefined) {
    const p = Date.parse(a.presence && a.presence.since);
    const r = Date.parse(a.routingStatus && a.routingStatus.since);
    v = { p: Number.isFinite(p) ? p : NaN, r: Number.isFinite(r) ? r : NaN };
    sinceCache.set(a, v);
  }
  return v;
}

/** Rows of the virtual board: {kind:'head', y, key, label, counts} | {kind:'tiles', y, ids}. */
let rows = [];
let totalHeight = 0;
let cols = 1;
let tileW = MIN_TILE_W;
let shownCount = 0;

const dirtyIds = new Set();
const flashIds = new Set();
let viewDirty = true;
let viewUrgent = true;
let lastViewAt = 0;
let frameRequested = false;

function requestView(urgent) {
  viewDirty = true;
  if (urgent) viewUrgent = true;
  schedule();
}
function schedule() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(frame);
}

function isSecondary(a) {
  const p = a.presence || {};
  if (typeof p.primary === 'boolean') return !p.primary;
  if (p.definitionId && primaryDefs.has(p.definitionId)) return !primaryDefs.get(p.definitionId);
  // Fallback before the definitions load: a label other than the system name.
  const sys = SYS_LABEL[presenceKey(a)];
  return !!(p.label && sys && p.label.trim().toLowerCase() !== sys.toLowerCase());
}
function queueName(id) { return client.queues.get(id) || id; }
function queueIds(a) { return (a.queues || []).map((q) => (typeof q === 'string' ? q : q && q.id)).filter(Boolean); }

function matchesBase(a, qLower) {
  if (view.division && (!a.division || a.division.id !== view.division)) return false;
  if (view.queue && !queueIds(a).includes(view.queue)) return false;
  if (qLower && !(a.name || '').toLowerCase().includes(qLower)) return false;
  return true;
}

function rebuildView() {
  const agents = client.agents;
  if (nameOrderDirty) {
    optionsDirty = true;
    nameOrder = [...agents.values()].sort((x, y) => collator.compare(x.name || '', y.name || '') || (x.id < y.id ? -1 : 1)).map((a) => a.id);
    nameIndex.clear();
    for (const id of nameOrder) nameIndex.set(id, agents.get(id).name);
    nameOrderDirty = false;
  }
  const qLower = view.q.trim().toLowerCase();
  const base = [];
  for (const id of nameOrder) {
    const a = agents.get(id);
    if (a && matchesBase(a, qLower)) base.push(a);
  }
  // Counts cover the division/queue/search scope but not the state filter,
  // so every state chip keeps its number while one is selected.
  const counts = computeCounts(base);
  renderCounts(counts);
  let list = view.state ? base.filter((a) => presenceKey(a) === view.state) : base;
  if (view.sort === 'time') {
    list = list.slice().sort((x, y) => (sinceMs(x).p || 0) - (sinceMs(y).p || 0));
  }
  shownCount = list.length;

  // Group (an agent in several queues appears under each of them).
  let groups;
  if (view.group === 'queue') {
    const m = new Map();
    for (const a of list) {
      const qs = queueIds(a);
      if (!qs.length) (m.get('') || m.set('', []).get('')).push(a);
      for (const q of qs) if (!view.queue || q === view.queue) (m.get(q) || m.set(q, []).get(q)).push(a);
    }
    groups = [...m.entries()].map(([k, v]) => ({ key: k, label: k ? queueName(k) : 'No queue', items: v }));
  } else if (view.group === 'division') {
    const m = new Map();
    const names = new Map();
    for (const a of list) {
      const k = (a.division && a.division.id) || '';
      names.set(k, (a.division && a.division.name) || 'No division');
      (m.get(k) || m.set(k, []).get(k)).push(a);
    }
    groups = [...m.entries()].map(([k, v]) => ({ key: k, label: names.get(k), items: v }));
  } else if (view.group === 'presence') {
    const m = new Map();
    for (const a of list) { const k = presenceKey(a); (m.get(k) || m.set(k, []).get(k)).push(a); }
    groups = [...m.entries()].map(([k, v]) => ({ key: k, label: SYS_LABEL[k] || k, items: v }))
      .sort((x, y) => PRESENCES.indexOf(x.key) - PRESENCES.indexOf(y.key));
  } else {
    groups = [{ key: null, items: list }];
  }
  if (view.group && view.group !== 'presence') groups.sort((x, y) => collator.compare(x.label, y.label));

  // Lay out rows.
  const width = boardW - PAD * 2;
  cols = Math.max(1, Math.floor((width + GAP) / (MIN_TILE_W + GAP)));
  tileW = Math.floor((width - GAP * (cols - 1)) / cols);
  rows = [];
  let y = PAD;
  for (const g of groups) {
    if (g.key !== null) {
      rows.push({ kind: 'head', y, key: g.key, label: g.label, items: g.items });
      y += HEAD_H;
    }
    for (let i = 0; i < g.items.length; i += cols) {
      rows.push({ kind: 'tiles', y, ids: g.items.slice(i, i + cols).map((a) => a.id) });
      y += ROW_H;
    }
  }
  totalHeight = y + PAD;
  spacer.style.height = totalHeight + 'px';
  $('total').textContent = String(client.agents.size);
  $('shown').textContent = String(shownCount);
  $('shown-wrap').hidden = shownCount === client.agents.size;
  $('empty').hidden = shownCount > 0 || !client.hasSnapshot;
  if (optionsDirty) refreshFilterOptions();
  lastViewAt = performance.now();
  viewDirty = false;
  viewUrgent = false;
  paint(true);
}

// ---- virtualised painting ----
const board = $('board');
const spacer = $('spacer');
/** Tile pool: elements reused across frames; each remembers what it shows. */
const tilePool = [];
const headPool = [];
let lastRange = '';

function makeTile() {
  const el = document.createElement('div');
  el.className = 'tile';
  el.setAttribute('role', 'listitem');
  el.innerHTML = '<div class="ln"><span class="nm"></span><span class="t"></span></div><div class="ln"><span class="ps"><span class="sw"></span><span class="lb"></span><span class="sys"></span></span><span class="rs"><span class="badge"></span><span class="rt"></span></span></div>';
  const [l1, l2] = el.children;
  el._nm = l1.children[0];
  el._t = l1.children[1];
  el._sw = l2.children[0].children[0];
  el._lb = l2.children[0].children[1];
  el._sys = l2.children[0].children[2];
  el._badge = l2.children[1].children[0];
  el._rt = l2.children[1].children[1];
  el._agent = null;
  spacer.appendChild(el);
  return el;
}
function makeHead() {
  const el = document.createElement('div');
  el.className = 'ghead';
  el.setAttribute('role', 'presentation');
  spacer.appendChild(el);
  return el;
}

function fillTile(el, a) {
  el._agent = a;
  el.dataset.id = a.id;
  const key = presenceKey(a);
  const sec = isSecondary(a);
  el.style.setProperty('--pc', `var(--p-${key in SYS_LABEL ? key : 'UNKNOWN'})`);
  el.classList.toggle('secondary', sec);
  el._sw.classList.toggle('secondary', sec);
  el._nm.textContent = a.name || a.id;
  el._nm.title = a.name || a.id;
  const p = a.presence || {};
  el._lb.textContent = p.label || SYS_LABEL[key] || key;
  el._sys.textContent = sec ? SYS_LABEL[key] || key : '';
  el._lb.title = p.message ? `${p.label}: ${p.message}` : (p.label || '');
  const rs = (a.routingStatus && a.routingStatus.status) || 'OFF_QUEUE';
  if (key === 'ON_QUEUE' || rs !== 'OFF_QUEUE') {
    el._badge.hidden = false;
    el._rt.hidden = false;
    el._badge.textContent = ROUTING_LABEL[rs] || rs;
    el._badge.style.setProperty('--rc', `var(--r-${rs})`);
    el._badge.classList.toggle('solid', rs === 'INTERACTING' || rs === 'COMMUNICATING' || rs === 'NOT_RESPONDING');
  } else {
    el._badge.hidden = true;
    el._rt.hidden = true;
  }
  tickTile(el, Date.now());
}

function fmtDur(ms) {
  if (!Number.isFinite(ms)) return '–';
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
function tickTile(el, now) {
  const a = el._agent;
  if (!a) return;
  const s = sinceMs(a);
  const d = now - s.p;
  el._t.textContent = fmtDur(d);
  const lim = LONG_MS[presenceKey(a)];
  el.classList.toggle('long', !!lim && d > lim);
  if (!el._rt.hidden) el._rt.textContent = fmtDur(now - s.r);
}

/** First row whose bottom is below `y` (rows are sorted by y). */
function firstRowAt(y) {
  let lo = 0;
  let hi = rows.length - 1;
  let ans = rows.length;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = rows[mid];
    const bottom = r.y + (r.kind === 'head' ? HEAD_H : ROW_H);
    if (bottom > y) { ans = mid; hi = mid - 1; } else lo = mid + 1;
  }
  return ans;
}

function paint(force) {
  // Geometry comes from caches (scroll and resize events), never from reading
  // layout here: a read after this frame's DOM writes would force a
  // synchronous layout of the whole board.
  const top = scrollY - OVERSCAN_PX;
  const bottom = scrollY + boardH + OVERSCAN_PX;
  const start = firstRowAt(Math.max(0, top));
  let end = start;
  while (end < rows.length && rows[end].y < bottom) end++;
  const range = `${start}:${end}`;
  if (!force && range === lastRange) {
    // Same rows on screen: repaint only the tiles whose agent changed.
    if (dirtyIds.size) {
      for (const el of tilePool) {
        if (el.hidden || !el._agent) continue;
        const a = client.agents.get(el._agent.id);
        if (a && a !== el._agent) { fillTile(el, a); flash(el); }
      }
    }
    dirtyIds.clear();
    return;
  }
  lastRange = range;
  let ti = 0;
  let hi = 0;
  const now = Date.now();
  for (let r = start; r < end; r++) {
    const row = rows[r];
    if (row.kind === 'head') {
      const el = headPool[hi] || (headPool[hi] = makeHead());
      hi++;
      el.hidden = false;
      el.style.transform = `translate(${PAD}px, ${row.y}px)`;
      el.style.width = `calc(100% - ${PAD * 2}px)`;
      fillHead(el, row);
      continue;
    }
    for (let c = 0; c < row.ids.length; c++) {
      const a = client.agents.get(row.ids[c]);
      if (!a) continue;
      const el = tilePool[ti] || (tilePool[ti] = makeTile());
      ti++;
      el.hidden = false;
      el.style.transform = `translate(${PAD + c * (tileW + GAP)}px, ${row.y}px)`;
      el.style.width = tileW + 'px';
      if (el._agent !== a) {
        const changed = el._agent && el._agent.id === a.id;
        fillTile(el, a);
        if (changed || (dirtyIds.has(a.id) && flashIds.size < 50)) flash(el);
      } else tickTile(el, now);
    }
  }
  for (let i = ti; i < tilePool.length; i++) if (!tilePool[i].hidden) { tilePool[i].hidden = true; tilePool[i]._agent = null; }
  for (let i = hi; i < headPool.length; i++) headPool[i].hidden = true;
  dirtyIds.clear();
}

function flash(el) {
  el.classList.remove('flash');
  // Restart the animation without forcing layout for every tile: next frame.
  requestAnimationFrame(() => el.classList.add('flash'));
}

function fillHead(el, row) {
  const sig = row.key + ':' + row.items.length + ':' + row.label;
  const c = computeCounts(row.items).all.presence;
  const sig2 = sig + JSON.stringify(c);
  if (el._sig === sig2) return;
  el._sig = sig2;
  const n = row.items.length || 1;
  const bar = PRESENCES.filter((k) => c[k]).map((k) => `<span style="--pc:var(--p-${k});width:${(100 * c[k]) / n}%" title="${SYS_LABEL[k]} ${c[k]}"></span>`).join('');
  const mini = ['ON_QUEUE', 'AVAILABLE', 'BREAK', 'MEAL', 'AWAY'].filter((k) => c[k]).map((k) => `<span>${SYS_LABEL[k]} <b>${c[k]}</b></span>`).join('');
  el.innerHTML = `<span class="gn"></span><span class="gc">${row.items.length}</span><span class="bar" aria-hidden="true">${bar}</span><span class="mini">${mini}</span>`;
  el.firstChild.textContent = row.label;
}

// ---- counts strip ----
let countsSig = '';
function renderCounts(counts) {
  const byPresence = counts.all.presence;
  const byRouting = counts.all.routing;
  const keys = PRESENCES.concat(Object.keys(byPresence).filter((k) => !PRESENCES.includes(k)));
  const sig = JSON.stringify([byPresence, byRouting, view.state]);
  if (sig === countsSig) return;
  countsSig = sig;
  const pc = $('presence-counts');
  if (!pc.children.length || pc.children.length !== keys.length) {
    pc.innerHTML = '';
    for (const k of keys) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'chip';
      b.dataset.state = k;
      b.style.setProperty('--pc', `var(--p-${k in SYS_LABEL ? k : 'UNKNOWN'})`);
      b.innerHTML = '<span class="sw"></span><span class="n"></span><span class="l"></span>';
      b.children[2].textContent = SYS_LABEL[k] || k;
      b.addEventListener('click', () => setView({ state: view.state === k ? '' : k }));
      pc.appendChild(b);
    }
  }
  for (const b of pc.children) {
    const k = b.dataset.state;
    b.children[1].textContent = String(byPresence[k] || 0);
    b.setAttribute('aria-pressed', String(view.state === k));
    b.setAttribute('aria-label', `${SYS_LABEL[k] || k}: ${byPresence[k] || 0}`);
  }
  const rc = $('routing-counts');
  rc.innerHTML = ROUTING.map((r) => `<span class="chip" style="--rc:var(--r-${r})"><span class="badge${r === 'IDLE' ? '' : ' solid'}">${ROUTING_LABEL[r]}</span><span class="n">${byRouting[r] || 0}</span></span>`).join('');
}

// ---- filters ----
let optionsSig = '';
/** Divisions and queues only change with membership: rescan then, not per rebuild. */
let optionsDirty = true;
function refreshFilterOptions() {
  optionsDirty = false;
  const divisions = new Map();
  const queues = new Set(client.queues.keys());
  for (const a of client.agents.values()) {
    if (a.division && a.division.id) divisions.set(a.division.id, a.division.name || a.division.id);
    for (const q of queueIds(a)) queues.add(q);
  }
  const sig = [...divisions.keys()].sort().join() + '|' + [...queues].sort().join();
  if (sig === optionsSig) return;
  optionsSig = sig;
  fillSelect($('f-division'), [...divisions.entries()], view.division);
  fillSelect($('f-queue'), [...queues].map((q) => [q, queueName(q)]), view.queue);
}
function fillSelect(sel, entries, value) {
  entries.sort((x, y) => collator.compare(x[1], y[1]));
  sel.innerHTML = '<option value="">All</option>';
  for (const [id, name] of entries) {
    const o = document.createElement('option');
    o.value = id;
    o.textContent = name;
    sel.appendChild(o);
  }
  sel.value = value;
}
const stateSel = $('f-state');
for (const k of PRESENCES) {
  const o = document.createElement('option');
  o.value = k;
  o.textContent = SYS_LABEL[k];
  stateSel.appendChild(o);
}

function setView(patch) {
  Object.assign(view, patch);
  syncControls();
  const p = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(view)) { if (v && !(k === 'sort' && v === 'name')) p.set(k, v); else p.delete(k); }
  history.replaceState(null, '', `${location.pathname}${p.toString() ? '?' + p : ''}`);
  if (patch.q !== undefined || patch.state !== undefined) { board.scrollTop = 0; scrollY = 0; }
  requestView(true);
}
function syncControls() {
  $('q').value = view.q;
  stateSel.value = view.state;
  $('f-division').value = view.division;
  $('f-queue').value = view.queue;
  $('group').value = view.group;
  $('sort').value = view.sort;
}
let searchTimer = null;
$('q').addEventListener('input', (e) => { clearTimeout(searchTimer); searchTimer = setTimeout(() => setView({ q: e.target.value }), 120); });
stateSel.addEventListener('change', (e) => setView({ state: e.target.value }));
$('f-division').addEventListener('change', (e) => setView({ division: e.target.value }));
$('f-queue').addEventListener('change', (e) => setView({ queue: e.target.value }));
$('group').addEventListener('change', (e) => setView({ group: e.target.value }));
$('sort').addEventListener('change', (e) => setView({ sort: e.target.value }));
$('reset').addEventListener('click', () => setView({ q: '', state: '', division: '', queue: '', group: '', sort: 'name' }));
syncControls();

// ---- frame loop ----
/** Script time spent per kind of frame work, for the benchmark (bench/dashboard). */
const stats = { rebuilds: 0, rebuildMs: 0, paints: 0, paintMs: 0, maxMs: 0 };
window.__dashboardStats = stats;
function frame() {
  frameRequested = false;
  const now = performance.now();
  if (viewDirty && (viewUrgent || now - lastViewAt >= VIEW_REBUILD_MS)) {
    rebuildView();
    stats.rebuilds++;
    stats.rebuildMs += performance.now() - now;
  } else {
    paint(false);
    stats.paints++;
    stats.paintMs += performance.now() - now;
  }
  stats.maxMs = Math.max(stats.maxMs, performance.now() - now);
  // Stream changes wait for the next rebuild slot: keep a frame pending.
  if (viewDirty) schedule();
}
let boardW = board.clientWidth;
let boardH = board.clientHeight;
let scrollY = 0;
board.addEventListener('scroll', () => {
  scrollY = board.scrollTop;
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => { frameRequested = false; paint(false); if (viewDirty) schedule(); });
}, { passive: true });
new ResizeObserver((entries) => {
  for (const e of entries) { boardW = board.clientWidth; boardH = e.contentRect.height; }
  requestView(true);
}).observe(board);

// ---- freshness ----
let lastLevel = '';
function updateFreshness() {
  const f = client.freshness();
  const el = $('fresh');
  el.dataset.level = f.level;
  const ageS = Math.round(f.staleForMs / 1000);
  let text;
  let age = '';
  switch (f.level) {
    case 'live': text = 'Live'; break;
    case 'stale': text = 'Data may be stale'; age = `(${ageS} s)`; break;
    case 'reconnecting': text = 'Reconnecting…'; age = client.hasSnapshot || f.staleForMs ? `data may be stale (${ageS} s)` : ''; break;
    case 'connecting': text = 'Connecting…'; break;
    default: text = 'Disconnected';
  }
  // Only the level is announced (aria-live); the ticking seconds are not.
  if (text !== lastLevel) { $('fresh-text').textContent = text; lastLevel = text; }
  $('fresh-age').textContent = age;
  el.title = f.detail || (f.level === 'reconnecting' && f.retryInMs ? `next attempt in ${Math.ceil(f.retryInMs / 1000)} s` : '');
  const notLive = f.level !== 'live';
  document.body.classList.toggle('not-live', notLive && client.hasSnapshot);
  const banner = $('stale-banner');
  if (notLive && client.hasSnapshot) {
    banner.hidden = false;
    banner.classList.toggle('warn', f.level === 'stale');
    banner.textContent = f.level === 'stale'
      ? `Not live: ${f.detail || 'upstream not connected'} — data may be stale (${ageS} s)`
      : `Not live: connection to the gateway lost, reconnecting${f.retryInMs ? ` in ${Math.ceil(f.retryInMs / 1000)} s` : '…'} — data may be stale (${ageS} s)`;
  } else banner.hidden = true;
}

// ---- the per-second tick: clock, freshness, visible timers ----
setInterval(() => {
  const now = Date.now();
  $('clock').textContent = new Date(now).toLocaleTimeString([], { hour12: false });
  updateFreshness();
  for (const el of tilePool) if (!el.hidden) tickTile(el, now);
}, 1000);
setInterval(updateFreshness, 250);

// Credentials first (asked only when the gateway requires them), then the
// definitions (which are primary: fetched once) and the stream.
ensureAccess(params.get('gateway') || '').then(() => {
  fetchPresenceDefinitions(params.get('gateway') || '').then((defs) => {
    for (const d of defs) primaryDefs.set(d.id, d.primary !== false);
    lastRange = '';
    for (const el of tilePool) el._agent = null;
    requestView(true);
  }).catch(() => { /* the label heuristic stands in */ });
  client.start();
});
