// presence-client.js — a small, dependency-free ES module for presence-gateway's
// live stream (design.md "Downstream contract v1"). Any web app can import it;
// the dashboard (index.html) and the agent desktop (desktop.html) both use it.
//
// What it owns:
//  - one connection (SSE `GET /api/v1/stream` or WebSocket `GET /api/v1/ws`),
//    reopened with jittered exponential backoff, resuming from the last event
//    id it saw (SSE `?last_event_id=`, WS `?since=`), so the server replays the
//    gap or sends a fresh snapshot with `recovered:false`;
//  - the agent map (id → Agent), replaced whole by every snapshot and patched
//    by every delta (its `changes` upsert, its top-level `removed` ids delete);
//  - the server's `counts`, replaced by a snapshot and merged bucket by bucket
//    from each delta's partial `counts`;
//  - the latest upstream `status` and a freshness verdict that never calls old
//    data live (see `freshness()`).
//
// It renders nothing: callbacks tell the caller what changed, and the caller
// decides when to paint (the dashboard coalesces paints per animation frame).
//
// Usage: see docs/client.md.

/** Default reconnect policy: first retry ~0.5 s, doubling, capped at 30 s. */
const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30000, factor: 2 };

/**
 * If nothing at all (no delta, no status) arrives for this long, the
 * connection is presumed dead (a half-open TCP connection never errors) and is
 * reopened with resume, which is cheap. The gateway sends `status` messages
 * periodically, so a healthy connection never trips it.
 */
const DEFAULT_IDLE_TIMEOUT_MS = 60000;

/** Parses "epoch:seq" (the SSE id and the WS `since`); null when malformed. */
export function parseEventId(id) {
  if (typeof id !== 'string') return null;
  const i = id.lastIndexOf(':');
  if (i <= 0) return null;
  const seq = Number(id.slice(i + 1));
  if (!Number.isFinite(seq)) return null;
  return { epoch: id.slice(0, i), seq };
}

/** Delay before retry number `attempt` (0-based): equal jitter, never zero. */
export function backoffDelay(attempt, { initialMs, maxMs, factor } = DEFAULT_BACKOFF, rand = Math.random) {
  const base = Math.min(maxMs, initialMs * Math.pow(factor, attempt));
  return Math.round(base / 2 + rand() * (base / 2));
}

/** The key an agent is counted under: its system presence, upper snake case. */
export function presenceKey(agent) {
  const sp = agent && agent.presence && agent.presence.systemPresence;
  return sp ? String(sp).toUpperCase().replace(/[\s-]+/g, '_') : 'UNKNOWN';
}

/**
 * Counts over any iterable of agents, in the gateway's own `Counts` shape
 * (docs/protocol.md §2), so there is one shape everywhere:
 *
 *     { all:       { agents, presence: {SYSTEM_PRESENCE: n}, routing: {STATUS: n} },
 *       divisions: { divisionId: { agents, presence, routing } },
 *       queues:    { queueId:    { agents, presence, routing } } }
 *
 * As on the server, zero entries are omitted and an agent without a presence
 * (or routing status) is counted in `agents` only. Used by `counts()` when the
 * server sent none, and by pages for filtered views.
 */
export function computeCounts(agents) {
  const bucket = () => ({ agents: 0, presence: {}, routing: {} });
  const c = { all: bucket(), divisions: {}, queues: {} };
  for (const a of agents) {
    const p = a.presence ? presenceKey(a) : null;
    const r = a.routingStatus && a.routingStatus.status;
    const buckets = [c.all];
    const d = a.division && a.division.id;
    if (d) buckets.push(c.divisions[d] || (c.divisions[d] = bucket()));
    for (const q of a.queues || []) {
      const qid = typeof q === 'string' ? q : q && q.id;
      if (qid) buckets.push(c.queues[qid] || (c.queues[qid] = bucket()));
    }
    for (const b of buckets) {
      b.agents++;
      if (p) b.presence[p] = (b.presence[p] || 0) + 1;
      if (r) b.routing[r] = (b.routing[r] || 0) + 1;
    }
  }
  return c;
}

/**
 * Applies a delta's partial `counts` to the counts held so far and returns
 * the result (a new object; `held` is not modified). A delta carries only the
 * buckets that changed in its batch: `all` and the listed division / queue
 * keys each replace the held bucket, a bucket with `agents: 0` is gone, and
 * every bucket not listed keeps its value (docs/protocol.md §2).
 */
export function mergeCounts(held, patch) {
  const base = held || { all: { agents: 0, presence: {}, routing: {} }, divisions: {}, queues: {} };
  if (!patch || typeof patch !== 'object') return base;
  const next = { all: base.all, divisions: { ...base.divisions }, queues: { ...base.queues } };
  if (patch.all) next.all = patch.all;
  for (const group of ['divisions', 'queues']) {
    for (const [k, b] of Object.entries(patch[group] || {})) {
      if (!b || !b.agents) delete next[group][k];
      else next[group][k] = b;
    }
  }
  return next;
}

function buildQuery(filter, extra) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filter || {})) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    if (Array.isArray(v)) { if (v.length) params.set(k, v.join(',')); }
    else params.set(k, v === true ? '1' : String(v));
  }
  for (const [k, v] of Object.entries(extra || {})) if (v) params.set(k, v);
  const s = params.toString();
  return s ? '?' + s : '';
}

/**
 * Opens a live presence stream.
 *
 * @param {object} opts
 * @param {string} [opts.baseUrl]   gateway origin, e.g. "https://gw.example"; default: this page's origin
 * @param {'sse'|'ws'} [opts.transport] default 'sse'
 * @param {object} [opts.filter]    query parameters for the subscription, e.g. {agent: id, interactions: true}
 * @param {(agents: Map, msg: object) => void} [opts.onSnapshot] the map was replaced
 * @param {(changes: object[], msg: object) => void} [opts.onDelta] these agents changed and the ids in
 *        `msg.removed` (if any) were deleted; the map is already updated
 * @param {(status: object) => void} [opts.onStatus]   upstream `status` message
 * @param {(msg: object) => void} [opts.onInteraction] `interaction` message
 * @param {(msg: object) => void} [opts.onQueues] `queues` message (asked for with `filter: {queues: true}`):
 *   `{observedAt, observations, queues: [{id, name, division, members, onQueue, idle, interacting,
 *   communicating, notResponding, offQueue, waiting, longestWaitMs, media}]}` (docs/protocol.md §10)
 * @param {(state: string, info: object) => void} [opts.onConnectionChange]
 *        'connecting' | 'open' | 'reconnecting' | 'closed'; info has attempt, retryInMs, reason
 * @param {object} [opts.backoff] {initialMs, maxMs, factor}
 * @param {number} [opts.idleTimeoutMs] reopen after this long with no message (0 disables)
 * @param {boolean} [opts.autoStart] default true
 *
 * No callback fires before this function returns (the connection starts in a
 * microtask), so callbacks may use the returned client.
 */
export function createPresenceClient(opts = {}) {
  const transport = opts.transport === 'ws' ? 'ws' : 'sse';
  const backoff = { ...DEFAULT_BACKOFF, ...(opts.backoff || {}) };
  const idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const baseUrl = (opts.baseUrl || (typeof location !== 'undefined' ? location.origin : '')).replace(/\/$/, '');
  const noop = () => {};
  const cb = {
    snapshot: opts.onSnapshot || noop,
    delta: opts.onDelta || noop,
    status: opts.onStatus || noop,
    interaction: opts.onInteraction || noop,
    queues: opts.onQueues || noop,
    connection: opts.onConnectionChange || noop,
  };

  /** id → Agent, the live picture. */
  const agents = new Map();
  /** agentId → interactions[] from `interaction` messages. */
  const interactions = new Map();

  const state = {
    filter: { ...(opts.filter || {}) },
    /** 'idle' before start, then 'connecting' | 'open' | 'reconnecting' | 'closed'. */
    connection: 'idle',
    /** Last "epoch:seq" seen; the resume point. */
    lastEventId: null,
    epoch: null,
    seq: -1,
    /** Latest `status` message, with `receivedAt` (ms, local clock). */
    status: null,
    /** The server's `counts`: whole from the last snapshot, patched by each delta; null until sent. */
    serverCounts: null,
    /** queueId → name, from the last `queues` message (or a snapshot that carried them). */
    queues: new Map(),
    /** The last `queues` message (live queue figures), with `receivedAt`; null until one came. */
    queueFigures: null,
    hasSnapshot: false,
    /**
     * false while the gateway says it has not read the directory from
     * Genesys Cloud yet (`synced` on snapshots and status messages): an empty
     * map then means "not known yet", not "no agents". null: not reported.
     */
    synced: null,
    attempt: 0,
    retryAt: 0,
    /** Local time of the last message of any kind. */
    lastMessageAt: 0,
    /** Local time the data was last known live (see freshness()). */
    lastLiveAt: 0,
    snapshots: 0,
    reconnects: 0,
  };

  let source = null;      // EventSource or WebSocket
  let retryTimer = null;
  let idleTimer = null;
  let stopped = true;
  let pendingTicket = false; // a ticket request is under way (auth on)

  function setConnection(next, info = {}) {
    if (state.connection === next && next !== 'reconnecting') return;
    state.connection = next;
    cb.connection(next, { attempt: state.attempt, ...info });
  }

  function url(path, extra) {
    let u = baseUrl + path + buildQuery(state.filter, extra);
    if (transport === 'ws') u = u.replace(/^http/, 'ws');
    return u;
  }

  function open() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (stopped) return;
    setConnection(state.attempt === 0 && !state.hasSnapshot ? 'connecting' : 'reconnecting', { retryInMs: 0 });
    if (!authToken) { connect(null); return; }
    // With a credential, each connection needs a fresh one-time ticket.
    pendingTicket = true;
    getJson(baseUrl, '/api/v1/tickets', { method: 'POST' })
      .then(({ body }) => { pendingTicket = false; if (!stopped && !source) connect({ ticket: body.ticket }); })
      .catch((e) => { pendingTicket = false; if (!stopped) fail(`no stream ticket: ${e.message}`); });
  }

  function connect(extra) {
    const resume = state.lastEventId;
    if (transport === 'sse') {
      const es = new EventSource(url('/api/v1/stream', { ...(resume ? { last_event_id: resume } : {}), ...(extra || {}) }));
      source = es;
      const handler = (e) => {
        if (source !== es) return;
        let msg;
        try { msg = JSON.parse(e.data); } catch { return; }
        if (msg && typeof msg === 'object' && !msg.type && e.type !== 'message') msg.type = e.type;
        handle(msg, e.lastEventId);
      };
      for (const t of ['snapshot', 'delta', 'status', 'interaction', 'queues', 'message']) es.addEventListener(t, handler);
      es.onopen = () => { if (source === es) onOpen(); };
      // EventSource would reconnect by itself (sending Last-Event-ID), but not
      // after an HTTP error and never with backoff: close and retry ourselves.
      es.onerror = () => { if (source === es) fail('stream error'); };
    } else {
      const ws = new WebSocket(url('/api/v1/ws', { ...(resume ? { since: resume } : {}), ...(extra || {}) }));
      source = ws;
      ws.onopen = () => { if (source === ws) onOpen(); };
      ws.onmessage = (e) => {
        if (source !== ws) return;
        let msg;
        try { msg = JSON.parse(e.data); } catch { return; }
        // Tolerate several messages in one frame.
        if (Array.isArray(msg)) msg.forEach((m) => handle(m, null));
        else handle(msg, null);
      };
      ws.onclose = (e) => { if (source === ws) fail(`socket closed (${e.code}${e.reason ? ' ' + e.reason : ''})`); };
      ws.onerror = () => {}; // onclose follows
    }
    armIdle();
  }

  function onOpen() {
    state.lastMessageAt = Date.now();
    setConnection('open');
  }

  function armIdle() {
    clearTimeout(idleTimer);
    if (!idleTimeoutMs || stopped) return;
    idleTimer = setTimeout(() => fail(`no message for ${Math.round(idleTimeoutMs / 1000)} s`), idleTimeoutMs);
  }

  function teardown() {
    const s = source;
    source = null;
    clearTimeout(idleTimer);
    if (!s) return;
    try { s.close(); } catch { /* already closed */ }
  }

  function fail(reason) {
    teardown();
    if (stopped) return;
    const delay = backoffDelay(state.attempt, backoff);
    state.attempt++;
    state.reconnects++;
    state.retryAt = Date.now() + delay;
    setConnection('reconnecting', { reason, retryInMs: delay });
    retryTimer = setTimeout(open, delay);
  }

  function noteId(id, msg) {
    if (id && parseEventId(id)) { state.lastEventId = id; return; }
    if (msg.epoch !== undefined && msg.seq !== undefined) state.lastEventId = `${msg.epoch}:${msg.seq}`;
  }

  function handle(msg, eventId) {
    if (!msg || typeof msg !== 'object') return;
    state.lastMessageAt = Date.now();
    armIdle();
    switch (msg.type) {
      case 'snapshot': return applySnapshot(msg, eventId);
      case 'delta': return applyDelta(msg, eventId);
      case 'status':
        // The gateway sends the upstream state at the top level (docs/protocol.md);
        // `upstream` groups it for callers.
        state.status = { ...msg, upstream: msg.upstream || { state: msg.state, detail: msg.detail, stale: msg.stale }, receivedAt: Date.now() };
        if (typeof msg.synced === 'boolean') state.synced = msg.synced;
        return cb.status(state.status);
      case 'interaction': {
        if (msg.agentId) interactions.set(msg.agentId, Array.isArray(msg.interactions) ? msg.interactions : []);
        return cb.interaction(msg);
      }
      case 'queues':
        if (Array.isArray(msg.queues)) {
          noteQueueNames(msg.queues);
          state.queueFigures = { ...msg, receivedAt: Date.now() };
          return cb.queues(state.queueFigures);
        }
        return undefined;
      default: return undefined; // unknown types are ignored (contract: extend, don't break)
    }
  }

  function noteQueueNames(list) {
    for (const q of list) if (q && q.id && q.name) state.queues.set(q.id, q.name);
  }

  function applySnapshot(msg, eventId) {
    // A recovered:true snapshot without agents only confirms a resume: keep the map.
    if (msg.recovered === true && !Array.isArray(msg.agents)) { noteId(eventId, msg); return; }
    agents.clear();
    for (const a of msg.agents || []) if (a && a.id) agents.set(a.id, a);
    if (Array.isArray(msg.queues)) {
      state.queues = new Map(msg.queues.filter((q) => q && q.id).map((q) => [q.id, q.name || q.id]));
    }
    state.epoch = msg.epoch ?? state.epoch;
    state.seq = typeof msg.seq === 'number' ? msg.seq : -1;
    state.serverCounts = msg.counts || null;
    if (typeof msg.synced === 'boolean') state.synced = msg.synced;
    state.hasSnapshot = true;
    state.snapshots++;
    // A full picture arrived: the connection works, so the next failure starts
    // the backoff from the beginning again.
    state.attempt = 0;
    noteId(eventId, msg);
    cb.snapshot(agents, msg);
  }

  function applyDelta(msg, eventId) {
    if (!state.hasSnapshot) return; // nothing to patch yet; the snapshot comes first
    if (msg.epoch !== undefined && state.epoch !== null && String(msg.epoch) !== String(state.epoch)) {
      // A new gateway process: our seqs mean nothing to it. Start over without resume.
      state.lastEventId = null;
      state.hasSnapshot = false;
      return fail('epoch changed');
    }
    // Replays may overlap what we already applied; drop anything not newer.
    if (typeof msg.seq === 'number' && msg.seq <= state.seq) return;
    if (typeof msg.seq === 'number') state.seq = msg.seq;
    const changes = Array.isArray(msg.changes) ? msg.changes : [];
    for (const ch of changes) {
      if (!ch || !ch.id) continue;
      if (ch.removed) agents.delete(ch.id);
      else agents.set(ch.id, ch);
    }
    // Agents that left the directory or no longer match this client's filter
    // (docs/protocol.md §3 `delta`): ids at the top level of the delta.
    if (Array.isArray(msg.removed)) for (const id of msg.removed) agents.delete(id);
    // Deltas carry only the buckets that changed: merge, never replace.
    if (msg.counts) state.serverCounts = mergeCounts(state.serverCounts, msg.counts);
    noteId(eventId, msg);
    cb.delta(changes, msg);
  }

  /**
   * The honest answer to "can I show this as live?".
   * level: 'live' | 'stale' | 'reconnecting' | 'connecting' | 'closed'
   * staleForMs: how long since the data was last known live (0 when live).
   * Live needs all of: an open connection, a snapshot, an upstream that is
   * `connected` (or has not reported yet — the gateway reports on connect),
   * and a gateway that has synced the directory (`synced` not false).
   */
  function freshness(now = Date.now()) {
    const up = state.status && state.status.upstream;
    const upState = up && up.state;
    let level;
    let detail = '';
    if (state.connection === 'closed' || (state.connection === 'idle' && stopped)) level = 'closed';
    else if (state.connection !== 'open' || !state.hasSnapshot) {
      level = state.hasSnapshot || state.reconnects > 0 ? 'reconnecting' : 'connecting';
    } else if (upState && upState !== 'connected') {
      level = 'stale';
      detail = `upstream ${upState}${up.detail ? ': ' + up.detail : ''}`;
    } else if (state.synced === false) {
      level = 'stale';
      detail = 'not synced with Genesys Cloud yet';
    } else level = 'live';
    if (level === 'live') state.lastLiveAt = now;
    const lastEventAgeMs = state.status && typeof state.status.lastEventAgeMs === 'number'
      ? state.status.lastEventAgeMs + (now - state.status.receivedAt) : null;
    // Stale since we last knew it live; when the upstream itself reports
    // trouble, its last event may be older still (a page opened mid-outage).
    let staleForMs = 0;
    if (level !== 'live') {
      if (state.lastLiveAt) staleForMs = now - state.lastLiveAt;
      if (level === 'stale' && lastEventAgeMs !== null) staleForMs = Math.max(staleForMs, lastEventAgeMs);
    }
    return {
      level,
      detail,
      upstream: upState || null,
      staleForMs,
      lastEventAgeMs,
      retryInMs: level === 'reconnecting' && retryTimer ? Math.max(0, state.retryAt - now) : 0,
      attempt: state.attempt,
    };
  }

  const client = {
    /** id → Agent (read-only by convention). */
    agents,
    /** agentId → interactions[]. */
    interactions,
    get connection() { return state.connection; },
    get lastEventId() { return state.lastEventId; },
    get epoch() { return state.epoch; },
    get seq() { return state.seq; },
    get status() { return state.status; },
    get serverCounts() { return state.serverCounts; },
    get queues() { return state.queues; },
    /** The last `queues` message ({observedAt, queues: [...], receivedAt}), null until one came. */
    get queueFigures() { return state.queueFigures; },
    /** Adds queue names (e.g. from `GET /api/v1/queues`) to `queues`. */
    noteQueueNames,
    get hasSnapshot() { return state.hasSnapshot; },
    /** The gateway's `synced` (false: directory not read from Genesys Cloud yet), null until reported. */
    get synced() { return state.synced; },
    get stats() { return { snapshots: state.snapshots, reconnects: state.reconnects, attempt: state.attempt }; },
    freshness,
    /**
     * Counts in the protocol's `Counts` shape ({all, divisions, queues}; see
     * `computeCounts`): the server's, kept up to date by every delta, when it
     * sent them (they cover all agents, whatever the filter); else computed
     * from the map.
     */
    counts() { return state.serverCounts || computeCounts(agents.values()); },
    /**
     * Starts connecting. Callbacks never fire synchronously from `start()` or
     * `createPresenceClient()`: the first one (`onConnectionChange('connecting')`)
     * comes in a microtask, once the caller holds the client.
     */
    start() {
      if (!stopped) return client;
      stopped = false;
      queueMicrotask(() => { if (!stopped && !source && !retryTimer && !pendingTicket) open(); });
      return client;
    },
    /** Closes for good (until start()). */
    close() {
      stopped = true;
      clearTimeout(retryTimer);
      teardown();
      setConnection('closed');
    },
    /** Drops the connection now and reopens it with resume (no backoff wait). */
    reconnect() {
      teardown();
      state.attempt = 0;
      if (!stopped) open();
    },
    /** Changes the subscription filter: a new subscription, so a fresh snapshot. */
    setFilter(filter) {
      state.filter = { ...(filter || {}) };
      state.lastEventId = null;
      state.hasSnapshot = false;
      client.reconnect();
    },
  };
  if (opts.autoStart !== false) client.start();
  return client;
}

/**
 * Small helpers for the REST side, shared by the pages.
 * Errors carry the gateway's `{error, reason}` plus the HTTP status.
 */
export class GatewayError extends Error {
  constructor(status, body) {
    super((body && (body.reason || body.error)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
    this.reason = body && body.reason;
  }
}

/** Bearer credential (API key or JWT) for every call, or null when auth is off. */
let authToken = null;

/**
 * Sets the API key or JWT sent as `Authorization: Bearer …` on REST calls;
 * streams then open with a one-time ticket (`POST /api/v1/tickets`), so the
 * credential never appears in a URL. `null` turns it off.
 */
export function setAuthToken(token) { authToken = token || null; }

function authHeaders() { return authToken ? { authorization: `Bearer ${authToken}` } : {}; }

export async function getJson(baseUrl, path, init) {
  const headers = { accept: 'application/json', ...authHeaders(), ...((init && init.headers) || {}) };
  const res = await fetch((baseUrl || '') + path, { ...init, headers });
  let body = null;
  try { body = await res.json(); } catch { body = null; }
  if (!res.ok) throw new GatewayError(res.status, body);
  return { body, etag: res.headers.get('etag'), status: res.status };
}

/** `GET /api/v1/presence-definitions`, bare array or `{entities: [...]}`. */
export async function fetchPresenceDefinitions(baseUrl = '') {
  const { body } = await getJson(baseUrl, '/api/v1/presence-definitions');
  const list = Array.isArray(body) ? body : (body && (body.entities || body.definitions)) || [];
  return list.map((d) => ({
    ...d,
    systemPresence: d.systemPresence ? String(d.systemPresence).toUpperCase().replace(/[\s-]+/g, '_').replace(/^ONQUEUE$/, 'ON_QUEUE') : 'UNKNOWN',
    label: d.label || (d.languageLabels && (d.languageLabels.en_US || Object.values(d.languageLabels)[0])) || d.id,
  }));
}

/**
 * The longest presence message the gateway accepts, in characters
 * (`src/writes.rs`: longer is 422 `invalid_message`; Genesys's own limit is
 * the same, docs/simulator.md). Pages use this one number.
 */
export const PRESENCE_MESSAGE_MAX_CHARS = 250;

/**
 * Who refused a write, from the gateway's error code (docs/writes.md):
 * 'genesys' when Genesys Cloud answered no (`genesys_refused`,
 * `genesys_forbidden`), 'upstream' when Genesys Cloud could not be asked or
 * did not confirm (`rate_limited`, `upstream_unavailable`, `not_confirmed`),
 * otherwise 'gateway' — the gateway's own rules refused it and Genesys Cloud
 * was never asked.
 */
export function refusedBy(code) {
  if (code === 'genesys_refused' || code === 'genesys_forbidden') return 'genesys';
  if (code === 'rate_limited' || code === 'upstream_unavailable' || code === 'not_confirmed') return 'upstream';
  return 'gateway';
}

/** `PATCH /api/v1/agents/{id}/presence` guarded by If-Match. */
export async function setPresence(baseUrl, agentId, { presence, message, etag }) {
  const body = { presence };
  if (message) body.message = message;
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (etag) headers['if-match'] = etag;
  return getJson(baseUrl, `/api/v1/agents/${encodeURIComponent(agentId)}/presence`, {
    method: 'PATCH', headers, body: JSON.stringify(body),
  });
}
