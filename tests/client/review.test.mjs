// review.test.mjs - regressions for four gateway fixes, seen from a client.
//
// 1. An Anthropic stream that opens with `event: error` (overloaded,
//    rate_limit) is a failure before the first byte: 503 / 429 on a plain
//    model, a fallback on a route.
// 2. A stream that ends without its end marker (no `[DONE]`, no
//    `message_stop`) is a broken stream: one error event, no [DONE], outcome
//    `error`; the Anthropic SDK must not see a complete message.
// 3. An SSE answer to a non-streaming request is malformed: 502
//    `bad_upstream_response`, or a fallback recorded as `malformed`.
// 4. A status line followed by silence is bounded by first_byte_ms.
// Plus: breaker alerts from streaming failures, and a held client that
// disconnects closes its escalation as `timeout`.
//
// One `airlock serve`, one `airlock mock` per upstream (faults per request by
// x-mock-* headers, or at run time by POST /_mock/config), a mock as the
// alerts webhook sink.  Every process is stopped by PID in after().

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import {
  startCustomGateway, startMocks, mockProvider, uniq, sleep, waitFor, openaiError, listRows,
} from './helpers.mjs';

let gw;
let AN; let OK; let ND; let SA; let HS; let BR; let F; let H;
let adminTok;
const FAST = 'backoff_base: 10ms, backoff_cap: 20ms';

before(async () => {
  [AN, OK, ND, SA, HS, BR, F, H] = await startMocks(8);
  await F.config({ status: 500, 'fail-rate': 1 });
  gw = await startCustomGateway({
    yaml: () => [
      'providers:',
      mockProvider('pan', AN, { type: 'anthropic', extra: 'stream_idle_timeout: 10s' }),
      mockProvider('pok', OK, { forward: false }),
      mockProvider('pnd', ND),
      mockProvider('psa', SA),
      mockProvider('phs', HS, { extra: 'timeouts: {first_byte_ms: 500}' }),
      mockProvider('pbr', BR, { forward: false }),
      mockProvider('pf', F, { forward: false }),
      'models:',
      '  claude: {provider: pan, model: claude-up, context_window: 200000, max_output_tokens: 1024}',
      '  okm: {provider: pok, model: up-ok}',
      '  nd: {provider: pnd, model: up-nd}',
      '  sa: {provider: psa, model: up-sa}',
      '  hs: {provider: phs, model: up-hs}',
      '  br: {provider: pbr, model: up-br}',
      '  fm: {provider: pf, model: up-f}',
      'routes:',
      '  anfb:',
      '    targets: [claude, okm]',
      `    retry: {attempts: 1, ${FAST}}`,
      '  safb:',
      '    targets: [sa, okm]',
      `    retry: {attempts: 1, ${FAST}}`,
      '  brk:',
      '    targets: [br, okm]',
      `    retry: {attempts: 1, ${FAST}}`,
      '    breaker: {failure_ratio: 0.5, window: 60s, min_requests: 100, consecutive_failures: 2, cooldown: 1s, half_open_probes: 1}',
      '  esch:',
      '    targets: [fm]',
      `    retry: {attempts: 1, ${FAST}}`,
      '    final: escalate',
      '    escalation: {mode: hold, hold_timeout: 30s}',
      `alerts: {webhook_url: "${H.webhookURL}", timeout: 2s}`,
      'agents:',
      '  alpha: {owner: alpha@example.com, models: [claude, okm, nd, sa, hs, br, anfb, safb, brk, esch]}',
    ].join('\n'),
    keyAgents: ['alpha'],
  });
  adminTok = await gw.adminToken('admin');
});

after(async () => {
  const all = [AN, OK, ND, SA, HS, BR, F, H];
  if (gw) await gw.close(all);
  else for (const m of all) if (m) await m.stop();
});

const msgs = (text = 'Say hello.') => [{ role: 'user', content: text }];

function chat(model, { headers = {}, stream = false, extra = {}, timeout = 30000 } = {}) {
  return gw.post('/v1/chat/completions', { model, messages: msgs(), stream, ...extra }, { headers, timeout });
}

// {events (parsed data objects), done ([DONE] seen), bad (unparseable), raw}
function readSSE(text) {
  const events = [];
  const bad = [];
  const raw = [];
  let done = false;
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
    if (!data) continue;
    raw.push(data);
    if (data === '[DONE]') { done = true; continue; }
    try { events.push(JSON.parse(data)); } catch { bad.push(data); }
  }
  return { events, done, bad, raw };
}

const contentOf = (events) => events.map((e) => e.choices?.[0]?.delta?.content ?? '').join('');

function attemptsOf(ev) {
  if (Array.isArray(ev.attempts)) return ev.attempts;
  if (typeof ev.attempts === 'string' && ev.attempts) return JSON.parse(ev.attempts);
  return [];
}

describe('Anthropic stream opening with event: error', () => {
  test('overloaded on a plain model: 503 with an OpenAI-shaped error, not 200', async () => {
    const r = await chat('claude', { stream: true, headers: { 'x-mock-error-event': 'overloaded' } });
    assert.equal(r.status, 503, `status ${r.status}: ${r.text.slice(0, 500)}`);
    assert.match(r.headers.get('content-type') || '', /application\/json/);
    const e = openaiError(r.text);
    assert.match(e.message, /overload/i);
  });

  test('rate_limit on a plain model: 429', async () => {
    const r = await chat('claude', { stream: true, headers: { 'x-mock-error-event': 'rate_limit' } });
    assert.equal(r.status, 429, `status ${r.status}: ${r.text.slice(0, 500)}`);
    openaiError(r.text);
  });

  test('on a route: the next target answers the stream', async () => {
    await OK.reset();
    const rid = uniq('anfb');
    const r = await chat('anfb', { stream: true, headers: { 'x-request-id': rid, 'x-mock-error-event': 'overloaded' } });
    assert.equal(r.status, 200, r.text.slice(0, 500));
    assert.equal(r.headers.get('x-airlock-target'), 'okm');
    const sse = readSSE(r.text);
    assert.ok(sse.done, 'complete stream ([DONE])');
    assert.deepEqual(sse.bad, []);
    assert.ok(sse.events.every((e) => !e.error), `no error event: ${r.text.slice(0, 500)}`);
    assert.ok(contentOf(sse.events).length > 0);
    assert.equal(await OK.count(), 1);
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev, 'event recorded');
    const att = attemptsOf(ev);
    assert.deepEqual(att.map((a) => a.target), ['claude', 'okm']);
    assert.notEqual(att[0].outcome, 'ok');
    assert.equal(att[1].outcome, 'ok');
  });
});

describe('stream ending without its end marker', () => {
  test('chat: chunks, then one error event, no [DONE]; outcome error', async () => {
    const rid = uniq('nodone');
    const r = await chat('nd', {
      stream: true, headers: { 'x-request-id': rid, 'x-mock-no-done': '1', 'x-mock-chunks': '4' },
    });
    assert.equal(r.status, 200);
    const sse = readSSE(r.text);
    assert.deepEqual(sse.bad, []);
    assert.ok(contentOf(sse.events).length > 0, 'the chunks reached the client');
    const errs = sse.events.filter((e) => e.error);
    assert.equal(errs.length, 1, `one error event: ...${r.text.slice(-500)}`);
    assert.equal(sse.events[sse.events.length - 1], errs[0], 'the error event is last');
    assert.equal(typeof errs[0].error.message, 'string');
    assert.ok(!sse.done, `no [DONE] on a broken stream: ...${r.text.slice(-300)}`);
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev, 'event recorded');
    assert.equal(ev.outcome, 'error', `event outcome: ${JSON.stringify(ev).slice(0, 600)}`);
  });

  test('/v1/messages, Anthropic SDK stream: raises, no finalMessage', async () => {
    const c = new Anthropic({ baseURL: gw.url, apiKey: gw.keys.alpha, maxRetries: 0, timeout: 15000 });
    let msg;
    let err;
    try {
      msg = await c.messages.stream({
        model: 'claude', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }],
      }, { headers: { 'x-mock-no-done': '1' } }).finalMessage();
    } catch (e) { err = e; }
    assert.ok(err, `the SDK must raise; it returned ${JSON.stringify(msg)?.slice(0, 400)}`);
  });

  test('/v1/messages raw SSE: an event: error and no message_stop', async () => {
    const r = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: {
        'x-api-key': gw.keys.alpha, 'content-type': 'application/json', 'anthropic-version': '2023-06-01',
        'x-mock-no-done': '1',
      },
      body: JSON.stringify({ model: 'claude', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      signal: AbortSignal.timeout(15000),
    });
    const text = await r.text();
    assert.equal(r.status, 200);
    assert.match(text, /event: content_block_delta/, 'the deltas reached the client');
    assert.match(text, /event: error/, `an error event: ...${text.slice(-500)}`);
    assert.doesNotMatch(text, /message_stop/, 'no message_stop on a broken stream');
  });
});

describe('SSE answer to a non-streaming request', () => {
  test('plain model: 502 bad_upstream_response', async () => {
    const r = await chat('sa', { headers: { 'x-mock-sse-always': '1' } });
    assert.equal(r.status, 502, r.text.slice(0, 500));
    const e = openaiError(r.text);
    assert.ok([e.code, e.type].includes('bad_upstream_response'), r.text.slice(0, 500));
  });

  test('route: 200 from the second target, attempts malformed then ok', async () => {
    const rid = uniq('safb');
    const r = await chat('safb', { headers: { 'x-request-id': rid, 'x-mock-sse-always': '1' } });
    assert.equal(r.status, 200, r.text.slice(0, 500));
    assert.equal(r.headers.get('x-airlock-target'), 'okm');
    assert.equal(r.json.object, 'chat.completion');
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev);
    assert.deepEqual(attemptsOf(ev).map((a) => [a.target, a.outcome]), [['sa', 'malformed'], ['okm', 'ok']]);
  });
});

describe('status line, then silence', () => {
  test('head-stall-ms 5000 with first_byte_ms 500: 504 in about 0.5 s', async () => {
    const r = await chat('hs', { headers: { 'x-mock-head-stall-ms': '5000' }, timeout: 10000 });
    assert.equal(r.status, 504, r.text.slice(0, 500));
    const e = openaiError(r.text);
    assert.ok([e.code, e.type].includes('upstream_timeout'), r.text.slice(0, 500));
    assert.ok(r.ms < 2000, `ended in ${r.ms} ms, not after the 5 s stall`);
  });

  test('the same fault without a stall long enough changes nothing', async () => {
    const r = await chat('hs', { headers: { 'x-mock-head-stall-ms': '50' } });
    assert.equal(r.status, 200, r.text.slice(0, 500));
    assert.ok(r.json.choices[0].message.content.length > 0);
  });
});

describe('breaker alerts from streaming failures', () => {
  const hooks = async () => (await H.webhooks()).map((x) => JSON.stringify(x));
  const brHook = (s, kind) => s.includes(kind) && s.includes('brk') && s.includes('"br"');

  test('breaker.open after two broken streams, breaker.closed after recovery', { timeout: 20000 }, async () => {
    await BR.config({ 'reset-mid': true, chunks: 8, 'chunk-interval-ms': 10 });
    try {
      for (let i = 0; i < 2; i++) {
        const r = await chat('brk', { stream: true });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('x-airlock-target'), 'br');
        const sse = readSSE(r.text);
        assert.equal(sse.events.filter((e) => e.error).length, 1, 'broken stream ends with an error event');
      }
      const opened = await waitFor(async () => (await hooks()).some((s) => brHook(s, 'breaker.open')),
        { timeout: 5000, interval: 100 });
      assert.ok(opened, `breaker.open alert for brk/br: ${(await hooks()).join('\n').slice(0, 1500)}`);
      const st = await gw.admin('GET', '/admin/v1/status', { token: adminTok });
      const b = (st.json?.breakers || []).find((x) => x.route === 'brk' && x.target === 'br');
      assert.ok(b && b.state !== 'closed', `brk/br breaker: ${JSON.stringify(b)}`);
      const skipped = await chat('brk', { stream: true });
      assert.equal(skipped.headers.get('x-airlock-target'), 'okm', 'open breaker: the next target answers');
    } finally {
      await BR.config({});
    }
    await sleep(1200);
    const r = await chat('brk', { stream: true });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-airlock-target'), 'br', 'the half-open probe went to br');
    assert.ok(readSSE(r.text).done);
    const closed = await waitFor(async () => (await hooks()).some((s) => brHook(s, 'breaker.closed')),
      { timeout: 5000, interval: 100 });
    assert.ok(closed, `breaker.closed alert for brk/br: ${(await hooks()).join('\n').slice(0, 1500)}`);
  });
});

describe('hold-mode client that disconnects', () => {
  test('the escalation closes as timeout shortly after, with an escalation.timeout event', { timeout: 20000 }, async () => {
    const rid = uniq('hold-gone');
    const ac = new AbortController();
    const pending = gw.post('/v1/chat/completions', { model: 'esch', messages: msgs('Please help.') },
      { headers: { 'x-request-id': rid }, signal: ac.signal }).catch((e) => e);
    let id;
    await waitFor(async () => {
      const l = await gw.admin('GET', '/admin/v1/escalations?status=open&limit=100', { token: adminTok });
      id = listRows(l.text).find((x) => x.request_id === rid)?.id;
      return id;
    }, { timeout: 5000, interval: 50 });
    assert.match(id || '', /^esc_[0-9a-f]{24}$/, 'the held request opened an escalation');
    await sleep(200);
    const t0 = Date.now();
    ac.abort();
    await pending;
    let shown;
    const closed = await waitFor(async () => {
      const s = await gw.cli(['escalations', 'show', id, '--json']);
      try { shown = JSON.parse(s.stdout); } catch { shown = s.stdout; }
      return shown?.status === 'timeout';
    }, { timeout: 5000, interval: 100 });
    assert.ok(closed, `escalation closed as timeout after the client left: ${JSON.stringify(shown)?.slice(0, 500)}`);
    assert.ok(Date.now() - t0 < 5000);
    const a = await gw.admin('GET', `/admin/v1/escalations/${id}`, { token: adminTok });
    assert.equal(a.json?.status, 'timeout', a.text.slice(0, 400));
    const [ev] = await gw.waitEvents((e) => e.kind === 'escalation.timeout' && e.escalation_id === id, { timeout: 4000 });
    assert.ok(ev, 'escalation.timeout event');
  });
});
