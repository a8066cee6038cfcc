// The pages against a gateway that requires credentials: `serve` with an API
// key (auth on), fed by `simulate`. The page asks for the key, keeps it out
// of the URL, and streams with one-time tickets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eventually, launchBrowser, newPage, screenshot, simUsers, startBin } from './support.mjs';

const KEY = 'wallboard-key-0123456789';

describe('pages with authentication on', () => {
  let sim;
  let gw;
  let browser;
  let dir;

  before(async () => {
    sim = await startBin(['simulate', '--listen', '127.0.0.1:0', '--agents', '30'], {}, /^READY simulator=(\S+)\s*$/m);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-auth-'));
    const sha = crypto.createHash('sha256').update(KEY).digest('hex');
    const cfg = path.join(dir, 'gateway.toml');
    fs.writeFileSync(cfg, [
      '[server]', 'listen = "127.0.0.1:0"', 'workers = 1',
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
});
