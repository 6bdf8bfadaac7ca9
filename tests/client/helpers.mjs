// helpers.mjs - shared harness for airlock's black-box client tests.
//
// Starts `airlock mock` and `airlock serve` as child processes on free
// loopback ports inside a fresh temp dir, waits until they are ready, and
// stops them by PID (SIGTERM, then SIGKILL) from the suites' after() hooks.
// Every child's stderr is captured so a suite can print it when something
// fails and can check that no secret or prompt ever reaches the logs.  Also
// wraps the CLI (keys, events, check), scrapes /metrics, and has a tiny raw
// HTTP/1.1 response parser for the socket-level tests.  Nothing here talks to
// anything but 127.0.0.1.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// The binary under test: $AIRLOCK_BIN (absolute, or relative to the cwd or to
// the repo root), default ./airlock.
export function airlockBin() {
  const b = process.env.AIRLOCK_BIN || './airlock';
  if (path.isAbsolute(b)) return b;
  const fromCwd = path.resolve(process.cwd(), b);
  if (fs.existsSync(fromCwd)) return fromCwd;
  return path.resolve(REPO_ROOT, b);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function uniq(prefix = 'x') {
  return `${prefix}-${randomBytes(8).toString('hex')}`;
}

// Poll fn() until it returns a truthy value or the deadline passes; returns
// the last value (so the caller's assertion shows what it saw).
export async function waitFor(fn, { timeout = 3000, interval = 25 } = {}) {
  const end = Date.now() + timeout;
  let v;
  for (;;) {
    try { v = await fn(); } catch (e) { v = undefined; }
    if (v) return v;
    if (Date.now() >= end) return v;
    await sleep(interval);
  }
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix = 'gwtest-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// ---------------------------------------------------------------- processes

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

// Spawns the binary with args; collects stdout/stderr; tracks the child so a
// crashed suite never leaves it running.
export function spawnAirlock(args, { env = {}, cwd = REPO_ROOT } = {}) {
  const proc = spawn(airlockBin(), args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const h = {
    proc,
    pid: proc.pid,
    stdout: '',
    stderr: '',
    exited: false,
    exitCode: null,
    exitSignal: null,
  };
  h.exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      h.exited = true;
      h.exitCode = code;
      h.exitSignal = signal;
      children.delete(proc);
      resolve({ code, signal });
    });
    proc.on('error', (err) => {
      h.exited = true;
      h.spawnError = err;
      children.delete(proc);
      resolve({ code: null, signal: null, error: err });
    });
  });
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { h.stdout += d; });
  proc.stderr.on('data', (d) => { h.stderr += d; });
  children.add(proc);
  return h;
}

// Sends sig to the child by PID and waits up to `timeout` ms for it to exit;
// then SIGKILL.  Returns {code, signal, killed}.
export async function stopChild(h, { signal = 'SIGTERM', timeout = 8000 } = {}) {
  if (!h || h.exited) return h ? { code: h.exitCode, signal: h.exitSignal, killed: false } : null;
  try { process.kill(h.pid, signal); } catch { /* already gone */ }
  const t = new Promise((r) => setTimeout(() => r('timeout'), timeout));
  const r = await Promise.race([h.exitPromise, t]);
  if (r === 'timeout') {
    try { process.kill(h.pid, 'SIGKILL'); } catch { /* gone */ }
    const r2 = await h.exitPromise;
    return { ...r2, killed: true };
  }
  return { ...r, killed: false };
}

// Runs a CLI subcommand synchronously (bounded), returns {code, stdout, stderr}.
export function runCli(args, { env = {}, timeout = 15000, cwd = REPO_ROOT } = {}) {
  const r = spawnSync(airlockBin(), args, {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

// Async version (does not block the event loop: needed while servers we
// talk to run in this same process's tests).
export function runCliAsync(args, { env = {}, timeout = 15000, cwd = REPO_ROOT } = {}) {
  return new Promise((resolve) => {
    const p = spawn(airlockBin(), args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { try { p.kill('SIGKILL'); } catch { /* gone */ } }, timeout);
    p.on('error', (error) => { clearTimeout(timer); resolve({ code: null, stdout, stderr, error }); });
    p.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

// ---------------------------------------------------------------- mock

export async function startMock({ flags = [], timeout = 10000 } = {}) {
  const port = await freePort();
  const h = spawnAirlock(['mock', '--listen', `127.0.0.1:${port}`, ...flags]);
  const ready = await waitFor(() => h.exited || h.stderr.includes(`mock listening on 127.0.0.1:${port}`),
    { timeout, interval: 20 });
  if (!ready || h.exited) {
    await stopChild(h, { signal: 'SIGKILL' });
    throw new Error(`airlock mock did not become ready on ${port} (exit ${h.exitCode}, ${h.spawnError || ''}):\n${h.stderr.slice(-4000)}`);
  }
  const url = `http://127.0.0.1:${port}`;
  const mock = {
    ...h,
    handle: h,
    port,
    url,
    async stats() { return (await fetch(`${url}/_mock/stats`)).json(); },
    async last() { return (await fetch(`${url}/_mock/last`)).json(); },
    async reset() {
      const r = await fetch(`${url}/_mock/reset`, { method: 'POST' });
      await r.arrayBuffer();
      return r.status;
    },
    get stderr() { return h.stderr; },
    stop: (o) => stopChild(h, o),
  };
  return mock;
}

// ---------------------------------------------------------------- gateway

export const ALPHA_MODELS = ['gpt-4o-mini', 'sim-model', 'text-embedding-3-small', 'noprice'];

// The test configuration of the brief; `over` tweaks parts of it.
export function configYaml({
  port, adminPort, dir, mockPort,
  server = {},
  betaModels = ['sim-model'],
  omitBeta = false,
  extra = '',
} = {}) {
  const srv = {
    listen: `127.0.0.1:${port}`,
    admin_listen: `127.0.0.1:${adminPort}`,
    workers: 2,
    header_timeout_ms: 1500,
    body_timeout_ms: 1500,
    idle_timeout_ms: 5000,
    max_body_bytes: 65536,
    max_header_bytes: 8192,
    ...server,
  };
  const srvLine = Object.entries(srv).map(([k, v]) => `${k}: ${v}`).join(', ');
  return [
    `server: {${srvLine}}`,
    `store: {url: "sqlite://${dir}/airlock.db", flush_interval_ms: 5}`,
    'log: {level: warn}',
    'providers:',
    `  mock: {type: openai, base_url: "http://127.0.0.1:${mockPort}/v1", api_key_env: MOCK_UPSTREAM_KEY, forward_headers: ["x-mock-*"]}`,
    '  sim:  {type: simulated, simulated: {latency_ms: 5, output_tokens: 12, chunks: 4, chunk_interval_ms: 5}}',
    'models:',
    '  gpt-4o-mini: {provider: mock, model: upstream-mini, price: {input: 0.15, output: 0.60, cached_input: 0.075}, context_window: 128000}',
    '  sim-model: {provider: sim, model: sim-1, price: {input: 1, output: 2}}',
    '  text-embedding-3-small: {provider: mock, model: upstream-embed, price: {input: 0.02, output: 0}}',
    '  noprice: {provider: mock, model: upstream-free}',
    '  secret-model: {provider: mock, model: upstream-secret}',
    'agents:',
    `  alpha: {owner: alpha@example.com, models: [${ALPHA_MODELS.join(', ')}]}`,
    omitBeta ? '' : `  beta:  {owner: beta@example.com, models: [${betaModels.join(', ')}]}`,
    extra,
    '',
  ].join('\n');
}

// Starts a mock (unless given one) and `airlock serve` with the test config.
// Keys for `keyAgents` are created before the server starts.
export async function startGateway({
  mock = null,
  server = {},
  betaModels,
  keyAgents = ['alpha', 'beta'],
  readyTimeout = 10000,
} = {}) {
  const ownMock = !mock;
  if (!mock) mock = await startMock();
  const dir = tempDir();
  const port = await freePort();
  let adminPort = await freePort();
  while (adminPort === port) adminPort = await freePort();
  const configPath = path.join(dir, 'config.yaml');
  const cfgArgs = { port, adminPort, dir, mockPort: mock.port, server, betaModels };
  fs.writeFileSync(configPath, configYaml(cfgArgs));
  const upstreamKey = `upk-${randomBytes(16).toString('hex')}`;
  const env = { MOCK_UPSTREAM_KEY: upstreamKey };

  const gw = {
    dir, port, adminPort, configPath, env, upstreamKey, mock, ownMock, cfgArgs,
    dbPath: path.join(dir, 'airlock.db'),
    baseURL: `http://127.0.0.1:${port}/v1`,
    url: `http://127.0.0.1:${port}`,
    adminURL: `http://127.0.0.1:${adminPort}`,
    keys: {},
    allKeys: [],
    handle: null,
  };

  gw.createKey = (agent, extraArgs = []) => {
    const r = runCli(['keys', 'create', '--config', configPath, '--agent', agent, ...extraArgs], { env });
    if (r.code !== 0) throw new Error(`keys create --agent ${agent} failed (${r.code}): ${r.stderr}${r.error || ''}`);
    const key = r.stdout.trim();
    gw.allKeys.push(key);
    return key;
  };
  gw.createKeyAsync = async (agent, extraArgs = []) => {
    const r = await runCliAsync(['keys', 'create', '--config', configPath, '--agent', agent, ...extraArgs], { env });
    if (r.code !== 0) throw new Error(`keys create --agent ${agent} failed (${r.code}): ${r.stderr}${r.error || ''}`);
    const key = r.stdout.trim();
    gw.allKeys.push(key);
    return { key, stdout: r.stdout };
  };
  gw.listKeys = async () => {
    const r = await runCliAsync(['keys', 'list', '--config', configPath, '--json'], { env });
    if (r.code !== 0) throw new Error(`keys list failed (${r.code}): ${r.stderr}`);
    return { rows: parseJsonLines(r.stdout), raw: r.stdout };
  };
  gw.revokeKey = async (id) => {
    const r = await runCliAsync(['keys', 'revoke', '--config', configPath, id], { env });
    if (r.code !== 0) throw new Error(`keys revoke ${id} failed (${r.code}): ${r.stderr}`);
    return r;
  };
  // Events as JSON objects; opts: {agent, since, limit}.  Default: all.
  gw.events = async ({ agent, since, limit = 0 } = {}) => {
    const args = ['events', 'list', '--config', configPath, '--json', '--limit', String(limit)];
    if (agent) args.push('--agent', agent);
    if (since) args.push('--since', since);
    const r = await runCliAsync(args, { env, timeout: 30000 });
    if (r.code !== 0) throw new Error(`events list failed (${r.code}): ${r.stderr}`);
    return parseJsonLines(r.stdout);
  };
  // Polls until events matching pred number at least `count` (default 1);
  // returns the matching events (possibly fewer, on timeout).
  gw.waitEvents = async (pred, { count = 1, timeout = 3000 } = {}) => {
    let last = [];
    await waitFor(async () => {
      last = (await gw.events()).filter(pred);
      return last.length >= count;
    }, { timeout, interval: 50 });
    return last;
  };
  gw.eventFor = async (requestId, opts = {}) => {
    const evs = await gw.waitEvents((e) => e.request_id === requestId, opts);
    return evs;
  };
  gw.metrics = async () => {
    const r = await fetch(`${gw.adminURL}/metrics`);
    return { status: r.status, headers: r.headers, text: await r.text() };
  };
  gw.writeConfig = (over) => {
    fs.writeFileSync(configPath, configYaml({ ...cfgArgs, ...over }));
  };
  gw.signal = (sig) => {
    if (sig === 'SIGTERM' || sig === 'SIGINT') gw.stopping = true;
    process.kill(gw.handle.pid, sig);
  };
  gw.start = async () => {
    const h = spawnAirlock(['serve', '--config', configPath], { env });
    gw.handle = h;
    gw.stopping = false;
    h.exitPromise.then(({ code, signal }) => {
      if (!gw.stopping) {
        process.stderr.write(`\n!!! airlock serve (pid ${h.pid}, port ${port}) exited unexpectedly: code ${code} signal ${signal}\n`);
        dumpTail('airlock serve', h.stderr, 6000);
      }
    });
    const ok = await waitFor(async () => {
      if (h.exited) return 'exited';
      const r = await fetch(`${gw.url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      return r.status === 200 ? 'ok' : undefined;
    }, { timeout: readyTimeout, interval: 50 });
    if (ok !== 'ok') {
      await stopChild(h, { signal: 'SIGKILL' });
      throw new Error(`airlock serve not ready on ${port} (${ok || 'timeout'}, exit ${h.exitCode}, ${h.spawnError || ''}):\n${h.stderr.slice(-4000)}`);
    }
  };
  gw.stderr = () => (gw.handle ? gw.handle.stderr : '');
  gw.stop = async (opts) => {
    gw.stopping = true;
    const r = await stopChild(gw.handle, opts);
    return r;
  };
  // Stops both; throws (failing the after() hook) if serve did not exit 0 on
  // SIGTERM or either process printed a sanitizer report.
  gw.close = async () => {
    const wasRunning = gw.handle && !gw.handle.exited;
    const r = await gw.stop({ signal: 'SIGTERM', timeout: 8000 });
    if (gw.ownMock) await mock.stop({ signal: 'SIGTERM', timeout: 3000 });
    const problems = [];
    const san = sanitizerReport(gw.stderr());
    if (san) problems.push(`airlock serve sanitizer report:\n${san}`);
    const msan = sanitizerReport(mock.stderr);
    if (msan) problems.push(`airlock mock sanitizer report:\n${msan}`);
    if (wasRunning && r && (r.killed || r.code !== 0)) {
      problems.push(`airlock serve did not exit 0 on SIGTERM (code ${r.code}, signal ${r.signal}, killed ${r.killed})`);
    }
    if (problems.length) {
      dumpTail('airlock serve', gw.stderr(), 6000);
      throw new Error(`${problems.join('\n')}\n(config and store kept in ${dir})`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  for (const a of keyAgents) gw.keys[a] = gw.createKey(a);
  await gw.start();
  return gw;
}

export function parseJsonLines(s) {
  return s.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => JSON.parse(l));
}

// ---------------------------------------------------------------- metrics

// Parses Prometheus text into [{name, labels, value}].
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let lm;
      while ((lm = re.exec(m[3]))) labels[lm[1]] = lm[2];
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

// Sum of samples named `name` whose labels include all of `labels`.
export function metricSum(samples, name, labels = {}) {
  let sum = 0;
  let found = false;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) {
      sum += s.value;
      found = true;
    }
  }
  return found ? sum : undefined;
}

// ---------------------------------------------------------------- raw HTTP

// Parses as many complete HTTP/1.1 responses as buf holds.  Returns
// {responses: [{status, reason, headers, body, raw}], rest}.  1xx answers
// have no body; a response without length is delimited by close.
export function parseResponses(buf) {
  const responses = [];
  let off = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const head = buf.subarray(off, end).toString('latin1');
    const lines = head.split('\r\n');
    const sm = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!sm) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
    const status = Number(sm[1]);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i <= 0) continue;
      const k = l.slice(0, i).trim().toLowerCase();
      const v = l.slice(i + 1).trim();
      headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
    }
    let p = end + 4;
    let body;
    if (status === 100 || status === 101 || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      body = Buffer.alloc(0);
    } else if ((headers['transfer-encoding'] || '').toLowerCase().includes('chunked')) {
      const parts = [];
      let complete = false;
      for (;;) {
        const le = buf.indexOf('\r\n', p);
        if (le < 0) break;
        const size = parseInt(buf.subarray(p, le).toString('latin1').split(';')[0], 16);
        if (Number.isNaN(size)) throw new Error('bad chunk size');
        if (size === 0) {
          // trailers until an empty line
          if (buf.length >= le + 4 && buf[le + 2] === 13 && buf[le + 3] === 10) {
            p = le + 4;
          } else {
            const te = buf.indexOf('\r\n\r\n', le + 2);
            if (te < 0) break;
            p = te + 4;
          }
          complete = true;
          break;
        }
        if (buf.length < le + 2 + size + 2) break;
        parts.push(buf.subarray(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (buf.length < p + n) break;
      body = buf.subarray(p, p + n);
      p += n;
    } else {
      // delimited by close: everything that is left
      body = buf.subarray(p);
      p = buf.length;
      responses.push({ status, reason: sm[2] || '', headers, body, raw: buf.subarray(off, p), untilClose: true });
      off = p;
      break;
    }
    responses.push({ status, reason: sm[2] || '', headers, body, raw: buf.subarray(off, p) });
    off = p;
  }
  return { responses, rest: buf.subarray(off) };
}

// A raw connection with helpers to write and await data/close.
export function rawConnect(port, { host = '127.0.0.1' } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    const c = {
      sock,
      data: Buffer.alloc(0),
      closed: false,
      closedAt: null,
      error: null,
      waiters: new Set(),
    };
    const notify = () => { for (const w of c.waiters) w(); };
    sock.on('data', (d) => { c.data = Buffer.concat([c.data, d]); notify(); });
    sock.on('close', () => { c.closed = true; c.closedAt = Date.now(); notify(); });
    sock.on('error', (e) => { c.error = e; notify(); });
    sock.once('connect', () => {
      sock.setNoDelay(true);
      resolve(c);
    });
    sock.once('error', (e) => { if (!c.connected) reject(e); });
    sock.once('connect', () => { c.connected = true; });
    c.write = (b) => new Promise((res) => {
      if (c.closed || sock.destroyed) return res(false);
      sock.write(b, (err) => res(!err));
    });
    // Resolves when pred(c) is true, or on timeout (then resolves false).
    c.until = (pred, timeout = 5000) => new Promise((res) => {
      if (pred(c)) return res(true);
      const w = () => { if (pred(c)) { clearTimeout(t); c.waiters.delete(w); res(true); } };
      const t = setTimeout(() => { c.waiters.delete(w); res(false); }, timeout);
      c.waiters.add(w);
    });
    c.responses = () => parseResponses(c.data).responses;
    c.untilResponses = (n, timeout = 5000) => c.until(() => {
      try { return parseResponses(c.data).responses.length >= n; } catch { return true; }
    }, timeout);
    c.untilClosed = (timeout = 5000) => c.until(() => c.closed, timeout);
    c.destroy = () => sock.destroy();
  });
}

export function httpRequest({ method = 'GET', path: p = '/', headers = {}, body = null, version = '1.1' }) {
  const h = { host: '127.0.0.1', ...headers };
  let b = body;
  if (b !== null && !Buffer.isBuffer(b)) b = Buffer.from(typeof b === 'string' ? b : JSON.stringify(b));
  if (b !== null && h['content-length'] === undefined && h['transfer-encoding'] === undefined) h['content-length'] = String(b.length);
  const head = `${method} ${p} HTTP/${version}\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return b ? Buffer.concat([Buffer.from(head, 'latin1'), b]) : Buffer.from(head, 'latin1');
}

// Checks an OpenAI-shaped error body; returns the parsed error object.
export function openaiError(bodyText) {
  let j;
  try { j = JSON.parse(bodyText); } catch { throw new Error(`error body is not JSON: ${bodyText.slice(0, 300)}`); }
  if (!j || typeof j.error !== 'object' || j.error === null) throw new Error(`no "error" object: ${bodyText.slice(0, 300)}`);
  if (typeof j.error.message !== 'string' || !j.error.message) throw new Error(`error.message missing: ${bodyText.slice(0, 300)}`);
  if (typeof j.error.type !== 'string' || !j.error.type) throw new Error(`error.type missing: ${bodyText.slice(0, 300)}`);
  if (!('code' in j.error)) throw new Error(`error.code missing: ${bodyText.slice(0, 300)}`);
  return j.error;
}

// Reads an SSE body (string) into parsed data objects; stops at [DONE].
export function parseSSE(text) {
  const events = [];
  let done = false;
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
    if (!data) continue;
    if (data === '[DONE]') { done = true; continue; }
    events.push(JSON.parse(data));
  }
  return { events, done };
}

// The first sanitizer (ASan/UBSan/LSan) report in a process's stderr, or null.
export function sanitizerReport(stderr) {
  const m = /(==\d+==ERROR: \w+Sanitizer|runtime error:|WARNING: \w+Sanitizer)/.exec(stderr || '');
  if (!m) return null;
  return stderr.slice(Math.max(0, m.index - 200), m.index + 4000);
}

// Dumps a process's stderr tail to the test output (for debugging failures).
export function dumpTail(label, s, n = 3000) {
  if (!s) return;
  process.stderr.write(`\n----- ${label} stderr (tail) -----\n${s.slice(-n)}\n-----\n`);
}

// ---------------------------------------------------------------- reliability
// (added for the reliability/anthropic/escalation/chaos suites; nothing above
// changed.)

// Adds the run-time mock extensions to a started mock: config(faults) POSTs
// /_mock/config (a JSON object of x-mock-* names without the prefix; {}
// restores the flags' defaults), webhooks() reads /_mock/webhooks (the array),
// webhookURL is where an alerts.webhook_url should point.
export function mockExtras(mock) {
  mock.config = async (faults = {}) => {
    const r = await fetch(`${mock.url}/_mock/config`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(faults),
    });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`POST /_mock/config ${JSON.stringify(faults)} -> ${r.status}: ${text.slice(0, 300)}`);
    return text;
  };
  mock.webhooks = async () => {
    const r = await fetch(`${mock.url}/_mock/webhooks`);
    const j = await r.json();
    return Array.isArray(j?.data) ? j.data : [];
  };
  mock.webhookURL = `${mock.url}/_mock/webhook`;
  // Requests the mock counted (all paths but /_mock/*).
  mock.count = async () => (await mock.stats()).requests;
  return mock;
}

// startMock() plus mockExtras().
export async function startMockX(opts = {}) {
  return mockExtras(await startMock(opts));
}

// Starts n mocks in parallel (with extras).
export async function startMocks(n, opts = {}) {
  return Promise.all(Array.from({ length: n }, () => startMockX(opts)));
}

// Extracts the rows of a list answer that may be a JSON array, an object with
// `data` (or `escalations`, `tokens`, `rows`), or JSON lines.
export function listRows(text) {
  const s = (text || '').trim();
  if (!s) return [];
  try {
    const j = JSON.parse(s);
    if (Array.isArray(j)) return j;
    for (const k of ['data', 'escalations', 'tokens', 'rows', 'items']) if (Array.isArray(j?.[k])) return j[k];
    return [j];
  } catch {
    return parseJsonLines(s);
  }
}

// Starts `airlock serve` with a caller-written configuration body: yaml(ctx)
// gets {port, adminPort, dir} and returns everything after the server, store
// and log sections (providers, models, routes, agents, escalation, alerts...).
// `server` overrides server keys.  The returned object has the same helpers
// as startGateway's (keys, events, waitEvents, eventFor, metrics, close...;
// no mock of its own: the caller stops its mocks) plus:
//   cli(args)         runs `airlock <args...> --config FILE` (async)
//   adminToken(role)  `airlock admin-token create --role ROLE`, returns the token
//   admin(method, path, {token, body})  fetch on the admin listener, returns
//                     {status, headers, text, json}
//   post(path, body, {key, headers, signal})  JSON POST on the data listener
//   rss()             the serve process's VmRSS in KiB
export async function startCustomGateway({
  yaml,
  server = {},
  keyAgents = ['alpha'],
  env: extraEnv = {},
  readyTimeout = 10000,
  logLevel = 'warn',
} = {}) {
  const dir = tempDir();
  const port = await freePort();
  let adminPort = await freePort();
  while (adminPort === port) adminPort = await freePort();
  const configPath = path.join(dir, 'config.yaml');
  const srv = {
    listen: `127.0.0.1:${port}`,
    admin_listen: `127.0.0.1:${adminPort}`,
    workers: 2,
    header_timeout_ms: 5000,
    body_timeout_ms: 5000,
    idle_timeout_ms: 30000,
    max_body_bytes: 1048576,
    ...server,
  };
  const srvLine = Object.entries(srv).map(([k, v]) => `${k}: ${v}`).join(', ');
  const ctx = { port, adminPort, dir };
  const writeConfig = () => {
    fs.writeFileSync(configPath, [
      `server: {${srvLine}}`,
      `store: {url: "sqlite://${dir}/airlock.db", flush_interval_ms: 5}`,
      `log: {level: ${logLevel}}`,
      yaml(ctx),
      '',
    ].join('\n'));
  };
  writeConfig();
  const upstreamKey = `upk-${randomBytes(16).toString('hex')}`;
  const env = { MOCK_UPSTREAM_KEY: upstreamKey, ...extraEnv };
  const gw = {
    dir, port, adminPort, configPath, env, upstreamKey,
    dbPath: path.join(dir, 'airlock.db'),
    baseURL: `http://127.0.0.1:${port}/v1`,
    url: `http://127.0.0.1:${port}`,
    adminURL: `http://127.0.0.1:${adminPort}`,
    keys: {},
    allKeys: [],
    handle: null,
  };
  gw.cli = (args, opts = {}) => runCliAsync([...args, '--config', configPath], { env, timeout: 30000, ...opts });
  gw.createKey = (agent, extraArgs = []) => {
    const r = runCli(['keys', 'create', '--config', configPath, '--agent', agent, ...extraArgs], { env });
    if (r.code !== 0) throw new Error(`keys create --agent ${agent} failed (${r.code}): ${r.stderr}${r.error || ''}`);
    const key = r.stdout.trim();
    gw.allKeys.push(key);
    return key;
  };
  gw.adminToken = async (role, extraArgs = []) => {
    const r = await runCliAsync(['admin-token', 'create', '--config', configPath, '--role', role, ...extraArgs], { env });
    if (r.code !== 0) throw new Error(`admin-token create --role ${role} failed (${r.code}): ${r.stderr}`);
    const token = r.stdout.trim().split('\n').pop().trim();
    if (!token) throw new Error(`admin-token create printed no token: ${r.stdout} ${r.stderr}`);
    return token;
  };
  gw.admin = async (method, p, { token, body, headers = {} } = {}) => {
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    if (body !== undefined) h['content-type'] = 'application/json';
    const r = await fetch(`${gw.adminURL}${p}`, {
      method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15000),
    });
    const text = await r.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: r.status, headers: r.headers, text, json };
  };
  gw.post = async (p, body, { key = gw.keys.alpha, headers = {}, signal, timeout = 30000 } = {}) => {
    const t0 = Date.now();
    const r = await fetch(`${gw.url}${p}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      signal: signal || AbortSignal.timeout(timeout),
    });
    const text = await r.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: r.status, headers: r.headers, text, json, ms: Date.now() - t0 };
  };
  gw.events = async ({ agent, since, limit = 0 } = {}) => {
    const args = ['events', 'list', '--config', configPath, '--json', '--limit', String(limit)];
    if (agent) args.push('--agent', agent);
    if (since) args.push('--since', since);
    const r = await runCliAsync(args, { env, timeout: 60000 });
    if (r.code !== 0) throw new Error(`events list failed (${r.code}): ${r.stderr}`);
    return parseJsonLines(r.stdout);
  };
  gw.waitEvents = async (pred, { count = 1, timeout = 3000 } = {}) => {
    let last = [];
    await waitFor(async () => {
      last = (await gw.events()).filter(pred);
      return last.length >= count;
    }, { timeout, interval: 100 });
    return last;
  };
  gw.eventFor = (requestId, opts = {}) => gw.waitEvents((e) => e.request_id === requestId, opts);
  gw.metrics = async () => {
    const r = await fetch(`${gw.adminURL}/metrics`);
    return { status: r.status, headers: r.headers, text: await r.text() };
  };
  gw.rss = () => {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${gw.handle.pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  };
  gw.start = async () => {
    const h = spawnAirlock(['serve', '--config', configPath], { env });
    gw.handle = h;
    gw.stopping = false;
    h.exitPromise.then(({ code, signal }) => {
      if (!gw.stopping) {
        process.stderr.write(`\n!!! airlock serve (pid ${h.pid}, port ${port}) exited unexpectedly: code ${code} signal ${signal}\n`);
        dumpTail('airlock serve', h.stderr, 6000);
      }
    });
    const ok = await waitFor(async () => {
      if (h.exited) return 'exited';
      const r = await fetch(`${gw.url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      return r.status === 200 ? 'ok' : undefined;
    }, { timeout: readyTimeout, interval: 50 });
    if (ok !== 'ok') {
      await stopChild(h, { signal: 'SIGKILL' });
      throw new Error(`airlock serve not ready on ${port} (${ok || 'timeout'}, exit ${h.exitCode}, ${h.spawnError || ''}):\n${h.stderr.slice(-4000)}\n--- config ---\n${fs.readFileSync(configPath, 'utf8')}`);
    }
  };
  gw.stderr = () => (gw.handle ? gw.handle.stderr : '');
  gw.stop = async (opts) => {
    gw.stopping = true;
    return stopChild(gw.handle, opts);
  };
  // Stops serve (SIGTERM); throws if it did not exit 0 or printed a
  // sanitizer report; also checks the given mocks' stderr after stopping them.
  gw.close = async (mocks = []) => {
    const wasRunning = gw.handle && !gw.handle.exited;
    const r = await gw.stop({ signal: 'SIGTERM', timeout: 8000 });
    const problems = [];
    for (const m of mocks) {
      if (!m) continue;
      await m.stop({ signal: 'SIGTERM', timeout: 3000 });
      const ms = sanitizerReport(m.stderr);
      if (ms) problems.push(`airlock mock (port ${m.port}) sanitizer report:\n${ms}`);
    }
    const san = sanitizerReport(gw.stderr());
    if (san) problems.push(`airlock serve sanitizer report:\n${san}`);
    if (wasRunning && r && (r.killed || r.code !== 0)) {
      problems.push(`airlock serve did not exit 0 on SIGTERM (code ${r.code}, signal ${r.signal}, killed ${r.killed})`);
    }
    if (problems.length) {
      dumpTail('airlock serve', gw.stderr(), 6000);
      throw new Error(`${problems.join('\n')}\n(config and store kept in ${dir})`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  for (const a of keyAgents) gw.keys[a] = gw.createKey(a);
  await gw.start();
  return gw;
}

// YAML line for a provider pointing at an `airlock mock`.
export function mockProvider(name, mock, { type = 'openai', forward = true, extra = '' } = {}) {
  const fw = forward ? ', forward_headers: ["x-mock-*"]' : '';
  const ex = extra ? `, ${extra}` : '';
  return `  ${name}: {type: ${type}, base_url: "http://127.0.0.1:${mock.port}/v1", api_key_env: MOCK_UPSTREAM_KEY${fw}${ex}}`;
}

// ---------------------------------------------------------------- policy
// (added for the policy/killswitch/roles/tokens suites; nothing above
// changed.)

// One HTTP request on a connection of its own (no keep-alive pool), so that
// a series of them spreads over the gateway's workers (SO_REUSEPORT hashes
// each new connection).  Returns {status, headers (lower-case names), text,
// json, ms, t0, t1 (Date.now() at send and at the body's end)}; on a socket
// error {status: 0, error}.
export function freshRequest(url, { method = 'POST', body, key, headers = {}, timeout = 30000 } = {}) {
  return new Promise((resolve) => {
    const u = new URL(url);
    const h = { ...headers };
    if (key) h.authorization = `Bearer ${key}`;
    let b = null;
    if (body !== undefined) {
      b = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      h['content-type'] = h['content-type'] || 'application/json';
      h['content-length'] = String(b.length);
    }
    const t0 = Date.now();
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, agent: false,
    }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      const done = (error) => {
        const text = Buffer.concat(parts).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json, ms: Date.now() - t0, t0, t1: Date.now(), error });
      };
      res.on('end', () => done());
      res.on('aborted', () => done(new Error('aborted')));
      res.on('error', (e) => done(e));
    });
    req.setTimeout(timeout, () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve({ status: 0, error, headers: {}, text: '', ms: Date.now() - t0, t0, t1: Date.now() }));
    if (b) req.write(b);
    req.end();
  });
}

// `airlock admin-token create --role ROLE [extra]` returning {token, id}
// (the id from the "created admin token ID ..." line on stderr).
export async function createAdminToken(gw, role, extraArgs = []) {
  const r = await runCliAsync(['admin-token', 'create', '--config', gw.configPath, '--role', role, ...extraArgs], { env: gw.env });
  if (r.code !== 0) throw new Error(`admin-token create --role ${role} failed (${r.code}): ${r.stderr}`);
  const token = r.stdout.trim().split('\n').pop().trim();
  const m = /created admin token (\S+)/.exec(r.stderr);
  return { token, id: m ? m[1] : null, stderr: r.stderr };
}

// Every number written in a string (for messages like "... 0.010000 USD left").
export function numbersIn(s) {
  return (String(s).match(/-?\d+(?:\.\d+)?(?:e-?\d+)?/gi) || []).map(Number);
}

// A rate-limit reset value ("12s", "850ms", "1m30s", "0.5s") in ms; NaN if
// it is none of those.
export function parseResetMs(v) {
  if (typeof v !== 'string' || !v) return NaN;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let m;
  let ms = 0;
  let used = 0;
  while ((m = re.exec(v))) {
    const n = Number(m[1]);
    ms += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60000 : n * 3600000;
    used += m[0].length;
  }
  return used === v.length ? ms : NaN;
}

// The bytes of a SQLite store and its side files (-wal, -shm, -journal).
export function storeFileBytes(dbPath) {
  const bufs = [];
  for (const suffix of ['', '-wal', '-shm', '-journal']) {
    try { bufs.push(fs.readFileSync(dbPath + suffix)); } catch { /* absent */ }
  }
  return Buffer.concat(bufs);
}

// An event's `detail` as an object (it may be written as an object or as a
// JSON string); {} when absent.
export function eventDetail(ev) {
  const d = ev?.detail;
  if (d && typeof d === 'object') return d;
  if (typeof d === 'string' && d) {
    try { return JSON.parse(d); } catch { return {}; }
  }
  return {};
}
