// Shared helpers for the browser tests: start the real product (the gateway's
// `demo` command: gateway + built-in simulator), launch Debian's chromium
// through playwright-core, talk to the simulator's /sim control API, and cut
// the page's network through a small TCP proxy the test controls.
//
// No fixed ports (everything binds 127.0.0.1:0) and no bare sleeps: every
// wait is a condition polled against a deadline (`eventually`).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import nodeHttp from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const screenshotDir = path.join(repoRoot, 'artifacts', 'screenshots');

/** Launch flags for Debian's chromium in a sandboxed, offline CI. */
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually(fn, { timeoutMs = 15000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Starts `presence-gateway demo` on ephemeral ports and resolves once it
 * prints `READY gateway=… simulator=…`. The binary is target/debug/presence-gateway
 * unless PRESENCE_GATEWAY_BIN says otherwise. `listen` / `simListen` pin an
 * address (a restart on the address a first run was given).
 */
export async function startDemo({ agents = 200, extraArgs = [], readyTimeoutMs = 60000, listen = '127.0.0.1:0', simListen = '127.0.0.1:0' } = {}) {
  const bin = process.env.PRESENCE_GATEWAY_BIN || path.join(repoRoot, 'target', 'debug', 'presence-gateway');
  if (!fs.existsSync(bin)) {
    throw new Error(`gateway binary not found at ${bin}: run \`cargo build\` first or set PRESENCE_GATEWAY_BIN`);
  }
  const args = ['demo', '--listen', listen, '--sim-listen', simListen, '--agents', String(agents), ...extraArgs];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' } });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err = (err + d).slice(-8000); });
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^READY gateway=(\S+) simulator=(\S+)\s*$/m);
      if (m) resolve({ gateway: m[1].replace(/\/$/, ''), simulator: m[2].replace(/\/$/, '') });
    });
    child.once('exit', (code, sig) => reject(new Error(`gateway exited before READY (code ${code}, signal ${sig})\n${err}`)));
  });
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no READY line within ${readyTimeoutMs} ms\nstdout: ${out}\nstderr: ${err}`)), readyTimeoutMs); });
  try {
    const urls = await Promise.race([ready, timeout]);
    child.stdout.resume();
    return {
      ...urls,
      child,
      stderr: () => err,
      /** SIGTERM (a graceful drain), SIGKILL after `graceMs`. */
      async stop({ graceMs = 5000 } = {}) {
        if (child.exitCode !== null || child.signalCode) return;
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await once(child, 'exit').catch(() => {});
        clearTimeout(t);
      },
    };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** JSON over HTTP with a clear error when the status is not 2xx. */
export async function http(url, { method = 'GET', body, headers = {} } = {}) {
  const res = await fetch(url, {
    method,
    headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url} → ${res.status} ${text.slice(0, 300)}`);
  try { return text ? JSON.parse(text) : null; } catch { return text; }
}

/** The simulator's ground truth: [{id, name, presence: {systemPresence, …}, …}]. */
export async function simUsers(simulator) {
  const s = await http(`${simulator}/sim/state`);
  return s.users;
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

/** Opens a page that fails the test on uncaught page errors. */
export async function newPage(browser, { width = 1600, height = 1000 } = {}) {
  const page = await browser.newPage({ viewport: { width, height } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  page.pageErrors = errors;
  return page;
}

export async function screenshot(page, name) {
  fs.mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`) });
}

/**
 * A TCP proxy in front of the gateway that the test can cut: `cut()` destroys
 * every open connection and refuses new ones (like a dropped network), and
 * `restore()` lets connections through again. Pages load through `url`.
 */
export async function startCuttableProxy(target) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  let cutNow = false;
  const server = net.createServer((client) => {
    if (cutNow) { client.destroy(); return; }
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() { cutNow = true; for (const s of sockets) s.destroy(); sockets.clear(); },
    restore() { cutNow = false; },
    async close() { this.cut(); await new Promise((r) => server.close(r)); },
  };
}

/**
 * A small static web server on 127.0.0.1:0 for pages that are not the
 * gateway's own: `files` maps a path ("/", "/app.js") to `{type, body}`.
 * With `proxyTo`, every other request is forwarded to that origin and its
 * answer streamed back unchanged (SSE included), like a dev server's proxy:
 * the page and the gateway then share one origin. Without it, other paths
 * are 404 and the page is cross-origin to the gateway.
 */
export async function startPageServer({ files, proxyTo } = {}) {
  const target = proxyTo ? new URL(proxyTo) : null;
  const server = nodeHttp.createServer((req, res) => {
    const pathOnly = req.url.split('?')[0];
    const f = files[pathOnly];
    if (f) {
      res.writeHead(200, { 'content-type': f.type, 'cache-control': 'no-store' });
      res.end(f.body);
      return;
    }
    if (!target) { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('not found'); return; }
    const up = nodeHttp.request({
      host: target.hostname, port: target.port, method: req.method, path: req.url,
      headers: { ...req.headers, host: target.host }, agent: false,
    }, (upRes) => {
      res.writeHead(upRes.statusCode, upRes.headers);
      upRes.pipe(res);
      upRes.on('error', () => res.destroy());
    });
    up.on('error', () => { if (!res.headersSent) res.writeHead(502); res.destroy(); });
    req.pipe(up);
    res.on('close', () => up.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    async close() { server.closeAllConnections(); await new Promise((r) => server.close(r)); },
  };
}

/** The gateway binary under test. */
export function gatewayBin() {
  return process.env.PRESENCE_GATEWAY_BIN || path.join(repoRoot, 'target', 'debug', 'presence-gateway');
}

/**
 * Starts the binary with `args` and resolves with `{url, stop}` once stdout
 * matches `pattern` (its first group is the URL), e.g. `serve` or `simulate`.
 */
export async function startBin(args, env, pattern) {
  const child = spawn(gatewayBin(), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn', ...env } });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err = (err + d).slice(-8000); });
  const m = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no READY within 60 s\n${err}`)), 60000);
    child.stdout.on('data', (d) => {
      out += d;
      const hit = out.match(pattern);
      if (hit) { clearTimeout(timer); resolve(hit); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited (${code}) before READY\n${err}`)); });
  });
  child.stdout.resume();
  return {
    url: m[1].replace(/\/$/, ''),
    stderr: () => err,
    async stop() {
      if (child.exitCode !== null || child.signalCode) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await once(child, 'exit').catch(() => {});
      clearTimeout(t);
    },
  };
}
