// Supervisor dashboard: every agent as a tile, queue figures, counts,
// filters, grouping, thresholds, a wallboard view, an agent detail panel and
// a freshness indicator, fed by presence-client.js.
//
// Performance model (5 000 agents, 200 changes/s must stay under 16 ms/frame):
//  - the client module patches its agent map as messages arrive (cheap);
//  - the page keeps its view (groups of ids, each sorted; counts) up to date
//    incrementally: a change moves one id by binary search and adjusts the
//    counts it touched — no O(n) rebuild per change. A full rebuild happens
//    only for a snapshot or the user's own actions (filter, sort, group);
//  - layout is per group (a header plus ceil(n / cols) rows), so placing
//    groups is O(groups); only the visible tiles exist in the DOM (a pool
//    reused by the virtualiser) and only those are painted;
//  - the per-second tick rewrites only the visible timers.

import {
  createPresenceClient, presenceKey, fetchPresenceDefinitions, getJson, setPresence, refusedBy,
} from './presence-client.js';
import { ensureAccess } from './auth-gate.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const baseUrl = params.get('gateway') || '';
const WALL = params.get('view') === 'wallboard';

/** Order and display names of the system presences in the counts strip. */
const PRESENCES = ['ON_QUEUE', 'AVAILABLE', 'BUSY', 'MEETING', 'TRAINING', 'AWAY', 'BREAK', 'MEAL', 'IDLE', 'OFFLINE'];
const SYS_LABEL = {
  AVAILABLE: 'Available', ON_QUEUE: 'On Queue', BUSY: 'Busy', MEETING: 'Meeting', TRAINING: 'Training',
  AWAY: 'Away', BREAK: 'Break', MEAL: 'Meal', IDLE: 'Idle', OFFLINE: 'Offline', UNKNOWN: 'Unknown',
};
const ROUTING = ['IDLE', 'INTERACTING', 'COMMUNICATING', 'NOT_RESPONDING'];
const ROUTING_LABEL = { IDLE: 'Idle', INTERACTING: 'Interacting', COMMUNICATING: 'Communicating', NOT_RESPONDING: 'Not responding', OFF_QUEUE: 'Off queue' };
const MEDIA_LABEL = { voice: 'Voice', chat: 'Chat', email: 'Email', message: 'Message', callback: 'Callback' };

// ---- geometry (scaled to the screen on the wallboard) ----
const GAP = 6;
const PAD = 12;
const OVERSCAN_PX = 300;
let scale = 1;
let TILE_H = 74;
let ROW_H = TILE_H + GAP;
let HEAD_H = 40;
let MIN_TILE_W = 260;
// Wallboard: type 1.35× at 1920×1080 (19 px names), in proportion to the
// screen (1280×720: 1×, 3840×2160: 2.7×), and narrower tiles: six columns
// from 1920 px wide, five at 1280.
function computeGeometry() {
  scale = WALL ? Math.max(1, Math.min(3, Math.min(innerWidth / 1920, innerHeight / 1080) * 1.35)) : 1;
  document.documentElement.style.setProperty('--scale', String(scale));
  TILE_H = Math.round((WALL ? 70 : 74) * scale);
  ROW_H = TILE_H + GAP;
  HEAD_H = Math.round(40 * scale);
  MIN_TILE_W = Math.round((WALL ? 225 : 260) * scale);
}
computeGeometry();

// ---- view state (mirrored in the URL so a wallboard can be bookmarked) ----
const view = {
  q: params.get('q') || '',
  state: params.get('state') || '',
  division: params.get('division') || '',
  queue: params.get('queue') || '',
  group: params.has('group') ? params.get('group') : (WALL ? 'presence' : ''),
  sort: ['name', 'time', 'routing'].includes(params.get('sort')) ? params.get('sort') : 'name',
};
/** Collapsed group keys (`collapsed=` in the URL, comma-separated). */
const collapsed = new Set((params.get('collapsed') || '').split(',').filter(Boolean));

// ---- thresholds: [board] settings, overridden by ?thresholds=BREAK:600,NOT_RESPONDING:20 ----
const thresholds = { presence: {}, routing: {} };
let alertSound = params.get('sound') === '1';
function applyThresholdOverrides() {
  for (const part of (params.get('thresholds') || '').split(',')) {
    const [k, v] = part.split(':');
    const secs = Number(v);
    if (!k || !Number.isFinite(secs) || secs <= 0) continue;
    const key = k.trim().toUpperCase();
    if (key in ROUTING_LABEL && !(key in SYS_LABEL && key !== 'IDLE')) {
      // IDLE is both a presence and a routing status: `IDLE` is the routing
      // one (on queue, waiting); `P_IDLE` names the presence.
      thresholds.routing[key] = secs;
    } else if (key.startsWith('P_') && key.slice(2) in SYS_LABEL) thresholds.presence[key.slice(2)] = secs;
    else if (key in SYS_LABEL) thresholds.presence[key] = secs;
  }
}
applyThresholdOverrides();

/** definitionId → true when the definition is a primary one (from presence-definitions). */
const primaryDefs = new Map();
let definitions = [];

const client = createPresenceClient({
  baseUrl,
  transport: params.get('transport') === 'ws' ? 'ws' : 'sse',
  filter: { queues: true },
  onSnapshot: () => { needRebuild = true; schedule(); },
  onDelta: (changes) => {
    for (const ch of changes) pendingIds.add(ch.id);
    schedule();
  },
  onQueues: () => { queuesDirty = true; schedule(); },
  onStatus: () => updateFreshness(),
  onConnectionChange: () => updateFreshness(),
  autoStart: false,
});
// For tests and the benchmark: the live agent map and the client state.
window.__presence = client;

// ---- helpers ----
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
function routingOf(a) { return (a.routingStatus && a.routingStatus.status) || 'OFF_QUEUE'; }
function onQueue(a) { return presenceKey(a) === 'ON_QUEUE' || routingOf(a) !== 'OFF_QUEUE'; }
function isSecondary(a) {
  const p = a.presence || {};
  if (typeof p.primary === 'boolean') return !p.primary;
  if (p.definitionId && primaryDefs.has(p.definitionId)) return !primaryDefs.get(p.definitionId);
  const sys = SYS_LABEL[presenceKey(a)];
  return !!(p.label && sys && p.label.trim().toLowerCase() !== sys.toLowerCase());
}
/** A queue's name; never its id (names come from `queues` messages and GET /api/v1/queues). */
function queueName(id) { return client.queues.get(id) || 'Queue (name loading)'; }
function queueIds(a) { return (a.queues || []).map((q) => (typeof q === 'string' ? q : q && q.id)).filter(Boolean); }
function fmtDur(ms) {
  if (!Number.isFinite(ms)) return '–';
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
/** "2 minutes", "1 hour 5 minutes", "less than a minute": for screen readers. */
function spokenDur(ms) {
  if (!Number.isFinite(ms)) return 'an unknown time';
  const mins = Math.floor(Math.max(0, ms) / 60000);
  if (mins < 1) return 'less than a minute';
  const h = Math.floor(mins / 60);
  const m = mins % 60;
  const hs = h ? `${h} hour${h === 1 ? '' : 's'}` : '';
  const ms2 = m ? `${m} minute${m === 1 ? '' : 's'}` : '';
  return [hs, ms2].filter(Boolean).join(' ');
}
function esc(s) { return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c])); }

/** Which thresholds `a` is over at `now`: {presence: bool, routing: bool}. */
function overOf(a, now) {
  const s = sinceMs(a);
  const pl = thresholds.presence[presenceKey(a)];
  const rs = routingOf(a);
  const rl = thresholds.routing[rs];
  return {
    presence: !!pl && now - s.p > pl * 1000,
    routing: !!rl && onQueue(a) && now - s.r > rl * 1000,
  };
}

// ---- the view: groups of ids, each sorted; counts; all kept incrementally ----
/** id → the agent object as placed in the view (the sort and counts were computed from it). */
const placed = new Map();
/** key → {key, label, ids: [], counts: bucket}. */
const groups = new Map();
/** Group keys in display order. */
let groupOrder = [];
/** Counts (presence, routing) of the agents in the division/queue/search scope. */
let baseCounts = bucket();
let shownCount = 0;
const pendingIds = new Set();
let needRebuild = true;
let layoutDirty = true;
let queuesDirty = false;
let frameRequested = false;

function bucket() { return { agents: 0, presence: {}, routing: {} }; }
function countInto(b, a, sign) {
  b.agents += sign;
  const k = presenceKey(a);
  b.presence[k] = (b.presence[k] || 0) + sign;
  if (onQueue(a)) {
    const r = routingOf(a);
    b.routing[r] = (b.routing[r] || 0) + sign;
  }
}
function matchesBase(a, qLower) {
  if (view.division && (!a.division || a.division.id !== view.division)) return false;
  if (view.queue && !queueIds(a).includes(view.queue)) return false;
  if (qLower && !(a.name || '').toLowerCase().includes(qLower)) return false;
  return true;
}
let qLower = view.q.trim().toLowerCase();
function inList(a) { return matchesBase(a, qLower) && (!view.state || presenceKey(a) === view.state); }
function groupKeysOf(a) {
  switch (view.group) {
    case 'queue': {
      const qs = queueIds(a).filter((q) => !view.queue || q === view.queue);
      return qs.length ? qs : [''];
    }
    case 'division': return [(a.division && a.division.id) || ''];
    case 'presence': return [presenceKey(a)];
    default: return ['*'];
  }
}
function groupLabel(key, a) {
  switch (view.group) {
    case 'queue': return key ? queueName(key) : 'No queue';
    case 'division': return (a && a.division && a.division.name) || 'No division';
    case 'presence': return SYS_LABEL[key] || key;
    default: return '';
  }
}
/** Sort order of two placed agents (ties broken by id, so the order is total). */
function cmp(x, y) {
  if (view.sort === 'time') {
    const d = (sinceMs(x).p || 0) - (sinceMs(y).p || 0);
    if (d) return d;
  } else if (view.sort === 'routing') {
    // Longest in their routing status first; agents off queue last.
    const ox = onQueue(x);
    const oy = onQueue(y);
    if (ox !== oy) return ox ? -1 : 1;
    const d = (sinceMs(x).r || 0) - (sinceMs(y).r || 0);
    if (ox && d) return d;
  }
  return collator.compare(x.name || '', y.name || '') || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0);
}
/** Index of the first id in `ids` not before `a` (ids are sorted by their placed agents). */
function lowerBound(ids, a) {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cmp(placed.get(ids[mid]), a) < 0) lo = mid + 1; else hi = mid;
  }
  return lo;
}
function orderGroups() {
  const keys = [...groups.keys()];
  if (view.group === 'presence') keys.sort((x, y) => (PRESENCES.indexOf(x) + 1 || 99) - (PRESENCES.indexOf(y) + 1 || 99));
  else keys.sort((x, y) => collator.compare(groups.get(x).label, groups.get(y).label));
  groupOrder = keys;
}
function groupFor(key, a) {
  let g = groups.get(key);
  if (!g) {
    g = { key, label: groupLabel(key, a), ids: [], counts: bucket(), y: 0, h: 0 };
    groups.set(key, g);
    orderGroups();
  }
  return g;
}

/** Rebuilds the whole view: a snapshot, or the user changed filter, sort or grouping. */
function rebuildAll() {
  qLower = view.q.trim().toLowerCase();
  placed.clear();
  baseOnly.clear();
  knownIds.clear();
  groups.clear();
  baseCounts = bucket();
  for (const a of client.agents.values()) {
    knownIds.add(a.id);
    if (!matchesBase(a, qLower)) continue;
    countInto(baseCounts, a, 1);
    if (view.state && presenceKey(a) !== view.state) { baseOnly.set(a.id, a); continue; }
    placed.set(a.id, a);
    for (const k of groupKeysOf(a)) {
      if (!groups.has(k)) groups.set(k, { key: k, label: groupLabel(k, a), ids: [], counts: bucket(), y: 0, h: 0 });
      const g = groups.get(k);
      g.ids.push(a.id);
      countInto(g.counts, a, 1);
    }
  }
  for (const g of groups.values()) g.ids.sort((x, y) => cmp(placed.get(x), placed.get(y)));
  orderGroups();
  shownCount = placed.size;
  optionsDirty = true;
  needRebuild = false;
  pendingIds.clear();
  layoutDirty = true;
  stats.rebuilds++;
}

/** Applies one agent's change to the view; true when the layout moved. */
function applyChange(id) {
  const old = placed.get(id) || baseOnly.get(id) || null;
  const a = client.agents.get(id) || null;
  if (old === a) return false;
  if (!a || !knownIds.has(id)) {
    // A new or removed agent: divisions and queues to offer may change.
    optionsDirty = true;
    if (a) knownIds.add(id); else knownIds.delete(id);
  }
  if (old && matchesBase(old, qLower)) countInto(baseCounts, old, -1);
  if (a && matchesBase(a, qLower)) countInto(baseCounts, a, 1);
  const wasIn = placed.has(id);
  const isIn = !!a && inList(a);
  const oldKeys = wasIn ? groupKeysOf(old) : [];
  const newKeys = isIn ? groupKeysOf(a) : [];
  let moved = wasIn !== isIn || oldKeys.join() !== newKeys.join() || (a && old && (a.name !== old.name));
  if (!moved && isIn && view.sort !== 'name') moved = cmp(old, a) !== 0;
  if (!moved) {
    // Same place: counts of its groups only.
    for (const k of newKeys) { const g = groups.get(k); countInto(g.counts, old, -1); countInto(g.counts, a, 1); }
    if (isIn) placed.set(id, a);
    trackBase(id, a);
    return false;
  }
  for (const k of oldKeys) {
    const g = groups.get(k);
    if (!g) continue;
    const i = lowerBound(g.ids, old);
    if (g.ids[i] === id) g.ids.splice(i, 1);
    else { const j = g.ids.indexOf(id); if (j >= 0) g.ids.splice(j, 1); }
    countInto(g.counts, old, -1);
    if (!g.ids.length) { groups.delete(k); groupOrder = groupOrder.filter((x) => x !== k); }
  }
  placed.delete(id);
  if (isIn) {
    for (const k of newKeys) {
      const g = groupFor(k, a);
      g.ids.splice(lowerBound(g.ids, a), 0, id);
      countInto(g.counts, a, 1);
    }
    placed.set(id, a);
  }
  trackBase(id, a);
  shownCount = placed.size;
  if (a && old && a.division && old.division && a.division.id !== old.division.id) optionsDirty = true;
  return true;
}
/** Agents counted in `baseCounts` but not placed (state filter): what they were when counted. */
const baseOnly = new Map();
/** Every agent id the view has seen (new ids refresh the filter options). */
const knownIds = new Set();
function trackBase(id, a) {
  if (a && matchesBase(a, qLower) && !placed.has(id)) baseOnly.set(id, a);
  else baseOnly.delete(id);
}

/** Places groups top to bottom: O(groups). */
let totalHeight = 0;
let cols = 1;
let tileW = MIN_TILE_W;
function layout() {
  const width = boardW - PAD * 2;
  cols = Math.max(1, Math.floor((width + GAP) / (MIN_TILE_W + GAP)));
  tileW = Math.floor((width - GAP * (cols - 1)) / cols);
  let y = PAD;
  const headed = view.group !== '';
  for (const k of groupOrder) {
    const g = groups.get(k);
    g.y = y;
    g.head = headed ? HEAD_H : 0;
    g.rows = headed && collapsed.has(k) ? 0 : Math.ceil(g.ids.length / cols);
    g.h = g.head + g.rows * ROW_H;
    y += g.h;
  }
  totalHeight = y + PAD;
  spacer.style.height = totalHeight + 'px';
  layoutDirty = false;
}

// ---- virtualised painting ----
const board = $('board');
const spacer = $('spacer');
/** Tile pool: elements reused across frames; each remembers what it shows. */
const tilePool = [];
const headPool = [];
let boardW = board.clientWidth;
let boardH = board.clientHeight;
let scrollY = 0;
/** The agent whose tile has keyboard focus (roving tabindex). */
let focusId = null;

function makeTile() {
  const el = document.createElement('div');
  el.className = 'tile';
  el.setAttribute('role', 'listitem');
  el.tabIndex = -1;
  el.innerHTML = '<div class="ln" aria-hidden="true"><span class="nm"></span><span class="t"></span></div>'
    + '<div class="ln" aria-hidden="true"><span class="ps"><span class="sw"></span><span class="lb"></span><span class="sys"></span></span></div>'
    + '<div class="ln rsl" aria-hidden="true"><span class="badge"></span><span class="rt"></span><span class="ov"></span></div>';
  const [l1, l2, l3] = el.children;
  el._nm = l1.children[0];
  el._t = l1.children[1];
  el._sw = l2.children[0].children[0];
  el._lb = l2.children[0].children[1];
  el._sys = l2.children[0].children[2];
  el._l3 = l3;
  el._badge = l3.children[0];
  el._rt = l3.children[1];
  el._ov = l3.children[2];
  el._agent = null;
  el._x = -1;
  el._y = -1;
  spacer.appendChild(el);
  return el;
}
function makeHead() {
  const el = document.createElement('div');
  el.className = 'ghead';
  el.setAttribute('role', 'button');
  el.tabIndex = 0;
  el._y = -1;
  spacer.appendChild(el);
  return el;
}

function fillTile(el, a, now) {
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
  const rs = routingOf(a);
  if (onQueue(a)) {
    el._l3.classList.remove('off');
    el._badge.textContent = ROUTING_LABEL[rs] || rs;
    el._badge.style.setProperty('--rc', `var(--r-${rs})`);
    el._badge.classList.toggle('solid', rs === 'INTERACTING' || rs === 'COMMUNICATING' || rs === 'NOT_RESPONDING');
  } else {
    el._l3.classList.add('off');
    el._badge.textContent = 'Off queue';
    el._badge.style.setProperty('--rc', 'var(--r-OFF_QUEUE)');
    el._badge.classList.remove('solid');
  }
  el._label = '';
  el.tabIndex = a.id === focusId ? 0 : -1;
  tickTile(el, now);
}

function tickTile(el, now) {
  const a = el._agent;
  if (!a) return;
  const s = sinceMs(a);
  const d = now - s.p;
  el._t.textContent = fmtDur(d);
  const oq = onQueue(a);
  el._rt.textContent = oq ? fmtDur(now - s.r) : '';
  const over = overOf(a, now);
  const any = over.presence || over.routing;
  if (el._over !== any) {
    el.classList.toggle('over', any);
    el._over = any;
  }
  el._t.classList.toggle('over', over.presence);
  el._rt.classList.toggle('over', over.routing);
  el._ov.textContent = any ? '⚠ over' : '';
  // One readable label per tile; rewritten only when its words change (minutes).
  const p = a.presence || {};
  const key = presenceKey(a);
  const label = `${a.name || 'Unnamed agent'}, ${p.label || SYS_LABEL[key] || key}${isSecondary(a) ? ` (${SYS_LABEL[key] || key})` : ''} for ${spokenDur(d)}`
    + (oq ? `, ${ROUTING_LABEL[routingOf(a)] || routingOf(a)} for ${spokenDur(now - s.r)}` : ', off queue')
    + (any ? ', over threshold' : '');
  if (label !== el._label) { el._label = label; el.setAttribute('aria-label', label); }
}

function flash(el) {
  el.classList.remove('flash');
  requestAnimationFrame(() => el.classList.add('flash'));
}

/** Paints the tiles and headers on screen (plus overscan). */
function paint() {
  // The wallboard pages: exactly what is on the page, whole rows only.
  const over = WALL ? 0 : OVERSCAN_PX;
  const top = Math.max(0, scrollY - over);
  const bottom = scrollY + boardH + over;
  let ti = 0;
  let hi = 0;
  const now = Date.now();
  for (const k of groupOrder) {
    const g = groups.get(k);
    if (g.y + g.h < top) continue;
    if (g.y > bottom) break;
    if (g.head && !(WALL && (g.y < top || g.y + g.head > bottom))) {
      const el = headPool[hi] || (headPool[hi] = makeHead());
      hi++;
      el.hidden = false;
      if (el._y !== g.y) { el._y = g.y; el.style.transform = `translate(${PAD}px, ${g.y}px)`; }
      fillHead(el, g);
    }
    if (!g.rows) continue;
    const y0 = g.y + g.head;
    const r0 = Math.max(0, Math.floor((top - y0) / ROW_H));
    const r1 = Math.min(g.rows, Math.ceil((bottom - y0) / ROW_H));
    for (let r = r0; r < r1; r++) {
      if (WALL && (y0 + r * ROW_H < top || y0 + r * ROW_H + TILE_H > bottom)) continue;
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        if (i >= g.ids.length) break;
        const a = client.agents.get(g.ids[i]);
        if (!a) continue;
        const el = tilePool[ti] || (tilePool[ti] = makeTile());
        ti++;
        if (el.hidden) el.hidden = false;
        const x = PAD + c * (tileW + GAP);
        const y = y0 + r * ROW_H;
        if (el._x !== x || el._y !== y) { el._x = x; el._y = y; el.style.transform = `translate(${x}px, ${y}px)`; }
        if (el._w !== tileW) { el._w = tileW; el.style.width = tileW + 'px'; }
        if (el._agent !== a) {
          const changed = el._agent && el._agent.id === a.id;
          fillTile(el, a, now);
          if (changed) flash(el);
        }
      }
    }
  }
  for (let i = ti; i < tilePool.length; i++) if (!tilePool[i].hidden) { tilePool[i].hidden = true; tilePool[i]._agent = null; }
  for (let i = hi; i < headPool.length; i++) if (!headPool[i].hidden) { headPool[i].hidden = true; headPool[i]._sig = ''; }
}

/** The live figures of one queue, from the last `queues` message. */
function figuresOf(queueId) {
  const f = client.queueFigures;
  if (!f) return null;
  if (!figIndex || figIndexOf !== f) {
    figIndex = new Map(f.queues.map((q) => [q.id, q]));
    figIndexOf = f;
  }
  return figIndex.get(queueId) || null;
}
let figIndex = null;
let figIndexOf = null;
/** Longest wait now, from a figure taken at `observedAt`. */
function longestNow(ms, now) {
  const f = client.queueFigures;
  if (ms === null || ms === undefined || !f) return null;
  const at = Date.parse(f.observedAt);
  return ms + (Number.isFinite(at) ? Math.max(0, now - at) : 0);
}

function fillHead(el, g) {
  const c = g.counts.presence;
  const isQueue = view.group === 'queue' && g.key;
  const fig = isQueue ? figuresOf(g.key) : null;
  const open = !collapsed.has(g.key);
  const label = view.group === 'queue' && g.key ? queueName(g.key) : g.label;
  const sig = `${g.key}|${label}|${g.ids.length}|${open}|${JSON.stringify(c)}|${fig ? JSON.stringify(fig) : ''}`;
  if (el._sig === sig) return;
  el._sig = sig;
  el._key = g.key;
  el.dataset.key = g.key;
  el.setAttribute('aria-expanded', String(open));
  const n = g.ids.length || 1;
  const bar = PRESENCES.filter((k) => c[k]).map((k) => `<span style="--pc:var(--p-${k});width:${(100 * c[k]) / n}%" title="${SYS_LABEL[k]} ${c[k]}"></span>`).join('');
  let mini;
  if (fig) {
    mini = `<span>On queue <b>${fig.onQueue}</b></span><span>Idle <b>${fig.idle}</b></span><span>Interacting <b>${fig.interacting}</b></span>`
      + `${fig.communicating ? `<span>Communicating <b>${fig.communicating}</b></span>` : ''}`
      + `<span class="${fig.notResponding ? 'hot' : ''}">Not responding <b>${fig.notResponding}</b></span><span>Off queue <b>${fig.offQueue}</b></span>`
      + `<span class="wait${fig.waiting ? ' hot' : ''}">Waiting <b>${fig.waiting}</b></span>`
      + `<span>Longest <b class="lw" data-ms="${fig.longestWaitMs ?? ''}">${fig.longestWaitMs === null ? '–' : fmtDur(longestNow(fig.longestWaitMs, Date.now()))}</b></span>`;
  } else {
    mini = ['ON_QUEUE', 'AVAILABLE', 'BREAK', 'MEAL', 'AWAY'].filter((k) => c[k]).map((k) => `<span>${SYS_LABEL[k]} <b>${c[k]}</b></span>`).join('');
  }
  el.innerHTML = `<span class="chev" aria-hidden="true">${open ? '▾' : '▸'}</span><span class="gn"></span><span class="gc">${g.ids.length}</span><span class="bar" aria-hidden="true">${bar}</span><span class="mini">${mini}</span>`;
  el.children[1].textContent = label;
  el.setAttribute('aria-label', `${label}, ${g.ids.length} agents${fig ? `, ${fig.waiting} waiting` : ''}, ${open ? 'expanded' : 'collapsed'}`);
}

function toggleGroup(key) {
  if (collapsed.has(key)) collapsed.delete(key); else collapsed.add(key);
  saveUrl();
  layoutDirty = true;
  for (const h of headPool) h._sig = '';
  schedule();
}
spacer.addEventListener('click', (e) => {
  const head = e.target.closest('.ghead');
  if (head) { toggleGroup(head._key); return; }
  const tile = e.target.closest('.tile');
  if (tile && tile._agent) { focusId = tile._agent.id; openDetail(tile._agent.id, tile); }
});

// ---- counts strip ----
let countsSig = '';
function renderCounts() {
  const byPresence = baseCounts.presence;
  const byRouting = baseCounts.routing;
  const keys = PRESENCES.concat(Object.keys(byPresence).filter((k) => !PRESENCES.includes(k) && byPresence[k]));
  const sig = JSON.stringify([byPresence, byRouting, view.state]);
  if (sig === countsSig) return;
  countsSig = sig;
  const pc = $('presence-counts');
  if (pc.children.length !== keys.length) {
    pc.innerHTML = '';
    for (const k of keys) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'chip';
      b.dataset.state = k;
      b.style.setProperty('--pc', `var(--p-${k in SYS_LABEL ? k : 'UNKNOWN'})`);
      b.innerHTML = '<span class="sw"></span><span class="n"></span><span class="l"></span>';
      b.children[2].textContent = SYS_LABEL[k] || k;
      if (k === 'IDLE') b.title = 'Idle presence: the agent left the desktop idle (not the routing status Idle)';
      b.addEventListener('click', () => setView({ state: view.state === k ? '' : k }));
      pc.appendChild(b);
    }
  }
  for (const b of pc.children) {
    const k = b.dataset.state;
    b.children[1].textContent = String(byPresence[k] || 0);
    b.setAttribute('aria-pressed', String(view.state === k));
    b.setAttribute('aria-label', `${SYS_LABEL[k] || k} presence: ${byPresence[k] || 0}`);
  }
  const rc = $('routing-counts');
  rc.innerHTML = ROUTING.map((r) => `<span class="chip" data-routing="${r}" style="--rc:var(--r-${r})" aria-label="${ROUTING_LABEL[r]} (routing): ${byRouting[r] || 0}"><span class="badge${r === 'IDLE' ? '' : ' solid'}">${ROUTING_LABEL[r]}</span><span class="n">${byRouting[r] || 0}</span></span>`).join('');
}

// ---- queue summary (top of the wallboard; a strip on the board) ----
let cardsSig = '';
function renderQueueSummary(now) {
  const f = client.queueFigures;
  const section = $('queue-summary');
  if (!f) { section.hidden = true; return; }
  section.hidden = false;
  const list = f.queues.filter((q) => (!view.queue || q.id === view.queue) && (!view.division || (q.division && q.division.id === view.division)))
    .slice().sort((x, y) => (y.waiting - x.waiting) || collator.compare(x.name, y.name));
  const sig = JSON.stringify(list) + f.observations;
  const box = $('queue-cards');
  if (sig !== cardsSig) {
    cardsSig = sig;
    box.innerHTML = list.map((q) => {
      const media = Object.entries(q.media || {}).filter(([, w]) => w.waiting).map(([m, w]) => `${MEDIA_LABEL[m] || m} ${w.waiting}`).join(' · ');
      return `<div class="qcard${q.waiting ? ' waiting' : ''}" role="listitem" data-queue="${esc(q.id)}">
        <div class="qn" title="${esc(q.name)}">${esc(q.name)}</div>
        <div class="qw"><span class="big" data-fig="waiting">${q.waiting}</span><span class="cap">waiting</span>
          <span class="big lw" data-fig="longest" data-ms="${q.longestWaitMs ?? ''}">${q.longestWaitMs === null ? '–' : fmtDur(longestNow(q.longestWaitMs, now))}</span><span class="cap">longest</span></div>
        <div class="qa"><span>On queue <b data-fig="onQueue">${q.onQueue}</b></span><span>Idle <b data-fig="idle">${q.idle}</b></span><span>Interacting <b data-fig="interacting">${q.interacting}</b></span>${q.communicating ? `<span>Communicating <b data-fig="communicating">${q.communicating}</b></span>` : ''}<span class="${q.notResponding ? 'hot' : ''}">Not responding <b data-fig="notResponding">${q.notResponding}</b></span><span>Off queue <b data-fig="offQueue">${q.offQueue}</b></span></div>
        ${media ? `<div class="qm">${esc(media)}</div>` : ''}
      </div>`;
    }).join('');
    const note = obsNote(f);
    const el = $('queue-note');
    el.hidden = !note;
    el.textContent = note;
    el.dataset.obs = note ? f.observations : '';
    fitQueueCards();
  } else tickLongest(box, now);
}
// A note under the cards while the waiting figures are not live
// (`observations` of GET /api/v1/queues, docs/protocol.md).
function obsNote(f) {
  const at = f.observedAt ? new Date(f.observedAt).toLocaleTimeString() : '';
  if (f.observations === 'unavailable') return 'Waiting figures unavailable (Genesys did not answer); showing the last known.';
  if (f.observations === 'stale') return `Waiting figures stale: last observed at ${at}; Genesys polls are delayed.`;
  return '';
}

// Queue cards never clip: only whole cards are shown. On the wallboard the
// summary takes at most QSUM_SHARE of the screen's height and pages through
// the queues with the agents; on the board it is one row of the busiest
// queues, with a button to show them all.
const QSUM_SHARE = 0.3;
let qPageStart = 0;
let qPageEnd = 0;
let qExpanded = false;
function fitQueueCards() {
  const box = $('queue-cards');
  const cards = box.children;
  const n = cards.length;
  if (qPageStart >= n) qPageStart = 0;
  const start = WALL ? qPageStart : 0;
  for (let i = 0; i < n; i++) cards[i].hidden = i < start;
  let end = n;
  if (WALL || !qExpanded) {
    const first = cards[start];
    if (first) {
      const top = first.getBoundingClientRect().top;
      const limit = WALL
        ? innerHeight * QSUM_SHARE - (top - $('queue-summary').getBoundingClientRect().top) - $('queue-note').offsetHeight - 8
        : first.getBoundingClientRect().height + 1;
      for (let i = start + 1; i < n; i++) {
        if (cards[i].getBoundingClientRect().bottom - top > limit) { end = i; break; }
      }
    }
    for (let i = end; i < n; i++) cards[i].hidden = true;
  }
  qPageEnd = end;
  const ind = $('queue-page');
  const more = $('queue-more');
  if (WALL) {
    const paged = start > 0 || end < n;
    ind.hidden = !paged;
    if (paged) ind.textContent = `${start + 1}–${end} of ${n}`;
    more.hidden = true;
  } else {
    ind.hidden = true;
    more.hidden = !qExpanded && end >= n;
    more.textContent = qExpanded ? 'Show fewer' : `All ${n} queues (+${n - end})`;
    more.setAttribute('aria-expanded', String(qExpanded));
  }
}
/** Wallboard: the next page of queue cards (turned with the agents' pages). */
function nextQueuePage() {
  const n = $('queue-cards').children.length;
  qPageStart = qPageEnd >= n ? 0 : qPageEnd;
  fitQueueCards();
}
$('queue-more').addEventListener('click', () => { qExpanded = !qExpanded; fitQueueCards(); });
addEventListener('resize', () => fitQueueCards());
function tickLongest(root, now) {
  for (const el of root.querySelectorAll('.lw')) {
    const ms = el.dataset.ms;
    el.textContent = ms === '' ? '–' : fmtDur(longestNow(Number(ms), now));
  }
}

// ---- filters ----
let optionsSig = '';
let optionsDirty = true;
let namesSeen = 0;
function refreshFilterOptions() {
  optionsDirty = false;
  const divisions = new Map();
  const queues = new Set(client.queues.keys());
  for (const a of client.agents.values()) {
    if (a.division && a.division.id) divisions.set(a.division.id, a.division.name || 'Unnamed division');
    for (const q of queueIds(a)) queues.add(q);
  }
  const sig = [...divisions.keys()].sort().join() + '|' + [...queues].map((q) => q + queueName(q)).sort().join();
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

function saveUrl() {
  const p = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(view)) { if (v && !(k === 'sort' && v === 'name')) p.set(k, v); else p.delete(k); }
  if (collapsed.size) p.set('collapsed', [...collapsed].join(',')); else p.delete('collapsed');
  history.replaceState(null, '', `${location.pathname}${p.toString() ? '?' + p : ''}`);
}
function setView(patch) {
  if (patch.group !== undefined && patch.group !== view.group) collapsed.clear();
  Object.assign(view, patch);
  syncControls();
  saveUrl();
  if (patch.q !== undefined || patch.state !== undefined) { board.scrollTop = 0; scrollY = 0; }
  needRebuild = true;
  cardsSig = '';
  schedule();
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
const stats = { rebuilds: 0, rebuildMs: 0, paints: 0, paintMs: 0, maxMs: 0, incremental: 0 };
window.__dashboardStats = stats;
function schedule() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(frame);
}
function frame() {
  frameRequested = false;
  const t0 = performance.now();
  let rebuilt = false;
  if (needRebuild) { rebuildAll(); rebuilt = true; }
  else if (pendingIds.size) {
    for (const id of pendingIds) if (applyChange(id)) layoutDirty = true;
    stats.incremental += pendingIds.size;
    pendingIds.clear();
  }
  if (layoutDirty) layout();
  if (queuesDirty) {
    queuesDirty = false;
    renderQueueSummary(Date.now());
    // New queue names: the Queue filter's labels (a rescan only then).
    if (client.queues.size !== namesSeen) { namesSeen = client.queues.size; optionsDirty = true; }
    if (view.group === 'queue') {
      for (const g of groups.values()) g.label = groupLabel(g.key);
      orderGroups();
      layout();
    }
  }
  renderCounts();
  if (optionsDirty) refreshFilterOptions();
  $('total').textContent = String(client.agents.size);
  $('shown').textContent = String(shownCount);
  $('shown-wrap').hidden = shownCount === client.agents.size;
  $('empty').hidden = shownCount > 0 || !client.hasSnapshot;
  paint();
  const dt = performance.now() - t0;
  if (rebuilt) stats.rebuildMs += dt; else { stats.paints++; stats.paintMs += dt; }
  stats.maxMs = Math.max(stats.maxMs, dt);
}
board.addEventListener('scroll', () => { scrollY = board.scrollTop; schedule(); }, { passive: true });
new ResizeObserver((entries) => {
  for (const e of entries) { boardW = board.clientWidth; boardH = e.contentRect.height; }
  computeGeometry();
  layoutDirty = true;
  schedule();
}).observe(board);

// ---- keyboard: arrow keys move between tiles, Enter opens the detail ----
/** [group key, index] of an agent in display order, or null. */
function positionOf(id) {
  for (const k of groupOrder) {
    const g = groups.get(k);
    if (!g.rows) continue;
    const i = g.ids.indexOf(id);
    if (i >= 0) return [k, i];
  }
  return null;
}
function firstVisibleId() {
  for (const k of groupOrder) { const g = groups.get(k); if (g.rows && g.ids.length) return g.ids[0]; }
  return null;
}
function moveFocus(key) {
  let pos = focusId && positionOf(focusId);
  if (!pos) { const id = firstVisibleId(); if (id) focusTile(id); return; }
  const visible = groupOrder.filter((k) => groups.get(k).rows);
  let gi = visible.indexOf(pos[0]);
  let i = pos[1];
  let g = groups.get(pos[0]);
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols, Home: -Infinity, End: Infinity }[key];
  if (step === -Infinity) { focusTile(groups.get(visible[0]).ids[0]); return; }
  if (step === Infinity) { const last = groups.get(visible[visible.length - 1]); focusTile(last.ids[last.ids.length - 1]); return; }
  i += step;
  if (i >= g.ids.length) {
    if (step === cols && Math.floor(pos[1] / cols) < Math.floor((g.ids.length - 1) / cols)) i = g.ids.length - 1;
    else if (gi + 1 < visible.length) { gi++; g = groups.get(visible[gi]); i = step === 1 ? 0 : Math.min(pos[1] % cols, g.ids.length - 1); }
    else i = g.ids.length - 1;
  } else if (i < 0) {
    if (gi > 0) {
      gi--; g = groups.get(visible[gi]);
      if (step === -1) i = g.ids.length - 1;
      else { const lastRow = Math.floor((g.ids.length - 1) / cols); i = Math.min(lastRow * cols + (pos[1] % cols), g.ids.length - 1); }
    } else i = 0;
  }
  focusTile(g.ids[i]);
}
function focusTile(id) {
  if (!id) return;
  focusId = id;
  const pos = positionOf(id);
  if (!pos) return;
  const g = groups.get(pos[0]);
  const y = g.y + g.head + Math.floor(pos[1] / cols) * ROW_H;
  if (y < scrollY + 4 || y + TILE_H > scrollY + boardH - 4) {
    board.scrollTop = Math.max(0, y - (y < scrollY ? 8 : boardH - TILE_H - 8));
    scrollY = board.scrollTop;
  }
  paint();
  for (const el of tilePool) {
    if (el.hidden || !el._agent) continue;
    el.tabIndex = el._agent.id === id ? 0 : -1;
    if (el._agent.id === id) el.focus({ preventScroll: true });
  }
}
board.addEventListener('keydown', (e) => {
  const head = e.target.closest && e.target.closest('.ghead');
  if (head && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); toggleGroup(head._key); return; }
  if (['ArrowRight', 'ArrowLeft', 'ArrowDown', 'ArrowUp', 'Home', 'End'].includes(e.key)) {
    e.preventDefault();
    moveFocus(e.key);
  } else if ((e.key === 'Enter' || e.key === ' ') && focusId && e.target.classList && e.target.classList.contains('tile')) {
    e.preventDefault();
    openDetail(focusId, e.target);
  }
});
board.addEventListener('focus', (e) => {
  if (e.relatedTarget && board.contains(e.relatedTarget)) return; // Shift+Tab out of a tile
  if (!focusId || !positionOf(focusId)) { const id = firstVisibleId(); if (id) focusTile(id); } else focusTile(focusId); });

// ---- agent detail panel ----
let detailId = null;
let detailReturn = null;
let detailTimer = null;
async function openDetail(id, from) {
  detailId = id;
  detailReturn = from || null;
  $('detail-backdrop').hidden = false;
  const dlg = $('detail');
  dlg.hidden = false;
  renderDetailState();
  $('detail-timeline').innerHTML = '';
  $('detail-totals').tBodies[0].innerHTML = '';
  $('detail-note').textContent = 'Loading today…';
  $('detail-result').textContent = '';
  $('detail-message').value = '';
  fillPresenceChoices();
  $('detail-close').focus();
  clearInterval(detailTimer);
  detailTimer = setInterval(renderDetailState, 1000);
  await loadDetailHistory(id);
}
function closeDetail() {
  if (detailId === null) return;
  detailId = null;
  clearInterval(detailTimer);
  $('detail').hidden = true;
  $('detail-backdrop').hidden = true;
  if (focusId) focusTile(focusId);
  else if (detailReturn) detailReturn.focus();
}
function renderDetailState() {
  const a = client.agents.get(detailId);
  if (!a) return;
  const now = Date.now();
  const s = sinceMs(a);
  const key = presenceKey(a);
  const p = a.presence || {};
  $('detail-name').textContent = a.name || 'Unnamed agent';
  $('detail-presence').textContent = `${p.label || SYS_LABEL[key] || key}${isSecondary(a) ? ` (${SYS_LABEL[key]})` : ''} for ${fmtDur(now - s.p)}${p.message ? ` — “${p.message}”` : ''}`;
  $('detail-routing').textContent = onQueue(a) ? `${ROUTING_LABEL[routingOf(a)]} for ${fmtDur(now - s.r)}` : 'Off queue';
  $('detail-division').textContent = (a.division && a.division.name) || '–';
  $('detail-queues').textContent = queueIds(a).map(queueName).sort(collator.compare).join(', ') || 'None';
  if ($('detail-id').textContent !== a.id) {
    $('detail-id').textContent = a.id;
    // The desktop of this agent, on the same gateway (and `?gateway=` if the board uses one).
    const q = new URLSearchParams({ agent: a.id });
    if (baseUrl) q.set('gateway', baseUrl);
    $('detail-desktop').href = `desktop.html?${q}`;
  }
}
function startOfToday() { const d = new Date(); d.setHours(0, 0, 0, 0); return d; }
async function loadDetailHistory(id) {
  const from = startOfToday();
  const now = new Date();
  try {
    const [h, sum] = await Promise.all([
      getJson(baseUrl, `/api/v1/agents/${encodeURIComponent(id)}/history?kind=presence&from=${encodeURIComponent(from.toISOString())}`),
      getJson(baseUrl, `/api/v1/agents/${encodeURIComponent(id)}/summary`),
    ]);
    if (detailId !== id) return;
    renderTimeline(h.body.records || [], from.getTime(), now.getTime());
    renderTotals(sum.body);
    $('detail-note').textContent = (h.body.warnings || []).join(' ') || '';
  } catch (e) {
    if (detailId !== id) return;
    $('detail-note').textContent = e.status === 404 ? 'History is not kept by this gateway.' : `Could not load today's history (${e.message}).`;
  }
}
function renderTimeline(records, from, to) {
  const a = client.agents.get(detailId);
  const segs = [];
  let state = records.length && records[0].previous ? records[0].previous.state : null;
  let label = records.length && records[0].previous ? records[0].previous.label : null;
  let t = from;
  for (const r of records) {
    const at = Date.parse(r.at);
    if (!Number.isFinite(at) || at < from) { state = r.current && r.current.state; label = r.current && r.current.label; continue; }
    if (state) segs.push({ state, label, start: t, end: at });
    t = at;
    state = r.current && r.current.state;
    label = r.current && r.current.label;
  }
  if (!state && a) { state = presenceKey(a); label = a.presence && a.presence.label; t = Math.max(from, sinceMs(a).p || from); }
  if (state) segs.push({ state, label, start: t, end: to });
  const span = Math.max(1, to - from);
  const tl = $('detail-timeline');
  tl.innerHTML = segs.map((s) => {
    const k = String(s.state).toUpperCase();
    const w = (100 * (s.end - s.start)) / span;
    const l = (100 * (s.start - from)) / span;
    const name = s.label || SYS_LABEL[k] || k;
    return `<span class="seg" data-state="${esc(k)}" style="left:${l}%;width:${Math.max(w, 0.2)}%;--pc:var(--p-${k in SYS_LABEL ? k : 'UNKNOWN'})" title="${esc(name)} ${new Date(s.start).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}–${new Date(s.end).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}"></span>`;
  }).join('');
  tl.setAttribute('aria-label', `Today's presence: ${segs.map((s) => `${s.label || SYS_LABEL[String(s.state).toUpperCase()] || s.state} from ${new Date(s.start).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`).join(', ') || 'no record'}`);
  const hours = [];
  const stepH = span > 12 * 3600e3 ? 3 : span > 6 * 3600e3 ? 2 : span > 2 * 3600e3 ? 1 : 0;
  if (stepH) {
    for (let h = 0; h * 3600e3 <= span; h += stepH) hours.push(`<span style="left:${(100 * h * 3600e3) / span}%">${String(h).padStart(2, '0')}:00</span>`);
  }
  $('detail-axis').innerHTML = hours.join('');
}
function renderTotals(sum) {
  const rows = [];
  const p = (sum && sum.presence && sum.presence.totalsMs) || {};
  const r = (sum && sum.routing && sum.routing.totalsMs) || {};
  for (const [k, ms] of Object.entries(p).sort((x, y) => y[1] - x[1])) {
    if (!ms) continue;
    rows.push(`<tr data-kind="presence" data-state="${esc(k)}"><th scope="row"><span class="sw" style="--pc:var(--p-${k in SYS_LABEL ? k : 'UNKNOWN'})"></span> ${esc(SYS_LABEL[k] || k)}</th><td>${fmtDur(ms)}</td></tr>`);
  }
  for (const [k, ms] of Object.entries(r).sort((x, y) => y[1] - x[1])) {
    if (!ms || k === 'OFF_QUEUE') continue;
    rows.push(`<tr data-kind="routing" data-state="${esc(k)}"><th scope="row">Routing: ${esc(ROUTING_LABEL[k] || k)}</th><td>${fmtDur(ms)}</td></tr>`);
  }
  $('detail-totals').tBodies[0].innerHTML = rows.join('') || '<tr><td>No time recorded today.</td></tr>';
}
function fillPresenceChoices() {
  const form = $('detail-change');
  const sel = $('detail-presence-select');
  const a = client.agents.get(detailId);
  const active = definitions.filter((d) => !d.deactivated);
  form.hidden = !active.length || !writesAllowed;
  sel.innerHTML = '';
  active.sort((x, y) => (PRESENCES.indexOf(x.systemPresence) - PRESENCES.indexOf(y.systemPresence)) || x.label.localeCompare(y.label));
  for (const d of active) {
    const o = document.createElement('option');
    o.value = d.id;
    o.textContent = d.primary === false ? `${d.label} (${SYS_LABEL[d.systemPresence] || d.systemPresence})` : d.label;
    sel.appendChild(o);
  }
  if (a && a.presence) sel.value = a.presence.definitionId;
}
/** False once the gateway said this page may not write (403) or serves no write path (404/405). */
let writesAllowed = true;
$('detail-change').addEventListener('submit', async () => {
  const id = detailId;
  const a = client.agents.get(id);
  if (!a) return;
  const out = $('detail-result');
  out.textContent = 'Changing…';
  out.dataset.kind = '';
  try {
    await setPresence(baseUrl, id, { presence: $('detail-presence-select').value, message: $('detail-message').value.trim(), etag: `"${a.version}"` });
    out.textContent = 'Changed.';
    out.dataset.kind = 'ok';
  } catch (e) {
    const who = refusedBy(e.code);
    out.dataset.kind = 'err';
    if (e.status === 403) { out.textContent = 'Your credential may not change presence (supervisors only).'; }
    else if (e.status === 412) out.textContent = 'The agent changed meanwhile; check and try again.';
    else out.textContent = `${who === 'genesys' ? 'Genesys Cloud refused' : who === 'upstream' ? 'Genesys Cloud could not be reached' : 'Refused'}: ${e.reason || e.message}`;
    if (e.status === 404 || e.status === 405) writesAllowed = false;
  }
});
$('detail-close').addEventListener('click', closeDetail);
$('detail-backdrop').addEventListener('click', closeDetail);
$('detail').addEventListener('keydown', (e) => {
  if (e.key === 'Escape') { e.preventDefault(); closeDetail(); return; }
  if (e.key !== 'Tab') return;
  // Keep focus inside the dialog.
  const f = [...$('detail').querySelectorAll('button, select, input')].filter((x) => !x.closest('[hidden]'));
  if (!f.length) return;
  if (e.shiftKey && document.activeElement === f[0]) { e.preventDefault(); f[f.length - 1].focus(); }
  else if (!e.shiftKey && document.activeElement === f[f.length - 1]) { e.preventDefault(); f[0].focus(); }
});

// ---- theme: follows prefers-color-scheme until toggled ----
const themeBtn = $('theme-toggle');
function currentTheme() {
  return document.documentElement.dataset.theme || (matchMedia('(prefers-color-scheme: light)').matches ? 'light' : 'dark');
}
function showTheme() {
  const t = currentTheme();
  themeBtn.textContent = t === 'light' ? 'Dark theme' : 'Light theme';
  themeBtn.setAttribute('aria-pressed', String(t === 'light'));
  themeBtn.setAttribute('aria-label', `Switch to the ${t === 'light' ? 'dark' : 'light'} theme`);
}
themeBtn.addEventListener('click', () => {
  const next = currentTheme() === 'light' ? 'dark' : 'light';
  document.documentElement.dataset.theme = next;
  try { localStorage.setItem('presence-theme', next); } catch { /* storage off */ }
  showTheme();
});
matchMedia('(prefers-color-scheme: light)').addEventListener('change', showTheme);
showTheme();

// ---- wallboard: no toolbar, large type, auto-paging ----
const PAGE_MS = Math.max(3, Number(params.get('page_secs')) || 12) * 1000;
/** Tops of the pages: each page starts at the first header or row the previous one cut. */
function pageTops() {
  const items = [];
  for (const k of groupOrder) {
    const g = groups.get(k);
    if (g.head) items.push([g.y, g.y + g.head]);
    for (let r = 0; r < g.rows; r++) { const y = g.y + g.head + r * ROW_H; items.push([y, y + TILE_H]); }
  }
  const tops = [0];
  let limit = boardH;
  for (const [top, bottom] of items) {
    if (bottom > limit) {
      const t = Math.max(0, top - GAP);
      if (t <= tops[tops.length - 1]) continue; // taller than a page: never loops
      tops.push(t);
      limit = t + boardH;
    }
  }
  return tops;
}
let pageIdx = 0;
function pageTick() {
  if (!WALL || boardH < 50) return;
  const tops = pageTops();
  const ind = $('page-ind');
  if (tops.length <= 1) { ind.hidden = true; if (board.scrollTop) { board.scrollTop = 0; scrollY = 0; schedule(); } return; }
  const next = (pageIdx + 1) % tops.length;
  pageIdx = next;
  // The last page may end short: room below it so its top can reach the top.
  spacer.style.height = Math.max(totalHeight, tops[tops.length - 1] + boardH) + 'px';
  board.scrollTop = tops[next];
  scrollY = board.scrollTop;
  ind.hidden = false;
  ind.textContent = `Page ${next + 1} of ${tops.length}`;
  schedule();
}
setInterval(() => { if (WALL) nextQueuePage(); }, PAGE_MS);
if (WALL) {
  document.body.classList.add('wallboard');
  setInterval(pageTick, PAGE_MS);
}

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
  if (text !== lastLevel) { $('fresh-text').textContent = text; lastLevel = text; }
  $('fresh-age').textContent = age;
  el.title = f.detail || (f.level === 'reconnecting' && f.retryInMs ? `next attempt in ${Math.ceil(f.retryInMs / 1000)} s` : '');
  const notLive = f.level !== 'live';
  document.body.classList.toggle('not-live', notLive && client.hasSnapshot);
  // The banner sits in the page flow above the board: it never covers a tile.
  const banner = $('stale-banner');
  if (notLive && client.hasSnapshot) {
    banner.classList.toggle('warn', f.level === 'stale');
    const text2 = f.level === 'stale'
      ? `Not live: ${f.detail || 'upstream not connected'} — data may be stale (${ageS} s)`
      : `Not live: connection to the gateway lost, reconnecting${f.retryInMs ? ` in ${Math.ceil(f.retryInMs / 1000)} s` : '…'} — data may be stale (${ageS} s)`;
    if (banner.textContent !== text2) banner.textContent = text2;
    if (banner.hidden) banner.hidden = false;
  } else if (!banner.hidden) banner.hidden = true;
}

// ---- alerts: how many shown agents are over a threshold ----
let lastOver = 0;
let audio = null;
function beep() {
  try {
    audio = audio || new AudioContext();
    const o = audio.createOscillator();
    const g = audio.createGain();
    o.frequency.value = 880;
    g.gain.value = 0.05;
    o.connect(g).connect(audio.destination);
    o.start();
    o.stop(audio.currentTime + 0.15);
  } catch { /* no audio */ }
}
function updateAlerts(now) {
  let n = 0;
  for (const a of placed.values()) { const o = overOf(a, now); if (o.presence || o.routing) n++; }
  const el = $('alerts');
  el.hidden = n === 0;
  const t = `${n} over threshold`;
  if (el.textContent !== t) el.textContent = t;
  if (n > lastOver && alertSound) beep();
  lastOver = n;
}

// ---- the per-second tick: clock, freshness, visible timers, alerts ----
setInterval(() => {
  const now = Date.now();
  $('clock').textContent = new Date(now).toLocaleTimeString([], { hour12: false });
  updateFreshness();
  for (const el of tilePool) if (!el.hidden) tickTile(el, now);
  tickLongest($('queue-cards'), now);
  for (const h of headPool) if (!h.hidden) tickLongest(h, now);
  updateAlerts(now);
}, 1000);
setInterval(updateFreshness, 250);

// Credentials first (asked only when the gateway requires them), then the
// board settings, queue names and definitions, and the stream.
ensureAccess(baseUrl).then(async () => {
  const boardCfg = getJson(baseUrl, '/api/v1/board').then(({ body }) => {
    Object.assign(thresholds.presence, body.presenceThresholdsSecs || {});
    Object.assign(thresholds.routing, body.routingThresholdsSecs || {});
    if (body.alertSound && params.get('sound') !== '0') alertSound = true;
    // Presence changes are for supervisors (the write path says so too).
    if (body.caller && body.caller.role === 'viewer') writesAllowed = false;
    applyThresholdOverrides();
  }).catch(() => { /* URL thresholds only */ });
  const queues = getJson(baseUrl, '/api/v1/queues').then(({ body }) => {
    client.noteQueueNames(body.queues || []);
  }).catch(() => { /* names come with the stream */ });
  const defs = fetchPresenceDefinitions(baseUrl).then((d) => {
    definitions = d;
    for (const x of d) primaryDefs.set(x.id, x.primary !== false);
  }).catch(() => { /* the label heuristic stands in */ });
  await Promise.all([boardCfg, queues]);
  client.start();
  await defs;
  for (const el of tilePool) el._agent = null;
  needRebuild = true;
  schedule();
});
