// chaos.test.mjs - sustained concurrent load while three upstreams misbehave.
//
// Three `airlock mock` upstreams behind two routes: `chaos` (fallback over
// all three, retries, short breakers, `final: escalate` in defer mode) and
// `chaosw` (weighted over the same three, `final: error`, a simulated
// degraded target).  For AIRLOCK_CHAOS_SECONDS (default 60) a controller
// re-draws each mock's faults every 1.5-4 s through POST /_mock/config
// (healthy, 5xx at a rate, 503, 429 with Retry-After, slow, stalled before the
// first byte, stalled or reset mid-stream, malformed), while 32 clients send
// streamed and non-streamed requests, each with its own x-request-id and a
// client-side timeout.  Every answer must be one of: 200 with content, 503
// `escalated` (chaos route only), or a clear OpenAI-shaped error (status and
// body, or an SSE error event followed by [DONE]); never a hang or a
// malformed answer.  Then: exactly one event per request, gateway RSS back
// near its warmed-up baseline (not under sanitizers), and exit 0 on SIGTERM.
// The fault draws use a seeded PRNG; the seed is printed so a failure can be
// replayed with AIRLOCK_CHAOS_SEED.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCustomGateway, startMocks, mockProvider, sleep, waitFor, sanitizerReport,
} from './helpers.mjs';

const SECONDS = Number(process.env.AIRLOCK_CHAOS_SECONDS || 60);
const SEED = Number(process.env.AIRLOCK_CHAOS_SEED || (Date.now() % 2147483647));
const CONCURRENCY = 32;
const CLIENT_TIMEOUT_MS = 25000;

let gw;
let mocks = [];

function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = prng(SEED);
const pick = (arr) => arr[Math.floor(rand() * arr.length)];

const FAULTS = [
  {}, {}, {},
  { 'latency-ms': 100, 'jitter-ms': 300 },
  { status: 500, 'fail-rate': 0.5 },
  { status: 500, 'fail-rate': 1 },
  { status: 503, 'fail-rate': 1 },
  { status: 429, 'fail-rate': 0.7, 'retry-after': 1 },
  { 'stall-ms': 3000 },
  { 'reset-mid': true, 'chunk-interval-ms': 10 },
  { 'stall-mid-ms': 3000, 'chunk-interval-ms': 5 },
  { malformed: true },
];

before(async () => {
  mocks = await startMocks(3);
  const extra = 'timeouts: {connect_ms: 1000, first_byte_ms: 1500}, stream_idle_timeout: 1s';
  gw = await startCustomGateway({
    server: { workers: 4, idle_timeout_ms: 30000 },
    yaml: () => [
      'providers:',
      ...mocks.map((m, i) => mockProvider(`pc${i + 1}`, m, { forward: false, extra })),
      '  psim: {type: simulated, simulated: {latency_ms: 2, output_tokens: 12, chunks: 4, chunk_interval_ms: 2}}',
      'models:',
      ...mocks.map((m, i) => `  c${i + 1}: {provider: pc${i + 1}, model: up-c${i + 1}}`),
      '  simd: {provider: psim, model: sim-degraded}',
      'routes:',
      '  chaos:',
      '    strategy: fallback',
      '    targets: [c1, c2, c3]',
      '    retry: {attempts: 2, backoff_base: 20ms, backoff_cap: 200ms, retry_after_cap: 1s, deadline: 8s}',
      '    breaker: {failure_ratio: 0.5, window: 10s, min_requests: 10, consecutive_failures: 5, cooldown: 1s, half_open_probes: 1}',
      '    final: escalate',
      '    escalation: {mode: defer}',
      '  chaosw:',
      '    strategy: weighted',
      '    targets: [{model: c1, weight: 2}, {model: c2, weight: 1}, {model: c3, weight: 1}]',
      '    retry: {attempts: 2, backoff_base: 20ms, backoff_cap: 200ms, retry_after_cap: 1s, deadline: 8s}',
      '    breaker: {failure_ratio: 0.5, window: 10s, min_requests: 10, consecutive_failures: 5, cooldown: 1s, half_open_probes: 1}',
      '    degraded: simd',
      'agents:',
      '  alpha: {owner: alpha@example.com, models: [chaos, chaosw]}',
    ].join('\n'),
  });
});

after(async () => {
  if (gw) await gw.close(mocks);
  else for (const m of mocks) await m.stop();
});

function readSSE(text) {
  const events = [];
  const bad = [];
  let done = false;
  let afterDone = 0;
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
    if (!data) continue;
    if (done) afterDone++;
    if (data === '[DONE]') { done = true; continue; }
    try { events.push(JSON.parse(data)); } catch { bad.push(data.slice(0, 200)); }
  }
  return { events, done, bad, afterDone };
}

function isOpenAIError(j) {
  return j && typeof j.error === 'object' && j.error && typeof j.error.message === 'string' && j.error.message.length > 0
    && typeof j.error.type === 'string' && 'code' in j.error;
}

// One request; returns {rid, verdict, status, detail}. verdict: ok | stream_error | escalated | failed | BAD
async function one(i, runId) {
  const rid = `${runId}-${i}`;
  const stream = rand() < 0.5;
  const route = rand() < 0.75 ? 'chaos' : 'chaosw';
  const body = JSON.stringify({ model: route, messages: [{ role: 'user', content: `chaos request ${i}` }], stream });
  const bad = (status, detail) => ({ rid, route, stream, verdict: 'BAD', status, detail });
  let r;
  let text;
  try {
    r = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json', 'x-request-id': rid },
      body,
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    });
    text = await r.text();
  } catch (e) {
    return bad(0, `no complete answer within ${CLIENT_TIMEOUT_MS} ms or connection error: ${e}`);
  }
  const ct = r.headers.get('content-type') || '';
  if (r.status === 200 && stream) {
    if (!ct.startsWith('text/event-stream')) return bad(200, `stream content-type ${ct}`);
    const { events, done, bad: badLines, afterDone } = readSSE(text);
    if (badLines.length) return bad(200, `unparseable SSE data: ${badLines[0]}`);
    if (afterDone) return bad(200, 'data after [DONE]');
    const errs = events.filter((e) => e.error);
    // A complete stream ends with [DONE]; a broken one with its error event
    // (then [DONE] per the spec, or just the end of the body: the brief
    // accepts both).
    if (!done && !errs.length) return bad(200, `stream without [DONE] or error event: ...${text.slice(-300)}`);
    if (errs.length) {
      if (errs.length !== 1 || !isOpenAIError(errs[0]) || events[events.length - 1] !== errs[0]) {
        return bad(200, `error event not well formed / not last: ${JSON.stringify(errs).slice(0, 300)}`);
      }
      return { rid, route, stream, verdict: 'stream_error', status: 200 };
    }
    const content = events.map((e) => e.choices?.[0]?.delta?.content ?? '').join('');
    if (!content) return bad(200, 'stream without content');
    if (!events.some((e) => e.choices?.[0]?.finish_reason)) return bad(200, 'stream without finish_reason');
    if (!events.every((e) => e.object === 'chat.completion.chunk')) return bad(200, 'chunk object');
    return { rid, route, stream, verdict: 'ok', status: 200 };
  }
  let j;
  try { j = JSON.parse(text); } catch { return bad(r.status, `body is not JSON: ${text.slice(0, 200)}`); }
  if (r.status === 200) {
    const c = j?.choices?.[0]?.message?.content;
    if (j.object !== 'chat.completion' || typeof c !== 'string' || !c) return bad(200, `no content: ${text.slice(0, 200)}`);
    return { rid, route, stream, verdict: 'ok', status: 200 };
  }
  if (!isOpenAIError(j)) return bad(r.status, `error not OpenAI-shaped: ${text.slice(0, 200)}`);
  if (r.status === 503 && j.error.type === 'escalated') {
    if (route !== 'chaos') return bad(503, 'escalated on a route without final: escalate');
    if (!/^esc_[0-9a-f]{24}$/.test(j.error.escalation_id || '')) return bad(503, `escalation id ${j.error.escalation_id}`);
    if (r.headers.get('x-airlock-escalation-id') !== j.error.escalation_id) return bad(503, 'x-airlock-escalation-id');
    return { rid, route, stream, verdict: 'escalated', status: 503 };
  }
  if (![429, 500, 502, 503, 504].includes(r.status)) return bad(r.status, `unexpected status: ${text.slice(0, 200)}`);
  return { rid, route, stream, verdict: 'failed', status: r.status, type: j.error.type };
}

describe('chaos', () => {
  let baselineRss;

  test('warm-up with healthy upstreams', async () => {
    for (const m of mocks) await m.config({});
    const runId = `warm${Date.now().toString(36)}`;
    let next = 0;
    const res = [];
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < 400) res.push(await one(next++, runId));
    }));
    const notOk = res.filter((x) => x.verdict !== 'ok');
    assert.deepEqual(notOk.slice(0, 3), [], 'healthy upstreams: everything answers 200');
    await sleep(500);
    baselineRss = gw.rss();
  });

  test(`${SECONDS} s of faults under ${CONCURRENCY} concurrent clients`, { timeout: SECONDS * 1000 + 180000 }, async (t) => {
    t.diagnostic(`AIRLOCK_CHAOS_SEED=${SEED}`);
    const runId = `chaos${Date.now().toString(36)}`;
    await sleep(300);
    const evBefore = (await gw.events()).length;
    const endAt = Date.now() + SECONDS * 1000;

    let stopChaos = false;
    const draws = [];
    const controller = (async () => {
      while (!stopChaos) {
        await Promise.all(mocks.map(async (m, k) => {
          const f = pick(FAULTS);
          draws.push([k, JSON.stringify(f)]);
          await m.config(f);
        }));
        const wait = 1500 + Math.floor(rand() * 2500);
        const until = Date.now() + wait;
        while (!stopChaos && Date.now() < until) await sleep(100);
      }
    })();

    const results = [];
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < endAt) results.push(await one(next++, runId));
    }));
    stopChaos = true;
    await controller;
    for (const m of mocks) await m.config({});

    const tally = {};
    for (const x of results) tally[x.verdict] = (tally[x.verdict] || 0) + 1;
    t.diagnostic(`requests ${results.length}: ${JSON.stringify(tally)}; fault draws ${draws.length}`);
    const bad = results.filter((x) => x.verdict === 'BAD');
    assert.deepEqual(bad.slice(0, 5), [], `${bad.length} bad answers (seed ${SEED})`);
    assert.ok(results.length >= SECONDS * 20, `enough load: ${results.length} requests`);
    assert.ok((tally.ok || 0) > 0, 'some requests succeeded');
    assert.ok((tally.ok || 0) + (tally.escalated || 0) + (tally.failed || 0) + (tally.stream_error || 0) === results.length);

    // Exactly one event per request.
    const prefix = `${runId}-`;
    let evs = [];
    await waitFor(async () => {
      evs = (await gw.events()).filter((e) => e.request_id.startsWith(prefix));
      return evs.length >= results.length;
    }, { timeout: 15000, interval: 500 });
    await sleep(500);
    const all = await gw.events();
    evs = all.filter((e) => e.request_id.startsWith(prefix));
    const byRid = new Map();
    const dup = [];
    for (const e of evs) {
      if (byRid.has(e.request_id)) dup.push(e.request_id);
      byRid.set(e.request_id, e);
    }
    assert.deepEqual(dup.slice(0, 5), [], 'no request has two events');
    const missing = results.filter((x) => !byRid.has(x.rid));
    assert.deepEqual(missing.slice(0, 5).map((x) => x.rid), [], `${missing.length} requests without an event`);
    assert.equal(evs.length, results.length);
    assert.equal(all.length - evBefore, results.length, 'the event log grew by exactly the number of requests');

    // Events agree with what the clients saw.
    const mism = [];
    for (const x of results) {
      const e = byRid.get(x.rid);
      if (x.verdict === 'escalated' && (e.outcome !== 'escalated' || !e.escalation_id)) mism.push([x.rid, x.verdict, e.outcome]);
      if (x.verdict === 'ok' && e.outcome !== 'ok') mism.push([x.rid, x.verdict, e.outcome]);
      if (x.verdict === 'failed' && e.status !== x.status) mism.push([x.rid, x.status, e.status]);
      if (e.stream !== x.stream) mism.push([x.rid, 'stream', e.stream]);
      if (e.route !== x.route) mism.push([x.rid, 'route', e.route]);
    }
    assert.deepEqual(mism.slice(0, 5), [], `${mism.length} events disagree with the client`);
  });

  test('memory back near the baseline after the load', async (t) => {
    await sleep(2000);
    const rss = gw.rss();
    const grown = rss - baselineRss;
    t.diagnostic(`RSS baseline ${baselineRss} KiB, after ${rss} KiB (grew ${grown} KiB)`);
    if (process.env.AIRLOCK_SANITIZED) return; // ASan quarantine: RSS says nothing
    assert.ok(grown < 64 * 1024, `RSS grew ${grown} KiB (baseline ${baselineRss} KiB, now ${rss} KiB)`);
  });

  test('still serves, then exits 0 on SIGTERM with no sanitizer report', async () => {
    const r = await one(0, `final${Date.now().toString(36)}`);
    assert.equal(r.verdict, 'ok', JSON.stringify(r));
    const st = await gw.stop({ signal: 'SIGTERM', timeout: 10000 });
    assert.equal(st.killed, false, 'exited by itself');
    assert.equal(st.code, 0, `exit code ${st.code} signal ${st.signal}`);
    assert.equal(sanitizerReport(gw.stderr()), null);
  });
});
