// The board's layout with the demo's 500 agents (issue 21 review): the
// wallboard at 1280×720, 1920×1080 and 3840×2160 shows whole queue cards in
// at most ~1/3 of the height, many tiles per page in whole rows only, and
// pages through them; the dashboard at 1280, 1600 and 1920 px wide cuts
// nothing off; the agent detail shows the agent's id and links its desktop.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  eventually, launchBrowser, newPage, simUsers, startDemo,
} from './support.mjs';

const AGENTS = 500;

/** What the wallboard shows now: tiles wholly inside the board, cut ones, columns, cards, the summary's share of the height. */
function wallFacts(page) {
  return page.evaluate(() => {
    const b = document.getElementById('board').getBoundingClientRect();
    const tiles = [...document.querySelectorAll('.tile:not([hidden])')].map((t) => ({ r: t.getBoundingClientRect(), id: t.dataset.id }));
    const whole = tiles.filter(({ r }) => r.top >= b.top - 0.5 && r.bottom <= b.bottom + 0.5 && r.left >= 0 && r.right <= innerWidth + 0.5);
    const sum = document.getElementById('queue-summary').getBoundingClientRect();
    const cards = [...document.querySelectorAll('#queue-cards .qcard:not([hidden])')];
    const cardsCut = cards.filter((c) => {
      const r = c.getBoundingClientRect();
      return c.scrollHeight > c.clientHeight + 1 || c.scrollWidth > c.clientWidth + 1 || r.bottom > sum.bottom + 0.5 || r.right > innerWidth + 0.5;
    }).map((c) => c.querySelector('.qn').textContent);
    // Text inside a card wider than its line (a label or figure cut short).
    const textCut = cards.flatMap((c) => [...c.querySelectorAll('.qw, .qa > span, .qm')]
      .filter((e) => e.getBoundingClientRect().right > c.getBoundingClientRect().right + 0.5).map((e) => e.textContent));
    return {
      tiles: whole.length,
      ids: whole.map((t) => t.id),
      cut: tiles.length - whole.length,
      cols: new Set(whole.map(({ r }) => Math.round(r.left))).size,
      cards: cards.length,
      allCards: document.querySelectorAll('#queue-cards .qcard').length,
      cardsCut,
      textCut,
      summaryShare: sum.height / innerHeight,
      page: document.getElementById('page-ind').textContent,
    };
  });
}

describe('board layout with 500 agents', () => {
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

  /** 1920×1080: ≥ 30 whole tiles in ≥ 5 columns, no tile or card cut, the summary ≤ 40 % of the height; pages 2 and 3 show different agents, again in whole rows. */
  test('wallboard at 1920x1080', async () => {
    const wall = await newPage(browser, { width: 1920, height: 1080 });
    await wall.goto(`${demo.gateway}/?view=wallboard&page_secs=3&group=`);
    // The first paint may lay tiles out before the queue cards arrive; wait
    // (with a deadline) for the layout to settle, then hold it to the rules.
    let p1;
    await eventually(async () => { p1 = await wallFacts(wall); return p1.tiles >= 30 && p1.cards > 0 && p1.cut === 0; }, { timeoutMs: 30000, what: '30 whole tiles and the queue cards' });
    assert.ok(p1.cols >= 5, `${p1.cols} columns`);
    assert.equal(p1.cut, 0, 'no tile cut at the bottom or the side');
    assert.deepEqual(p1.cardsCut, [], 'no queue card clipped');
    assert.deepEqual(p1.textCut, [], 'no queue card text cut');
    assert.ok(p1.summaryShare <= 0.4, `queue summary takes ${(p1.summaryShare * 100).toFixed(0)} % of the height`);
    const size = await wall.$eval('.tile .nm', (e) => parseFloat(getComputedStyle(e).fontSize));
    assert.ok(size >= 20, `tile name ${size}px`);
    // Two consecutive pages, each read with its indicator in one go.
    const onPage = async (n) => {
      let f;
      await eventually(async () => { f = await wallFacts(wall); return f.page.startsWith(`Page ${n} `) && f.tiles >= 30 && f.cut === 0; }, { timeoutMs: 10000, what: `page ${n} painted in whole rows` });
      return f;
    };
    const p2 = await onPage(2);
    const p3 = await onPage(3);
    for (const p of [p2, p3]) assert.equal(p.cut, 0, `no tile cut on ${p.page}`);
    assert.ok(p3.ids.every((id) => !p2.ids.includes(id)), 'the next page shows other agents');
    const pages = Number((await wall.textContent('#page-ind')).match(/of (\d+)/)[1]);
    assert.ok(pages <= Math.ceil(AGENTS / 30), `${pages} pages for ${AGENTS} agents`);
    assert.deepEqual(wall.pageErrors, []);
    await wall.close();
  });

  /** 1280×720 and 3840×2160: whole tiles and cards only, the summary ≤ 40 % of the height (paged when the queues do not fit). */
  test('wallboard at 1280x720 and 3840x2160', async () => {
    for (const [width, height, minTiles] of [[1280, 720, 15], [3840, 2160, 30]]) {
      const wall = await newPage(browser, { width, height });
      await wall.goto(`${demo.gateway}/?view=wallboard&group=`);
      // As at 1920: wait (with a deadline) for the first layout to settle.
      let f;
      await eventually(async () => { f = await wallFacts(wall); return f.tiles >= minTiles && f.cards > 0 && f.cut === 0; }, { timeoutMs: 30000, what: `${minTiles} whole tiles at ${width}` });
      assert.equal(f.cut, 0, `no tile cut at ${width}`);
      assert.deepEqual(f.cardsCut, [], `no card clipped at ${width}`);
      assert.deepEqual(f.textCut, [], `no card text cut at ${width}`);
      assert.ok(f.summaryShare <= 0.4, `summary ${(f.summaryShare * 100).toFixed(0)} % at ${width}`);
      if (f.cards < f.allCards) assert.match(await wall.textContent('#queue-page'), /^1–\d+ of \d+$/);
      assert.deepEqual(wall.pageErrors, []);
      await wall.close();
    }
  });

  /** The dashboard at 1280, 1600 and 1920 px: no queue card, chip or toolbar control past the right edge or clipped; the routing title on one line; every queue one click away. */
  test('dashboard: nothing cut off at 1280, 1600, 1920', async () => {
    for (const width of [1280, 1600, 1920]) {
      const page = await newPage(browser, { width, height: 1000 });
      await page.goto(`${demo.gateway}/`);
      await eventually(async () => (await page.$$eval('#queue-cards .qcard:not([hidden])', (els) => els.length)) > 0, { timeoutMs: 30000, what: 'cards' });
      const cut = await page.evaluate(() => {
        const out = [];
        for (const el of document.querySelectorAll('#queue-cards .qcard:not([hidden]), .chip, .chip-title, .toolbar > *, .top > *:not([hidden])')) {
          const r = el.getBoundingClientRect();
          if (r.right > innerWidth + 0.5 || el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1) out.push(el.id || el.textContent.trim().slice(0, 30));
        }
        return out;
      });
      assert.deepEqual(cut, [], `cut at ${width}`);
      const lines = await page.$eval('#routing-title', (e) => Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)));
      assert.equal(lines, 1, `routing title on ${lines} lines at ${width}`);
      const all = await page.$$eval('#queue-cards .qcard', (els) => els.length);
      const shown = await page.$$eval('#queue-cards .qcard:not([hidden])', (els) => els.length);
      if (shown < all) {
        await page.click('#queue-more');
        await eventually(async () => (await page.$$eval('#queue-cards .qcard:not([hidden])', (els) => els.length)) === all, { what: `all ${all} queues at ${width}` });
        assert.equal(await page.getAttribute('#queue-more', 'aria-expanded'), 'true');
      }
      assert.deepEqual(page.pageErrors, []);
      await page.close();
    }
  });

  /** The detail dialog shows the agent's id and links its desktop, which opens for that agent. */
  test('agent detail: id and desktop link', async () => {
    const users = await simUsers(demo.simulator);
    const u = users[0];
    const page = await newPage(browser, { width: 1600, height: 1000 });
    await page.goto(`${demo.gateway}/?q=${encodeURIComponent(u.name)}`);
    const tile = `.tile[data-id="${u.id}"]`;
    await eventually(async () => page.isVisible(tile), { what: 'the tile' });
    await page.click(tile);
    await eventually(async () => page.isVisible('#detail[role="dialog"]'), { what: 'dialog' });
    assert.equal(await page.textContent('#detail-id'), u.id);
    const link = page.locator('#detail a', { hasText: 'Open agent desktop' });
    assert.equal(await link.count(), 1);
    const href = await link.getAttribute('href');
    assert.equal(new URL(href, demo.gateway).searchParams.get('agent'), u.id);
    const [desk] = await Promise.all([page.context().waitForEvent('page'), link.click()]);
    await desk.waitForLoadState();
    assert.equal(new URL(desk.url()).searchParams.get('agent'), u.id);
    await eventually(async () => (await desk.textContent('body')).includes(u.name), { timeoutMs: 15000, what: 'the desktop names the agent' });
    await desk.close();
    assert.deepEqual(page.pageErrors, []);
    await page.close();
  });
});
