// A bare test page for the stream-resilience tests: one or more EventSources
// (the browser's native one, or the npm `event-source-polyfill`, loaded from
// node_modules) that apply snapshots and deltas as docs/protocol.md says and
// record everything a test needs to judge them: every readyState 2 (closed
// for good), every snapshot, every error status.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The polyfill's browser build, as an app would bundle or <script> it. */
export const POLYFILL_JS = fs.readFileSync(path.join(here, 'node_modules', 'event-source-polyfill', 'src', 'eventsource.js'), 'utf8');

/** The two EventSource implementations the tests run with. */
export const MODES = ['native', 'polyfill'];

/**
 * HTML of the test page. `window.openStream(name, url, options)` opens a
 * stream (options go to the polyfill: `headers`), `window.__streams[name]`
 * holds its record.
 */
export function streamPageHtml(mode) {
  return `<!doctype html><meta charset="utf-8"><title>stream test (${mode})</title><link rel="icon" href="data:,">
<script>${mode === 'polyfill' ? POLYFILL_JS : ''}</script>
<script>
window.__mode = ${JSON.stringify(mode)};
window.__streams = {};
window.openStream = function (name, url, options) {
  const ES = window.__mode === 'polyfill' ? window.EventSourcePolyfill : window.EventSource;
  const es = new ES(url, options || {});
  const rec = { es, agents: new Map(), snapshots: [], deltas: 0, opens: 0, errors: [], everClosed: false, closes: 0, epoch: null };
  window.__streams[name] = rec;
  const watch = () => { if (es.readyState === 2) rec.everClosed = true; };
  setInterval(watch, 20);
  es.addEventListener('snapshot', (e) => {
    const m = JSON.parse(e.data);
    rec.agents = new Map(m.agents.map((a) => [a.id, a]));
    rec.epoch = m.epoch;
    rec.snapshots.push({ epoch: m.epoch, seq: m.seq, recovered: m.recovered, agents: m.agents.length, id: e.lastEventId });
  });
  es.addEventListener('delta', (e) => {
    const m = JSON.parse(e.data);
    if (m.epoch !== rec.epoch) return; // not ours: a snapshot of the new epoch comes first
    for (const c of m.changes || []) rec.agents.set(c.id, c);
    for (const id of m.removed || []) rec.agents.delete(id);
    rec.deltas++;
  });
  es.addEventListener('close', () => { rec.closes++; });
  es.onopen = () => { rec.opens++; };
  es.onerror = (e) => { rec.errors.push({ status: e.status || null, readyState: es.readyState }); watch(); };
  return true;
};
/** id → definitionId of what a stream holds, for comparing with /sim/state. */
window.streamPresence = function (name) {
  const rec = window.__streams[name];
  return Object.fromEntries([...rec.agents.values()].map((a) => [a.id, a.presence ? a.presence.definitionId : null]));
};
window.streamState = function (name) {
  const r = window.__streams[name];
  return { readyState: r.es.readyState, everClosed: r.everClosed, snapshots: r.snapshots, opens: r.opens, errors: r.errors, deltas: r.deltas, closes: r.closes, size: r.agents.size };
};
</script>`;
}

/**
 * Opens the test page at `url` (a path on the gateway's own origin, so the
 * streams are same-origin): the document is handed over by Playwright once,
 * then the route is removed, so every stream request after it is a real
 * request from Chromium's network stack to the gateway.
 */
export async function openStreamPage(page, url, mode) {
  const html = streamPageHtml(mode);
  const handler = (route) => route.fulfill({ status: 200, contentType: 'text/html', body: html });
  await page.route(url, handler);
  await page.goto(url);
  await page.unroute(url, handler);
}

/** The simulator's truth in the same form as `streamPresence`. */
export function simPresence(users) {
  return Object.fromEntries(users.map((u) => [u.id, u.presence ? u.presence.definitionId : null]));
}
