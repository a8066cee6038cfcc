// Dashboard frame-time benchmark (design.md: "the dashboard stays smooth,
// p95 frame ≤ 16 ms, with 5 000 agents and 200 changes/s"). Prints figures;
// it is not a test and asserts nothing.
//
// By default it starts `presence-gateway demo --agents 5000` itself (binary:
// PRESENCE_GATEWAY_BIN or target/release, else target/debug). To measure
// against a demo you already run, set GATEWAY_URL and SIM_URL.
//
// Env: AGENTS (5000), EVENTS_PER_SECOND (200), DURATION_S (20),
//      WIDTH/HEIGHT (1920x1080), DASHBOARD_QUERY (e.g. "group=queue&sort=time").

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const AGENTS = Number(process.env.AGENTS || 5000);
const EPS = Number(process.env.EVENTS_PER_SECOND || 200);
const DURATION_S = Number(process.env.DURATION_S || 20);
const WIDTH = Number(process.env.WIDTH || 1920);
const HEIGHT = Number(process.env.HEIGHT || 1080);
const QUERY = process.env.DASHBOARD_QUERY || '';
const FRAME_MS = 1000 / 60;

async function startDemo() {
  const candidates = [process.env.PRESENCE_GATEWAY_BIN,
    path.join(repoRoot, 'target', 'release', 'presence-gateway'),
    path.join(repoRoot, 'target', 'debug', 'presence-gateway')].filter(Boolean);
  const bin = candidates.find((p) => fs.existsSync(p));
  if (!bin) throw new Error(`no gateway binary (tried ${candidates.join(', ')}); build it or set GATEWAY_URL/SIM_URL`);
  const child = spawn(bin, ['demo', '--listen', '127.0.0.1:0', '--sim-listen', '127.0.0.1:0', '--agents', String(AGENTS)],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' } });
  let out = '';
  const urls = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no READY line within 120 s')), 120000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^READY gateway=(\S+) simulator=(\S+)\s*$/m);
      if (m) { clearTimeout(t); resolve({ gateway: m[1], simulator: m[2] }); }
    });
    child.once('exit', (c) => { clearTimeout(t); reject(new Error(`gateway exited (${c}) before READY`)); });
  });
  child.stdout.resume();
  return { ...urls, bin, stop: async () => { child.kill('SIGTERM'); await once(child, 'exit').catch(() => {}); } };
}

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const demo = process.env.GATEWAY_URL && process.env.SIM_URL
    ? { gateway: process.env.GATEWAY_URL, simulator: process.env.SIM_URL, bin: '(already running)', stop: async () => {} }
    : await startDemo();
  const gateway = demo.gateway.replace(/\/$/, '');
  const simulator = demo.simulator.replace(/\/$/, '');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: WIDTH, height: HEIGHT } });
    await page.goto(`${gateway}/${QUERY ? '?' + QUERY : ''}`);
    const deadline = Date.now() + 60000;
    let n = 0;
    while (Date.now() < deadline) {
      n = await page.evaluate(() => (window.__presence ? window.__presence.agents.size : 0));
      if (n >= AGENTS) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    if (n < AGENTS) throw new Error(`dashboard holds ${n} agents after 60 s, expected ${AGENTS}`);

    const churn = await fetch(`${simulator}/sim/churn`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ eventsPerSecond: EPS }) });
    if (!churn.ok) throw new Error(`POST /sim/churn → ${churn.status}`);

    // Measure in the page: rAF deltas, long-animation-frame entries (where
    // supported), and how many changes the page applied meanwhile.
    const result = await page.evaluate(async (durationMs) => {
      const deltas = [];
      const loafs = [];
      let obs = null;
      try {
        obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) loafs.push(e.duration); });
        obs.observe({ type: 'long-animation-frame', buffered: false });
      } catch { obs = null; }
      let changes = 0;
      const c = window.__presence;
      const seq0 = c.seq;
      if (window.__dashboardStats) Object.assign(window.__dashboardStats, { rebuilds: 0, rebuildMs: 0, paints: 0, paintMs: 0, maxMs: 0 });
      const t0 = performance.now();
      let last = t0;
      await new Promise((resolve) => {
        function f(t) {
          deltas.push(t - last);
          last = t;
          if (t - t0 < durationMs) requestAnimationFrame(f); else resolve();
        }
        requestAnimationFrame((t) => { last = t; requestAnimationFrame(f); });
      });
      if (obs) obs.disconnect();
      changes = c.seq - seq0;
      const st = window.__dashboardStats ? { ...window.__dashboardStats } : null;
      return { st, deltas, loafs, loafSupported: !!obs, seqAdvance: changes, agents: c.agents.size, level: c.freshness().level, elapsed: performance.now() - t0 };
    }, DURATION_S * 1000);

    await fetch(`${simulator}/sim/churn`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ eventsPerSecond: 0 }) }).catch(() => {});

    const d = result.deltas.slice().sort((a, b) => a - b);
    const expected = Math.round(result.elapsed / FRAME_MS);
    const dropped = result.deltas.reduce((s, x) => s + Math.max(0, Math.round(x / FRAME_MS) - 1), 0);
    const f = (x) => x.toFixed(1);
    console.log(`dashboard frame times — ${result.agents} agents, churn ${EPS} events/s, ${(result.elapsed / 1000).toFixed(1)} s, ${WIDTH}x${HEIGHT}${QUERY ? ', ' + QUERY : ''}`);
    console.log(`gateway: ${gateway} (${demo.bin})`);
    console.log(`frames: ${result.deltas.length}  p50 ${f(pct(d, 50))} ms  p95 ${f(pct(d, 95))} ms  p99 ${f(pct(d, 99))} ms  max ${f(d[d.length - 1])} ms`);
    console.log(`dropped frames: ${dropped} of ${expected} expected (${((100 * dropped) / Math.max(1, expected)).toFixed(1)} %)`);
    if (result.loafSupported) {
      const l = result.loafs.slice().sort((a, b) => a - b);
      console.log(`long animation frames (>50 ms): ${l.length}${l.length ? `  p95 ${f(pct(l, 95))} ms  max ${f(l[l.length - 1])} ms` : ''}`);
    }
    if (result.st) {
      const s = result.st;
      console.log(`dashboard script: ${s.rebuilds} view rebuilds avg ${f(s.rebuildMs / Math.max(1, s.rebuilds))} ms; ${s.paints} paints avg ${f(s.paintMs / Math.max(1, s.paints))} ms; worst frame task ${f(s.maxMs)} ms`);
    }
    console.log(`stream: seq advanced by ${result.seqAdvance} during the run; indicator at end: ${result.level}`);
  } finally {
    await browser.close();
    await demo.stop();
  }
}

main().catch((e) => { console.error(e.message || e); process.exit(1); });
