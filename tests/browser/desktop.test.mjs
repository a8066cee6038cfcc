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
    await eventually(async () => /cannot be chosen/i.test(await page.textContent('#result')), { timeoutMs: 10000, what: 'error shown in words' });
    // The gateway's own rule refused it: the words say so, and do not blame Genesys.
    const text = await page.textContent('#result');
    assert.match(text, /Refused by the gateway \(Genesys Cloud was not asked\)/);
    assert.match(text, /\[invalid_presence\]/);
    assert.doesNotMatch(text, /Genesys Cloud refused/);
    await screenshot(page, 'desktop-invalid-choice');
    assert.deepEqual(page.pageErrors, []);
    await page.close();
  });

  /** The visible text of the page (hidden parts excluded). */
  const visibleText = (page) => page.evaluate(() => document.body.innerText);

  /** An unknown agent id is said plainly: no presence choices, no "stale", no endless "Connecting…". */
  test('an unknown agent says so', async () => {
    const page = await newPage(browser, { width: 1100, height: 700 });
    await page.goto(`${demo.gateway}/desktop.html?agent=no-such-agent`);
    await eventually(async () => /No agent with id “no-such-agent” is known to the gateway/.test(await visibleText(page)), { what: 'unknown agent explained' });
    // The presence definitions load in parallel: wait until they are in,
    // then check they were not offered.
    await eventually(async () => (await page.evaluate(() => performance.getEntriesByType('resource').some((e) => e.name.includes('/api/v1/presence-definitions') && e.responseEnd > 0))), { what: 'definitions fetched' });
    assert.equal(await page.locator('.choice:visible').count(), 0, 'no presence choices');
    assert.equal(await page.locator('#apply:visible').count(), 0, 'no apply button');
    const text = await visibleText(page);
    assert.doesNotMatch(text, /stale|Connecting|Reconnecting/i);
    assert.equal(await page.evaluate(() => window.__presence.connection), 'closed', 'no stream held open for nobody');
    await screenshot(page, 'desktop-unknown-agent');
    assert.deepEqual(page.pageErrors, []);
    await page.close();
  });

  /** Without ?agent= the page says what to do instead of "Connecting…" forever. */
  test('no agent id says so', async () => {
    const page = await newPage(browser, { width: 1100, height: 700 });
    await page.goto(`${demo.gateway}/desktop.html`);
    await eventually(async () => /No agent chosen/.test(await visibleText(page)), { what: 'missing agent explained' });
    const text = await visibleText(page);
    assert.match(text, /\?agent=<agent id>/);
    assert.doesNotMatch(text, /stale|Connecting|Reconnecting/i);
    assert.equal(await page.locator('.choice:visible').count(), 0);
    assert.deepEqual(page.pageErrors, []);
    await page.close();
  });

  /** The page allows exactly the API's 250 characters: 250 go through to Genesys, 251 are refused by the gateway in words. */
  test('one message limit: 250 characters', async () => {
    await http(`${demo.simulator}/sim/churn`, { method: 'POST', body: { eventsPerSecond: 0 } });
    const users = await simUsers(demo.simulator);
    const u = users[2];
    const page = await newPage(browser, { width: 1100, height: 700 });
    await page.goto(`${demo.gateway}/desktop.html?agent=${encodeURIComponent(u.id)}`);
    await eventually(async () => (await page.$$('.choice')).length > 0, { what: 'presence choices' });
    assert.equal(await page.$eval('#message', (e) => e.maxLength), 250);
    // Typing more than the limit stops at the limit.
    await page.locator('#message').pressSequentially('m'.repeat(255), { delay: 0 });
    assert.equal((await page.inputValue('#message')).length, 250);
    assert.equal(await page.textContent('#message-limit'), '250/250');
    const target = u.presence.systemPresence === 'AWAY' ? 'BREAK' : 'AWAY';
    const defs = await http(`${demo.gateway}/api/v1/presence-definitions`);
    const t = (defs.definitions || defs).find((d) => String(d.systemPresence).toUpperCase() === target && d.primary !== false && !d.deactivated);
    await page.click(`.choice[data-id="${t.id}"]`);
    await page.click('#apply');
    await eventually(async () => /Presence set to/.test(await page.textContent('#result')), { timeoutMs: 10000, what: '250 characters accepted' });
    await eventually(async () => (await simUsers(demo.simulator)).find((x) => x.id === u.id).presence.message === 'm'.repeat(250), { what: 'the 250-character message in Genesys' });
    // A page that somehow sends 251 (an old copy with another limit) is refused by the gateway, in words.
    await page.evaluate(() => { const m = document.getElementById('message'); m.removeAttribute('maxlength'); m.value = 'n'.repeat(251); });
    await page.click(`.choice[data-id="${t.id}"]`);
    await page.click('#apply');
    await eventually(async () => /\[invalid_message\]/.test(await page.textContent('#result')), { timeoutMs: 10000, what: '251 refused' });
    const text = await page.textContent('#result');
    assert.match(text, /Refused by the gateway \(Genesys Cloud was not asked\)/);
    assert.match(text, /at most 250 characters/);
    assert.deepEqual(page.pageErrors, []);
    await page.close();
  });

  /** When Genesys Cloud is the one saying no (here: its rate limit), the words name Genesys Cloud, not the gateway's rules. Last: the fault outlives the test. */
  test('a refusal from Genesys names Genesys', async () => {
    const users = await simUsers(demo.simulator);
    const u = users[3];
    const page = await newPage(browser, { width: 1100, height: 700 });
    await page.goto(`${demo.gateway}/desktop.html?agent=${encodeURIComponent(u.id)}`);
    await eventually(async () => (await page.$$('.choice')).length > 0, { what: 'presence choices' });
    await eventually(async () => (await page.textContent('#agent-name')) === u.name, { what: 'agent loaded' });
    const defs = await http(`${demo.gateway}/api/v1/presence-definitions`);
    const target = u.presence.systemPresence === 'MEETING' ? 'TRAINING' : 'MEETING';
    const t = (defs.definitions || defs).find((d) => String(d.systemPresence).toUpperCase() === target && d.primary !== false && !d.deactivated);
    await http(`${demo.simulator}/sim/faults`, { method: 'POST', body: { kind: 'rate_limit', count: 40 } });
    await page.click(`.choice[data-id="${t.id}"]`);
    await page.click('#apply');
    await eventually(async () => /\[rate_limited\]/.test(await page.textContent('#result')), { timeoutMs: 30000, what: 'the rate limit explained' });
    const text = await page.textContent('#result');
    assert.match(text, /Genesys Cloud/);
    assert.doesNotMatch(text, /Refused by the gateway/);
    await screenshot(page, 'desktop-genesys-refusal');
    await page.close();
  });
});
