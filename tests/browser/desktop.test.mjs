// The agent desktop against the real gateway + simulator (`demo`).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, launchBrowser, newPage, screenshot, simUsers, startDemo, http } from './support.mjs';

describe('agent desktop', () => {
  let demo;
  let browser;

  before(async () => {
    demo = await startDemo({ agents: 50 });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  /** Choosing a presence on the desktop goes through the gateway's guarded write and reaches the simulator. */
  test('a presence change from the desktop reaches /sim/state', async () => {
    await http(`${demo.simulator}/sim/churn`, { method: 'POST', body: { eventsPerSecond: 0 } });
    const users = await simUsers(demo.simulator);
    const u = users[0];
    const page = await newPage(browser, { width: 1100, height: 900 });
    await page.goto(`${demo.gateway}/desktop.html?agent=${encodeURIComponent(u.id)}`);
    await eventually(async () => (await page.$$('.choice')).length > 0, { what: 'presence choices' });
    await eventually(async () => (await page.textContent('#agent-name')) === u.name, { what: 'agent name shown' });

    // Pick an active definition of another system presence (prefer Away, primary).
    const defs = await page.$$eval('.choice', (els) => els.map((e) => ({ id: e.dataset.id, text: e.querySelector('.t').textContent, secondary: e.querySelector('.sw').classList.contains('secondary') })));
    const all = await http(`${demo.gateway}/api/v1/presence-definitions`);
    const list = Array.isArray(all) ? all : (all.definitions || all.entities);
    const bySys = (sp) => list.find((d) => String(d.systemPresence).toUpperCase().replace(/\s/g, '_').replace('ONQUEUE', 'ON_QUEUE') === sp && d.primary !== false && !d.deactivated);
    const target = ['AWAY', 'BREAK', 'BUSY', 'AVAILABLE'].map(bySys).find((d) => d && u.presence.systemPresence !== String(d.systemPresence).toUpperCase());
    assert.ok(target, `no target definition among ${JSON.stringify(defs)}`);
    await page.click(`.choice[data-id="${target.id}"]`);
    await page.fill('#message', 'browser test');
    await page.click('#apply');
    await eventually(async () => /Presence set to/.test(await page.textContent('#result')), { timeoutMs: 10000, what: 'success message' });
    await eventually(async () => {
      const me = (await simUsers(demo.simulator)).find((x) => x.id === u.id);
      return me.presence.definitionId === target.id;
    }, { timeoutMs: 10000, what: 'the simulator has the new presence' });
    // The page follows the stream to the new state.
    await eventually(async () => (await page.evaluate((id) => window.__presence.agents.get(id)?.presence?.definitionId, u.id)) === target.id, { timeoutMs: 10000, what: 'desktop shows the new presence' });
    assert.equal(await page.textContent('#my-label'), target.label || (await page.evaluate((id) => window.__presence.agents.get(id).presence.label, u.id)));
    assert.match(await page.textContent('#interactions'), /No active interaction/);
    await screenshot(page, 'desktop-after-change');
    assert.deepEqual(page.pageErrors, []);
    await page.close();
  });

  /** A refused choice is explained in words, not left silent. */
  test('an invalid presence is explained', async () => {
    const users = await simUsers(demo.simulator);
    const page = await newPage(browser, { width: 1100, height: 700 });
    await page.goto(`${demo.gateway}/desktop.html?agent=${encodeURIComponent(users[1].id)}`);
    await eventually(async () => (await page.$$('.choice')).length > 0, { what: 'presence choices' });
    // Forge a choice the gateway does not know, as a stale page would send.
    await page.evaluate(() => {
      const input = document.querySelector('.choice input');
      input.value = 'no-such-definition';
      input.checked = true;
    });
    await page.click('#apply');
    await eventually(async () => /cannot be chosen|refused|not understood/i.test(await page.textContent('#result')), { timeoutMs: 10000, what: 'error shown in words' });
    await screenshot(page, 'desktop-invalid-choice');
    await page.close();
  });
});
