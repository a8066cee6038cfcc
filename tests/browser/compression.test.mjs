// Stream compression with Chromium itself (issue 18): Chromium offers
// permessage-deflate on every WebSocket and sends `Accept-Encoding: gzip` on
// EventSource requests, so the gateway compresses both; the page must still
// get whole, parseable messages (a 300-agent snapshot goes as one message in
// continuation frames, compressed). The gateway's
// presence_gateway_connections_compressed_total counts what was negotiated.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, newPage, startDemo } from './support.mjs';

let demo;
let browser;
before(async () => {
  demo = await startDemo({ agents: 300 });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await demo?.stop();
});

async function compressed() {
  const text = await (await fetch(`${demo.gateway}/metrics`)).text();
  const read = (t) => Number((text.match(new RegExp(`presence_gateway_connections_compressed_total\\{transport="${t}"\\} (\\d+)`)) || [])[1] ?? NaN);
  return { ws: read('ws'), sse: read('sse') };
}

test('Chromium negotiates permessage-deflate and gzip, and reads whole messages', async () => {
  const page = await newPage(browser);
  await page.goto(`${demo.gateway}/healthz`);
  const before = await compressed();

  const ws = await page.evaluate(() => new Promise((resolve, reject) => {
    const s = new WebSocket(location.origin.replace(/^http/, 'ws') + '/api/v1/ws');
    s.onerror = () => reject(new Error('websocket error'));
    s.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type !== 'snapshot') return;
      resolve({ extensions: s.extensions, agents: m.agents.length, bytes: e.data.length });
      s.close();
    };
  }));
  assert.match(ws.extensions, /permessage-deflate/);
  assert.equal(ws.agents, 300);
  assert.ok(ws.bytes > 8 * 1024, `the snapshot spans continuation frames (${ws.bytes} bytes)`);

  const sse = await page.evaluate(() => new Promise((resolve, reject) => {
    const es = new EventSource('/api/v1/stream');
    es.onerror = () => reject(new Error('eventsource error'));
    es.addEventListener('snapshot', (e) => {
      resolve({ agents: JSON.parse(e.data).agents.length });
      es.close();
    });
  }));
  assert.equal(sse.agents, 300);

  const now = await compressed();
  assert.equal(now.ws - before.ws, 1, 'the WebSocket was compressed');
  assert.equal(now.sse - before.sse, 1, 'the EventSource body was gzip');
  await page.close();
});
