// killswitch.test.mjs - kill switches as agents and operators see them
// (notes/policy.md, "Kill switches").
//
// One `airlock serve` (2 workers) in front of three `airlock mock`s: S
// streams slowly (per-request x-mock-chunks / x-mock-chunk-interval-ms, so a
// stream lasts about 3 s), A and B are the two targets of a fallback route.
// Switches are thrown with the CLI (`airlock kill|unkill|kill list`) and the
// admin API (POST /admin/v1/kill|unkill).  Each check is from the outside:
// the status, error code and message of new requests probed on fresh
// connections (so both workers are exercised) with the time they were sent,
// how in-flight streams end (an error event and no [DONE], or the whole
// stream with --drain), what the mocks received, the `kill.set` /
// `kill.cleared` events with their actor and detail, and the state after a
// gateway restart.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  startCustomGateway, startMocks, mockProvider, uniq, sleep, waitFor, openaiError, listRows,
  freshRequest, createAdminToken, eventDetail,
} from './helpers.mjs';

let gw; let S; let A; let B;
let op; // operator admin token {token, id}
let admin;

const CHUNKS = 25;
const INTERVAL = 120; // ms between chunks: a stream lasts ~3 s

const yaml = () => [
  'providers:',
  mockProvider('ps', S),
  mockProvider('pa', A, { forward: false }),
  mockProvider('pb', B, { forward: false }),
  'models:',
  '  s: {provider: ps, model: up-s, price: {input: 1, output: 2}}',
  '  ma: {provider: pa, model: up-a, price: {input: 1, output: 2}}',
  '  mb: {provider: pb, model: up-b, price: {input: 1, output: 2}}',
  'routes:',
  '  fb:',
  '    strategy: fallback',
  '    targets: [ma, mb]',
  '    retry: {attempts: 1, backoff_base: 10ms, backoff_cap: 20ms}',
  'teams:',
  '  tk: {owner: "tk@example.com"}',
  '  tz: {owner: "tz@example.com"}',
  'agents:',
  '  ka: {owner: ka@example.com, team: tz, models: [s]}',
  '  kd: {owner: kd@example.com, team: tz, models: [s]}',
  '  other: {owner: other@example.com, team: tz, models: [s]}',
  '  kt: {owner: kt@example.com, team: tk, models: [s]}',
  '  kr: {owner: kr@example.com, team: tz, models: [fb, ma, mb]}',
  '  kc: {owner: kc@example.com, team: tz, models: [s], limits: {concurrent: 2}, budget: {daily_usd: 0.0205}}',
].join('\n');

before(async () => {
  [S, A, B] = await startMocks(3);
  gw = await startCustomGateway({ yaml, keyAgents: ['ka', 'kd', 'other', 'kt', 'kr', 'kc'] });
  op = await createAdminToken(gw, 'operator');
  admin = await createAdminToken(gw, 'admin');
});

after(async () => {
  if (gw) await gw.close([S, A, B]);
  else for (const m of [S, A, B]) if (m) await m.stop();
});

const chatURL = () => `${gw.url}/v1/chat/completions`;
const msg = (t = 'Tell me a story.') => [{ role: 'user', content: t }];

function quick(agent, model = 's') {
  return freshRequest(chatURL(), { body: { model, messages: msg() }, key: gw.keys[agent], timeout: 10000 });
}

function slowStream(agent) {
  return freshRequest(chatURL(), {
    body: { model: 's', messages: msg(), stream: true },
    key: gw.keys[agent],
    headers: {
      'x-mock-chunks': String(CHUNKS), 'x-mock-chunk-interval-ms': String(INTERVAL),
      'x-mock-output-tokens': String(2 * CHUNKS), 'x-request-id': uniq('strm'),
    },
    timeout: 20000,
  });
}

function readSSE(text) {
  const events = [];
  const raw = [];
  let done = false;
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
    if (!data) continue;
    raw.push(data);
    if (data === '[DONE]') { done = true; continue; }
    try { events.push(JSON.parse(data)); } catch { /* counted by raw */ }
  }
  return { events, raw, done };
}

const contentOf = (events) => events.map((e) => e.choices?.[0]?.delta?.content ?? '').join('');

// Sends one request after another (each on its own connection) for `ms`
// milliseconds; returns [{t0, status, text}].
async function probe(agent, ms, model = 's') {
  const out = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const r = await quick(agent, model);
    out.push({ t0: r.t0, status: r.status, text: r.text, headers: r.headers });
    await sleep(20);
  }
  return out;
}

async function cli(args) {
  const r = await gw.cli(args);
  return { ...r, t: Date.now() };
}

async function killList() {
  const r = await gw.cli(['kill', 'list', '--json']);
  assert.equal(r.code, 0, `kill list --json: ${r.stderr}`);
  return listRows(r.stdout);
}

function assertDisabled(r, reason, what) {
  assert.equal(r.status, 403, `${what}: ${r.status} ${String(r.text).slice(0, 300)}`);
  const e = openaiError(r.text);
  assert.equal(e.code, 'agent_disabled', `${what}: code ${e.code} type ${e.type}`);
  if (reason) assert.ok(e.message.includes(reason), `${what}: the message gives the reason "${reason}": ${e.message}`);
  return e;
}

// Every probe sent at least 1 s after `t` got `status`; returns the time
// from t to the first probe with that status (for diagnostics).
function assertSwitchedWithin(probes, t, status, what) {
  const late = probes.filter((p) => p.t0 >= t + 1000);
  assert.ok(late.length >= 3, `${what}: enough probes after 1 s (${late.length})`);
  for (const p of late) assert.equal(p.status, status, `${what}: a request sent ${p.t0 - t} ms after the switch got ${p.status}: ${p.text.slice(0, 200)}`);
  const first = probes.find((p) => p.t0 >= t && p.status === status);
  return first ? first.t0 - t : null;
}

describe('kill --agent', () => {
  const REASON = `runaway spend ${uniq('r')}`;
  let tKill;

  test('under streaming load: new requests 403 agent_disabled within 1 s; in-flight streams end with an error event, not [DONE]', { timeout: 30000 }, async (t) => {
    assert.equal((await quick('ka')).status, 200, 'serving before the switch');
    const streams = Array.from({ length: 8 }, () => slowStream('ka'));
    const tStart = Date.now();
    await sleep(600);
    const k = await cli(['kill', '--agent', 'ka', '--reason', REASON]);
    assert.equal(k.code, 0, `airlock kill: ${k.stderr}`);
    tKill = k.t;
    const [probes, otherProbes] = await Promise.all([probe('ka', 1600), probe('other', 1600)]);
    const firstMs = assertSwitchedWithin(probes, tKill, 403, 'killed agent');
    t.diagnostic(`first 403 ${firstMs} ms after the CLI returned`);
    for (const p of probes.filter((x) => x.status === 403)) assertDisabled(p, REASON, 'new request');
    for (const p of probes) assert.ok(p.status === 200 || p.status === 403, `only 200 or 403: ${p.status}`);
    for (const p of otherProbes) assert.equal(p.status, 200, `another agent of the same team is unaffected: ${p.text.slice(0, 200)}`);

    const rs = await Promise.all(streams);
    const natural = tStart + CHUNKS * INTERVAL;
    for (const r of rs) {
      assert.equal(r.status, 200, 'the streams had started');
      const sse = readSSE(r.text);
      assert.ok(sse.events.some((e) => e.choices), 'some content was relayed before the switch');
      assert.equal(sse.done, false, `a killed stream does not end with [DONE]: ...${r.text.slice(-300)}`);
      const errs = sse.events.filter((e) => e.error);
      assert.equal(errs.length, 1, `one error event: ...${r.text.slice(-400)}`);
      assert.equal(sse.events[sse.events.length - 1], errs[0], 'the error event is the last');
      const code = errs[0].error.code || errs[0].error.type;
      assert.equal(code, 'agent_disabled', JSON.stringify(errs[0]));
      assert.ok(r.t1 < natural - 500, `ended by the switch (${r.t1 - tKill} ms after it), well before the stream's natural end`);
      assert.ok(r.t1 - tKill < 1500, `ended within about a second of the switch (${r.t1 - tKill} ms)`);
    }
  });

  test('the SDK sees PermissionDeniedError with the reason', async () => {
    const c = new OpenAI({ baseURL: gw.baseURL, apiKey: gw.keys.ka, maxRetries: 0, timeout: 10000 });
    let err;
    try { await c.chat.completions.create({ model: 's', messages: msg() }); } catch (e) { err = e; }
    assert.ok(err instanceof OpenAI.PermissionDeniedError, `PermissionDeniedError: ${err}`);
    assert.equal(err.status, 403);
    assert.equal(err.code, 'agent_disabled');
    assert.ok(err.message.includes(REASON), err.message);
    let serr;
    try {
      const st = await c.chat.completions.create({ model: 's', messages: msg(), stream: true });
      for await (const _ of st) { /* drain */ }
    } catch (e) { serr = e; }
    assert.ok(serr instanceof OpenAI.PermissionDeniedError, `a stream request is refused before it starts: ${serr}`);
  });

  test('kill list shows it; the kill.set event has the actor and the detail; the killed streams are events', async () => {
    const rows = await killList();
    const row = rows.find((x) => x.scope === 'agent' && x.target === 'ka');
    assert.ok(row, `kill list --json: ${JSON.stringify(rows)}`);
    assert.equal(row.reason, REASON);
    assert.equal(row.drain, false);
    const table = await gw.cli(['kill', 'list']);
    assert.equal(table.code, 0, table.stderr);
    assert.ok(table.stdout.includes('ka') && table.stdout.includes(REASON), table.stdout);
    const [ev] = await gw.waitEvents((e) => e.kind === 'kill.set' && eventDetail(e).target === 'ka');
    assert.ok(ev, 'kill.set event');
    assert.match(ev.actor || '', /^cli:/, `actor of a CLI switch: ${ev.actor}`);
    assert.deepEqual(eventDetail(ev), { scope: 'agent', target: 'ka', reason: REASON, drain: false });
    const streamEvs = await gw.waitEvents((e) => e.agent === 'ka' && e.stream && (!e.kind || e.kind === 'request') && /^strm-/.test(e.request_id), { count: 8 });
    assert.equal(streamEvs.length, 8);
    for (const e of streamEvs) assert.equal(e.error_type, 'agent_disabled', `stream event ${JSON.stringify(e).slice(0, 300)}`);
    const refused = await gw.waitEvents((e) => e.agent === 'ka' && e.status === 403);
    assert.ok(refused.length > 0);
    assert.equal(refused[0].error_type, 'agent_disabled');
  });

  test('unkill restores service within a second; kill.cleared event; unkill again is an error', { timeout: 20000 }, async (t) => {
    const u = await cli(['unkill', '--agent', 'ka']);
    assert.equal(u.code, 0, `airlock unkill: ${u.stderr}`);
    const probes = await probe('ka', 1500);
    const firstMs = assertSwitchedWithin(probes, u.t, 200, 'unkilled agent');
    t.diagnostic(`first 200 ${firstMs} ms after unkill returned`);
    assert.ok(!(await killList()).some((x) => x.target === 'ka'), 'no longer listed');
    const [ev] = await gw.waitEvents((e) => e.kind === 'kill.cleared' && eventDetail(e).target === 'ka');
    assert.ok(ev, 'kill.cleared event');
    assert.match(ev.actor || '', /^cli:/);
    assert.equal(eventDetail(ev).scope, 'agent');
    const again = await cli(['unkill', '--agent', 'ka']);
    assert.notEqual(again.code, 0, 'unkill of a switch that is not on fails');
  });
});

describe('killed streams give back what they took', () => {
  test('after kill and unkill, the agent\'s concurrency slots and budget reservations are free again', { timeout: 30000 }, async () => {
    // kc: concurrent 2; the budget (0.0205) covers 2.5 worst cases of s
    // (no max_tokens: 4096 output tokens at 2 USD/M + 5 prompt tokens at
    // 1 USD/M = 0.008197).  Leaked reservations of the killed streams would
    // leave room for none of the last two requests.
    const streams = Array.from({ length: 2 }, () => slowStream('kc'));
    await sleep(500);
    const third = await quick('kc');
    assert.equal(third.status, 429, `both slots are taken: ${third.text.slice(0, 200)}`);
    const REASON = `slots ${uniq('r')}`;
    const k = await cli(['kill', '--agent', 'kc', '--reason', REASON]);
    assert.equal(k.code, 0, k.stderr);
    const rs = await Promise.all(streams);
    for (const r of rs) assert.equal(readSSE(r.text).done, false, 'killed');
    assert.equal((await cli(['unkill', '--agent', 'kc'])).code, 0);
    assert.ok(await waitFor(async () => (await quick('kc')).status === 200, { timeout: 1500, interval: 50 }), 'served again');
    // Two slow ones at once: both slots and both reservations are free.
    const two = await Promise.all(Array.from({ length: 2 }, () => freshRequest(chatURL(), {
      body: { model: 's', messages: msg() }, key: gw.keys.kc, headers: { 'x-mock-latency-ms': '500' },
    })));
    assert.deepEqual(two.map((r) => r.status), [200, 200], two.map((r) => r.text.slice(0, 200)).join('\n'));
  });
});

describe('kill --drain', () => {
  const REASON = `drain ${uniq('r')}`;
  test('in-flight streams finish with [DONE]; new requests are refused', { timeout: 30000 }, async () => {
    // The whole answer, as an agent that is not switched off gets it.
    const ref = await freshRequest(chatURL(), {
      body: { model: 's', messages: msg(), stream: true },
      key: gw.keys.other,
      headers: { 'x-mock-chunks': String(CHUNKS), 'x-mock-chunk-interval-ms': '0', 'x-mock-output-tokens': String(2 * CHUNKS) },
    });
    assert.equal(ref.status, 200);
    const whole = contentOf(readSSE(ref.text).events);
    assert.ok(whole.split(' ').length >= 2 * CHUNKS - 1, `reference answer: ${whole}`);
    const streams = Array.from({ length: 6 }, () => slowStream('kd'));
    await sleep(600);
    const k = await cli(['kill', '--agent', 'kd', '--reason', REASON, '--drain']);
    assert.equal(k.code, 0, k.stderr);
    try {
    const probes = await probe('kd', 1400);
    assertSwitchedWithin(probes, k.t, 403, 'drained agent');
    for (const p of probes.filter((x) => x.status === 403)) assertDisabled(p, REASON, 'new request (drain)');
    const rs = await Promise.all(streams);
    for (const r of rs) {
      assert.equal(r.status, 200);
      const sse = readSSE(r.text);
      assert.equal(sse.done, true, `a drained stream ends with [DONE]: ...${r.text.slice(-300)}`);
      assert.ok(!sse.events.some((e) => e.error), 'no error event');
      assert.equal(contentOf(sse.events), whole, 'the whole answer arrived');
      assert.ok(sse.events.some((e) => e.choices?.[0]?.finish_reason === 'stop'), 'the stream finished normally');
    }
    const [ev] = await gw.waitEvents((e) => e.kind === 'kill.set' && eventDetail(e).target === 'kd');
    assert.equal(eventDetail(ev).drain, true);
    assert.equal((await killList()).find((x) => x.target === 'kd')?.drain, true);
    } finally {
      assert.equal((await cli(['unkill', '--agent', 'kd'])).code, 0);
    }
  });
});

describe('admin API switches and restarts', () => {
  const REASON = `api switch ${uniq('r')}`;

  test('POST /admin/v1/kill (operator) survives a gateway restart; POST /admin/v1/unkill restores; 404 when not on', { timeout: 40000 }, async () => {
    const k = await gw.admin('POST', '/admin/v1/kill', { token: op.token, body: { scope: 'agent', target: 'ka', reason: REASON, drain: false } });
    assert.equal(k.status, 200, k.text);
    const got = await waitFor(async () => (await quick('ka')).status === 403, { timeout: 1500, interval: 50 });
    assert.ok(got, 'refused within a second');
    const list = await gw.admin('GET', '/admin/v1/kill', { token: op.token });
    assert.equal(list.status, 200, list.text);
    assert.ok(listRows(list.text).some((x) => x.target === 'ka' && x.reason === REASON), list.text);
    const [ev] = await gw.waitEvents((e) => e.kind === 'kill.set' && eventDetail(e).reason === REASON);
    assert.ok(ev);
    assert.equal(ev.actor, `admin:${op.id}`, 'the actor is the admin token id');

    await gw.stop({ signal: 'SIGTERM' });
    await gw.start();
    assertDisabled(await quick('ka'), REASON, 'first request after the restart');
    assert.equal((await quick('other')).status, 200);

    const u = await gw.admin('POST', '/admin/v1/unkill', { token: op.token, body: { scope: 'agent', target: 'ka' } });
    assert.equal(u.status, 200, u.text);
    const t = Date.now();
    const back = await waitFor(async () => (await quick('ka')).status === 200, { timeout: 1500, interval: 50 });
    assert.ok(back, `served again within a second (${Date.now() - t} ms)`);
    const [cl] = await gw.waitEvents((e) => e.kind === 'kill.cleared' && e.actor === `admin:${op.id}`);
    assert.ok(cl, 'kill.cleared by the operator token');
    const again = await gw.admin('POST', '/admin/v1/unkill', { token: op.token, body: { scope: 'agent', target: 'ka' } });
    assert.equal(again.status, 404, again.text);
  });

  test('a reason with quotes, backslashes and non-ASCII text reaches the client intact, in JSON and in a stream\'s error event', { timeout: 20000 }, async () => {
    const REASON = `He said "stop" \\ now: ünïcødé 🚫 ${uniq('r')}`;
    const streams = Array.from({ length: 2 }, () => slowStream('kd'));
    await sleep(500);
    const k = await gw.admin('POST', '/admin/v1/kill', { token: admin.token, body: { scope: 'agent', target: 'kd', reason: REASON, drain: false } });
    assert.equal(k.status, 200, k.text);
    try {
      const got = await waitFor(async () => {
        const r = await quick('kd');
        return r.status === 403 ? r : undefined;
      }, { timeout: 1500, interval: 50 });
      assert.ok(got, 'refused within a second');
      const e = assertDisabled(got, REASON, 'escaped reason');
      assert.ok(e.message.includes(REASON));
      for (const r of await Promise.all(streams)) {
        const sse = readSSE(r.text);
        const err = sse.events.find((x) => x.error);
        assert.ok(err, `an error event that parses as JSON: ...${r.text.slice(-300)}`);
        assert.ok(!sse.raw.some((d) => d !== '[DONE]' && (() => { try { JSON.parse(d); return false; } catch { return true; } })()), 'every data line is JSON');
      }
      const rows = await killList();
      assert.equal(rows.find((x) => x.target === 'kd')?.reason, REASON, 'kill list --json keeps the reason as given');
    } finally {
      assert.equal((await gw.admin('POST', '/admin/v1/unkill', { token: admin.token, body: { scope: 'agent', target: 'kd' } })).status, 200);
    }
    assert.ok(await waitFor(async () => (await quick('kd')).status === 200, { timeout: 1500, interval: 50 }));
  });

  test('a bad kill body is 400', async () => {
    for (const b of [{ scope: 'agent', target: 'ka' }, { scope: 'planet', target: 'x', reason: 'r' }, { scope: 'agent', reason: 'r' }]) {
      const r = await gw.admin('POST', '/admin/v1/kill', { token: admin.token, body: b });
      assert.equal(r.status, 400, `${JSON.stringify(b)}: ${r.status} ${r.text}`);
    }
    assert.ok(await waitFor(async () => (await quick('ka')).status === 200, { timeout: 1500, interval: 50 }), 'nothing was switched');
  });
});

describe('kill --provider / --model / --team / --all', () => {
  test('kill --provider pa: the route falls back to mb without touching A; the plain model ma is 403', { timeout: 20000 }, async () => {
    const r0 = await quick('kr', 'fb');
    assert.equal(r0.status, 200, r0.text);
    assert.equal(r0.headers['x-airlock-target'], 'ma', 'ma serves the route normally');
    const REASON = `provider outage ${uniq('r')}`;
    const k = await cli(['kill', '--provider', 'pa', '--reason', REASON]);
    assert.equal(k.code, 0, k.stderr);
    await sleep(Math.max(0, k.t + 1000 - Date.now()));
    await A.reset();
    for (let i = 0; i < 6; i++) {
      const r = await quick('kr', 'fb');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['x-airlock-target'], 'mb', 'the killed target is skipped');
    }
    assert.equal(await A.count(), 0, 'the killed provider received nothing');
    assertDisabled(await quick('kr', 'ma'), REASON, 'the plain model of the killed provider');
    assert.equal((await quick('kr', 'mb')).status, 200);
    const evs = await gw.waitEvents((e) => e.agent === 'kr' && e.route === 'fb' && e.ts_ms >= k.t + 900, { count: 6 });
    const att = evs[0] && (Array.isArray(evs[0].attempts) ? evs[0].attempts : JSON.parse(evs[0].attempts || '[]'));
    assert.ok(att && att.some((a) => a.target === 'ma' && a.outcome === 'skipped_killed'), `attempts record the skip: ${JSON.stringify(att)}`);
    assert.equal((await cli(['unkill', '--provider', 'pa'])).code, 0);
    const back = await waitFor(async () => (await quick('kr', 'fb')).headers['x-airlock-target'] === 'ma', { timeout: 1500, interval: 50 });
    assert.ok(back, 'ma serves the route again within a second');
  });

  test('kill --model: that model alias is refused for every agent, others pass', { timeout: 15000 }, async () => {
    const REASON = `bad model ${uniq('r')}`;
    const k = await cli(['kill', '--model', 'mb', '--reason', REASON]);
    assert.equal(k.code, 0, k.stderr);
    await sleep(Math.max(0, k.t + 1000 - Date.now()));
    assertDisabled(await quick('kr', 'mb'), REASON, 'killed model');
    assert.equal((await quick('kr', 'ma')).status, 200);
    assert.equal((await cli(['unkill', '--model', 'mb'])).code, 0);
    assert.ok(await waitFor(async () => (await quick('kr', 'mb')).status === 200, { timeout: 1500, interval: 50 }));
  });

  test('kill --team: every agent of the team, and only those', { timeout: 15000 }, async () => {
    const REASON = `team freeze ${uniq('r')}`;
    const k = await cli(['kill', '--team', 'tk', '--reason', REASON]);
    assert.equal(k.code, 0, k.stderr);
    await sleep(Math.max(0, k.t + 1000 - Date.now()));
    assertDisabled(await quick('kt'), REASON, 'agent of the killed team');
    assert.equal((await quick('other')).status, 200, 'an agent of another team');
    assert.equal((await cli(['unkill', '--team', 'tk'])).code, 0);
    assert.ok(await waitFor(async () => (await quick('kt')).status === 200, { timeout: 1500, interval: 50 }));
  });

  test('kill --all: every agent; unkill --all restores', { timeout: 15000 }, async () => {
    const REASON = `incident ${uniq('r')}`;
    const k = await cli(['kill', '--all', '--reason', REASON]);
    assert.equal(k.code, 0, k.stderr);
    await sleep(Math.max(0, k.t + 1000 - Date.now()));
    for (const a of ['ka', 'kd', 'other', 'kt']) assertDisabled(await quick(a), REASON, `agent ${a} under kill --all`);
    assertDisabled(await quick('kr', 'fb'), REASON, 'route under kill --all');
    assert.equal((await cli(['unkill', '--all'])).code, 0);
    assert.ok(await waitFor(async () => (await quick('other')).status === 200, { timeout: 1500, interval: 50 }));
    assert.ok(!(await killList()).some((x) => x.scope === 'all'), 'the all switch is off');
  });

  test('kill without --reason, or without a scope, is a usage error', async () => {
    assert.notEqual((await cli(['kill', '--agent', 'ka'])).code, 0, 'no --reason');
    assert.notEqual((await cli(['kill', '--reason', 'x'])).code, 0, 'no scope');
    assert.notEqual((await cli(['kill', '--agent', 'nosuch', '--reason', 'x'])).code, 0, 'an undeclared agent');
    assert.ok(await waitFor(async () => (await quick('ka')).status === 200, { timeout: 1500, interval: 50 }), 'nothing was switched');
  });
});
