// The pages against a gateway that requires credentials: `serve` with an API
// key (auth on), fed by `simulate`. The page asks for the key, keeps it out
// of the URL, and streams with one-time tickets. Also from another origin
// (`server.allowed_origins`): the dashboard hosted elsewhere (native
// EventSource) and a page streaming with the npm EventSource polyfill and an
// Authorization header both read the 401 and ask for a key.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eventually, launchBrowser, newPage, repoRoot, screenshot, simUsers, startBin, startPageServer } from './support.mjs';
import { simPresence, streamPageHtml } from './streams.mjs';

const KEY = 'wallboard-key-0123456789';

describe('pages with authentication on', () => {
  let sim;
  let gw;
  let browser;
  let dir;
  /** Another origin serving copies of the pages, as a separate wallboard host would. */
  let site;

  before(async () => {
    const file = (name, type) => ({ type, body: fs.readFileSync(path.join(repoRoot, 'static', name)) });
    site = await startPageServer({
      files: {
        '/': file('index.html', 'text/html'),
        '/dashboard.js': file('dashboard.js', 'text/javascript'),
        '/presence-client.js': file('presence-client.js', 'text/javascript'),
        '/auth-gate.js': file('auth-gate.js', 'text/javascript'),
        '/theme.css': file('theme.css', 'text/css'),
        '/dashboard.css': file('dashboard.css', 'text/css'),
        '/stream.html': { type: 'text/html', body: streamPageHtml('polyfill') },
      },
    });
    sim = await startBin(['simulate', '--listen', '127.0.0.1:0', '--agents', '30'], {}, /^READY simulator=(\S+)\s*$/m);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-auth-'));
    const sha = crypto.createHash('sha256').update(KEY).digest('hex');
    const cfg = path.join(dir, 'gateway.toml');
    fs.writeFileSync(cfg, [
      '[server]', 'listen = "127.0.0.1:0"', 'workers = 1', `allowed_origins = ["${site.url}"]`,
      '[auth]', `api_keys = [{ name = "wallboard", sha256 = "${sha}", role = "viewer", divisions = [] }]`,
      '[store]', `path = "${path.join(dir, 'gw.db')}"`, '',
    ].join('\n'));
    gw = await startBin(['serve', '--config', cfg], {
      GENESYSCLOUD_API_BASE: sim.url,
      GENESYSCLOUD_OAUTHCLIENT_ID: 'sim-client',
      GENESYSCLOUD_OAUTHCLIENT_SECRET: 'sim-secret',
    }, /^READY gateway=(\S+)\s*$/m);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
    await sim?.stop();
    await site?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The dashboard asks for a key, refuses a wrong one in words, then shows every agent live without the key in any URL. */
  test('dashboard asks for a key and streams with tickets', async () => {
    const page = await newPage(browser);
    const urls = [];
    page.on('request', (r) => urls.push(r.url()));
    await page.goto(`${gw.url}/`);
    await page.waitForSelector('#auth-gate', { timeout: 15000 });
    await page.fill('#auth-key', 'not-the-key');
    await page.click('#auth-gate button');
    await eventually(async () => /refused/.test(await page.textContent('#auth-problem').catch(() => '')), { what: 'a wrong key refused in words' });
    await page.fill('#auth-key', KEY);
    await page.click('#auth-gate button');
    const users = await simUsers(sim.url);
    await eventually(async () => (await page.evaluate(() => window.__presence.agents.size)) === users.length, { timeoutMs: 20000, what: 'all agents with the key' });
    await eventually(async () => (await page.getAttribute('#fresh', 'data-level')) === 'live', { what: 'live' });
    assert.ok(urls.some((u) => u.includes('/api/v1/stream?') && u.includes('ticket=')), 'the stream opened with a ticket');
    assert.ok(urls.every((u) => !u.includes(KEY)), 'the key never appears in a URL');
    await screenshot(page, 'dashboard-auth');
    await page.close();
  });

  /**
   * A dashboard served from another origin (native EventSource): the
   * gateway's 401 carries CORS headers, so the page can read it and asks for a
   * key instead of failing on an opaque network error; with the key it shows
   * every agent live.
   */
  test('cross-origin dashboard sees the 401 and asks for a key', async () => {
    const page = await newPage(browser);
    // What the browser gets, seen from outside: a 401 that names the origin.
    const res = await fetch(`${gw.url}/api/v1/presence-definitions`, { headers: { origin: site.url, accept: 'application/json' } });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('access-control-allow-origin'), site.url, 'the 401 carries Access-Control-Allow-Origin');
    assert.equal((await res.json()).error, 'unauthenticated');
    // Chromium reports a 401 without it as a failed request (no response at all).
    const failed = [];
    page.on('requestfailed', (r) => failed.push(`${r.url()} ${r.failure()?.errorText}`));
    await page.goto(`${site.url}/?gateway=${encodeURIComponent(gw.url)}`);
    await eventually(async () => (await page.$('#auth-gate')) || (failed.length && Promise.reject(new Error(`blocked: ${failed.join(', ')}`))), { what: 'the key prompt' });
    await page.fill('#auth-key', KEY);
    await page.click('#auth-gate button');
    const users = await simUsers(sim.url);
    await eventually(async () => (await page.evaluate(() => window.__presence.agents.size)) === users.length, { timeoutMs: 20000, what: 'all agents, cross-origin, with the key' });
    await eventually(async () => (await page.getAttribute('#fresh', 'data-level')) === 'live', { what: 'live' });
    // docs/client.md: any web app can import the module from the gateway (a module script needs CORS).
    assert.equal(await page.evaluate((u) => import(`${u}/presence-client.js`).then((m) => typeof m.createPresenceClient), gw.url), 'function');
    await screenshot(page, 'dashboard-cross-origin-auth');
    assert.deepEqual(page.pageErrors, []);
    await page.close();
  });

  /**
   * A cross-origin page streaming with the EventSource polyfill and an
   * Authorization header: a wrong key is a readable 401 (the status reaches
   * the script, so it can ask for a key), the right one streams live.
   */
  test('cross-origin polyfill stream sees the 401, then streams with the key', async () => {
    const page = await newPage(browser);
    await page.goto(`${site.url}/stream.html`);
    await page.evaluate(([u]) => window.openStream('bad', `${u}/api/v1/stream`, { headers: { Authorization: 'Bearer not-the-key' } }), [gw.url]);
    const errs = await eventually(async () => {
      const st = await page.evaluate(() => window.streamState('bad'));
      return st.errors.length ? st.errors : null;
    }, { what: 'an error event for the wrong key' });
    assert.equal(errs[0].status, 401, `the 401 is readable cross-origin, not a network error: ${JSON.stringify(errs)}`);
    await page.evaluate(([u, k]) => window.openStream('good', `${u}/api/v1/stream`, { headers: { Authorization: `Bearer ${k}` } }), [gw.url, KEY]);
    await eventually(async () => {
      const st = await page.evaluate(() => window.streamState('good'));
      if (st.readyState !== 1 || !st.snapshots.length) return false;
      const held = await page.evaluate(() => window.streamPresence('good'));
      return Object.keys(held).length === Object.keys(simPresence(await simUsers(sim.url))).length;
    }, { timeoutMs: 20000, what: 'every agent over the polyfill stream with the key' });
    await page.close();
  });
});
