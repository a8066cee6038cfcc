// The board supervisors ask for (issue 21), against the real gateway +
// simulator (`demo`): queue names (no id shown anywhere), queue figures equal
// to what the simulator holds, a threshold crossing marking a tile, the
// wallboard view, the light theme, the agent detail panel with today's
// timeline, a supervisor's change from the board reaching /sim/state,
// keyboard navigation, and the presences the desktop offers. Saves the
// screenshots docs/ links (docs/img/board*.png).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  eventually, http, launchBrowser, newPage, repoRoot, simUsers, startDemo,
} from './support.mjs';

const AGENTS = 120;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
const docsImg = path.join(repoRoot, 'docs', 'img');

async function docShot(page, name) {
  fs.mkdirSync(docsImg, { recursive: true });
  await page.screenshot({ path: path.join(docsImg, `${name}.png`) });
}

/** Every text a person (or a screen reader) can get from the page. */
function visibleTexts(page) {
  return page.evaluate(() => {
    const out = [document.body.innerText];
    for (const el of document.querySelectorAll('[aria-label], [title]')) out.push(el.getAttribute('aria-label') || '', el.getAttribute('title') || '');
    for (const o of document.querySelectorAll('option')) out.push(o.textContent);
    return out.join('\n');
  });
}

describe('the board supervisors ask for', () => {
  let demo;
  let browser;
  let page;

  before(async () => {
    demo = await startDemo({ agents: AGENTS });
    // Churn off: figures hold still while compared.
    await http(`${demo.simulator}/sim/churn`, { method: 'POST', body: { eventsPerSecond: 0 } });
    browser = await launchBrowser();
    page = await newPage(browser, { width: 1600, height: 1000 });
  });

  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  /** Queues carry their names everywhere: filter, group headers, summary; no UUID is shown anywhere on the page. */
  test('queue names, no UUID shown', async () => {
    await page.goto(`${demo.gateway}/?group=queue`);
    const sim = await http(`${demo.simulator}/sim/queues`);
    await eventually(async () => (await page.$$eval('#queue-cards .qcard', (els) => els.length)) === sim.queues.length, { what: 'one card per queue' });
    const options = await page.$$eval('#f-queue option', (els) => els.map((o) => o.textContent).filter((t) => t !== 'All').sort());
    assert.deepEqual(options, sim.queues.map((q) => q.name).sort());
    const heads = await page.$$eval('.ghead:not([hidden]) .gn', (els) => els.map((e) => e.textContent));
    assert.ok(heads.length > 0);
    for (const h of heads) assert.ok(sim.queues.some((q) => q.name === h) || h === 'No queue', `header ${h}`);
    const text = await visibleTexts(page);
    assert.doesNotMatch(text, UUID, 'a UUID is shown on the page');
    assert.deepEqual(page.pageErrors, []);
  });

  /** The queue summary shows the simulator's figures: waiting customers and agents by routing status. */
  test('queue figures equal to what the simulator holds', async () => {
    const sim = await http(`${demo.simulator}/sim/queues`);
    const q = sim.queues[0];
    for (const m of ['chat', 'email', 'message']) {
      await http(`${demo.simulator}/sim/queues/${q.id}/waiting`, { method: 'POST', body: { mediaType: m, count: 0 } });
    }
    await http(`${demo.simulator}/sim/queues/${q.id}/waiting`, { method: 'POST', body: { mediaType: 'voice', count: 4, waitingSecs: 95 } });
    const card = `#queue-cards .qcard[data-queue="${q.id}"]`;
    await eventually(async () => (await page.$eval(`${card} [data-fig="waiting"]`, (e) => e.textContent).catch(() => '')) === '4', { timeoutMs: 30000, what: 'waiting 4 on the card' });
    const longest = await page.$eval(`${card} [data-fig="longest"]`, (e) => e.textContent);
    assert.match(longest, /^1:(3[5-9]|[4-5]\d)$|^2:\d\d$/, `longest wait ${longest}`);
    // Agent figures: from the simulator's truth.
    await eventually(async () => {
      const users = await simUsers(demo.simulator);
      const members = users.filter((u) => u.queues.some((x) => x.id === q.id));
      const on = members.filter((u) => u.presence.systemPresence === 'ON_QUEUE');
      const want = {
        onQueue: on.length,
        idle: on.filter((u) => u.routingStatus.status === 'IDLE').length,
        interacting: on.filter((u) => u.routingStatus.status === 'INTERACTING').length,
        notResponding: on.filter((u) => u.routingStatus.status === 'NOT_RESPONDING').length,
        offQueue: members.length - on.length,
      };
      const got = await page.$$eval(`${card} [data-fig]`, (els) => Object.fromEntries(els.map((e) => [e.dataset.fig, e.textContent])));
      return Object.entries(want).every(([k, v]) => got[k] === String(v));
    }, { timeoutMs: 20000, what: 'queue agent figures equal /sim/state' });
    // The group header of that queue carries the same figures.
    const head = await page.$eval(`.ghead[data-key="${q.id}"] .mini`, (e) => e.textContent).catch(() => '');
    if (head) assert.match(head, /Waiting 4/);
    await docShot(page, 'board');
  });

  /** A threshold (here from the URL) crossed marks the tile and raises the alert count. */
  test('a threshold crossing marks a tile', async () => {
    const users = await simUsers(demo.simulator);
    const u = users.find((x) => x.presence.systemPresence !== 'BREAK');
    await page.goto(`${demo.gateway}/?thresholds=BREAK:2&q=${encodeURIComponent(u.name)}`);
    await http(`${demo.simulator}/sim/users/${u.id}/presence`, { method: 'POST', body: { systemPresence: 'BREAK' } });
    const tile = `.tile[data-id="${u.id}"]`;
    await eventually(async () => page.$eval(tile, (e) => e.style.getPropertyValue('--pc').includes('BREAK')).catch(() => false), { what: 'tile on BREAK' });
    await eventually(async () => page.$eval(tile, (e) => e.classList.contains('over')).catch(() => false), { timeoutMs: 10000, what: 'tile marked over threshold' });
    assert.match(await page.getAttribute(tile, 'aria-label'), /over threshold/);
    assert.match(await page.textContent('#alerts'), /over threshold/);
    // Sort by either timer is offered.
    const sorts = await page.$$eval('#sort option', (els) => els.map((o) => o.value));
    assert.deepEqual(sorts, ['name', 'time', 'routing']);
  });

  /** Keyboard: the board's tiles are focusable, arrow keys move, Enter opens the detail, Escape closes it. */
  test('keyboard navigation and one label per tile', async () => {
    await page.goto(`${demo.gateway}/`);
    await eventually(async () => (await page.$$eval('.tile:not([hidden])', (els) => els.length)) > 10, { what: 'tiles' });
    // Tab lands on the board, Home on its first tile (a headless page has no
    // window focus, so the board's own focus redirect does not run here).
    await page.focus('#board');
    await page.keyboard.press('Home');
    const first = await page.evaluate(() => document.activeElement.dataset.id);
    assert.ok(first, 'focus went to a tile');
    await page.keyboard.press('ArrowRight');
    const second = await page.evaluate(() => document.activeElement.dataset.id);
    assert.ok(second && second !== first, 'ArrowRight moved');
    await page.keyboard.press('ArrowDown');
    const below = await page.evaluate(() => document.activeElement.dataset.id);
    assert.ok(below && below !== second, 'ArrowDown moved');
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('ArrowUp');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.id), first, 'back to the first tile');
    const label = await page.evaluate(() => document.activeElement.getAttribute('aria-label'));
    const name = await page.evaluate((id) => window.__presence.agents.get(id).name, first);
    assert.ok(label.startsWith(`${name}, `), `label ${label}`);
    assert.match(label, / for (less than a minute|\d+ (minute|hour))/);
    await page.keyboard.press('Enter');
    await eventually(async () => page.isVisible('#detail'), { what: 'detail open' });
    assert.equal(await page.textContent('#detail-name'), name);
    await page.keyboard.press('Escape');
    await eventually(async () => !(await page.isVisible('#detail')), { what: 'detail closed' });
    assert.equal(await page.evaluate(() => document.activeElement.dataset.id), first, 'focus back on the tile');
  });

  /** At 1280×720 no presence label, routing badge or timer of an On Queue agent is cut off (the label and the badge have their own lines). */
  test('nothing cut off at 1280x720', async () => {
    const small = await newPage(browser, { width: 1280, height: 720 });
    await small.goto(`${demo.gateway}/?state=ON_QUEUE`);
    await eventually(async () => (await small.$$eval('.tile:not([hidden])', (els) => els.length)) > 5, { what: 'tiles' });
    const cut = await small.$$eval('.tile:not([hidden])', (els) => els.flatMap((t) => [...t.querySelectorAll('.lb, .badge, .t, .rt')]
      .filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => `${t.querySelector('.nm').textContent}: ${e.textContent}`)));
    assert.deepEqual(cut, []);
    await small.close();
  });

  /** Click a tile: a dialog with state, queues, today's timeline and time per state; a supervisor's change reaches /sim/state. */
  test('agent detail with timeline, and a change from the board', async () => {
    const users = await simUsers(demo.simulator);
    const u = users.find((x) => x.presence.systemPresence !== 'MEETING');
    // Give the agent some history today.
    await http(`${demo.simulator}/sim/users/${u.id}/presence`, { method: 'POST', body: { systemPresence: 'AVAILABLE' } });
    await page.goto(`${demo.gateway}/?q=${encodeURIComponent(u.name)}`);
    const tile = `.tile[data-id="${u.id}"]`;
    await eventually(async () => page.isVisible(tile), { what: 'the tile' });
    await page.click(tile);
    await eventually(async () => page.isVisible('#detail[role="dialog"]'), { what: 'dialog' });
    assert.equal(await page.textContent('#detail-name'), u.name);
    const queues = await page.textContent('#detail-queues');
    for (const q of u.queues) assert.ok(queues.includes(q.name), `queue ${q.name} in ${queues}`);
    await eventually(async () => (await page.$$eval('#detail-timeline .seg', (els) => els.length)) > 0, { what: 'timeline segments' });
    await eventually(async () => (await page.$$eval('#detail-totals tr[data-kind="presence"]', (els) => els.length)) > 0, { what: 'time per state' });
    assert.ok(await page.isVisible('#detail-change'), 'the change form (auth off: full rights)');
    await docShot(page, 'board-detail');
    const meeting = await page.$eval('#detail-presence-select', (s) => [...s.options].find((o) => o.textContent === 'Meeting')?.value);
    assert.ok(meeting, 'Meeting offered');
    await page.selectOption('#detail-presence-select', meeting);
    await page.click('#detail-apply');
    await eventually(async () => (await page.textContent('#detail-result')) === 'Changed.', { timeoutMs: 15000, what: 'change confirmed' });
    await eventually(async () => (await simUsers(demo.simulator)).find((x) => x.id === u.id).presence.systemPresence === 'MEETING', { what: '/sim/state MEETING' });
    await eventually(async () => (await page.textContent('#detail-presence')).startsWith('Meeting'), { what: 'the panel follows' });
    await page.click('#detail-close');
    assert.deepEqual(page.pageErrors, []);
  });

  /** ?view=wallboard: no toolbar, larger type scaled to the screen, queue summary on top, auto-paging. */
  test('wallboard view', async () => {
    const wall = await newPage(browser, { width: 1920, height: 1080 });
    await wall.goto(`${demo.gateway}/?view=wallboard&page_secs=3&group=`);
    await eventually(async () => (await wall.$$eval('.tile:not([hidden])', (els) => els.length)) > 5, { what: 'tiles' });
    assert.equal(await wall.isVisible('#toolbar'), false, 'toolbar hidden');
    const size = await wall.$eval('.tile .nm', (e) => parseFloat(getComputedStyle(e).fontSize));
    assert.ok(size >= 20, `tile name ${size}px`);
    await eventually(async () => wall.isVisible('#queue-summary'), { what: 'queue summary' });
    const order = await wall.evaluate(() => {
      const q = document.getElementById('queue-summary').getBoundingClientRect().top;
      const b = document.getElementById('board').getBoundingClientRect().top;
      return q < b;
    });
    assert.ok(order, 'queue summary above the board');
    await eventually(async () => (await wall.textContent('#page-ind')).startsWith('Page 2'), { timeoutMs: 10000, what: 'auto-paged to page 2' });
    await docShot(wall, 'board-wallboard');
    assert.deepEqual(wall.pageErrors, []);
    await wall.close();
  });

  /** The light theme follows prefers-color-scheme, and the toggle switches it. */
  test('light theme', async () => {
    const light = await browser.newPage({ viewport: { width: 1280, height: 720 }, colorScheme: 'light' });
    await light.goto(`${demo.gateway}/`);
    const bg = () => light.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(await bg(), 'rgb(244, 246, 249)');
    await light.click('#theme-toggle');
    assert.equal(await bg(), 'rgb(11, 14, 20)');
    await light.click('#theme-toggle');
    assert.equal(await bg(), 'rgb(244, 246, 249)');
    await light.close();
  });

  /** The desktop offers the [board] desktop presences: no Idle, no Offline by default. */
  test('desktop presences from the board config', async () => {
    const users = await simUsers(demo.simulator);
    const d = await newPage(browser, { width: 1000, height: 800 });
    await d.goto(`${demo.gateway}/desktop.html?agent=${users[0].id}`);
    await eventually(async () => (await d.$$eval('#choices .choice', (els) => els.length)) > 0, { what: 'choices' });
    const labels = await d.$$eval('#choices .choice .t', (els) => els.map((e) => e.textContent));
    assert.ok(!labels.includes('Idle') && !labels.includes('Offline'), labels.join());
    assert.ok(labels.includes('On Queue') && labels.includes('Available'), labels.join());
    await d.close();
  });
});
