// Browser streams that never give up (issue 14), with Chromium's native
// EventSource and with the npm `event-source-polyfill` (which resumes by
// appending `?lastEventId=` itself):
//  1. a gateway restart behind the same address: the page ends live and equal
//     to the simulator's /sim/state, and the EventSource is never closed for
//     good (readyState 2) — not even one opened while the gateway drains;
//  2. a resume point the gateway cannot honour (another epoch, malformed, in
//     the future) gets a fresh snapshot (`recovered: false`), never an error.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import nodeHttp from 'node:http';
import { eventually, http, launchBrowser, newPage, simUsers, startDemo } from './support.mjs';
import { MODES, openStreamPage, simPresence } from './streams.mjs';

const PAGE = '/__stream-test.html';

/** Plain SSE clients from node that keep the gateway's drain busy for its whole spread window. */
function holdStreams(gateway, n) {
  const reqs = [];
  for (let i = 0; i < n; i++) {
    const req = nodeHttp.get(`${gateway}/api/v1/stream?presence=OFFLINE`, { agent: false }, (res) => res.resume());
    req.on('error', () => {});
    reqs.push(req);
  }
  return { close() { for (const r of reqs) r.destroy(); } };
}

/**
 * Whether the page's stream `name` is open, has a snapshot (of an epoch other
 * than `notEpoch`, when given) and holds exactly the simulator's presences.
 * A stream closed for good ends the wait at once, with its errors.
 */
async function liveAndEqual(page, simulator, name, { notEpoch } = {}) {
  const st = await page.evaluate((n) => window.streamState(n), name);
  if (st.readyState === 2) return { closed: st.errors };
  if (st.readyState !== 1 || !st.snapshots.length) return false;
  if (notEpoch !== undefined && st.snapshots.at(-1).epoch === notEpoch) return false;
  const held = await page.evaluate((n) => window.streamPresence(n), name);
  const truth = simPresence(await simUsers(simulator));
  assert.ok(Object.keys(truth).length > 0);
  try { assert.deepEqual(held, truth); return { live: true }; } catch { return false; }
}

for (const mode of MODES) {
  describe(`${mode} EventSource`, () => {
    let browser;
    before(async () => { browser = await launchBrowser(); });
    after(async () => { await browser?.close(); });

    /** SIGTERM, then a new gateway on the same port: the page's stream and one opened during the drain end live, equal to /sim/state, never closed. */
    test('a gateway restart behind the same address', async () => {
      let demo = await startDemo({ agents: 60 });
      const port = new URL(demo.gateway).port;
      let holders;
      const page = await newPage(browser);
      try {
        await http(`${demo.simulator}/sim/churn`, { method: 'POST', body: { eventsPerSecond: 0 } });
        await openStreamPage(page, `${demo.gateway}${PAGE}`, mode);
        await page.evaluate(() => window.openStream('main', '/api/v1/stream'));
        assert.deepEqual(await eventually(() => liveAndEqual(page, demo.simulator, 'main'), { timeoutMs: 20000, what: 'the page live and equal to /sim/state' }), { live: true });
        const epoch1 = (await page.evaluate(() => window.streamState('main'))).snapshots[0].epoch;

        holders = holdStreams(demo.gateway, 20);
        // An idle keep-alive connection in Chromium's pool: the next stream
        // request may go out on it while the gateway drains.
        await page.evaluate(() => fetch('/healthz').then((r) => r.text()));
        const stopping = demo.stop({ graceMs: 40000 });
        await page.evaluate(() => window.openStream('probe', '/api/v1/stream'));
        await stopping;
        holders.close();
        // The same address again (the port may need a moment to be free).
        demo = await eventually(() => startDemo({ agents: 60, listen: `127.0.0.1:${port}` }), { timeoutMs: 20000, intervalMs: 250, what: `a gateway on port ${port} again` });
        await http(`${demo.simulator}/sim/churn`, { method: 'POST', body: { eventsPerSecond: 0 } });

        for (const name of ['main', 'probe']) {
          const r = await eventually(() => liveAndEqual(page, demo.simulator, name, { notEpoch: epoch1 }), { timeoutMs: 60000, intervalMs: 250, what: `stream ${name} live on the new gateway and equal to /sim/state` });
          assert.ok(!r.closed, `stream ${name} closed for good (readyState 2); errors: ${JSON.stringify(r.closed)}`);
          const st = await page.evaluate((n) => window.streamState(n), name);
          assert.equal(st.everClosed, false, `stream ${name} was closed for good at some point: ${JSON.stringify(st.errors)}`);
          assert.equal(st.snapshots.at(-1).recovered, false);
        }
        assert.deepEqual(page.pageErrors, []);
      } finally {
        holders?.close();
        await page.close();
        await demo.stop();
      }
    });

    describe('resume points the gateway cannot honour', () => {
      let demo;
      let page;
      let epoch;
      before(async () => {
        demo = await startDemo({ agents: 40 });
        await http(`${demo.simulator}/sim/churn`, { method: 'POST', body: { eventsPerSecond: 0 } });
        epoch = (await http(`${demo.gateway}/api/v1/agents`)).epoch;
        page = await newPage(browser);
        await openStreamPage(page, `${demo.gateway}${PAGE}`, mode);
      });
      after(async () => { await page?.close(); await demo?.stop(); });

      // How each implementation carries a stored id: the native one only in
      // the URL (`last_event_id`, as presence-client.js does); the polyfill
      // appends `lastEventId` itself, and can also send the header.
      const ways = mode === 'native'
        ? [['?last_event_id=', {}]]
        : [['?lastEventId=', {}], ['', { header: true }]];
      const ids = [
        ['another epoch', () => '1795000000000:5'],
        ['a malformed id', () => 'v2-node-b/123'],
        ['a seq in the future', () => `${epoch}:999999999`],
      ];
      for (const [how, opt] of ways) {
        for (const [what, id] of ids) {
          /** The stored id gets a fresh snapshot (recovered:false) of this epoch, the stream stays open and matches /sim/state. */
          test(`${what} via ${opt.header ? 'Last-Event-ID header' : how.slice(1, -1)}: a fresh snapshot`, async () => {
            const name = `${how}${what}${opt.header ? 'h' : ''}`;
            const url = `/api/v1/stream${how ? how + encodeURIComponent(id()) : ''}`;
            const options = opt.header ? { headers: { 'Last-Event-ID': id() } } : {};
            await page.evaluate(([n, u, o]) => window.openStream(n, u, o), [name, url, options]);
            const r = await eventually(() => liveAndEqual(page, demo.simulator, name), { timeoutMs: 15000, what: 'a fresh snapshot equal to /sim/state' });
            assert.ok(!r.closed, `closed for good (readyState 2) instead of a fresh snapshot; errors: ${JSON.stringify(r.closed)}`);
            const st = await page.evaluate((n) => window.streamState(n), name);
            assert.equal(st.snapshots[0].recovered, false);
            assert.equal(String(st.snapshots[0].epoch), String(epoch));
            assert.equal(st.everClosed, false, JSON.stringify(st.errors));
            await page.evaluate((n) => window.__streams[n].es.close(), name);
          });
        }
      }
    });
  });
}
