// reliability.test.mjs - routes as a client sees them: retries, circuit
// breakers, Retry-After, timeouts, mid-stream failures, malformed upstream
// answers, weighted splits, context-window skips, degraded mode, deadlines.
//
// One `airlock serve` for the whole file with one route per scenario, and a
// separate `airlock mock` per upstream whose traffic a test counts (faults
// are switched at run time with POST /_mock/config, or per request with
// x-mock-* headers on the providers that forward them).  Every assertion is
// on what the client got (status, headers, body, timing), what each mock
// received (/_mock/stats), and what was recorded (`airlock events list
// --json`, `airlock status --json`, /admin/v1/status, /metrics, alerts posted
// to a mock's /_mock/webhook).  Windows are short (cooldown 1 s) so the file
// runs in well under a minute.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCustomGateway, startMocks, mockProvider, uniq, sleep, waitFor, parseMetrics, metricSum,
  openaiError,
} from './helpers.mjs';

let gw;
let LS; let LF;
let A; let B; let R1; let R2; let T1; let M; let MB; let W1; let W2; let X; let D1; let D2; let H;
let adminTok;

const FAST_RETRY = 'backoff_base: 10ms, backoff_cap: 20ms';

before(async () => {
  [A, B, R1, R2, T1, M, MB, W1, W2, X, D1, D2, H, LS, LF] = await startMocks(15);
  await LS.config({ 'latency-ms': 120 });
  gw = await startCustomGateway({
    yaml: () => [
      'providers:',
      mockProvider('pa', A, { forward: false }),
      mockProvider('pb', B, { forward: false }),
      mockProvider('pr1', R1, { forward: false }),
      mockProvider('pr2', R2, { forward: false }),
      mockProvider('pt1', T1, { forward: false, extra: 'timeouts: {first_byte_ms: 300}' }),
      mockProvider('pm', M, { extra: 'stream_idle_timeout: 500ms' }),
      mockProvider('pm2', M, { extra: 'stream_idle_timeout: 30s' }),
      mockProvider('pmb', MB, { forward: false }),
      mockProvider('pw1', W1, { forward: false }),
      mockProvider('pw2', W2, { forward: false }),
      mockProvider('px', X, { forward: false }),
      mockProvider('pd1', D1, { forward: false }),
      mockProvider('pd2', D2, { forward: false }),
      mockProvider('pls', LS, { forward: false }),
      mockProvider('plf', LF, { forward: false }),
      'models:',
      '  a1: {provider: pa, model: up-a}',
      '  b1: {provider: pb, model: up-b}',
      '  r1: {provider: pr1, model: up-r1}',
      '  r2: {provider: pr2, model: up-r2}',
      '  t1: {provider: pt1, model: up-t1}',
      '  m: {provider: pm, model: up-m, context_window: 128000}',
      '  m2: {provider: pm2, model: up-m2}',
      '  mb: {provider: pmb, model: up-mb}',
      '  w1: {provider: pw1, model: up-w1}',
      '  w2: {provider: pw2, model: up-w2}',
      '  tiny: {provider: px, model: up-tiny, context_window: 60}',
      '  d1: {provider: pd1, model: up-d1}',
      '  d2: {provider: pd2, model: up-d2}',
      '  ls: {provider: pls, model: up-ls}',
      '  lf: {provider: plf, model: up-lf}',
      'routes:',
      '  brk:',
      '    strategy: fallback',
      '    targets: [a1, b1]',
      `    retry: {attempts: 2, ${FAST_RETRY}}`,
      '    breaker: {failure_ratio: 0.5, window: 60s, min_requests: 100, consecutive_failures: 4, cooldown: 1s, half_open_probes: 1}',
      '  ra:',
      '    targets: [r1, r2]',
      `    retry: {attempts: 2, ${FAST_RETRY}, retry_after_cap: 2s}`,
      '  to:',
      '    targets: [t1, m]',
      `    retry: {attempts: 1, ${FAST_RETRY}}`,
      '  strm:',
      '    targets: [m]',
      `    retry: {attempts: 2, ${FAST_RETRY}}`,
      '  dls:',
      '    targets: [m2]',
      `    retry: {attempts: 2, ${FAST_RETRY}, deadline: 1s}`,
      '  mal:',
      '    targets: [mb, m]',
      `    retry: {attempts: 1, ${FAST_RETRY}}`,
      '  w:',
      '    strategy: weighted',
      '    targets: [{model: w1, weight: 3}, {model: w2, weight: 1}]',
      `    retry: {attempts: 1, ${FAST_RETRY}}`,
      '  ctx:',
      '    targets: [tiny, m]',
      `    retry: {attempts: 1, ${FAST_RETRY}}`,
      '  deg:',
      '    targets: [d1, d2]',
      `    retry: {attempts: 1, ${FAST_RETRY}}`,
      '    breaker: {consecutive_failures: 1, min_requests: 100, cooldown: 60s}',
      '    degraded: m',
      '  nodeg:',
      '    targets: [d1, d2]',
      `    retry: {attempts: 1, ${FAST_RETRY}}`,
      '    breaker: {consecutive_failures: 0, min_requests: 1000, cooldown: 60s}',
      '    degraded: m',
      '  lat:',
      '    strategy: latency',
      '    targets: [ls, lf]',
      '    exploration: 0.1',
      `    retry: {attempts: 1, ${FAST_RETRY}}`,
      '  dl:',
      '    targets: [m]',
      `    retry: {attempts: 1, ${FAST_RETRY}, deadline: 800ms}`,
      '  dlh:',
      '    targets: [m]',
      `    retry: {attempts: 1, ${FAST_RETRY}, deadline: 30s}`,
      `alerts: {webhook_url: "${H.webhookURL}", timeout: 2s}`,
      'agents:',
      '  beta: {owner: beta@example.com, models: [m]}',
      '  alpha: {owner: alpha@example.com, models: [brk, ra, to, strm, dls, mal, w, lat, ctx, deg, nodeg, dl, dlh, m]}',
    ].join('\n'),
    keyAgents: ['alpha', 'beta'],
  });
  adminTok = await gw.adminToken('admin');
});

after(async () => {
  if (gw) await gw.close([A, B, R1, R2, T1, M, MB, W1, W2, X, D1, D2, H, LS, LF]);
  else for (const m of [A, B, R1, R2, T1, M, MB, W1, W2, X, D1, D2, H, LS, LF]) if (m) await m.stop();
});

const msgs = (text = 'Say hello.') => [{ role: 'user', content: text }];

function chat(model, { headers = {}, stream = false, extra = {}, text, timeout = 30000 } = {}) {
  return gw.post('/v1/chat/completions', { model, messages: msgs(text), stream, ...extra }, { headers, timeout });
}

// Tolerant SSE reader: {events (parsed data objects), done, bad (unparseable
// data lines), raw (every data payload in order)}.
function readSSE(text) {
  const events = [];
  const bad = [];
  const raw = [];
  let done = false;
  let afterDone = 0;
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
    if (!data) continue;
    raw.push(data);
    if (done) afterDone++;
    if (data === '[DONE]') { done = true; continue; }
    try { events.push(JSON.parse(data)); } catch { bad.push(data); }
  }
  return { events, done, bad, afterDone, raw };
}

// A stream broken after its first byte: exactly one well-formed error event,
// the last data object, followed by nothing or by `data: [DONE]` only (the
// spec says [DONE]; the brief accepts "[DONE]/end").  The body itself ended
// cleanly (fetch's text() resolved: the chunked encoding was terminated).
function assertErrorEnd(sse, text) {
  const errs = sse.events.filter((e) => e.error);
  assert.equal(errs.length, 1, `one error event: ...${text.slice(-400)}`);
  assert.equal(typeof errs[0].error.message, 'string');
  assert.ok(errs[0].error.message.length > 0);
  assert.equal(typeof errs[0].error.type, 'string');
  assert.equal(sse.events[sse.events.length - 1], errs[0], 'the error event is the last data object');
  const i = sse.raw.findIndex((d) => d.startsWith('{') && d.includes('"error"'));
  const tail = sse.raw.slice(i + 1);
  assert.ok(tail.length === 0 || (tail.length === 1 && tail[0] === '[DONE]'),
    `after the error event: nothing or [DONE], got ${JSON.stringify(tail)}`);
}

const contentOf = (events) => events.map((e) => e.choices?.[0]?.delta?.content ?? '').join('');

function attemptsOf(ev) {
  if (Array.isArray(ev.attempts)) return ev.attempts;
  if (typeof ev.attempts === 'string' && ev.attempts) return JSON.parse(ev.attempts);
  return [];
}

async function status() {
  const r = await gw.admin('GET', '/admin/v1/status', { token: adminTok });
  assert.equal(r.status, 200, `/admin/v1/status: ${r.text}`);
  return r.json;
}

function breakerOf(st, route, target) {
  return (st?.breakers || []).find((b) => b.route === route && b.target === target);
}

async function cliStatus() {
  const r = await gw.cli(['status', '--json', '--token', adminTok]);
  assert.equal(r.code, 0, `airlock status --json: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

async function breakerMetric(route, target) {
  const s = parseMetrics((await gw.metrics()).text);
  return {
    state: metricSum(s, 'airlock_breaker_state', { route, target }),
    opened: metricSum(s, 'airlock_breaker_opened_total', { route, target }),
  };
}

describe('circuit breaker', () => {
  test('primary always 500: retries, fallback, open, probes, close', { timeout: 30000 }, async (t) => {
    await A.config({ status: 500, 'fail-rate': 1 });
    await A.reset();
    await B.reset();

    // Closed: each request tries A `attempts` (2) times, then B answers.
    for (let i = 0; i < 2; i++) {
      const r = await chat('brk');
      assert.equal(r.status, 200, `request ${i}: ${r.text}`);
      assert.ok(r.json.choices[0].message.content.length > 0);
      assert.equal(r.headers.get('x-airlock-route'), 'brk');
      assert.equal(r.headers.get('x-airlock-target'), 'b1');
      assert.equal(r.headers.get('x-airlock-attempts'), '3', 'two tries on a1, one on b1');
      assert.notEqual(r.headers.get('x-airlock-degraded'), 'true');
    }
    const tOpen = Date.now();
    assert.equal(await A.count(), 4, 'A got attempts x requests = 2 x 2 before the breaker opened');
    assert.equal(await B.count(), 2);

    // Open: no traffic to A during the cooldown.
    let n = 0;
    while (Date.now() - tOpen < 600 && n < 5) {
      const r = await chat('brk');
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-airlock-target'), 'b1');
      assert.equal(r.headers.get('x-airlock-attempts'), '1', 'the open target is skipped, not attempted');
      n++;
    }
    assert.ok(n > 0);
    assert.equal(await A.count(), 4, 'open breaker: A receives nothing');

    const st = await status();
    const bo = breakerOf(st, 'brk', 'a1');
    assert.ok(bo, `status lists brk/a1: ${JSON.stringify(st)}`);
    assert.equal(bo.state, 'open');
    assert.ok(bo.opened_total >= 1);
    assert.equal(breakerOf(st, 'brk', 'b1')?.state, 'closed');
    const cs = await cliStatus();
    assert.equal(breakerOf(cs, 'brk', 'a1')?.state, 'open', `airlock status --json: ${JSON.stringify(cs)}`);
    const bm = await breakerMetric('brk', 'a1');
    assert.equal(bm.state, 1, 'airlock_breaker_state{route="brk",target="a1"} is 1 (open)');
    assert.ok(bm.opened >= 1, 'airlock_breaker_opened_total counted the opening');
    assert.equal((await breakerMetric('brk', 'b1')).state, 0);

    // After the cooldown one request probes A (still failing): re-opens.
    await sleep(Math.max(0, tOpen + 1200 - Date.now()));
    const before = await A.count();
    const rp = await chat('brk');
    assert.equal(rp.status, 200);
    assert.equal(rp.headers.get('x-airlock-target'), 'b1');
    const probed = (await A.count()) - before;
    t.diagnostic(`attempts on a1 by the failing half-open probe request: ${probed}`);
    assert.ok(probed >= 1 && probed <= 2, `half-open: the probe request reached A (${probed} attempts)`);
    const tReopen = Date.now();
    for (let i = 0; i < 3; i++) assert.equal((await chat('brk')).status, 200);
    assert.equal((await A.count()) - before, probed, 'failed probe re-opened the breaker: no more traffic');
    assert.ok((await breakerMetric('brk', 'a1')).opened >= 2, 'opened_total counts the re-opening');

    // A recovers (slowly, so concurrent requests overlap the probe).
    await A.config({ 'latency-ms': 600 });
    await sleep(Math.max(0, tReopen + 1200 - Date.now()));
    const b2 = await A.count();
    const rs = await Promise.all(Array.from({ length: 6 }, () => chat('brk')));
    for (const r of rs) assert.equal(r.status, 200, r.text);
    const targets = rs.map((r) => r.headers.get('x-airlock-target')).sort();
    assert.equal((await A.count()) - b2, 1, 'exactly half_open_probes (1) request reached A while half-open');
    assert.deepEqual(targets, ['a1', 'b1', 'b1', 'b1', 'b1', 'b1']);

    // The successful probe closed it: A gets traffic again.
    await A.config({});
    const st2 = await status();
    assert.equal(breakerOf(st2, 'brk', 'a1')?.state, 'closed', JSON.stringify(st2));
    assert.equal(breakerOf(await cliStatus(), 'brk', 'a1')?.state, 'closed');
    assert.equal((await breakerMetric('brk', 'a1')).state, 0);
    const b3 = await A.count();
    for (let i = 0; i < 3; i++) {
      const r = await chat('brk');
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-airlock-target'), 'a1');
      assert.equal(r.headers.get('x-airlock-attempts'), '1');
    }
    assert.equal((await A.count()) - b3, 3);
  });

  test('breaker transitions are posted as alerts (breaker.open, breaker.closed)', async () => {
    const hooks = await waitFor(async () => {
      const w = (await H.webhooks()).map((x) => JSON.stringify(x));
      return w.some((s) => s.includes('breaker.open')) && w.some((s) => s.includes('breaker.closed')) ? w : undefined;
    }, { timeout: 5000, interval: 100 });
    assert.ok(hooks, `breaker.open and breaker.closed alerts: ${JSON.stringify(await H.webhooks()).slice(0, 1000)}`);
    assert.ok(hooks.some((s) => s.includes('breaker.open') && s.includes('brk') && s.includes('a1')));
  });
});

describe('429 and Retry-After', () => {
  test('Retry-After within the cap: same target again after that delay, then the next', async () => {
    await R1.config({ status: 429, 'fail-rate': 1, 'retry-after': 1 });
    await R1.reset();
    await R2.reset();
    const rid = uniq('ra-in');
    const r = await chat('ra', { headers: { 'x-request-id': rid } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-airlock-target'), 'r2');
    assert.equal(await R1.count(), 2, 'both attempts on r1');
    assert.equal(await R2.count(), 1);
    assert.ok(r.ms >= 850, `waited Retry-After (1 s) before the retry, took ${r.ms} ms`);
    assert.ok(r.ms < 2500, `did not wait after the last attempt on r1 nor beyond the cap: ${r.ms} ms`);
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev, 'event recorded');
    assert.equal(ev.route, 'ra');
    assert.deepEqual(attemptsOf(ev).map((a) => [a.target, a.outcome]),
      [['r1', 'http_429'], ['r1', 'http_429'], ['r2', 'ok']]);
    assert.equal(ev.n_attempts, 3);
  });

  test('Retry-After above the cap: the next target at once', async () => {
    await R1.config({ status: 429, 'fail-rate': 1, 'retry-after': 10 });
    await R1.reset();
    await R2.reset();
    const r = await chat('ra');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-airlock-target'), 'r2');
    assert.equal(await R1.count(), 1, 'no second attempt on r1');
    assert.ok(r.ms < 700, `moved on at once, took ${r.ms} ms`);
  });

  test('every target 429: the provider\'s 429 and Retry-After reach the client', async () => {
    await R1.config({ status: 429, 'fail-rate': 1, 'retry-after': 10 });
    await R2.config({ status: 429, 'fail-rate': 1, 'retry-after': 10 });
    try {
      const r = await chat('ra');
      assert.equal(r.status, 429, r.text);
      assert.ok(r.headers.get('retry-after'), 'Retry-After passed on');
      openaiError(r.text);
      assert.ok(r.ms < 1500);
    } finally {
      await R1.config({});
      await R2.config({});
    }
  });
});

describe('what falls back', () => {
  test('429s do not open the breaker: the target keeps getting traffic', async () => {
    await R1.config({ status: 429, 'fail-rate': 1, 'retry-after': 10 });
    await R1.reset();
    try {
      for (let i = 0; i < 8; i++) {
        const r = await chat('ra');
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('x-airlock-target'), 'r2');
      }
      assert.equal(await R1.count(), 8, 'r1 was tried by every request (429 is not a breaker failure)');
      assert.equal(breakerOf(await status(), 'ra', 'r1')?.state, 'closed');
    } finally {
      await R1.config({});
    }
  });

  test('provider 401/403 fall back; another 4xx goes to the client as it is', async () => {
    try {
      for (const st of [401, 403]) {
        await MB.config({ status: st, 'fail-rate': 1 });
        const r = await chat('mal');
        assert.equal(r.status, 200, `upstream ${st}: ${r.text}`);
        assert.equal(r.headers.get('x-airlock-target'), 'm');
      }
      await MB.config({ status: 400, 'fail-rate': 1 });
      await M.reset();
      const r = await chat('mal');
      assert.equal(r.status, 400, r.text);
      const e = openaiError(r.text);
      assert.match(e.message, /mock failure/, 'the provider\'s own error body');
      assert.equal(await M.count(), 0, 'no fallback on a plain 400');
    } finally {
      await MB.config({});
    }
  });

  test('routes obey the agent allow-list', async () => {
    const r = await gw.post('/v1/chat/completions', { model: 'brk', messages: msgs() }, { key: gw.keys.beta });
    assert.equal(r.status, 403, r.text);
    openaiError(r.text);
    const ok = await gw.post('/v1/chat/completions', { model: 'm', messages: msgs() }, { key: gw.keys.beta });
    assert.equal(ok.status, 200);
  });
});

describe('timeouts', () => {
  test('no first byte within first_byte_ms falls back (non-stream and stream)', async () => {
    await T1.config({ 'stall-ms': 3000 });
    try {
      const rid = uniq('fb');
      const r = await chat('to', { headers: { 'x-request-id': rid } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-airlock-target'), 'm');
      assert.ok(r.ms < 2000, `first-byte timeout (300 ms) bounded the wait, took ${r.ms} ms`);
      const [ev] = await gw.eventFor(rid);
      assert.ok(ev);
      assert.deepEqual(attemptsOf(ev).map((a) => [a.target, a.outcome]), [['t1', 'timeout'], ['m', 'ok']]);

      const s = await chat('to', { stream: true });
      assert.equal(s.status, 200);
      const { events, done, bad } = readSSE(s.text);
      assert.ok(done, 'stream ends with [DONE]');
      assert.deepEqual(bad, []);
      assert.ok(contentOf(events).length > 0, 'content from the fallback target');
      assert.ok(events.every((e) => !e.error), 'no error event');
      assert.ok(s.ms < 2000, `took ${s.ms} ms`);
    } finally {
      await T1.config({});
    }
  });

  test('a stall mid-stream is bounded by stream_idle_timeout: error event, [DONE], no hang', async () => {
    await M.reset();
    const rid = uniq('idle');
    const s = await chat('strm', {
      stream: true,
      headers: { 'x-request-id': rid, 'x-mock-stall-mid-ms': '10000', 'x-mock-chunks': '8' },
      timeout: 8000,
    });
    assert.equal(s.status, 200);
    assert.ok(s.ms < 3000, `idle timeout 500 ms ended the stream, took ${s.ms} ms`);
    const { events, done, bad, raw } = readSSE(s.text);
    assert.deepEqual(bad, [], 'every data line is JSON');
    assert.ok(contentOf(events).length > 0, 'the chunks before the stall were relayed');
    assertErrorEnd({ events, done, bad, raw }, s.text);
    assert.equal(await M.count(), 1, 'no retry after bytes reached the client');
  });

  test('a stall mid-stream is bounded by the route deadline', async () => {
    const s = await chat('dls', {
      stream: true, headers: { 'x-mock-stall-mid-ms': '10000', 'x-mock-chunks': '8' }, timeout: 8000,
    });
    assert.equal(s.status, 200);
    assert.ok(s.ms >= 800 && s.ms < 2500, `deadline 1 s ended the stream, took ${s.ms} ms`);
    const sse = readSSE(s.text);
    assert.deepEqual(sse.bad, []);
    assertErrorEnd(sse, s.text);
  });
});

describe('failures mid-stream and malformed answers', () => {
  test('reset mid-stream: well-formed error event, [DONE], event records the attempt', async () => {
    await M.reset();
    const rid = uniq('reset');
    const s = await chat('strm', {
      stream: true,
      headers: { 'x-request-id': rid, 'x-mock-reset-mid': '1', 'x-mock-chunks': '8', 'x-mock-chunk-interval-ms': '20' },
      timeout: 8000,
    });
    assert.equal(s.status, 200);
    const sse = readSSE(s.text);
    assert.deepEqual(sse.bad, [], 'every data line is JSON');
    assert.ok(contentOf(sse.events).length > 0, 'content before the reset');
    assertErrorEnd(sse, s.text);
    assert.equal(await M.count(), 1, 'no retry once bytes were sent');
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev, 'event recorded');
    assert.equal(ev.stream, true);
    assert.equal(ev.n_attempts, 1);
    const att = attemptsOf(ev);
    assert.equal(att.length, 1);
    assert.equal(att[0].target, 'm');
    assert.equal(att[0].outcome, 'reset');
    assert.notEqual(ev.outcome, 'ok', 'a broken stream is not recorded as ok');
  });

  test('reset mid-stream: the event keeps the partial usage', async () => {
    const rid = uniq('reset-usage');
    const s = await chat('strm', {
      stream: true,
      headers: { 'x-request-id': rid, 'x-mock-reset-mid': '1', 'x-mock-chunks': '8', 'x-mock-chunk-interval-ms': '10' },
      timeout: 8000,
    });
    assert.equal(s.status, 200);
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev);
    assert.ok(ev.output_tokens > 0, `partial output tokens recorded: ${ev.output_tokens}`);
    assert.ok(ev.input_tokens > 0, `input tokens recorded: ${ev.input_tokens}`);
  });

  test('malformed JSON from the upstream: 502 with a clear message, gateway still answers', async () => {
    const r = await chat('m', { headers: { 'x-mock-malformed': '1' } });
    assert.equal(r.status, 502, r.text);
    const e = openaiError(r.text);
    assert.match(e.message, /malformed|invalid|json|upstream/i);
    const h = await fetch(`${gw.url}/healthz`);
    assert.equal(h.status, 200);
    await h.arrayBuffer();
    const ok = await chat('m');
    assert.equal(ok.status, 200);
    assert.ok(ok.json.choices[0].message.content.length > 0);
  });

  test('malformed stream from the upstream: nothing malformed reaches the client', async () => {
    const s = await chat('m', { stream: true, headers: { 'x-mock-malformed': '1', 'x-mock-chunks': '8' }, timeout: 8000 });
    assert.ok(s.status === 200 || s.status === 502, `status ${s.status}`);
    if (s.status === 200) {
      const sse = readSSE(s.text);
      assert.deepEqual(sse.bad, [], 'broken upstream JSON is not relayed');
      assertErrorEnd(sse, s.text);
    } else {
      openaiError(s.text);
    }
  });

  test('malformed answer on a route falls back to the next target', async () => {
    await MB.config({ malformed: true });
    try {
      const rid = uniq('mal');
      const r = await chat('mal', { headers: { 'x-request-id': rid } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-airlock-target'), 'm');
      const [ev] = await gw.eventFor(rid);
      assert.deepEqual(attemptsOf(ev).map((a) => a.outcome), ['malformed', 'ok']);
    } finally {
      await MB.config({});
    }
  });
});

describe('strategies and skips', () => {
  test('weighted 3:1 over 2,000 requests is within 4 standard deviations', { timeout: 60000 }, async () => {
    await W1.reset();
    await W2.reset();
    const N = 2000;
    const counts = { w1: 0, w2: 0 };
    const bad = [];
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < N) {
        next++;
        const r = await chat('w', { extra: { max_tokens: 8 } });
        const t = r.headers.get('x-airlock-target');
        if (r.status !== 200 || !(t in counts)) bad.push([r.status, t, r.text.slice(0, 200)]);
        else counts[t]++;
      }
    }));
    assert.deepEqual(bad, []);
    const p = 0.75;
    const sd = Math.sqrt(N * p * (1 - p));
    assert.ok(Math.abs(counts.w1 - N * p) <= 4 * sd,
      `w1 got ${counts.w1} of ${N} (expected ${N * p} +- ${(4 * sd).toFixed(0)})`);
    assert.equal(await W1.count(), counts.w1, 'mock w1 saw what the headers said');
    assert.equal(await W2.count(), counts.w2);
  });

  test('latency strategy prefers the faster target, exploring a little', { timeout: 30000 }, async () => {
    // Warm-up: both targets get latency samples (untried targets go first).
    for (let i = 0; i < 6; i++) assert.equal((await chat('lat')).status, 200);
    const counts = { ls: 0, lf: 0 };
    for (let i = 0; i < 100; i++) {
      const r = await chat('lat');
      assert.equal(r.status, 200);
      counts[r.headers.get('x-airlock-target')]++;
    }
    // exploration 0.1: ~5% to the slow one (a random healthy target first).
    assert.ok(counts.lf >= 80, `fast target got ${counts.lf}/100 (slow ${counts.ls})`);
    assert.ok(counts.lf + counts.ls === 100);
  });

  test('a target whose context window is too small is skipped (skipped_context)', async () => {
    await X.reset();
    const rid = uniq('ctx');
    const r = await chat('ctx', { text: 'lorem ipsum dolor sit amet '.repeat(80), headers: { 'x-request-id': rid } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-airlock-target'), 'm');
    assert.equal(await X.count(), 0, 'the small-window model was never called');
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev);
    assert.deepEqual(attemptsOf(ev).map((a) => [a.target, a.outcome]), [['tiny', 'skipped_context'], ['m', 'ok']]);
    assert.equal(ev.n_attempts, 1, 'skips are not attempts');

    // max_tokens counts against the window too.
    const r2 = await chat('ctx', { text: 'hi', extra: { max_tokens: 200 } });
    assert.equal(r2.headers.get('x-airlock-target'), 'm');
    assert.equal(await X.count(), 0);

    // A request that fits goes to the first target.
    const r3 = await chat('ctx', { text: 'hi', extra: { max_tokens: 5 } });
    assert.equal(r3.status, 200);
    assert.equal(r3.headers.get('x-airlock-target'), 'tiny');
    assert.equal(await X.count(), 1);
  });

  test('degraded target only while every primary breaker is open', async () => {
    await D1.config({ status: 500, 'fail-rate': 1 });
    await D2.config({ status: 500, 'fail-rate': 1 });
    try {
      // Breakers never open on `nodeg`: the provider's own 500 reaches the client.
      for (let i = 0; i < 2; i++) {
        const r = await chat('nodeg');
        assert.equal(r.status, 500, `nodeg: ${r.text}`);
        openaiError(r.text);
        assert.notEqual(r.headers.get('x-airlock-degraded'), 'true');
      }
      // `deg`: one failure opens each breaker.
      const r1 = await chat('deg');
      assert.ok(r1.status === 500 || r1.status === 200, `first request: ${r1.status} ${r1.text}`);
      const c1 = (await D1.count()) + (await D2.count());
      const rid = uniq('deg');
      const r = await chat('deg', { headers: { 'x-request-id': rid } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-airlock-degraded'), 'true');
      assert.equal(r.headers.get('x-airlock-target'), 'm');
      assert.ok(r.json.choices[0].message.content.length > 0);
      assert.equal((await D1.count()) + (await D2.count()), c1, 'open primaries were not called');
      const [ev] = await gw.eventFor(rid);
      assert.ok(ev);
      assert.equal(ev.degraded, true);
      assert.equal(ev.route, 'deg');
      assert.deepEqual(attemptsOf(ev).map((a) => [a.target, a.outcome]),
        [['d1', 'skipped_breaker'], ['d2', 'skipped_breaker'], ['m', 'ok']]);
    } finally {
      await D1.config({});
      await D2.config({});
    }
  });
});

describe('deadlines', () => {
  const slow = { 'x-mock-latency-ms': '3000' };

  test('route deadline: 504 in about the deadline', async () => {
    const r = await chat('dl', { headers: slow });
    assert.equal(r.status, 504, r.text);
    openaiError(r.text);
    assert.ok(r.ms >= 650 && r.ms < 1800, `answered in ${r.ms} ms (deadline 800 ms)`);
  });

  test('x-airlock-deadline-ms lowers the route deadline', async () => {
    const r = await chat('dlh', { headers: { ...slow, 'x-airlock-deadline-ms': '500' } });
    assert.equal(r.status, 504, r.text);
    openaiError(r.text);
    assert.ok(r.ms >= 400 && r.ms < 1500, `answered in ${r.ms} ms (deadline 500 ms)`);
  });

  test('x-airlock-deadline-ms never raises the route deadline', async () => {
    const r = await chat('dl', { headers: { ...slow, 'x-airlock-deadline-ms': '5000' } });
    assert.equal(r.status, 504, r.text);
    assert.ok(r.ms < 1800, `answered in ${r.ms} ms (route deadline 800 ms)`);
  });

  test('a plain model honours x-airlock-deadline-ms', async () => {
    const r = await chat('m', { headers: { ...slow, 'x-airlock-deadline-ms': '400' } });
    assert.equal(r.status, 504, r.text);
    openaiError(r.text);
    assert.ok(r.ms >= 300 && r.ms < 1500, `answered in ${r.ms} ms (deadline 400 ms)`);
  });

  test('a deadline that is not reached changes nothing', async () => {
    const r = await chat('dl');
    assert.equal(r.status, 200);
  });
});

describe('status', () => {
  test('admin status lists every route target with its breaker', async () => {
    const st = await status();
    assert.equal(typeof st.version, 'string');
    assert.ok(Number.isInteger(st.workers) && st.workers >= 1);
    assert.ok(Number.isInteger(st.inflight));
    assert.ok(Number.isInteger(st.escalations_open));
    const keys = new Set((st.breakers || []).map((b) => `${b.route}/${b.target}`));
    for (const k of ['brk/a1', 'brk/b1', 'w/w1', 'w/w2', 'ctx/tiny', 'deg/d1', 'deg/d2']) {
      assert.ok(keys.has(k), `breaker ${k} listed: ${[...keys].join(', ')}`);
    }
    for (const b of st.breakers) {
      assert.ok(['closed', 'open', 'half_open'].includes(b.state), `state ${b.state}`);
      for (const f of ['window_requests', 'window_failures', 'consecutive_failures', 'opened_total']) {
        assert.ok(Number.isInteger(b[f]), `${b.route}/${b.target}.${f}`);
      }
    }
    assert.equal(breakerOf(st, 'deg', 'd1').state, 'open');
  });
});
