// tokens.test.mjs - scoped, short-lived tokens (alt_...) as owners mint them
// and agents use them (notes/policy.md: POST /admin/v1/agents/A/tokens,
// token.h).
//
// One `airlock serve` with `tokens: {signing_key_env: AIRLOCK_TOKEN_KEY,
// max_ttl: 1h}` in front of an `airlock mock` that takes per-request faults
// (x-mock-output-tokens makes the real cost of a request its worst case).
// An owner token (`airlock admin-token create --role owner --agent A`)
// mints tokens; the official openai SDK uses them as its API key.  Checked
// from the outside: mint answers (201 / 400 / 403), what the SDK gets with a
// good, expired, tampered or narrowed token (its own error classes), the
// per-token cost cap and its share of the agent's budget (429
// insufficient_quota), key_limits applied per token, the events (token_id),
// survival of a restart with the same signing key, and finally the store
// files' bytes (SQLite, -wal, -shm) and the server's stderr, which must not
// hold any key, token, admin token or the signing secret in clear.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import {
  startCustomGateway, startMocks, mockProvider, sleep, waitFor, openaiError, numbersIn,
  createAdminToken, storeFileBytes,
} from './helpers.mjs';

let gw; let M;
const SIGNING = `tk-${randomBytes(24).toString('hex')}`; // >= 32 bytes
const owner = {};
let adminT;
const minted = []; // every token string the test got
const capTokens = new Set(); // tokens whose cap was used up

const PROMPT = 'Summarise the refund policy briefly.'; // 36 chars: 10 prompt tokens with "user"
const MAX_TOKENS = 100;
const WORST = (10 * 100 + MAX_TOKENS * 190) / 1e6; // 0.02 USD on model m

const yaml = () => [
  'tokens: {signing_key_env: AIRLOCK_TOKEN_KEY, max_ttl: 1h}',
  'providers:',
  mockProvider('pm', M),
  'models:',
  '  m: {provider: pm, model: up-m, price: {input: 100, output: 190}}',
  '  m2: {provider: pm, model: up-m2, price: {input: 1, output: 2}}',
  '  secret-model: {provider: pm, model: up-secret, price: {input: 1, output: 2}}',
  'agents:',
  '  ta: {owner: ta@example.com, models: [m, m2]}',
  `  tc: {owner: tc@example.com, models: [m], budget: {daily_usd: ${2.5 * WORST}}}`,
  '  tk: {owner: tk@example.com, models: [m], key_limits: {rpm: 2}}',
].join('\n');

before(async () => {
  [M] = await startMocks(1);
  gw = await startCustomGateway({ yaml, keyAgents: ['ta', 'tc', 'tk'], env: { AIRLOCK_TOKEN_KEY: SIGNING } });
  for (const a of ['ta', 'tc', 'tk']) owner[a] = await createAdminToken(gw, 'owner', ['--agent', a]);
  adminT = await createAdminToken(gw, 'admin');
});

after(async () => {
  if (gw) await gw.close([M]);
  else if (M) await M.stop();
});

async function mint(agent, body, by = owner[agent].token) {
  const r = await gw.admin('POST', `/admin/v1/agents/${agent}/tokens`, { token: by, body });
  if (r.json?.token) minted.push(r.json.token);
  return r;
}

async function mintOk(agent, body) {
  const r = await mint(agent, body);
  assert.equal(r.status, 201, `mint for ${agent} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
  return r.json;
}

const sdk = (key) => new OpenAI({ baseURL: gw.baseURL, apiKey: key, maxRetries: 0, timeout: 15000 });
const chat = (model, extra = {}) => ({ model, messages: [{ role: 'user', content: PROMPT }], ...extra });

async function sdkErr(key, b) {
  try { await sdk(key).chat.completions.create(b); } catch (e) { return e; }
  return null;
}

function expiresMs(v) {
  if (typeof v === 'string') return Date.parse(v);
  if (typeof v === 'number') return v < 1e12 ? v * 1000 : v;
  return NaN;
}

// Flip the top bit of the base64url character of s at index i (a data bit
// even in a final, partly padded character).
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
function flipAt(s, i) {
  const v = B64URL.indexOf(s[i]);
  assert.ok(v >= 0, `base64url character at ${i}`);
  return s.slice(0, i) + B64URL[v ^ 32] + s.slice(i + 1);
}

describe('minting', () => {
  test('the owner mints a token: 201 with token, id, agent, models, max_cost_usd, expires_at', async () => {
    const t0 = Date.now();
    const j = await mintOk('ta', { models: ['m'], max_cost_usd: 1, ttl_s: 600 });
    assert.match(j.token, /^alt_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, j.token);
    assert.match(j.id, /^tok_[0-9a-f]{24}$/, j.id);
    assert.equal(j.agent, 'ta');
    assert.deepEqual(j.models, ['m']);
    assert.equal(j.max_cost_usd, 1);
    const exp = expiresMs(j.expires_at);
    assert.ok(Math.abs(exp - (t0 + 600000)) < 5000, `expires_at ${j.expires_at} is about now + 600 s`);
    // The admin role may mint too.
    const a = await mint('ta', { models: ['m2'], max_cost_usd: 1, ttl_s: 60 }, adminT.token);
    assert.equal(a.status, 201, a.text);
  });

  test('models outside the agent\'s allow-list, or ttl_s over tokens.max_ttl, are 400 at mint', async () => {
    for (const b of [
      { models: ['m', 'secret-model'], max_cost_usd: 1, ttl_s: 60 },
      { models: ['secret-model'], max_cost_usd: 1, ttl_s: 60 },
      { models: ['no-such-model'], max_cost_usd: 1, ttl_s: 60 },
      { models: ['m'], max_cost_usd: 1, ttl_s: 7200 },
    ]) {
      const r = await mint('ta', b);
      assert.equal(r.status, 400, `${JSON.stringify(b)}: ${r.status} ${r.text}`);
      openaiError(r.text);
      assert.ok(!r.json?.token, 'no token in a refusal');
    }
    // The maximum is allowed.
    assert.equal((await mint('ta', { models: ['m'], max_cost_usd: 1, ttl_s: 3600 })).status, 201);
  });

  test('another agent\'s owner may not mint for ta (403); no token is 401', async () => {
    const r = await mint('ta', { models: ['m'], max_cost_usd: 1, ttl_s: 60 }, owner.tc.token);
    assert.equal(r.status, 403, r.text);
    const n = await gw.admin('POST', '/admin/v1/agents/ta/tokens', { body: { models: ['m'], max_cost_usd: 1, ttl_s: 60 } });
    assert.equal(n.status, 401, n.text);
  });

  test('the mint is an event token.minted with the owner token as actor', async () => {
    const [ev] = await gw.waitEvents((e) => e.kind === 'token.minted' && e.actor === `admin:${owner.ta.id}`);
    assert.ok(ev, 'token.minted event');
    assert.equal(ev.agent, 'ta');
  });
});

describe('using a token with the openai SDK', () => {
  let tok;
  before(async () => { tok = await mintOk('ta', { models: ['m'], max_cost_usd: 1, ttl_s: 600 }); });

  test('a token is an API key: JSON and streaming calls succeed, events carry its id', async () => {
    const c = sdk(tok.token);
    const r = await c.chat.completions.create(chat('m'));
    assert.ok(r.choices[0].message.content.length > 0);
    const st = await c.chat.completions.create(chat('m', { stream: true }));
    let text = '';
    for await (const ch of st) text += ch.choices?.[0]?.delta?.content || '';
    assert.ok(text.length > 0);
    const evs = await gw.waitEvents((e) => e.token_id === tok.id && (!e.kind || e.kind === 'request'), { count: 2 });
    assert.equal(evs.length, 2);
    for (const e of evs) {
      assert.equal(e.agent, 'ta');
      assert.equal(e.status, 200);
    }
  });

  test('a model outside the token\'s list (but in the agent\'s) is 403 model_not_allowed: PermissionDeniedError', async () => {
    const err = await sdkErr(tok.token, chat('m2'));
    assert.ok(err instanceof OpenAI.PermissionDeniedError, `PermissionDeniedError: ${err}`);
    assert.equal(err.status, 403);
    assert.equal(err.code, 'model_not_allowed');
    const err2 = await sdkErr(tok.token, chat('secret-model'));
    assert.ok(err2 instanceof OpenAI.PermissionDeniedError, `outside the agent's list too: ${err2}`);
    // The agent's own key may use m2.
    assert.ok((await sdk(gw.keys.ta).chat.completions.create(chat('m2'))).choices.length > 0);
  });

  test('expired (ttl_s 1): 401 AuthenticationError after its time', async () => {
    const short = await mintOk('ta', { models: ['m'], max_cost_usd: 1, ttl_s: 1 });
    const exp = expiresMs(short.expires_at);
    // usable until it expires (when minted in the same second, skip)
    if (exp - Date.now() > 300) assert.ok((await sdk(short.token).chat.completions.create(chat('m'))).choices.length > 0);
    await sleep(Math.max(0, exp - Date.now()) + 1100);
    const err = await sdkErr(short.token, chat('m'));
    assert.ok(err instanceof OpenAI.AuthenticationError, `AuthenticationError: ${err}`);
    assert.equal(err.status, 401);
  });

  test('tampered tokens (a flipped character in the payload or the signature, cut short, re-signed) are 401', async () => {
    const t = tok.token;
    const dot = t.indexOf('.');
    const variants = {
      'payload flipped': flipAt(t, 4 + Math.floor((dot - 4) / 2)),
      'signature flipped': flipAt(t, dot + 1 + Math.floor((t.length - dot - 1) / 2)),
      'last character flipped': flipAt(t, t.length - 1),
      'cut short': t.slice(0, t.length - 4),
      'no signature': t.slice(0, dot),
      'signature of another token': t.slice(0, dot) + minted[0].slice(minted[0].indexOf('.')),
    };
    // A payload that widens the models, signed with a wrong key.
    const payload = JSON.parse(Buffer.from(t.slice(4, dot), 'base64url').toString('utf8'));
    payload.models = ['m', 'm2', 'secret-model'];
    const p64 = Buffer.from(JSON.stringify(payload)).toString('base64url');
    const { createHmac } = await import('node:crypto');
    variants['widened and re-signed with another key'] = `alt_${p64}.${createHmac('sha256', 'wrong-key').update(`alt_${p64}`).digest('base64url')}`;
    for (const [what, v] of Object.entries(variants)) {
      assert.notEqual(v, t);
      const err = await sdkErr(v, chat('m'));
      assert.ok(err instanceof OpenAI.AuthenticationError, `${what}: AuthenticationError, got ${err}`);
    }
    assert.ok((await sdk(t).chat.completions.create(chat('m'))).choices.length > 0, 'the original still works');
  });

  test('tokens survive a restart with the same signing key', { timeout: 20000 }, async () => {
    await gw.stop({ signal: 'SIGTERM' });
    await gw.start();
    assert.ok((await sdk(tok.token).chat.completions.create(chat('m'))).choices.length > 0);
  });
});

describe('token costs and limits', () => {
  const full = { 'x-mock-output-tokens': String(MAX_TOKENS) };

  test('over its max_cost_usd: 429 insufficient_quota (RateLimitError) with what is left', async () => {
    const t = await mintOk('ta', { models: ['m'], max_cost_usd: 2.5 * WORST, ttl_s: 600 });
    capTokens.add(t.token);
    const c = new OpenAI({ baseURL: gw.baseURL, apiKey: t.token, maxRetries: 0, timeout: 15000, defaultHeaders: full });
    for (let i = 0; i < 2; i++) {
      const r = await c.chat.completions.create(chat('m', { max_tokens: MAX_TOKENS }));
      assert.equal(r.usage.completion_tokens, MAX_TOKENS);
    }
    let err;
    try { await c.chat.completions.create(chat('m', { max_tokens: MAX_TOKENS })); } catch (e) { err = e; }
    assert.ok(err instanceof OpenAI.RateLimitError, `RateLimitError: ${err}`);
    assert.equal(err.code, 'insufficient_quota');
    assert.ok(numbersIn(err.message).some((n) => Math.abs(n - 0.5 * WORST) < 0.0005), `the message gives what is left (${0.5 * WORST}): ${err.message}`);
    // The agent's own key is not limited by the token's cap.
    const k = await gw.post('/v1/chat/completions', chat('m', { max_tokens: MAX_TOKENS }), { key: gw.keys.ta, headers: full });
    assert.equal(k.status, 200, k.text);
    // Spent = 2 worst cases, recorded under the token.
    const evs = await gw.waitEvents((e) => e.token_id === t.id && (!e.kind || e.kind === 'request'), { count: 3 });
    const spent = evs.reduce((s, e) => s + (e.cost_usd || 0), 0);
    assert.ok(Math.abs(spent - 2 * WORST) < 1e-9, `token spend ${spent}`);
  });

  test('a token\'s spend counts against its agent\'s budget', async () => {
    const t = await mintOk('tc', { models: ['m'], max_cost_usd: 10, ttl_s: 600 });
    for (let i = 0; i < 2; i++) {
      const r = await gw.post('/v1/chat/completions', chat('m', { max_tokens: MAX_TOKENS }), { key: t.token, headers: full });
      assert.equal(r.status, 200, r.text);
    }
    // 2 of the 2.5 worst cases are gone: the agent's own key is refused now.
    const k = await gw.post('/v1/chat/completions', chat('m', { max_tokens: MAX_TOKENS }), { key: gw.keys.tc, headers: full });
    assert.equal(k.status, 429, k.text);
    const e = openaiError(k.text);
    assert.equal(e.code, 'insufficient_quota');
    assert.ok(numbersIn(e.message).some((n) => Math.abs(n - 0.5 * WORST) < 0.0005), e.message);
    // And the token too, although its own cap is far away.
    const t3 = await gw.post('/v1/chat/completions', chat('m', { max_tokens: MAX_TOKENS }), { key: t.token, headers: full });
    assert.equal(t3.status, 429, t3.text);
    // The inventory reads the event store, written a moment later.
    let live;
    await waitFor(async () => {
      const a = await gw.admin('GET', '/admin/v1/agents/tc', { token: adminT.token });
      assert.equal(a.status, 200, a.text);
      live = (a.json.agent && !a.json.name ? a.json.agent : a.json).live;
      return Math.abs(live.spend_today_usd - 2 * WORST) < 1e-6;
    }, { timeout: 4000, interval: 100 });
    assert.ok(Math.abs(live.spend_today_usd - 2 * WORST) < 1e-6, `the agent's spend includes the token's: ${live.spend_today_usd}`);
  });

  test('spend survives a restart: the capped token and the spent agent stay refused', { timeout: 20000 }, async () => {
    await gw.stop({ signal: 'SIGTERM' });
    await gw.start();
    const capped = minted.find((x) => x && capTokens.has(x));
    assert.ok(capped, 'the capped token of the first test');
    const k = await gw.post('/v1/chat/completions', chat('m', { max_tokens: MAX_TOKENS }), { key: gw.keys.tc, headers: full });
    const r = await gw.post('/v1/chat/completions', chat('m', { max_tokens: MAX_TOKENS }), { key: capped, headers: full });
    const bad = [];
    if (k.status !== 429) bad.push(`the agent's daily spend was forgotten: ${k.status} ${k.text.slice(0, 200)}`);
    if (r.status !== 429) bad.push(`the token's spend (2 of its 2.5 worst cases) was forgotten: ${r.status} ${r.text.slice(0, 200)}`);
    else assert.equal(openaiError(r.text).code, 'insufficient_quota');
    assert.deepEqual(bad, []);
  });

  test('key_limits apply to each token on its own', async () => {
    const t1 = await mintOk('tk', { models: ['m'], max_cost_usd: 1, ttl_s: 600 });
    const t2 = await mintOk('tk', { models: ['m'], max_cost_usd: 1, ttl_s: 600 });
    const st = [];
    for (let i = 0; i < 3; i++) st.push((await gw.post('/v1/chat/completions', chat('m'), { key: t1.token })).status);
    assert.deepEqual(st, [200, 200, 429], 'token 1: key_limits rpm 2');
    const r = await gw.post('/v1/chat/completions', chat('m'), { key: t2.token });
    assert.equal(r.status, 200, `token 2 has its own count: ${r.text}`);
    assert.equal(r.headers.get('x-ratelimit-limit-requests'), '2');
    assert.equal((await gw.post('/v1/chat/completions', chat('m'), { key: gw.keys.tk })).status, 200, 'the agent key has its own count');
  });
});

describe('secrets at rest', () => {
  test('the store files and the server log hold no key, token, admin token or signing secret in clear', async () => {
    // A canary the store does keep (a request id), to prove the bytes read
    // are where the events go (the WAL included).
    const canary = `canary-${randomBytes(12).toString('hex')}`;
    const cr = await gw.post('/v1/chat/completions', chat('m'), { key: gw.keys.ta, headers: { 'x-request-id': canary } });
    assert.equal(cr.status, 200, cr.text);
    await gw.eventFor(canary);
    // Let the writer flush, then read the files while the server runs (WAL
    // not yet checkpointed) and again after it stopped.
    await sleep(300);
    assert.notEqual(storeFileBytes(gw.dbPath).indexOf(Buffer.from(canary)), -1, 'the canary request id is in the store bytes');
    const secrets = [];
    const add = (label, s, tail) => {
      if (!s) return;
      secrets.push([label, s]);
      if (tail && tail.length >= 16) secrets.push([`${label} (secret part)`, tail]);
    };
    for (const k of gw.allKeys) add('agent key', k, k.replace(/^alk_/, ''));
    for (const t of minted) add('scoped token', t, t.slice(t.indexOf('.') + 1));
    for (const a of [adminT, ...Object.values(owner)]) add('admin token', a.token, a.token.replace(/^adm_/, ''));
    add('signing secret', SIGNING);
    add('upstream key', gw.upstreamKey);
    assert.ok(secrets.length > 10, `${secrets.length} secrets to look for`);
    const check = (bytes, where, nonEmpty = true) => {
      if (nonEmpty) assert.ok(bytes.length > 0, `${where} read`);
      for (const [label, s] of secrets) {
        assert.equal(bytes.indexOf(Buffer.from(s)), -1, `${label} found in clear in ${where}`);
      }
    };
    check(storeFileBytes(gw.dbPath), 'the store (db, -wal, -shm) while serving');
    check(Buffer.from(gw.stderr()), 'the server log', false);
    await gw.stop({ signal: 'SIGTERM' });
    check(storeFileBytes(gw.dbPath), 'the store after shutdown');
    await gw.start();
  });
});
