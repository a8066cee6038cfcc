// Unit tests of presence-client.js's pure parts (no browser, no gateway).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, computeCounts, parseEventId, presenceKey } from '../../static/presence-client.js';

/** Backoff grows exponentially, is capped, and keeps jitter within [base/2, base]. */
test('jittered exponential backoff', () => {
  const b = { initialMs: 500, maxMs: 30000, factor: 2 };
  assert.equal(backoffDelay(0, b, () => 0), 250);
  assert.equal(backoffDelay(0, b, () => 1), 500);
  assert.equal(backoffDelay(3, b, () => 1), 4000);
  assert.equal(backoffDelay(20, b, () => 1), 30000);
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(4, b);
    assert.ok(d >= 4000 && d <= 8000, String(d));
  }
});

/** Event ids are "epoch:seq"; anything else is rejected. */
test('event ids parse', () => {
  assert.deepEqual(parseEventId('abc:42'), { epoch: 'abc', seq: 42 });
  assert.deepEqual(parseEventId('1:2:3'), { epoch: '1:2', seq: 3 });
  assert.equal(parseEventId('42'), null);
  assert.equal(parseEventId(':1'), null);
  assert.equal(parseEventId(undefined), null);
});

/** Client-side counts by presence, routing, division and queue, in the protocol's Counts shape. */
test('counts', () => {
  const a = (id, sp, rs, div, queues) => ({ id, presence: { systemPresence: sp }, routingStatus: { status: rs }, division: { id: div }, queues });
  const c = computeCounts([
    a('1', 'ON_QUEUE', 'IDLE', 'd1', ['q1', 'q2']),
    a('2', 'ON_QUEUE', 'INTERACTING', 'd1', ['q1']),
    a('3', 'BREAK', 'OFF_QUEUE', 'd2', []),
  ]);
  assert.equal(c.all.agents, 3);
  assert.deepEqual(c.all.presence, { ON_QUEUE: 2, BREAK: 1 });
  assert.deepEqual(c.all.routing, { IDLE: 1, INTERACTING: 1, OFF_QUEUE: 1 });
  assert.equal(c.divisions.d1.agents, 2);
  assert.equal(c.queues.q1.presence.ON_QUEUE, 2);
  assert.equal(c.queues.q2.agents, 1);
  assert.equal(presenceKey({ presence: { systemPresence: 'on queue' } }), 'ON_QUEUE');
});
