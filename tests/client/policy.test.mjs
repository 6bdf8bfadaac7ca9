// policy.test.mjs - budgets, rate limits, sessions and the inventory, as an
// agent and its owner see them (notes/policy.md).
//
// One `airlock serve` (server.workers: 2) with one agent per scenario, all on
// models served by an `airlock mock` that takes its faults per request from
// x-mock-* headers (latency, output tokens, status), and a second mock whose
// /_mock/webhook receives the alerts.  Prices are chosen so the worst case
// of a request is a round figure: the prompt is one user message of 36
// characters (40 bytes of string values with the role: 10 tokens at 4 bytes
// a token), max_tokens is fixed, and the mock answers exactly max_tokens
// output tokens, so the real cost of a request equals its reservation.
// Every check is on what a client gets (status, error type/code, message,
// headers), on the events (`airlock events list --json`), on the ledger as
// the admin API and `airlock agents show --json` report it, and on the
// alerts posted.  The rpm window is 60 s: its reset is checked by the last
// test, which waits for the time the x-ratelimit-reset-requests header
// announced while the other tests ran.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';
import {
  startCustomGateway, startMocks, mockProvider, uniq, sleep, waitFor, openaiError, listRows,
  freshRequest, numbersIn, parseResetMs, runCliAsync, parseMetrics, metricSum,
} from './helpers.mjs';

let gw; let M; let H; let adminTok;

const PROMPT = 'Summarise the refund policy briefly.'; // 36 characters
assert.equal(PROMPT.length, 36);
const PROMPT_TOKENS = 10; // ("user" + PROMPT) = 40 bytes / 4
const MAX_TOKENS = 100;
// Budget model `pb`: USD per million tokens.
const PB_IN = 100;
const PB_OUT = 190;
const WORST = (PROMPT_TOKENS * PB_IN + MAX_TOKENS * PB_OUT) / 1e6; // 0.02 USD
const BUDGET = 10.5 * WORST; // 0.21: covers exactly 10 worst cases (10.5 also absorbs a 1-token estimate skew)
// Inventory model `mi`.
const MI_IN = 1000;
const MI_OUT = 2000;
const MI_COST = (PROMPT_TOKENS * MI_IN + 16 * MI_OUT) / 1e6; // the mock's default 16 output tokens

const today = new Date().toISOString().slice(0, 10);

const yaml = () => [
  'providers:',
  mockProvider('pm', M),
  'models:',
  `  pb: {provider: pm, model: up-pb, price: {input: ${PB_IN}, output: ${PB_OUT}}}`,
  '  m: {provider: pm, model: up-m, price: {input: 1, output: 2}}',
  `  mi: {provider: pm, model: up-mi, price: {input: ${MI_IN}, output: ${MI_OUT}}}`,
  '  unusedm: {provider: pm, model: up-unused, price: {input: 1, output: 2}}',
  'routes:',
  '  r1:',
  '    targets: [mi]',
  '    retry: {attempts: 1, backoff_base: 10ms, backoff_cap: 20ms}',
  'teams:',
  `  tb: {owner: "team-b@example.com", budget: {daily_usd: ${BUDGET}}}`,
  '  ops: {owner: "ops@example.com"}',
  `alerts: {webhook_url: "${H.webhookURL}", timeout: 2s}`,
  'agents:',
  `  bud: {owner: bud@example.com, models: [pb], budget: {daily_usd: ${BUDGET}, monthly_usd: 100}}`,
  `  bm: {owner: bm@example.com, models: [pb], budget: {daily_usd: 100, monthly_usd: ${1.5 * WORST}}}`,
  '  ab: {owner: ab@example.com, models: [pb], limits: {concurrent: 1}, budget: {daily_usd: 10}}',
  `  bs: {owner: bs@example.com, models: [pb], budget: {daily_usd: ${3.5 * WORST}}}`,
  '  tb1: {owner: tb1@example.com, team: tb, models: [pb]}',
  '  tb2: {owner: tb2@example.com, team: tb, models: [pb]}',
  '  rl: {owner: rl@example.com, models: [m], limits: {rpm: 4, tpm: 1000000}}',
  '  hd: {owner: hd@example.com, models: [m], limits: {rpm: 1000, tpm: 10000000}}',
  '  kl: {owner: kl@example.com, models: [m], limits: {rpm: 100}, key_limits: {rpm: 2}}',
  '  kl2: {owner: kl2@example.com, models: [m], limits: {rpm: 3}, key_limits: {rpm: 2}}',
  '  tp: {owner: tp@example.com, models: [m], limits: {tpm: 1000}}',
  '  tq: {owner: tq@example.com, models: [m], limits: {tpm: 1000}}',
  '  cc: {owner: cc@example.com, models: [m], limits: {concurrent: 3}}',
  '  ck: {owner: ck@example.com, models: [m], key_limits: {concurrent: 2}}',
  '  ses: {owner: ses@example.com, models: [m], session: {max_requests: 5, loop_threshold: 2}}',
  '  ses2: {owner: ses2@example.com, models: [m], session: {max_tokens: 40}}',
  '  ses3: {owner: ses3@example.com, models: [mi], session: {max_cost_usd: 0.05, max_duration: 1s}}',
  '  sdk: {owner: sdk@example.com, models: [m], limits: {rpm: 1}}',
  '  inv:',
  '    owner: inv@example.com',
  '    description: "Inventory test agent"',
  '    team: ops',
  '    oncall: "pager:inv-primary"',
  '    sla: {p95_latency_ms: 3000, availability_pct: 99.5, max_error_rate: 0.02}',
  '    review: {last: 2020-01-01, every_days: 30}',
  '    environment: prod',
  '    data_classification: confidential',
  '    models: [mi, unusedm, r1]',
  '    budget: {daily_usd: 5, monthly_usd: 100}',
  `  fresh: {owner: fresh@example.com, environment: dev, review: {last: ${today}, every_days: 90}, models: [m]}`,
  '  never: {owner: never@example.com, environment: staging, models: [m]}',
].join('\n');

const AGENTS = ['bud', 'bm', 'ab', 'bs', 'tb1', 'tb2', 'rl', 'hd', 'kl', 'kl2', 'tp', 'tq', 'cc', 'ck', 'ses', 'ses2', 'ses3', 'sdk', 'inv', 'fresh', 'never'];

before(async () => {
  [M, H] = await startMocks(2);
  gw = await startCustomGateway({ yaml, keyAgents: AGENTS });
  gw.keys.kl_b = gw.createKey('kl');
  gw.keys.kl2_b = gw.createKey('kl2');
  gw.keys.ck_b = gw.createKey('ck');
  adminTok = await gw.adminToken('admin');
  // Keys made after the start reach the workers with the key watcher's
  // next poll: wait until each authenticates (GET /v1/models takes no limit).
  for (const k of [gw.keys.kl_b, gw.keys.kl2_b, gw.keys.ck_b]) {
    const ok = await waitFor(async () => (await fetch(`${gw.baseURL}/models`, { headers: { authorization: `Bearer ${k}` } })).status === 200, { timeout: 5000, interval: 50 });
    assert.ok(ok, 'a key created after the start is accepted within 5 s');
  }
});

after(async () => {
  if (gw) await gw.close([M, H]);
  else for (const m of [M, H]) if (m) await m.stop();
});

const body = (model, extra = {}) => ({ model, messages: [{ role: 'user', content: PROMPT }], ...extra });
const chatURL = () => `${gw.url}/v1/chat/completions`;

// A chat request on a connection of its own.
function req(agentKey, model, { extra = {}, headers = {}, key } = {}) {
  return freshRequest(chatURL(), { body: body(model, extra), key: key || gw.keys[agentKey], headers });
}

const RL_HEADERS = [
  'x-ratelimit-limit-requests', 'x-ratelimit-remaining-requests', 'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens',
];

function assertRlHeaders(r, what, { requests = true, tokens = true } = {}) {
  const names = [...(requests ? RL_HEADERS.slice(0, 3) : []), ...(tokens ? RL_HEADERS.slice(3) : [])];
  for (const h of names) assert.ok(r.headers[h] !== undefined, `${what}: header ${h} present (status ${r.status}; headers ${JSON.stringify(r.headers)})`);
  for (const h of names.filter((x) => !x.includes('reset'))) {
    assert.match(String(r.headers[h]), /^\d+$/, `${what}: ${h} is a whole number: ${r.headers[h]}`);
  }
  for (const h of names.filter((x) => x.includes('reset'))) {
    assert.ok(!Number.isNaN(parseResetMs(r.headers[h])), `${what}: ${h} is a duration like 12s or 850ms: ${r.headers[h]}`);
  }
}

function assert429(r, code, what) {
  assert.equal(r.status, 429, `${what}: ${r.status} ${r.text.slice(0, 400)}`);
  const e = openaiError(r.text);
  // The identifier may be the error's code or its type (the spec names
  // neither: rate_limit_exceeded / insufficient_quota / loop_detected are
  // both here; session_limit_exceeded is the type with the cap as code).
  assert.ok(e.code === code || e.type === code, `${what}: error.code ${e.code} / type ${e.type}, want ${code}: ${e.message}`);
  return e;
}

function assertRetryAfter(r, what, max = 3600 * 24) {
  const ra = r.headers['retry-after'];
  assert.ok(ra !== undefined, `${what}: Retry-After present`);
  assert.match(String(ra), /^\d+$/, `${what}: Retry-After is whole seconds: ${ra}`);
  assert.ok(Number(ra) >= 1 && Number(ra) <= max, `${what}: Retry-After ${ra} in [1, ${max}]`);
  return Number(ra);
}

const costOf = (e) => (typeof e.cost_usd === 'number' ? e.cost_usd : 0);
const isReq = (e) => !e.kind || e.kind === 'request';

async function agentJson(name) {
  const r = await gw.admin('GET', `/admin/v1/agents/${name}`, { token: adminTok });
  assert.equal(r.status, 200, `GET /admin/v1/agents/${name}: ${r.text}`);
  return r.json?.agent && !r.json.name ? r.json.agent : r.json;
}

async function cliShow(name) {
  const r = await gw.cli(['agents', 'show', name, '--json']);
  assert.equal(r.code, 0, `agents show ${name} --json: ${r.stderr}`);
  const j = JSON.parse(r.stdout);
  return j?.agent && !j.name ? j.agent : j;
}

// rpm state carried to the last test (window reset).
const rpm = { resetAt: 0 };

describe('rate limits (2 workers)', () => {
  test('rpm 4: requests 1-4 pass with the remaining count going down, the 5th and 6th are 429 with Retry-After', async () => {
    const rs = [];
    for (let i = 0; i < 6; i++) rs.push(await req('rl', 'm'));
    for (let i = 0; i < 4; i++) {
      assert.equal(rs[i].status, 200, `request ${i + 1}: ${rs[i].text.slice(0, 300)}`);
      assertRlHeaders(rs[i], `request ${i + 1}`);
      assert.equal(rs[i].headers['x-ratelimit-limit-requests'], '4');
      assert.equal(rs[i].headers['x-ratelimit-remaining-requests'], String(3 - i), `request ${i + 1} remaining`);
    }
    for (let i = 4; i < 6; i++) {
      const e = assert429(rs[i], 'rate_limit_exceeded', `request ${i + 1}`);
      assert.ok(e.message.length > 0);
      assertRlHeaders(rs[i], `request ${i + 1} (429)`);
      assert.equal(rs[i].headers['x-ratelimit-remaining-requests'], '0');
      const reset = parseResetMs(rs[i].headers['x-ratelimit-reset-requests']);
      assert.ok(reset > 50000 && reset <= 60000, `reset-requests within the 60 s window: ${rs[i].headers['x-ratelimit-reset-requests']}`);
      const ra = assertRetryAfter(rs[i], `request ${i + 1}`, 60);
      assert.ok(ra * 1000 >= reset - 1000, `Retry-After ${ra} s covers the reset ${reset} ms`);
    }
    const reset = parseResetMs(rs[5].headers['x-ratelimit-reset-requests']);
    rpm.resetAt = rs[5].t1 + reset;
    // The refusals are events too.
    const evs = await gw.waitEvents((e) => e.agent === 'rl' && isReq(e), { count: 6, timeout: 4000 });
    assert.equal(evs.filter((e) => e.status === 429 && e.error_type === 'rate_limit_exceeded').length, 2,
      `two rate_limit_exceeded events: ${JSON.stringify(evs.map((e) => [e.status, e.error_type]))}`);
  });

  test('the -requests and -tokens headers are on every response: 200, stream, upstream error', async () => {
    const ok = await req('hd', 'm');
    assert.equal(ok.status, 200, ok.text);
    assertRlHeaders(ok, 'JSON 200');
    assert.equal(ok.headers['x-ratelimit-limit-requests'], '1000');
    assert.equal(ok.headers['x-ratelimit-limit-tokens'], '10000000');
    const st = await req('hd', 'm', { extra: { stream: true } });
    assert.equal(st.status, 200, st.text.slice(0, 300));
    assert.match(st.headers['content-type'] || '', /text\/event-stream/);
    assertRlHeaders(st, 'stream 200');
    const er = await req('hd', 'm', { headers: { 'x-mock-status': '500', 'x-mock-fail-rate': '1' } });
    assert.ok(er.status >= 500, `upstream failure passed on: ${er.status} ${er.text.slice(0, 200)}`);
    assertRlHeaders(er, `upstream error ${er.status}`);
    // remaining requests went down by one per request
    const rem = [ok, st, er].map((r) => Number(r.headers['x-ratelimit-remaining-requests']));
    assert.deepEqual(rem, [999, 998, 997]);
  });

  test('key_limits are per key, separate from the agent limits (the tighter one is in the headers)', async () => {
    const a = [];
    for (let i = 0; i < 3; i++) a.push(await req(null, 'm', { key: gw.keys.kl }));
    assert.equal(a[0].status, 200, a[0].text);
    assert.equal(a[1].status, 200, a[1].text);
    assert.equal(a[0].headers['x-ratelimit-limit-requests'], '2', 'the key\'s limit (2) is tighter than the agent\'s (100)');
    assert.equal(a[1].headers['x-ratelimit-remaining-requests'], '0');
    assert429(a[2], 'rate_limit_exceeded', 'third request on key 1');
    assertRetryAfter(a[2], 'key limit', 60);
    // another key of the same agent has its own count
    const b1 = await req(null, 'm', { key: gw.keys.kl_b });
    const b2 = await req(null, 'm', { key: gw.keys.kl_b });
    assert.equal(b1.status, 200, `key 2 unaffected by key 1's limit: ${b1.text}`);
    assert.equal(b1.headers['x-ratelimit-remaining-requests'], '1');
    assert.equal(b2.status, 200, b2.text);
    assert429(await req(null, 'm', { key: gw.keys.kl_b }), 'rate_limit_exceeded', 'third request on key 2');

    // kl2: agent rpm 3 over two keys with key rpm 2 each.
    const k1 = [await req(null, 'm', { key: gw.keys.kl2 }), await req(null, 'm', { key: gw.keys.kl2 }), await req(null, 'm', { key: gw.keys.kl2 })];
    assert.deepEqual(k1.map((r) => r.status), [200, 200, 429], 'key 1: its own limit of 2');
    const k2a = await req(null, 'm', { key: gw.keys.kl2_b });
    assert.equal(k2a.status, 200, `key 2, first: the agent has one left (${k2a.text})`);
    assert.equal(k2a.headers['x-ratelimit-remaining-requests'], '0', 'the agent scope (0 left) is tighter than the key scope (1 left)');
    const k2b = await req(null, 'm', { key: gw.keys.kl2_b });
    assert429(k2b, 'rate_limit_exceeded', 'key 2, second: the agent\'s rpm 3 is used up although the key has 1 left');
  });

  test('tpm: the worst-case token estimate is taken at admission; the 4th request of 310 tokens in a 1000 tpm window is refused', async () => {
    const hdr = { 'x-mock-output-tokens': '300' };
    const rs = [];
    for (let i = 0; i < 4; i++) rs.push(await req('tp', 'm', { extra: { max_tokens: 300 }, headers: hdr }));
    for (let i = 0; i < 3; i++) {
      assert.equal(rs[i].status, 200, `request ${i + 1}: ${rs[i].text}`);
      assert.equal(rs[i].headers['x-ratelimit-limit-tokens'], '1000');
      assert.equal(rs[i].headers['x-ratelimit-remaining-tokens'], String(1000 - 310 * (i + 1)),
        `request ${i + 1}: remaining tokens after ${i + 1} x (10 prompt + 300 max_tokens)`);
      assert.equal(rs[i].json.usage.completion_tokens, 300);
    }
    const e = assert429(rs[3], 'rate_limit_exceeded', '4th request (needs 310, 70 left)');
    assert.match(e.message, /token/i, `the message says tokens: ${e.message}`);
    assertRlHeaders(rs[3], 'tpm 429', { requests: false });
    assertRetryAfter(rs[3], 'tpm', 60);
    // A request that fits in what is left still passes.
    const small = await req('tp', 'm', { extra: { max_tokens: 50 }, headers: { 'x-mock-output-tokens': '50' } });
    assert.equal(small.status, 200, `60 tokens fit in the 70 left: ${small.text}`);
  });

  test('tpm: the estimate is corrected by the real usage at the end of each request', async () => {
    // Estimate 310 per request, real usage 10 + 10 = 20: six requests fit in
    // 1000 tpm only if each settlement gives the difference back.
    const rs = [];
    for (let i = 0; i < 6; i++) rs.push(await req('tq', 'm', { extra: { max_tokens: 300 }, headers: { 'x-mock-output-tokens': '10' } }));
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200, 200, 200], rs.map((r) => r.text.slice(0, 120)).join('\n'));
    assert.equal(rs[0].headers['x-ratelimit-remaining-tokens'], '690');
    assert.equal(rs[1].headers['x-ratelimit-remaining-tokens'], String(1000 - 20 - 310), 'the first request counts 20 (its usage), not 310');
  });

  test('concurrent 3: of 6 simultaneous slow requests 3 pass and 3 are refused at once; then slots are free again', async () => {
    const slow = { 'x-mock-latency-ms': '1000' };
    const rs = await Promise.all(Array.from({ length: 6 }, () => req('cc', 'm', { headers: slow })));
    const ok = rs.filter((r) => r.status === 200);
    const no = rs.filter((r) => r.status !== 200);
    assert.equal(ok.length, 3, `statuses ${rs.map((r) => r.status)}`);
    for (const r of no) {
      assert429(r, 'rate_limit_exceeded', 'over the concurrency limit');
      assertRetryAfter(r, 'concurrency', 60);
      assert.ok(r.ms < 900, `refused without waiting for a slot (${r.ms} ms)`);
    }
    for (const r of ok) assert.ok(r.ms >= 950, `the admitted ones waited for the slow upstream (${r.ms} ms)`);
    const again = await Promise.all(Array.from({ length: 3 }, () => req('cc', 'm', { headers: { 'x-mock-latency-ms': '200' } })));
    assert.deepEqual(again.map((r) => r.status), [200, 200, 200], 'the slots were given back');
  });

  test('key concurrency 2: each key of the agent has its own 2 slots', async () => {
    const slow = { 'x-mock-latency-ms': '800' };
    const rs = await Promise.all([
      ...Array.from({ length: 3 }, () => req(null, 'm', { key: gw.keys.ck, headers: slow })),
      ...Array.from({ length: 3 }, () => req(null, 'm', { key: gw.keys.ck_b, headers: slow })),
    ]);
    const a = rs.slice(0, 3).map((r) => r.status).sort();
    const b = rs.slice(3).map((r) => r.status).sort();
    assert.deepEqual(a, [200, 200, 429], `key 1: ${a}`);
    assert.deepEqual(b, [200, 200, 429], `key 2: ${b}`);
  });
});

describe('budgets', () => {
  const slowFull = { 'x-mock-latency-ms': '1500', 'x-mock-output-tokens': String(MAX_TOKENS) };

  test(`200 simultaneous requests against a daily budget covering 10 worst cases: at most 10 pass, 190 get 429 insufficient_quota`, { timeout: 60000 }, async (t) => {
    const rs = await Promise.all(Array.from({ length: 200 }, () => gw.post('/v1/chat/completions',
      body('pb', { max_tokens: MAX_TOKENS }), { key: gw.keys.bud, headers: slowFull })));
    const ok = rs.filter((r) => r.status === 200);
    const refused = rs.filter((r) => r.status === 429);
    t.diagnostic(`passed ${ok.length}, refused ${refused.length}, other ${rs.length - ok.length - refused.length}`);
    assert.equal(ok.length + refused.length, 200, `only 200 and 429: ${[...new Set(rs.map((r) => r.status))]}`);
    assert.ok(ok.length <= 10, `at most 10 passed, got ${ok.length}`);
    assert.equal(ok.length, 10, 'the budget covers 10 worst cases and nothing settles while they run: exactly 10 pass');
    for (const r of ok) assert.equal(r.json.usage.completion_tokens, MAX_TOKENS);
    const remaining = BUDGET - ok.length * WORST;
    for (const r of refused) {
      const e = openaiError(r.text);
      assert.equal(e.code, 'insufficient_quota', e.message);
      const nums = numbersIn(e.message);
      assert.ok(nums.some((n) => Math.abs(n - remaining) < 0.00051),
        `the message gives the remaining budget (${remaining.toFixed(6)} USD): ${e.message}`);
      assert.ok(r.headers.get('retry-after'), 'Retry-After on insufficient_quota');
    }

    // The event log: 200 request events; settled costs never above the budget.
    const evs = await gw.waitEvents((e) => e.agent === 'bud' && isReq(e), { count: 200, timeout: 8000 });
    assert.equal(evs.length, 200);
    const okEvs = evs.filter((e) => e.status === 200);
    assert.equal(okEvs.length, 10);
    for (const e of okEvs) assert.ok(Math.abs(e.cost_usd - WORST) < 1e-9, `each success cost its worst case: ${e.cost_usd}`);
    assert.equal(evs.filter((e) => e.status === 429 && e.error_type === 'insufficient_quota').length, 190);
    for (const e of evs.filter((x) => x.status === 429)) assert.ok(!costOf(e), 'a refused request costs nothing');
    const spent = evs.reduce((s, e) => s + costOf(e), 0);
    assert.ok(spent <= BUDGET + 1e-9, `settled ${spent} <= budget ${BUDGET}`);

    // The ledger as the admin API and the CLI report it.
    let live;
    await waitFor(async () => {
      live = (await agentJson('bud')).live;
      return live && Math.abs(live.spend_today_usd - spent) < 1e-6;
    }, { timeout: 4000, interval: 100 });
    assert.ok(live, 'GET /admin/v1/agents/bud has live figures');
    assert.ok(Math.abs(live.spend_today_usd - spent) < 1e-6, `admin API spend_today_usd ${live.spend_today_usd} = event log ${spent}`);
    assert.ok(Math.abs(live.spend_month_usd - spent) < 1e-6, `spend_month_usd ${live.spend_month_usd}`);
    assert.ok(Math.abs(live.budget_today_pct - (100 * spent) / BUDGET) < 0.1, `budget_today_pct ${live.budget_today_pct}`);
    const shown = await cliShow('bud');
    assert.ok(Math.abs(shown.live.spend_today_usd - spent) < 1e-6, `agents show --json spend ${shown.live.spend_today_usd} = ${spent}`);
    assert.equal(shown.budget.daily_usd, BUDGET);

    // A later request is refused too (only half a worst case is left), even a small one is measured by its worst case.
    const later = await gw.post('/v1/chat/completions', body('pb', { max_tokens: MAX_TOKENS }), { key: gw.keys.bud });
    assert.equal(later.status, 429, later.text);
    assert.equal(openaiError(later.text).code, 'insufficient_quota');
    const tiny = await gw.post('/v1/chat/completions', body('pb', { max_tokens: 5 }), { key: gw.keys.bud });
    assert.equal(tiny.status, 200, `a request whose worst case (${(10 * PB_IN + 5 * PB_OUT) / 1e6}) fits in what is left passes: ${tiny.text}`);
  });

  test('threshold crossings (50 %, 80 %) are events, alerts and a metric; 100 % was not crossed', async () => {
    const th = await gw.waitEvents((e) => e.kind === 'budget.threshold' && e.agent === 'bud', { count: 2, timeout: 4000 });
    const pcts = th.map((e) => {
      const d = typeof e.detail === 'string' ? JSON.parse(e.detail || '{}') : (e.detail || {});
      return d.pct;
    }).sort((a, b) => a - b);
    assert.deepEqual(pcts.filter((p) => p !== undefined).slice(0, 2), [50, 80], `budget.threshold events: ${JSON.stringify(th)}`);
    assert.ok(!pcts.includes(100), 'spent ~96 % (+ the small request), never 100 %');
    const hooks = await waitFor(async () => {
      const w = (await H.webhooks()).map((x) => JSON.stringify(x)).filter((s) => s.includes('budget.threshold') && s.includes('agent:bud'));
      return w.length >= 2 ? w : undefined;
    }, { timeout: 4000, interval: 100 });
    assert.ok(hooks, `budget.threshold alerts for agent:bud: ${JSON.stringify(await H.webhooks()).slice(0, 800)}`);
    const s = parseMetrics((await gw.metrics()).text);
    assert.ok((metricSum(s, 'airlock_budget_alerts_total') || 0) >= 2, 'airlock_budget_alerts_total counts them');
  });

  test('a team budget is shared by its agents: 2 x 100 simultaneous requests, at most 10 pass in all', { timeout: 60000 }, async (t) => {
    const mk = (agent) => gw.post('/v1/chat/completions', body('pb', { max_tokens: MAX_TOKENS }), { key: gw.keys[agent], headers: slowFull });
    const rs = await Promise.all([...Array.from({ length: 100 }, () => mk('tb1')), ...Array.from({ length: 100 }, () => mk('tb2'))]);
    const ok1 = rs.slice(0, 100).filter((r) => r.status === 200).length;
    const ok2 = rs.slice(100).filter((r) => r.status === 200).length;
    t.diagnostic(`tb1 passed ${ok1}, tb2 passed ${ok2}`);
    assert.ok(ok1 + ok2 <= 10, `at most 10 in all: ${ok1} + ${ok2}`);
    assert.equal(ok1 + ok2, 10);
    for (const r of rs.filter((x) => x.status !== 200)) {
      assert.equal(r.status, 429, r.text);
      const e = openaiError(r.text);
      assert.equal(e.code, 'insufficient_quota');
      assert.ok(numbersIn(e.message).some((n) => Math.abs(n - (BUDGET - 10 * WORST)) < 0.00051), e.message);
    }
    const evs = await gw.waitEvents((e) => (e.agent === 'tb1' || e.agent === 'tb2') && isReq(e), { count: 200, timeout: 8000 });
    const spent = evs.reduce((s, e) => s + costOf(e), 0);
    assert.ok(spent <= BUDGET + 1e-9, `the team's agents spent ${spent} <= ${BUDGET}`);
    // Each agent has no budget of its own: its refusal is the team's.
    const after1 = await gw.post('/v1/chat/completions', body('pb', { max_tokens: MAX_TOKENS }), { key: gw.keys.tb1 });
    assert.equal(after1.status, 429);
    const after2 = await gw.post('/v1/chat/completions', body('pb', { max_tokens: MAX_TOKENS }), { key: gw.keys.tb2 });
    assert.equal(after2.status, 429);
    const l1 = (await agentJson('tb1')).live.spend_today_usd;
    const l2 = (await agentJson('tb2')).live.spend_today_usd;
    assert.ok(Math.abs(l1 + l2 - spent) < 1e-6, `the agents' spend (${l1} + ${l2}) is the events' ${spent}`);
  });
});

describe('budgets and limits at the edges of a request', () => {
  test('streamed requests reserve and settle like the others: 10 simultaneous streams on 3.5 worst cases, 3 stream', { timeout: 30000 }, async () => {
    const rs = await Promise.all(Array.from({ length: 10 }, () => freshRequest(chatURL(), {
      body: body('pb', { max_tokens: MAX_TOKENS, stream: true }),
      key: gw.keys.bs,
      headers: { 'x-mock-latency-ms': '1000', 'x-mock-output-tokens': String(MAX_TOKENS) },
    })));
    const ok = rs.filter((r) => r.status === 200);
    assert.equal(ok.length, 3, `statuses ${rs.map((r) => r.status)}`);
    for (const r of ok) {
      assert.match(r.headers['content-type'] || '', /text\/event-stream/);
      assert.ok(r.text.includes('[DONE]'), 'a whole stream');
    }
    for (const r of rs.filter((x) => x.status !== 200)) {
      assert429(r, 'insufficient_quota', 'a stream over the budget is refused before it starts');
      assert.ok(numbersIn(r.json.error.message).some((n) => Math.abs(n - 0.5 * WORST) < 0.00051), r.json.error.message);
    }
    const evs = await gw.waitEvents((e) => e.agent === 'bs' && isReq(e), { count: 10, timeout: 4000 });
    const paid = evs.filter((e) => e.status === 200);
    assert.equal(paid.length, 3);
    for (const e of paid) assert.ok(Math.abs(costOf(e) - WORST) < 1e-9, `a stream is charged its usage: ${e.cost_usd}`);
  });

  test('a monthly budget holds on its own (daily far away): the second worst case is refused, the message says month', async () => {
    const h = { 'x-mock-output-tokens': String(MAX_TOKENS) };
    const r1 = await req('bm', 'pb', { extra: { max_tokens: MAX_TOKENS }, headers: h });
    assert.equal(r1.status, 200, r1.text);
    const r2 = await req('bm', 'pb', { extra: { max_tokens: MAX_TOKENS }, headers: h });
    const e = assert429(r2, 'insufficient_quota', 'second request against 1.5 worst cases a month');
    assert.match(e.message, /month/i, e.message);
    assert.ok(numbersIn(e.message).some((n) => Math.abs(n - 0.5 * WORST) < 0.00051), e.message);
  });

  test('a client that goes away gives back its concurrency slot at once; what it is charged is in the ledger and the event alike', { timeout: 20000 }, async () => {
    // ab: concurrent 1; the upstream takes 4 s; the client leaves after 0.4 s.
    const rid = uniq('gone');
    const gone = await freshRequest(chatURL(), {
      body: body('pb', { max_tokens: MAX_TOKENS }), key: gw.keys.ab, timeout: 400,
      headers: { 'x-mock-latency-ms': '4000', 'x-request-id': rid },
    });
    assert.equal(gone.status, 0, 'the client gave up');
    const t = Date.now();
    let last;
    const ok = await waitFor(async () => {
      last = await req('ab', 'pb', { extra: { max_tokens: MAX_TOKENS }, headers: { 'x-mock-output-tokens': String(MAX_TOKENS) } });
      return last.status === 200;
    }, { timeout: 1500, interval: 100 });
    assert.ok(ok, `a new request gets the slot within 1.5 s of the disconnect, long before the upstream would have answered: last ${last?.status} ${last?.text?.slice(0, 200)}`);
    assert.ok(Date.now() - t < 2500);
    const [ev] = await gw.eventFor(rid, { timeout: 6000 });
    assert.ok(ev, 'the abandoned request is an event');
    assert.equal(ev.outcome, 'client_closed');
    assert.ok(costOf(ev) <= WORST + 1e-9, `charged at most its worst case: ${ev.cost_usd}`);
    const evs = await gw.waitEvents((e) => e.agent === 'ab' && isReq(e), { count: 2 });
    const sum = evs.reduce((x, e) => x + costOf(e), 0);
    let live;
    await waitFor(async () => {
      live = (await agentJson('ab')).live;
      return Math.abs(live.spend_today_usd - sum) < 1e-6;
    }, { timeout: 3000, interval: 100 });
    assert.ok(Math.abs(live.spend_today_usd - sum) < 1e-6, `ledger ${live.spend_today_usd} = events ${sum}`);
  });
});

describe('sessions (x-airlock-session-id)', () => {
  const sreq = (sid, text, agent = 'ses') => freshRequest(chatURL(), {
    body: { model: 'm', messages: [{ role: 'user', content: text }] },
    key: gw.keys[agent],
    headers: sid ? { 'x-airlock-session-id': sid } : {},
  });

  test('the same body more than loop_threshold (2) times is 429 loop_detected; different bodies pass; the request cap (5) is 429 loop_detected', async () => {
    const s1 = uniq('sess');
    assert.equal((await sreq(s1, 'step A')).status, 200);
    assert.equal((await sreq(s1, 'step A')).status, 200, 'twice is not a loop yet');
    const loop = await sreq(s1, 'step A');
    const e = assert429(loop, 'loop_detected', 'third identical body');
    assert.ok(e.message.length > 0);
    assertRetryAfter(loop, 'loop');
    assert.equal((await sreq(s1, 'step B')).status, 200, 'a different body is fine');
    assert.equal((await sreq(s1, 'step C')).status, 200);
    assert.equal((await sreq(s1, 'step D')).status, 200, 'the 5th counted request (the refused one did not count)');
    assert429(await sreq(s1, 'step E'), 'loop_detected', 'the 6th request is over max_requests 5');
    assert429(await sreq(s1, 'step F'), 'loop_detected', 'and stays refused');

    // Another session, and no session at all, are unaffected.
    const s2 = uniq('sess');
    assert.equal((await sreq(s2, 'step A')).status, 200, 'another session is unaffected');
    assert.equal((await sreq(s2, 'step A')).status, 200);
    for (let i = 0; i < 4; i++) assert.equal((await sreq(null, 'step A')).status, 200, 'no session header: no session limits');
    // The same session id of another agent is another session.
    assert.equal((await sreq(s1, 'step A', 'ses2')).status, 200, 'session ids are per agent');

    const evs = await gw.waitEvents((x) => x.session_id === s1 && x.agent === 'ses', { count: 8, timeout: 4000 });
    assert.equal(evs.length, 8, 'every request of the session is an event with its session_id');
    assert.equal(evs.filter((x) => x.status === 429 && x.error_type === 'loop_detected').length, 3);

    const hooks = await waitFor(async () => {
      const w = (await H.webhooks()).map((x) => JSON.stringify(x)).filter((s) => s.includes(s1));
      return w.length ? w : undefined;
    }, { timeout: 4000, interval: 100 });
    assert.ok(hooks, `an alert names the session: ${JSON.stringify(await H.webhooks()).slice(0, 1000)}`);
    assert.ok(hooks.some((s) => /loop/i.test(s) && s.includes('ses')), `the alert says loop and names the agent: ${hooks[0]}`);
  });

  test('a session over its token cap is 429 session_limit_exceeded', async () => {
    const s = uniq('sess');
    // Each request: 5 prompt tokens ("user" + "first question" = 18 bytes)
    // + 16 output tokens = 21; the cap is 40, so the third is over it.
    const r1 = await sreq(s, 'first question', 'ses2');
    assert.equal(r1.status, 200, r1.text);
    const r2 = await sreq(s, 'second question', 'ses2');
    assert.equal(r2.status, 200, r2.text);
    const used = r1.json.usage.total_tokens + r2.json.usage.total_tokens;
    assert.ok(used > 40, `two requests used ${used} > 40 tokens`);
    const r3 = await sreq(s, 'third question', 'ses2');
    assert429(r3, 'session_limit_exceeded', `third request after ${used} tokens`);
    assert.equal((await sreq(uniq('sess'), 'third question', 'ses2')).status, 200, 'a new session starts from zero');
  });

  test('a session over its cost cap, or older than max_duration, is 429 session_limit_exceeded', async () => {
    // mi: 10 prompt + 16 output tokens = 0.042 USD a request; the cap is 0.05.
    const s = uniq('sess');
    const mk = (sid, text) => freshRequest(chatURL(), {
      body: { model: 'mi', max_tokens: 100, messages: [{ role: 'user', content: text }] },
      key: gw.keys.ses3, headers: { 'x-airlock-session-id': sid },
    });
    assert.equal((await mk(s, 'first')).status, 200);
    assert.equal((await mk(s, 'second')).status, 200, '0.042 spent: still under 0.05');
    const over = await mk(s, 'third');
    const e = assert429(over, 'session_limit_exceeded', 'after 0.084 USD');
    assert.match(`${e.code} ${e.message}`, /cost/i, e.message);
    // duration: a fresh session is fine, then refused after 1 s
    const d = uniq('sess');
    assert.equal((await mk(d, 'first')).status, 200);
    await sleep(1200);
    const late = await mk(d, 'second');
    const e2 = assert429(late, 'session_limit_exceeded', 'after max_duration 1 s');
    assert.match(`${e2.code} ${e2.message}`, /duration/i, e2.message);
  });

  test('a session id longer than 128 characters is refused with 400', async () => {
    const r = await sreq('x'.repeat(129), 'hello');
    assert.equal(r.status, 400, r.text);
    openaiError(r.text);
  });
});

describe('the openai SDK sees the policy refusals as its own error classes', () => {
  const client = (key, headers = {}) => new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0, timeout: 15000, defaultHeaders: headers });

  async function sdkErr(c, b) {
    try { await c.chat.completions.create(b); } catch (e) { return e; }
    return null;
  }

  test('rate_limit_exceeded -> RateLimitError', async () => {
    const c = client(gw.keys.sdk);
    await c.chat.completions.create(body('m'));
    const err = await sdkErr(c, body('m'));
    assert.ok(err instanceof OpenAI.RateLimitError, `RateLimitError: ${err}`);
    assert.equal(err.status, 429);
    assert.equal(err.code, 'rate_limit_exceeded');
    assert.ok(err.message.length > 10, err.message);
    assert.ok(err.headers.get('retry-after'));
    assert.ok(err.headers.get('x-ratelimit-limit-requests'));
  });

  test('insufficient_quota -> RateLimitError with the remaining budget in the message', async () => {
    const err = await sdkErr(client(gw.keys.bud), body('pb', { max_tokens: MAX_TOKENS }));
    assert.ok(err instanceof OpenAI.RateLimitError, `RateLimitError: ${err}`);
    assert.equal(err.code, 'insufficient_quota');
    assert.ok(numbersIn(err.message).length > 0, err.message);
  });

  test('loop_detected -> RateLimitError', async () => {
    // sdk has rpm 1 (used above): the loop check comes after the rate limit,
    // so use ses, whose loop_threshold is 2.
    const c = client(gw.keys.ses, { 'x-airlock-session-id': uniq('sdk') });
    await c.chat.completions.create(body('m'));
    await c.chat.completions.create(body('m'));
    const err = await sdkErr(c, body('m'));
    assert.ok(err instanceof OpenAI.RateLimitError, `RateLimitError: ${err}`);
    assert.equal(err.code, 'loop_detected');
    assert.ok(/loop/i.test(err.message), err.message);
  });
});

describe('inventory', () => {
  before(async () => {
    // max_tokens 100: a worst case of 0.21 USD against the daily 5 (without
    // it the estimate is 4096 output tokens, 8.2 USD: over the budget).
    const x = { max_tokens: 100 };
    for (let i = 0; i < 3; i++) {
      const r = await req('inv', 'mi', { extra: x });
      assert.equal(r.status, 200, r.text);
    }
    const bad = await req('inv', 'mi', { extra: x, headers: { 'x-mock-status': '500', 'x-mock-fail-rate': '1' } });
    assert.ok(bad.status >= 500, bad.text);
    const rr = await req('inv', 'r1', { extra: x });
    assert.equal(rr.status, 200, rr.text);
    await gw.waitEvents((e) => e.agent === 'inv' && isReq(e), { count: 5, timeout: 4000 });
  });

  function checkInv(a, what) {
    assert.equal(a.name, 'inv', what);
    assert.equal(a.owner, 'inv@example.com');
    assert.equal(a.description, 'Inventory test agent');
    assert.equal(a.team, 'ops');
    assert.equal(a.oncall, 'pager:inv-primary');
    assert.equal(a.environment, 'prod');
    assert.equal(a.data_classification, 'confidential');
    assert.equal(a.sla.p95_latency_ms, 3000);
    assert.equal(a.budget.daily_usd, 5);
    assert.equal(a.live.requests_24h, 5, `${what}: requests_24h ${JSON.stringify(a.live)}`);
    assert.equal(a.live.errors_24h, 1, `${what}: errors_24h`);
    assert.ok(Math.abs(a.live.error_rate_24h - 0.2) < 1e-6, `${what}: error_rate_24h ${a.live.error_rate_24h}`);
    assert.ok(Math.abs(a.live.spend_today_usd - 4 * MI_COST) < 1e-6, `${what}: spend_today_usd ${a.live.spend_today_usd} vs ${4 * MI_COST}`);
    assert.ok(Math.abs(a.live.budget_today_pct - (100 * 4 * MI_COST) / 5) < 0.05, `${what}: budget_today_pct ${a.live.budget_today_pct}`);
    assert.equal(typeof a.live.p95_latency_ms_24h, 'number');
    assert.equal(a.live.p95_ok, true, `${what}: p95 within the 3000 ms SLA`);
    assert.equal(a.review.overdue, true, `${what}: reviewed 2020-01-01 every 30 days is overdue`);
    assert.equal(a.keys.length, 1);
    assert.equal(a.killed, null);
  }

  test('agents list --json / show --json / admin API: inventory fields and live figures', async () => {
    const l = await gw.cli(['agents', 'list', '--json']);
    assert.equal(l.code, 0, l.stderr);
    const rows = listRows(l.stdout);
    assert.deepEqual(rows.map((r) => r.name).sort(), [...AGENTS].sort(), 'every agent listed');
    checkInv(rows.find((r) => r.name === 'inv'), 'agents list --json');
    const fr = rows.find((r) => r.name === 'fresh');
    assert.equal(fr.review.overdue, false, 'reviewed today');
    const nv = rows.find((r) => r.name === 'never');
    assert.ok(!nv.review || nv.review.last === null || nv.review.last === undefined, `never reviewed: ${JSON.stringify(nv.review)}`);
    assert.equal(nv.live.requests_24h, 0);

    checkInv(await cliShow('inv'), 'agents show --json');
    checkInv(await agentJson('inv'), 'GET /admin/v1/agents/inv');
    const api = await gw.admin('GET', '/admin/v1/agents', { token: adminTok });
    assert.equal(api.status, 200, api.text);
    assert.equal(api.json.object, 'list');
    checkInv(api.json.data.find((r) => r.name === 'inv'), 'GET /admin/v1/agents');
    // The key shows its last use (written within a few seconds).
    const lu = await waitFor(async () => (await cliShow('inv')).keys[0].last_used, { timeout: 5000, interval: 200 });
    assert.ok(lu, 'keys[0].last_used set after traffic');
  });

  test('agents list (table): review ok | overdue | never, and the spend', async () => {
    const l = await gw.cli(['agents', 'list']);
    assert.equal(l.code, 0, l.stderr);
    const line = (n) => l.stdout.split('\n').find((x) => x.trim().split(/\s+/)[0] === n) || '';
    assert.match(line('inv'), /overdue/, l.stdout);
    assert.match(line('fresh'), /\bok\b/, l.stdout);
    assert.match(line('never'), /never/, l.stdout);
    assert.match(line('inv'), /inv@example\.com/);
    assert.match(line('inv'), /\bprod\b/);
    const s = await gw.cli(['agents', 'show', 'inv']);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /overdue/);
    assert.match(s.stdout, /pager:inv-primary/);
    const bad = await gw.cli(['agents', 'show', 'nosuchagent']);
    assert.notEqual(bad.code, 0, 'an unknown agent is an error');
  });

  test('agents permissions: requests per allowed model/route, unused flagged, used-but-not-allowed listed', async () => {
    const name = (x) => x.model ?? x.name;
    const p = await gw.cli(['agents', 'permissions', 'inv', '--json']);
    assert.equal(p.code, 0, p.stderr);
    const j = JSON.parse(p.stdout);
    assert.equal(j.agent, 'inv');
    const by = Object.fromEntries(j.allowed.map((x) => [name(x), x]));
    assert.deepEqual(Object.keys(by).sort(), ['mi', 'r1', 'unusedm']);
    assert.equal(by.mi.kind, 'model');
    assert.equal(by.r1.kind, 'route');
    assert.equal(by.mi.requests_30d, 4);
    assert.equal(by.r1.requests_30d, 1);
    assert.equal(by.unusedm.requests_30d, 0);
    assert.equal(by.unusedm.unused, true);
    assert.equal(by.mi.unused, false);
    assert.equal(by.r1.unused, false);
    assert.deepEqual(j.used_not_allowed, []);
    const api = await gw.admin('GET', '/admin/v1/agents/inv/permissions', { token: adminTok });
    assert.equal(api.status, 200, api.text);
    assert.equal(api.json.allowed.find((x) => name(x) === 'unusedm').unused, true);

    // The same store read with a configuration that no longer allows r1:
    // r1's traffic is used-but-not-allowed.
    const cfg2 = `${gw.configPath}.narrow.yaml`;
    const text = fs.readFileSync(gw.configPath, 'utf8');
    assert.ok(text.includes('models: [mi, unusedm, r1]'));
    fs.writeFileSync(cfg2, text.replace('models: [mi, unusedm, r1]', 'models: [mi, unusedm]'));
    const p2 = await runCliAsync(['agents', 'permissions', 'inv', '--json', '--config', cfg2], { env: gw.env });
    assert.equal(p2.code, 0, p2.stderr);
    const j2 = JSON.parse(p2.stdout);
    assert.deepEqual(j2.used_not_allowed.map(name), ['r1'], p2.stdout);
    assert.equal(j2.used_not_allowed[0].requests_30d, 1);
    const t = await gw.cli(['agents', 'permissions', 'inv']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /unusedm/);
  });
});

describe('rpm window reset', () => {
  test('the rpm window ends when x-ratelimit-reset-requests said: refused just before, admitted just after', { timeout: 90000 }, async (t) => {
    assert.ok(rpm.resetAt > 0, 'the rpm test ran first');
    const before1 = rpm.resetAt - 1500 - Date.now();
    t.diagnostic(`waiting ${Math.round(Math.max(0, before1) / 1000)} s for the end of the rpm window`);
    if (before1 > 0) await sleep(before1);
    if (rpm.resetAt - Date.now() > 1000) {
      const edge = await req('rl', 'm');
      assert429(edge, 'rate_limit_exceeded', 'just before the window ends');
      const left = parseResetMs(edge.headers['x-ratelimit-reset-requests']);
      assert.ok(left <= 2600, `reset-requests counts down: ${edge.headers['x-ratelimit-reset-requests']}`);
    }
    await sleep(Math.max(0, rpm.resetAt + 300 - Date.now()));
    const rs = [];
    for (let i = 0; i < 5; i++) rs.push(await req('rl', 'm'));
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200, 429], rs.map((r) => r.text.slice(0, 100)).join('\n'));
    assert.equal(rs[0].headers['x-ratelimit-remaining-requests'], '3', 'a new window with 4 requests');
    const reset = parseResetMs(rs[0].headers['x-ratelimit-reset-requests']);
    assert.ok(reset > 55000 && reset <= 60000, `a fresh 60 s window: ${rs[0].headers['x-ratelimit-reset-requests']}`);
  });
});
