// The React example of docs/client.md, exactly as the doc shows it: extracted
// from the fenced block after the `react-example` marker, bundled with esbuild
// from npm, served next to the real gateway (`demo`) and rendered in Chromium.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { eventually, launchBrowser, newPage, repoRoot, screenshot, simUsers, startDemo, startPageServer } from './support.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The fenced block right after `<!-- react-example` in docs/client.md, byte for byte. */
export function reactExample() {
  const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'client.md'), 'utf8');
  const m = doc.match(/<!-- react-example[^>]*-->\n```jsx\n([\s\S]*?)\n```\n/);
  assert.ok(m, 'docs/client.md has a ```jsx block after the react-example marker');
  return m[1] + '\n';
}

describe('React example from docs/client.md', () => {
  let demo;
  let browser;
  let site;
  let dir;

  before(async () => {
    demo = await startDemo({ agents: 40 });
    browser = await launchBrowser();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-react-'));
    fs.writeFileSync(path.join(dir, 'example.jsx'), reactExample());
    // What a reader would do: bundle the example with React from npm, leaving
    // the gateway's module URL to the browser (the doc says so).
    const built = await esbuild.build({
      entryPoints: [path.join(dir, 'example.jsx')],
      bundle: true,
      format: 'esm',
      jsx: 'automatic',
      external: ['/presence-client.js'],
      nodePaths: [path.join(here, 'node_modules')],
      define: { 'process.env.NODE_ENV': '"development"' },
      write: false,
      logLevel: 'silent',
    });
    const html = '<!doctype html><meta charset="utf-8"><title>React example</title><link rel="icon" href="data:,"><div id="root"></div><script type="module" src="/app.js"></script>';
    site = await startPageServer({
      proxyTo: demo.gateway,
      files: {
        '/': { type: 'text/html', body: html },
        '/app.js': { type: 'text/javascript', body: built.outputFiles[0].text },
      },
    });
  });
  after(async () => {
    await browser?.close();
    await site?.close();
    await demo?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The bundled example renders every simulator agent with its presence and says Live, with no page error. */
  test('bundled verbatim, it shows live agents', async () => {
    const page = await newPage(browser);
    const consoleErrors = [];
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    await page.goto(`${site.url}/`);
    const users = await simUsers(demo.simulator);
    await eventually(async () => (await page.$$('li')).length === users.length, { timeoutMs: 20000, what: `${users.length} agents listed` });
    await eventually(async () => (await page.textContent('[role=status]')) === 'Live', { what: 'Live' });
    // Each simulator user, by id, with the simulator's current label.
    await eventually(async () => {
      const shown = Object.fromEntries(await page.$$eval('li', (els) => els.map((e) => [e.dataset.id, e.textContent])));
      const truth = await simUsers(demo.simulator);
      return truth.every((u) => shown[u.id] === `${u.name}: ${u.presence.label}`);
    }, { timeoutMs: 15000, what: 'every agent with the simulator’s presence' });
    await screenshot(page, 'react-example');
    assert.deepEqual(page.pageErrors, []);
    assert.deepEqual(consoleErrors, []);
    await page.close();
  });
});
