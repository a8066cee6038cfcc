// Unit tests of presence-client.js's live state (no browser, no gateway): a
// fake EventSource stands in for the browser global and delivers the frames
// the gateway really sends (shapes copied from a `demo` stream, docs/protocol.md §3).
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { computeCounts, createPresenceClient, mergeCounts } from '../../static/presence-client.js';

/** Minimal EventSource: records every instance and lets the test deliver events. */
class FakeEventSource {
  static instances = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.listeners = {};
    FakeEventSource.instances.push(this);
  }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  close() { this.readyState = 2; }
  /** Opens the stream (like the 200 answer arriving). */
  open() { this.readyState = 1; this.onopen?.({}); }
  /** Delivers one SSE event: `event:` type, `data:` JSON, `id:` for snapshots and deltas. */
  emit(msg) {
    const id = msg.type === 'snapshot' || msg.type === 'delta' ? `${msg.epoch}:${msg.seq}` : '';
    const ev = { type: msg.type, data: JSON.stringify(msg), lastEventId: id };
    for (const fn of this.listeners[msg.type] || []) fn(ev);
  }
}

const EPOCH = 1795945582947;
const agent = (id, sp, { rs = 'IDLE', div = 'd1', queues = ['q1'] } = {}) => ({
  id, name: `Agent ${id}`, division: { id: div, name: div }, queues,
  presence: { definitionId: `def-${sp}`, systemPresence: sp, label: sp, message: '', since: '2026-11-29T09:00:00.000Z' },
  routingStatus: { status: rs, since: '2026-11-29T09:00:00.000Z' }, version: 1,
});
const bucket = (agents, presence, routing) => ({ agents, presence, routing });

let saved;
beforeEach(() => {
  saved = globalThis.EventSource;
  globalThis.EventSource = FakeEventSource;
  FakeEventSource.instances = [];
});
afterEach(() => { globalThis.EventSource = saved; });

/** Opens a client on the fake transport and waits for its (deferred) first connection. */
async function openClient(opts = {}) {
  const client = createPresenceClient({ baseUrl: 'http://gw.test', idleTimeoutMs: 0, ...opts });
  await Promise.resolve();
  const es = FakeEventSource.instances.at(-1);
  assert.ok(es, 'the client opened an EventSource');
  es.open();
  return { client, es };
}

/** A delta's top-level `removed` deletes agents that left the client's filter (a BREAK-filtered client must not keep agents back from break). */
test('a delta’s removed ids leave the map', async () => {
  const deltas = [];
  const { client: c2, es: es2 } = await openClient({ filter: { presence: 'BREAK' }, onDelta: (changes, msg) => deltas.push(msg.removed) });
  assert.match(es2.url, /presence=BREAK/);
  es2.emit({ type: 'snapshot', epoch: EPOCH, seq: 10, recovered: false, agents: [agent('a1', 'BREAK'), agent('a2', 'BREAK'), agent('a3', 'BREAK')] });
  assert.equal(c2.agents.size, 3);
  // a2 goes back on queue: it no longer matches presence=BREAK.
  es2.emit({ type: 'delta', epoch: EPOCH, seq: 11, changes: [], removed: ['a2'] });
  assert.deepEqual([...c2.agents.keys()].sort(), ['a1', 'a3']);
  // A change and a removal in one batch; a4 joins the filter.
  es2.emit({ type: 'delta', epoch: EPOCH, seq: 12, changes: [agent('a4', 'BREAK')], removed: ['a1', 'not-held'] });
  assert.deepEqual([...c2.agents.keys()].sort(), ['a3', 'a4']);
  assert.deepEqual(deltas, [['a2'], ['a1', 'not-held']], 'onDelta sees the removed ids');
  // The resume point follows the deltas.
  assert.equal(c2.lastEventId, `${EPOCH}:12`);
  c2.close();
});

/** Each delta's partial `counts` is merged bucket by bucket into the held counts, not put in their place. */
test('count patches merge into the held counts', async () => {
  const { client, es } = await openClient();
  const q = (n) => bucket(n, { ON_QUEUE: n }, { IDLE: n });
  es.emit({
    type: 'snapshot', epoch: EPOCH, seq: 20, recovered: false, agents: [],
    counts: {
      all: bucket(40, { ON_QUEUE: 30, BREAK: 10 }, { IDLE: 40 }),
      divisions: { d1: q(20), d2: q(20) },
      queues: Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`q${i}`, q(i + 1)])),
    },
  });
  assert.equal(Object.keys(client.counts().queues).length, 12);
  // Like the gateway's delta: `all` plus only the buckets that changed.
  es.emit({
    type: 'delta', epoch: EPOCH, seq: 21, changes: [],
    counts: { all: bucket(40, { ON_QUEUE: 29, BREAK: 11 }, { IDLE: 40 }), divisions: { d1: bucket(20, { ON_QUEUE: 19, BREAK: 1 }, { IDLE: 20 }) }, queues: { q3: bucket(4, { BREAK: 4 }, { IDLE: 4 }), q5: bucket(0, {}, {}) } },
  });
  const c = client.counts();
  assert.equal(Object.keys(c.queues).length, 11, 'one bucket gone (agents: 0), the other eleven kept');
  assert.deepEqual(c.all.presence, { ON_QUEUE: 29, BREAK: 11 });
  assert.deepEqual(c.divisions.d1.presence, { ON_QUEUE: 19, BREAK: 1 });
  assert.deepEqual(c.divisions.d2, q(20), 'an unlisted division keeps its value');
  assert.deepEqual(c.queues.q3.presence, { BREAK: 4 });
  assert.deepEqual(c.queues.q0, q(1));
  assert.equal(c.queues.q5, undefined);
  // A delta without counts leaves them alone; a snapshot replaces them whole.
  es.emit({ type: 'delta', epoch: EPOCH, seq: 22, changes: [agent('x', 'AWAY')] });
  assert.equal(Object.keys(client.counts().queues).length, 11);
  es.emit({ type: 'snapshot', epoch: EPOCH, seq: 30, recovered: false, agents: [], counts: { all: bucket(1, {}, {}), divisions: {}, queues: {} } });
  assert.deepEqual(client.counts(), { all: bucket(1, {}, {}), divisions: {}, queues: {} });
  client.close();
});

/** mergeCounts never modifies what it was given. */
test('mergeCounts is pure', () => {
  const held = { all: bucket(2, { AWAY: 2 }, {}), divisions: { d1: bucket(2, {}, {}) }, queues: {} };
  const copy = structuredClone(held);
  const next = mergeCounts(held, { all: bucket(2, { AWAY: 1, BREAK: 1 }, {}), divisions: { d1: bucket(0, {}, {}) } });
  assert.deepEqual(held, copy);
  assert.deepEqual(next.divisions, {});
});

/** counts() has one shape, whether the server sent counts or the client computed them. */
test('counts() has one shape', async () => {
  const { client, es } = await openClient();
  // No counts from the server: computed from the map, in the same shape.
  es.emit({ type: 'snapshot', epoch: EPOCH, seq: 1, recovered: false, agents: [agent('a', 'ON_QUEUE', { queues: ['q1', 'q2'] }), agent('b', 'BREAK', { rs: 'OFF_QUEUE', div: 'd2', queues: [] }), { id: 'c', name: 'No presence yet', division: { id: 'd2' }, queues: [], presence: null, routingStatus: null }] });
  const local = client.counts();
  assert.deepEqual(local, {
    all: bucket(3, { ON_QUEUE: 1, BREAK: 1 }, { IDLE: 1, OFF_QUEUE: 1 }),
    divisions: { d1: bucket(1, { ON_QUEUE: 1 }, { IDLE: 1 }), d2: bucket(2, { BREAK: 1 }, { OFF_QUEUE: 1 }) },
    queues: { q1: bucket(1, { ON_QUEUE: 1 }, { IDLE: 1 }), q2: bucket(1, { ON_QUEUE: 1 }, { IDLE: 1 }) },
  });
  assert.deepEqual(computeCounts(client.agents.values()), local);
  // With the server's counts: the same keys at every level.
  es.emit({ type: 'snapshot', epoch: EPOCH, seq: 2, recovered: false, agents: [], counts: { all: bucket(3, { AWAY: 3 }, { IDLE: 3 }), divisions: { d1: bucket(3, { AWAY: 3 }, { IDLE: 3 }) }, queues: {} } });
  const server = client.counts();
  assert.deepEqual(Object.keys(server), Object.keys(local));
  assert.deepEqual(Object.keys(server.all), Object.keys(local.all));
  client.close();
});

/** No callback fires while createPresenceClient runs, so a callback may use the client it returns (the React example relies on it). */
test('callbacks never fire during construction', async () => {
  const seen = [];
  let client = null;
  assert.doesNotThrow(() => {
    // `const` as in docs/client.md: a synchronous callback would hit the temporal dead zone.
    const c = createPresenceClient({
      baseUrl: 'http://gw.test', idleTimeoutMs: 0,
      onConnectionChange: (state) => seen.push([state, c.freshness().level]),
    });
    client = c;
  });
  assert.deepEqual(seen, [], 'nothing fired synchronously');
  assert.equal(client.freshness().level, 'connecting', 'a started client is connecting, not closed');
  await Promise.resolve();
  assert.deepEqual(seen, [['connecting', 'connecting']]);
  FakeEventSource.instances.at(-1).open();
  assert.deepEqual(seen.at(-1)[0], 'open');
  client.close();
  assert.equal(FakeEventSource.instances.at(-1).readyState, 2);
  // Closed before its first connection: it never connects.
  const before = FakeEventSource.instances.length;
  const c3 = createPresenceClient({ baseUrl: 'http://gw.test', idleTimeoutMs: 0 });
  c3.close();
  await Promise.resolve();
  assert.equal(FakeEventSource.instances.length, before);
  assert.equal(c3.freshness().level, 'closed');
});

/** A gateway that has not read the directory yet (`synced: false`) is never called live: its empty list means "not known yet". */
test('not synced is not live', async () => {
  const { client, es } = await openClient();
  es.emit({ type: 'snapshot', epoch: EPOCH, seq: 0, recovered: false, synced: false, agents: [] });
  es.emit({ type: 'status', epoch: EPOCH, seq: 0, state: 'degraded', stale: true, synced: false, detail: 'Genesys refuses the credentials' });
  assert.equal(client.synced, false);
  assert.equal(client.freshness().level, 'stale');
  // Credentials fixed: the upstream connects, but the directory is not read yet.
  es.emit({ type: 'status', epoch: EPOCH, seq: 0, state: 'connected', stale: true, synced: false, detail: null });
  assert.deepEqual([client.freshness().level, client.freshness().detail], ['stale', 'not synced with Genesys Cloud yet']);
  es.emit({ type: 'status', epoch: EPOCH, seq: 1, state: 'connected', stale: false, synced: true, detail: null });
  assert.equal(client.freshness().level, 'live');
  client.close();
});
