// escalation.test.mjs - routes that end in a human (`final: escalate`).
//
// One `airlock serve` whose routes all point at an `airlock mock` that always
// answers 500, so every request runs out of targets and opens an escalation:
// `defer` (503 `escalated` at once) and `hold` (the client waits for a
// person).  People act through the CLI (`airlock escalations ...`) and the
// admin API (`/admin/v1/...`, bearer tokens from `airlock admin-token
// create`); agents read their own escalations at GET /v1/escalations/ID.
// Alerts go to a second mock's /_mock/webhook.  Each step is checked from the
// outside: status codes and bodies the client got, CLI exit codes and JSON,
// the events (`kind` escalation.resolved|rejected|timeout with the id and the
// actor), and the webhooks received.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import {
  startCustomGateway, startMocks, mockProvider, uniq, sleep, waitFor, openaiError, listRows,
} from './helpers.mjs';

const ESC_ID = /^esc_[0-9a-f]{24}$/;
let gw;
let F; let H;
let tok = {};

const yamlFor = (F_, H_, extraRoutes = [], topEsc = '{mode: defer, hold_timeout: 2m, expire: 24h}') => [
  'providers:',
  mockProvider('pf', F_, { forward: false }),
  'models:',
  '  f1: {provider: pf, model: up-f}',
  'routes:',
  '  escd:',
  '    targets: [f1]',
  '    retry: {attempts: 1, backoff_base: 10ms, backoff_cap: 20ms}',
  '    final: escalate',
  '    escalation: {mode: defer}',
  '  esch:',
  '    targets: [f1]',
  '    retry: {attempts: 1, backoff_base: 10ms, backoff_cap: 20ms}',
  '    final: escalate',
  '    escalation: {mode: hold, hold_timeout: 15s}',
  '  escs:',
  '    targets: [f1]',
  '    retry: {attempts: 1, backoff_base: 10ms, backoff_cap: 20ms}',
  '    final: escalate',
  '    escalation: {mode: hold, hold_timeout: 1s}',
  '  noesc:',
  '    targets: [f1]',
  '    retry: {attempts: 1, backoff_base: 10ms, backoff_cap: 20ms}',
  ...extraRoutes,
  `escalation: ${topEsc}`,
  `alerts: {webhook_url: "${H_.webhookURL}", timeout: 2s}`,
  'agents:',
  `  alpha: {owner: alpha@example.com, models: [escd, esch, escs, noesc${extraRoutes.length ? ', esce' : ''}]}`,
  '  beta: {owner: beta@example.com, models: [escd]}',
].join('\n');

before(async () => {
  [F, H] = await startMocks(2);
  await F.config({ status: 500, 'fail-rate': 1 });
  gw = await startCustomGateway({ yaml: () => yamlFor(F, H), keyAgents: ['alpha', 'beta'] });
  for (const role of ['admin', 'operator', 'auditor', 'viewer']) tok[role] = await gw.adminToken(role);
});

after(async () => {
  if (gw) await gw.close([F, H]);
  else for (const m of [F, H]) if (m) await m.stop();
});

const chatBody = (model, extra = {}) => ({ model, messages: [{ role: 'user', content: 'Please help with my refund.' }], ...extra });

async function getEsc(id, key = gw.keys.alpha) {
  const r = await fetch(`${gw.baseURL}/escalations/${id}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, text, json };
}

async function adminList(status = 'open') {
  const r = await gw.admin('GET', `/admin/v1/escalations?status=${status}&limit=100`, { token: tok.admin });
  assert.equal(r.status, 200, `admin list: ${r.text}`);
  return listRows(r.text);
}

// Open escalations as the CLI lists them (`escalations list --status open --json`).
async function cliOpen() {
  const r = await gw.cli(['escalations', 'list', '--status', 'open', '--json']);
  assert.equal(r.code, 0, `escalations list: ${r.stderr}`);
  return listRows(r.stdout);
}

// Waits for the open escalation of request rid (by request_id, else the one
// open id not in `known`), as the CLI lists them.
async function findOpen(rid, known) {
  let found;
  await waitFor(async () => {
    const rows = await cliOpen();
    found = rows.find((x) => x.request_id === rid) || rows.find((x) => !known.has(x.id));
    return found;
  }, { timeout: 5000, interval: 50 });
  assert.ok(found, `an open escalation appeared for ${rid}`);
  assert.match(found.id, ESC_ID);
  return found.id;
}

async function knownIds() {
  return new Set((await cliOpen()).map((x) => x.id));
}

async function kindEvent(kind, id, timeout = 4000) {
  const [ev] = await gw.waitEvents((e) => e.kind === kind && e.escalation_id === id, { timeout });
  return ev;
}

async function deferOne(rid = uniq('defer'), key = gw.keys.alpha) {
  const r = await gw.post('/v1/chat/completions', chatBody('escd'), { key, headers: { 'x-request-id': rid } });
  assert.equal(r.status, 503, r.text);
  const id = r.json?.error?.escalation_id;
  assert.match(id || '', ESC_ID, r.text);
  return { r, id, rid };
}

describe('defer', () => {
  let id;

  test('no target left -> 503 escalated, with the id in the body and a header', async () => {
    const { r, id: got, rid } = await deferOne();
    id = got;
    const e = openaiError(r.text);
    assert.equal(e.type, 'escalated');
    assert.equal(e.code, 'escalation_pending');
    assert.ok(e.message.includes(id), `message names the id: ${e.message}`);
    assert.equal(r.headers.get('x-airlock-escalation-id'), id);
    assert.ok(r.ms < 3000, 'defer answers at once');
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev, 'event recorded');
    assert.equal(ev.outcome, 'escalated');
    assert.equal(ev.escalation_id, id);
    assert.equal(ev.route, 'escd');
  });

  test('the openai SDK sees a 503 APIError with type escalated', async () => {
    const c = new OpenAI({ baseURL: gw.baseURL, apiKey: gw.keys.alpha, maxRetries: 0, timeout: 15000 });
    let err;
    try { await c.chat.completions.create(chatBody('escd')); } catch (e) { err = e; }
    assert.ok(err instanceof OpenAI.APIError, String(err));
    assert.equal(err.status, 503);
    assert.equal(err.error?.type, 'escalated');
    assert.match(err.headers?.get?.('x-airlock-escalation-id') || '', ESC_ID);
  });

  test('a route without final: escalate returns the upstream error instead', async () => {
    const r = await gw.post('/v1/chat/completions', chatBody('noesc'));
    assert.equal(r.status, 500, r.text);
    assert.notEqual(openaiError(r.text).type, 'escalated');
    assert.equal(r.headers.get('x-airlock-escalation-id'), null);
  });

  test('GET /v1/escalations/ID: open for its agent, 404 for another agent', async () => {
    const g = await getEsc(id);
    assert.equal(g.status, 200, g.text);
    assert.equal(g.json.id, id);
    assert.equal(g.json.object, 'escalation');
    assert.equal(g.json.status, 'open');
    assert.equal(g.json.completion, null);
    assert.equal(typeof g.json.reason, 'string');
    assert.ok(g.json.reason.length > 0);
    assert.ok(g.json.created_at, 'created_at set');
    assert.ok(!g.json.resolved_at, 'not resolved yet');
    const other = await getEsc(id, gw.keys.beta);
    assert.equal(other.status, 404, `another agent's escalation reads as 404: ${other.text}`);
    openaiError(other.text);
    const unknown = await getEsc('esc_000000000000000000000000');
    assert.equal(unknown.status, 404);
    const anon = await getEsc(id, null);
    assert.equal(anon.status, 401);
  });

  test('the CLI lists and shows it', async () => {
    const l = await gw.cli(['escalations', 'list', '--status', 'open', '--json']);
    assert.equal(l.code, 0, l.stderr);
    const rows = listRows(l.stdout);
    const row = rows.find((x) => x.id === id);
    assert.ok(row, `listed: ${l.stdout.slice(0, 500)}`);
    assert.equal(row.status, 'open');
    const la = await gw.cli(['escalations', 'list', '--status', 'open', '--agent', 'beta', '--json']);
    assert.equal(la.code, 0, la.stderr);
    assert.ok(!listRows(la.stdout).some((x) => x.id === id), '--agent beta does not list alpha\'s');
    const s = await gw.cli(['escalations', 'show', id, '--json']);
    assert.equal(s.code, 0, s.stderr);
    const shown = JSON.parse(s.stdout);
    assert.equal(shown.id, id);
    assert.equal(shown.status, 'open');
    const plain = await gw.cli(['escalations', 'show', id]);
    assert.equal(plain.code, 0);
    assert.ok(plain.stdout.includes(id));
  });

  test('resolve via the CLI: the agent reads the answer as a completion', async () => {
    const answer = `Use the blue form ${uniq('a')}.`;
    const r = await gw.cli(['escalations', 'resolve', id, '--answer', answer]);
    assert.equal(r.code, 0, `resolve: ${r.stdout} ${r.stderr}`);
    const g = await waitFor(async () => {
      const x = await getEsc(id);
      return x.json?.status === 'resolved' ? x : undefined;
    }, { timeout: 3000 });
    assert.ok(g, 'status becomes resolved');
    assert.equal(g.json.answer, answer);
    assert.ok(g.json.resolved_at);
    const c = g.json.completion;
    assert.ok(c, 'completion present once resolved');
    assert.equal(c.object, 'chat.completion');
    assert.equal(c.model, 'human');
    assert.equal(c.choices[0].message.role, 'assistant');
    assert.equal(c.choices[0].message.content, answer);
    assert.equal(c.choices[0].finish_reason, 'stop');

    const again = await gw.cli(['escalations', 'resolve', id, '--answer', 'twice']);
    assert.equal(again.code, 1, 'resolving a resolved escalation fails');
    assert.match(again.stdout + again.stderr, /resolved/i, 'the message says its status');
    const unknown = await gw.cli(['escalations', 'resolve', 'esc_000000000000000000000000', '--answer', 'x']);
    assert.equal(unknown.code, 1);

    const ev = await kindEvent('escalation.resolved', id);
    assert.ok(ev, 'escalation.resolved event');
    assert.equal(typeof ev.actor, 'string');
    assert.ok(ev.actor.length > 0, 'the actor is recorded');
  });

  test('the opening was posted to the alert webhook with the id', async () => {
    const hooks = await waitFor(async () => {
      const w = (await H.webhooks()).map((x) => JSON.stringify(x));
      return w.some((s) => s.includes(id)) ? w : undefined;
    }, { timeout: 5000, interval: 100 });
    assert.ok(hooks, `webhook with ${id}: ${JSON.stringify(await H.webhooks()).slice(0, 800)}`);
    assert.ok(hooks.some((s) => s.includes(id) && s.includes('escalation.opened')));
  });

  test('resolve from a file', async () => {
    const { id: fid } = await deferOne();
    const fs = await import('node:fs');
    const file = `${gw.dir}/answer.txt`;
    fs.writeFileSync(file, 'Answer from a file.\nSecond line.');
    const r = await gw.cli(['escalations', 'resolve', fid, '--answer-file', file]);
    assert.equal(r.code, 0, r.stderr);
    const g = await waitFor(async () => { const x = await getEsc(fid); return x.json?.status === 'resolved' ? x : undefined; });
    assert.ok(g);
    assert.match(g.json.answer, /Answer from a file\.\nSecond line\./);
  });
});

describe('admin API', () => {
  test('401 without a valid token', async () => {
    for (const t of [undefined, 'not-a-token']) {
      for (const p of ['/admin/v1/status', '/admin/v1/escalations']) {
        const r = await gw.admin('GET', p, { token: t });
        assert.equal(r.status, 401, `${p} token ${t}: ${r.text}`);
        assert.equal(openaiError(r.text).type, 'authentication_error');
      }
    }
    const { id } = await deferOne();
    const r = await gw.admin('POST', `/admin/v1/escalations/${id}/resolve`, { body: { answer: 'x' } });
    assert.equal(r.status, 401);
  });

  test('a viewer may read but not resolve (403); an operator may reject; then 409', async () => {
    const { id, rid } = await deferOne();
    for (const role of ['viewer', 'auditor', 'operator', 'admin']) {
      const st = await gw.admin('GET', '/admin/v1/status', { token: tok[role] });
      assert.equal(st.status, 200, `${role} status: ${st.text}`);
      const one = await gw.admin('GET', `/admin/v1/escalations/${id}`, { token: tok[role] });
      assert.equal(one.status, 200, `${role} get: ${one.text}`);
      assert.equal(one.json.id, id);
    }
    const list = await adminList('open');
    const row = list.find((x) => x.id === id);
    assert.ok(row, 'listed as open');
    if ('request_id' in row) assert.equal(row.request_id, rid);
    for (const role of ['viewer', 'auditor']) {
      const r = await gw.admin('POST', `/admin/v1/escalations/${id}/resolve`, { token: tok[role], body: { answer: 'no' } });
      assert.equal(r.status, 403, `${role} resolve: ${r.text}`);
      assert.equal(openaiError(r.text).type, 'permission_denied');
    }
    const rej = await gw.admin('POST', `/admin/v1/escalations/${id}/resolve`, { token: tok.operator, body: { reject: 'out of policy' } });
    assert.equal(rej.status, 200, rej.text);
    assert.equal(rej.json.id, id);
    assert.equal(rej.json.status, 'rejected');
    const again = await gw.admin('POST', `/admin/v1/escalations/${id}/resolve`, { token: tok.admin, body: { answer: 'late' } });
    assert.equal(again.status, 409, again.text);
    const ce = openaiError(again.text);
    assert.ok([ce.code, ce.type].includes('conflict'), again.text);
    const unknown = await gw.admin('POST', '/admin/v1/escalations/esc_000000000000000000000000/resolve', { token: tok.admin, body: { answer: 'x' } });
    assert.equal(unknown.status, 404);
    const g = await getEsc(id);
    assert.equal(g.json.status, 'rejected');
    assert.equal(g.json.completion, null);
    const ev = await kindEvent('escalation.rejected', id);
    assert.ok(ev, 'escalation.rejected event');
    assert.ok(ev.actor.length > 0);
    assert.ok(!(await adminList('open')).some((x) => x.id === id), 'no longer open');
  });

  test('status counts open escalations', async () => {
    const s1 = await gw.admin('GET', '/admin/v1/status', { token: tok.viewer });
    assert.equal(s1.status, 200, s1.text);
    const before = s1.json.escalations_open;
    assert.ok(Number.isInteger(before), s1.text);
    await deferOne();
    const after = (await gw.admin('GET', '/admin/v1/status', { token: tok.viewer })).json.escalations_open;
    assert.equal(after, before + 1);
    const cli = await gw.cli(['status', '--json', '--token', tok.viewer]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(JSON.parse(cli.stdout).escalations_open, after);
    const env = await gw.cli(['status', '--json'], { env: { ...gw.env, AIRLOCK_ADMIN_TOKEN: tok.viewer } });
    assert.equal(env.code, 0, `token from $AIRLOCK_ADMIN_TOKEN: ${env.stderr}`);
    const bad = await gw.cli(['status', '--json', '--token', 'nope']);
    assert.notEqual(bad.code, 0, 'a bad token fails');
  });
});

describe('hold', () => {
  test('resolved via the admin API: the waiting client gets a chat completion from "human"', async () => {
    const known = await knownIds();
    const rid = uniq('hold');
    const t0 = Date.now();
    const pending = gw.post('/v1/chat/completions', chatBody('esch'), { headers: { 'x-request-id': rid } });
    const id = await findOpen(rid, known);
    await sleep(300); // the client really waits
    const answer = `A person says: approved ${uniq('x')}`;
    const rr = await gw.admin('POST', `/admin/v1/escalations/${id}/resolve`, { token: tok.admin, body: { answer } });
    assert.equal(rr.status, 200, rr.text);
    assert.equal(rr.json.status, 'resolved');
    const r = await pending;
    assert.equal(r.status, 200, r.text);
    assert.ok(Date.now() - t0 < 10000, 'answered well before hold_timeout');
    assert.equal(r.json.object, 'chat.completion');
    assert.equal(r.json.model, 'human');
    assert.equal(r.json.choices[0].message.content, answer);
    assert.equal(r.json.choices[0].finish_reason, 'stop');
    assert.equal(r.json.usage.prompt_tokens, 0);
    assert.equal(r.json.usage.completion_tokens, 0);
    const g = await getEsc(id);
    assert.equal(g.json.status, 'resolved');
    const ev = await kindEvent('escalation.resolved', id);
    assert.ok(ev);
    const [req] = await gw.eventFor(rid);
    assert.ok(req, 'the held request has its event');
    assert.equal(req.escalation_id, id);
  });

  test('streaming client, resolved via the CLI: chunks from "human"', async () => {
    const known = await knownIds();
    const rid = uniq('hold-s');
    const c = new OpenAI({ baseURL: gw.baseURL, apiKey: gw.keys.alpha, maxRetries: 0, timeout: 20000 });
    const pending = (async () => {
      const stream = await c.chat.completions.create({ ...chatBody('esch'), stream: true }, { headers: { 'x-request-id': rid } });
      const chunks = [];
      for await (const ch of stream) chunks.push(ch);
      return chunks;
    })();
    const id = await findOpen(rid, known);
    const answer = 'Streamed human answer.';
    const r = await gw.cli(['escalations', 'resolve', id, '--answer', answer]);
    assert.equal(r.code, 0, r.stderr);
    const chunks = await pending;
    assert.ok(chunks.length >= 1);
    for (const ch of chunks) {
      assert.equal(ch.object, 'chat.completion.chunk');
      assert.equal(ch.model, 'human');
    }
    assert.equal(chunks.map((ch) => ch.choices?.[0]?.delta?.content ?? '').join(''), answer);
    assert.equal(chunks.filter((ch) => ch.choices?.[0]?.finish_reason === 'stop').length, 1);
  });

  test('/v1/messages client (Anthropic SDK) gets a Messages answer', async () => {
    const known = await knownIds();
    const rid = uniq('hold-m');
    const c = new Anthropic({ baseURL: gw.url, apiKey: gw.keys.alpha, maxRetries: 0, timeout: 20000 });
    const pending = c.messages.create({
      model: 'esch', max_tokens: 64, messages: [{ role: 'user', content: 'help' }],
    }, { headers: { 'x-request-id': rid } });
    const id = await findOpen(rid, known);
    const answer = 'Anthropic-shaped human answer.';
    const rr = await gw.admin('POST', `/admin/v1/escalations/${id}/resolve`, { token: tok.operator, body: { answer } });
    assert.equal(rr.status, 200, rr.text);
    const msg = await pending;
    assert.equal(msg.type, 'message');
    assert.equal(msg.content[0].type, 'text');
    assert.equal(msg.content[0].text, answer);
    assert.equal(msg.stop_reason, 'end_turn');
  });

  test('/v1/messages streaming client (Anthropic SDK): finalMessage is the answer', async () => {
    const known = await knownIds();
    const rid = uniq('hold-ms');
    const c = new Anthropic({ baseURL: gw.url, apiKey: gw.keys.alpha, maxRetries: 0, timeout: 20000 });
    const pending = c.messages.stream({
      model: 'esch', max_tokens: 64, messages: [{ role: 'user', content: 'help' }],
    }, { headers: { 'x-request-id': rid } }).finalMessage();
    const id = await findOpen(rid, known);
    const answer = 'Streamed Messages answer from a person.';
    const r = await gw.cli(['escalations', 'resolve', id, '--answer', answer]);
    assert.equal(r.code, 0, r.stderr);
    const msg = await pending;
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.content[0].type, 'text');
    assert.equal(msg.content[0].text, answer);
    assert.equal(msg.stop_reason, 'end_turn');
  });

  test('rejected: 403 escalation_rejected with the reason', async () => {
    const known = await knownIds();
    const rid = uniq('hold-r');
    const pending = gw.post('/v1/chat/completions', chatBody('esch'), { headers: { 'x-request-id': rid } });
    const id = await findOpen(rid, known);
    const rr = await gw.admin('POST', `/admin/v1/escalations/${id}/resolve`, { token: tok.admin, body: { reject: 'not something we do' } });
    assert.equal(rr.status, 200, rr.text);
    const r = await pending;
    assert.equal(r.status, 403, r.text);
    const e = openaiError(r.text);
    assert.ok([e.code, e.type].includes('escalation_rejected'), r.text);
    assert.match(e.message, /not something we do/);
    const ev = await kindEvent('escalation.rejected', id);
    assert.ok(ev);
  });

  test('no answer within hold_timeout: 504 escalation_timeout, row timeout, event', async () => {
    const known = await knownIds();
    const rid = uniq('hold-t');
    const r = await gw.post('/v1/chat/completions', chatBody('escs'), { headers: { 'x-request-id': rid } });
    assert.equal(r.status, 504, r.text);
    const e = openaiError(r.text);
    assert.ok([e.code, e.type].includes('escalation_timeout'), r.text);
    assert.ok(r.ms >= 900 && r.ms < 4000, `held about hold_timeout (1 s): ${r.ms} ms`);
    let id = r.headers.get('x-airlock-escalation-id') || r.json?.error?.escalation_id;
    if (!id) {
      const l = await gw.cli(['escalations', 'list', '--status', 'timeout', '--json']);
      const rows = listRows(l.stdout);
      id = (rows.find((x) => x.request_id === rid) || rows.find((x) => !known.has(x.id)))?.id;
    }
    assert.match(id || '', ESC_ID);
    const g = await waitFor(async () => { const x = await getEsc(id); return x.json?.status === 'timeout' ? x : undefined; });
    assert.ok(g, 'the escalation closed as timeout');
    const ev = await kindEvent('escalation.timeout', id);
    assert.ok(ev, 'escalation.timeout event');
    const late = await gw.cli(['escalations', 'resolve', id, '--answer', 'too late']);
    assert.equal(late.code, 1);
    assert.match(late.stdout + late.stderr, /timeout/i);
  });

  test('a client that gives up while held leaves the escalation resolvable and the gateway healthy', async () => {
    const known = await knownIds();
    const rid = uniq('hold-gone');
    const ac = new AbortController();
    const pending = gw.post('/v1/chat/completions', chatBody('esch'), { headers: { 'x-request-id': rid }, signal: ac.signal })
      .catch((e) => e);
    const id = await findOpen(rid, known);
    ac.abort();
    await pending;
    await sleep(200);
    const rr = await gw.admin('POST', `/admin/v1/escalations/${id}/resolve`, { token: tok.admin, body: { answer: 'nobody listening' } });
    assert.ok(rr.status === 200 || rr.status === 409, rr.text);
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev, 'event for the abandoned request');
    const h = await fetch(`${gw.url}/healthz`);
    assert.equal(h.status, 200);
  });
});

describe('expiry', () => {
  test('an open escalation past `expire` is closed as timeout', { timeout: 30000 }, async () => {
    const [F2, H2] = await startMocks(2);
    let g2;
    try {
      await F2.config({ status: 500, 'fail-rate': 1 });
      g2 = await startCustomGateway({
        yaml: () => yamlFor(F2, H2, [
          '  esce:',
          '    targets: [f1]',
          '    retry: {attempts: 1}',
          '    final: escalate',
          '    escalation: {mode: defer, expire: 2s}',
        ]),
        keyAgents: ['alpha'],
      });
      const r = await g2.post('/v1/chat/completions', chatBody('esce'));
      assert.equal(r.status, 503, r.text);
      const id = r.json.error.escalation_id;
      const get = async () => {
        const x = await fetch(`${g2.baseURL}/escalations/${id}`, { headers: { authorization: `Bearer ${g2.keys.alpha}` } });
        return x.json();
      };
      assert.equal((await get()).status, 'open');
      const closed = await waitFor(async () => ((await get()).status === 'timeout' ? true : undefined), { timeout: 10000, interval: 200 });
      assert.ok(closed, 'closed as timeout after expire');
      const [ev] = await g2.waitEvents((e) => e.kind === 'escalation.timeout' && e.escalation_id === id, { timeout: 4000 });
      assert.ok(ev, 'escalation.timeout event');
    } finally {
      if (g2) await g2.close([F2, H2]);
      else { await F2.stop(); await H2.stop(); }
    }
  });
});
