// The supervisor dashboard against the real gateway + simulator (`demo`).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  eventually, http, launchBrowser, newPage, screenshot, simUsers, startCuttableProxy, startDemo,
} from './support.mjs';

const AGENTS = 200;

/** The page's agent map as {id: systemPresence}, read through window.__presence. */
function pagePresences(page) {
  return page.evaluate(() => Object.fromEntries([...window.__presence.agents.values()].map((a) => [a.id, a.presence && a.presence.systemPresence])));
}

describe('supervisor dashboard', () => {
  let demo;
  let browser;
  let proxy;
  let page;

  before(async () => {
    demo = await startDemo({ agents: AGENTS });
    proxy = await startCuttableProxy(demo.gateway);
    browser = await launchBrowser();
    page = await newPage(browser);
    await page.goto(`${proxy.url}/`);
  });

  after(async () => {
    await browser?.close();
    await proxy?.close();
    await demo?.stop();
  });

  /** Every simulator user is on the board: the map matches /sim/state, the header counts them, tiles are drawn. */
  test('shows every agent of the simulator', async () => {
    const users = await simUsers(demo.simulator);
    assert.equal(users.length, AGENTS);
    await eventually(async () => (await page.evaluate(() => window.__presence.agents.size)) === users.length, { what: 'all agents in the page' });
    const names = await page.evaluate(() => [...window.__presence.agents.values()].map((a) => a.name).sort());
    assert.deepEqual(names, users.map((u) => u.name).sort());
    await eventually(async () => (await page.textContent('#total')) === String(users.length), { what: 'header total' });
    // Counts per state match the ground truth (churn stopped so it holds still).
    await http(`${demo.simulator}/sim/churn`, { method: 'POST', body: { eventsPerSecond: 0 } });
    await eventually(async () => {
      const truth = {};
      for (const u of await simUsers(demo.simulator)) truth[u.presence.systemPresence] = (truth[u.presence.systemPresence] || 0) + 1;
      const chips = await page.$$eval('#presence-counts .chip', (els) => Object.fromEntries(els.map((e) => [e.dataset.state, Number(e.querySelector('.n').textContent)])));
      return Object.entries(truth).every(([k, n]) => chips[k] === n);
    }, { what: 'state counts equal to /sim/state' });
    // Virtualised: some tiles are drawn, each naming an agent, and fewer DOM tiles than agents is fine.
    const visible = await page.$$eval('.tile:not([hidden])', (els) => els.map((e) => e.querySelector('.nm').textContent));
    assert.ok(visible.length > 0, 'no visible tiles');
    for (const n of visible) assert.ok(names.includes(n), `tile for unknown agent ${n}`);
    await eventually(async () => (await page.getAttribute('#fresh', 'data-level')) === 'live', { what: 'freshness live' });
    await screenshot(page, 'dashboard-live');
    assert.deepEqual(page.pageErrors, []);
  });

  /** A presence change made in the simulator reaches the board and its tile within a deadline. */
  test('a change through /sim appears on the page', async () => {
    const users = await simUsers(demo.simulator);
    const u = users.find((x) => x.presence.systemPresence !== 'BREAK');
    await http(`${demo.simulator}/sim/users/${encodeURIComponent(u.id)}/presence`, { method: 'POST', body: { systemPresence: 'BREAK' } });
    await eventually(async () => (await pagePresences(page))[u.id] === 'BREAK', { timeoutMs: 10000, what: `${u.name} on BREAK in the page` });
    // Bring the tile on screen by searching for the agent, then check its colour key and label.
    await page.fill('#q', u.name);
    const tile = `.tile[data-id="${u.id}"]`;
    await eventually(async () => {
      const pc = await page.$eval(tile, (e) => e.style.getPropertyValue('--pc')).catch(() => '');
      return pc.includes('p-BREAK');
    }, { timeoutMs: 5000, what: 'the tile shows BREAK' });
    const label = await page.$eval(`${tile} .lb`, (e) => e.textContent);
    const pageLabel = await page.evaluate((id) => window.__presence.agents.get(id).presence.label, u.id);
    assert.equal(label, pageLabel);
    await screenshot(page, 'dashboard-search-break');
    await page.fill('#q', '');
    await eventually(async () => page.evaluate(() => document.getElementById('shown-wrap').hidden), { what: 'search cleared' });
  });

  /** Cutting the page's connection shows "reconnecting" on a dimmed board, then live again with the truth. */
  test('reconnects after a cut and converges', async () => {
    await http(`${demo.simulator}/sim/churn`, { method: 'POST', body: { eventsPerSecond: 0 } });
    proxy.cut();
    await eventually(async () => (await page.getAttribute('#fresh', 'data-level')) === 'reconnecting', { timeoutMs: 10000, what: 'reconnecting shown' });
    assert.ok(await page.evaluate(() => document.body.classList.contains('not-live')), 'board not dimmed while reconnecting');
    assert.match(await page.textContent('#fresh'), /Reconnecting/);
    // The stale banner sits above the board: it never covers a tile.
    await eventually(async () => page.isVisible('#stale-banner'), { what: 'stale banner' });
    const [banner, boardTop] = await page.evaluate(() => [document.getElementById('stale-banner').getBoundingClientRect().bottom, document.getElementById('board').getBoundingClientRect().top]);
    assert.ok(banner <= boardTop + 0.5, `banner bottom ${banner} over the board (top ${boardTop})`);
    await screenshot(page, 'dashboard-reconnecting');

    // Change the truth while the page is cut off: it must converge on resume.
    const users = await simUsers(demo.simulator);
    const changed = users.filter((x) => x.presence.systemPresence !== 'MEAL').slice(0, 3);
    for (const u of changed) {
      await http(`${demo.simulator}/sim/users/${encodeURIComponent(u.id)}/presence`, { method: 'POST', body: { systemPresence: 'MEAL' } });
    }
    proxy.restore();
    await eventually(async () => (await page.getAttribute('#fresh', 'data-level')) === 'live', { timeoutMs: 45000, what: 'live again' });
    assert.ok(!(await page.evaluate(() => document.body.classList.contains('not-live'))), 'board still dimmed when live');
    await eventually(async () => {
      const truth = await simUsers(demo.simulator);
      const seen = await pagePresences(page);
      return truth.length === Object.keys(seen).length && truth.every((u) => seen[u.id] === u.presence.systemPresence);
    }, { timeoutMs: 20000, what: 'page converged to /sim/state' });
    for (const u of changed) assert.equal((await pagePresences(page))[u.id], 'MEAL');
    await screenshot(page, 'dashboard-recovered');
  });

  /** An upstream outage (simulator sockets dropped) is never shown as live while the gateway says so. */
  test('upstream status drives the indicator', async () => {
    await http(`${demo.simulator}/sim/faults`, { method: 'POST', body: { kind: 'drop_sockets' } });
    // The gateway reports the outage (status messages are sent whenever the
    // upstream health changes); while it does, the page must not say live.
    let sawOutage = false;
    await eventually(async () => {
      const s = await page.evaluate(() => ({ up: window.__presence.status?.upstream?.state, level: document.getElementById('fresh').dataset.level }));
      if (s.up && s.up !== 'connected') {
        assert.notEqual(s.level, 'live', `upstream ${s.up} shown as live`);
        if (!sawOutage) await screenshot(page, 'dashboard-upstream-outage');
        sawOutage = true;
      }
      return sawOutage && s.up === 'connected' && s.level === 'live';
    }, { timeoutMs: 45000, intervalMs: 50, what: 'an upstream outage reported, then connected and live again' });
  });
});

describe('supervisor dashboard over WebSocket', () => {
  let demo;
  let browser;

  before(async () => {
    demo = await startDemo({ agents: AGENTS });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  /** `?transport=ws`: the snapshot (sent in continuation frames) and live changes arrive over the WebSocket. */
  test('snapshot and changes over WebSocket', async () => {
    const page = await newPage(browser);
    await page.goto(`${demo.gateway}/?transport=ws`);
    const users = await simUsers(demo.simulator);
    await eventually(async () => (await page.evaluate(() => window.__presence.agents.size)) === users.length, { what: 'all agents over WebSocket' });
    await http(`${demo.simulator}/sim/churn`, { method: 'POST', body: { eventsPerSecond: 0 } });
    const u = users[7];
    const target = u.presence.systemPresence === 'TRAINING' ? 'MEETING' : 'TRAINING';
    await http(`${demo.simulator}/sim/users/${u.id}/presence`, { method: 'POST', body: { systemPresence: target } });
    await eventually(async () => (await pagePresences(page))[u.id] === target, { what: 'the change over WebSocket' });
    await eventually(async () => (await page.getAttribute('#fresh', 'data-level')) === 'live', { what: 'freshness live' });
    assert.deepEqual(page.pageErrors, []);
    await page.close();
  });
});
