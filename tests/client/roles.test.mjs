// roles.test.mjs - the admin API's roles as a matrix (notes/policy.md,
// "Admin API").
//
// One `airlock serve` with two agents (alpha, beta) and a route that always
// ends in an escalation (its only target is an `airlock mock` answering 500),
// so there are escalations to list and resolve.  Principals: an admin token
// of each role made with `airlock admin-token create` (admin, operator,
// auditor, viewer, owner of alpha, owner of beta), plus no token, a token
// that was never issued, a revoked one and an expired one.  Every endpoint
// of the table is called by every principal and the status compared with
// the table: 2xx where the role may, 403 permission_denied where it may not
// (an owner asking about another agent included), 401 authentication_error
// for the last four.  A mismatch report lists every cell that differs.
// Calls that change something get a fresh object each (a key to revoke, an
// open escalation, a switch to clear), and the changes are checked in the
// event log: kind and actor admin:TOKEN_ID.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startCustomGateway, startMocks, mockProvider, uniq, sleep, waitFor, listRows, runCliAsync,
  createAdminToken, eventDetail,
} from './helpers.mjs';

let gw; let F; let P;
const tok = {}; // principal -> {token, id}
const PRINCIPALS = ['admin', 'operator', 'auditor', 'viewer', 'ownerA', 'ownerB', 'none', 'bad', 'revoked', 'expired'];
const UNAUTH = ['none', 'bad', 'revoked', 'expired'];
const READERS = ['admin', 'operator', 'auditor', 'viewer'];

const yaml = () => [
  'providers:',
  mockProvider('pf', F, { forward: false }),
  mockProvider('pp', P, { forward: false }),
  'models:',
  '  f1: {provider: pf, model: up-f}',
  '  m: {provider: pp, model: up-m, price: {input: 1, output: 2}}',
  'routes:',
  '  escd:',
  '    targets: [f1]',
  '    retry: {attempts: 1, backoff_base: 10ms, backoff_cap: 20ms}',
  '    final: escalate',
  '    escalation: {mode: defer}',
  'escalation: {mode: defer, hold_timeout: 2m, expire: 24h}',
  'agents:',
  '  alpha: {owner: alpha@example.com, models: [m, escd]}',
  '  beta: {owner: beta@example.com, models: [m, escd]}',
].join('\n');

before(async () => {
  [F, P] = await startMocks(2);
  await F.config({ status: 500, 'fail-rate': 1 });
  gw = await startCustomGateway({ yaml, keyAgents: ['alpha', 'beta'] });
  for (const r of ['admin', 'operator', 'auditor', 'viewer']) tok[r] = await createAdminToken(gw, r);
  tok.ownerA = await createAdminToken(gw, 'owner', ['--agent', 'alpha']);
  tok.ownerB = await createAdminToken(gw, 'owner', ['--agent', 'beta']);
  tok.revoked = await createAdminToken(gw, 'admin');
  const rv = await gw.cli(['admin-token', 'revoke', tok.revoked.id]);
  assert.equal(rv.code, 0, `admin-token revoke: ${rv.stderr}`);
  tok.expired = await createAdminToken(gw, 'admin', ['--expires', '1s']);
  tok.bad = { token: `adm_${randomBytes(32).toString('base64url')}`, id: null };
  tok.none = { token: null, id: null };
  for (const [k, v] of Object.entries(tok)) if (k !== 'none') assert.ok(v.token, `token for ${k}`);
  for (const k of ['admin', 'operator', 'auditor', 'viewer', 'ownerA', 'ownerB']) assert.ok(tok[k].id, `id of ${k}'s token: ${tok[k].stderr}`);
  await sleep(1100); // the expired token is past its time
});

after(async () => {
  if (gw) await gw.close([F, P]);
  else for (const m of [F, P]) if (m) await m.stop();
});

// Expected statuses: a map principal -> status, the unauthenticated ones 401.
function expect(allowed, okStatus, denied = 403, extra = {}) {
  const e = {};
  for (const p of PRINCIPALS) e[p] = UNAUTH.includes(p) ? 401 : allowed.includes(p) ? okStatus : denied;
  return { ...e, ...extra };
}

async function newKeyId(agent) {
  const r = await runCliAsync(['keys', 'create', '--config', gw.configPath, '--agent', agent], { env: gw.env });
  assert.equal(r.code, 0, r.stderr);
  const m = /created key (\S+)/.exec(r.stderr);
  assert.ok(m, r.stderr);
  gw.allKeys.push(r.stdout.trim());
  return { id: m[1], key: r.stdout.trim() };
}

async function newEscalation(agent = 'alpha') {
  const r = await gw.post('/v1/chat/completions', { model: 'escd', messages: [{ role: 'user', content: 'help' }] }, { key: gw.keys[agent] });
  assert.equal(r.status, 503, r.text);
  const id = r.json?.error?.escalation_id;
  assert.ok(id, r.text);
  return id;
}

async function killBeta(reason = 'role test') {
  const r = await gw.cli(['kill', '--agent', 'beta', '--reason', reason]);
  assert.equal(r.code, 0, `kill: ${r.stderr}`);
}
async function unkillBeta() {
  await gw.cli(['unkill', '--agent', 'beta']); // may not be on
}
// Switches reach the workers within a second: wait until beta is served.
async function betaServed() {
  const ok = await waitFor(async () => (await gw.post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }] }, { key: gw.keys.beta })).status === 200, { timeout: 3000, interval: 50 });
  assert.ok(ok, 'beta is served again after unkill');
}

// Runs one endpoint for every principal; returns the mismatches.
async function matrix(ep) {
  const bad = [];
  const seen = {};
  for (const p of PRINCIPALS) {
    if (ep.prepare) await ep.prepare(p);
    const r = await ep.call(tok[p].token, p);
    seen[p] = r.status;
    const want = ep.expect[p];
    const wants = Array.isArray(want) ? want : [want];
    if (!wants.includes(r.status)) {
      bad.push(`${p}: want ${wants.join('|')}, got ${r.status} ${r.text.slice(0, 160)}`);
    } else if (r.status === 401 || r.status === 403) {
      const t = r.json?.error?.type;
      const wantType = r.status === 401 ? 'authentication_error' : 'permission_denied';
      if (t !== wantType) bad.push(`${p}: ${r.status} with error.type ${t}, want ${wantType}`);
    } else if (ep.check && r.status >= 200 && r.status < 300) {
      try { await ep.check(r, p); } catch (e) { bad.push(`${p}: ${e.message}`); }
    }
    if (ep.cleanup) await ep.cleanup(p, r);
  }
  return { bad, seen };
}

async function runMatrix(ep) {
  const { bad, seen } = await matrix(ep);
  assert.deepEqual(bad, [], `${ep.name}\n  ${bad.join('\n  ')}\n  (seen ${JSON.stringify(seen)})`);
}

const changes = []; // {kind, actor, what} expected in the event log

describe('admin API role matrix', () => {
  test('GET /admin/v1/status: every role', async () => {
    await runMatrix({
      name: 'GET /admin/v1/status',
      expect: expect([...READERS, 'ownerA', 'ownerB'], 200),
      call: (t) => gw.admin('GET', '/admin/v1/status', { token: t }),
    });
  });

  test('GET /admin/v1/agents: readers see all, an owner only its own', async () => {
    await runMatrix({
      name: 'GET /admin/v1/agents',
      expect: expect([...READERS, 'ownerA', 'ownerB'], 200),
      call: (t) => gw.admin('GET', '/admin/v1/agents', { token: t }),
      check: (r, p) => {
        assert.equal(r.json.object, 'list');
        const names = r.json.data.map((a) => a.name).sort();
        const want = p === 'ownerA' ? ['alpha'] : p === 'ownerB' ? ['beta'] : ['alpha', 'beta'];
        assert.deepEqual(names, want, `agents listed for ${p}`);
      },
    });
  });

  test('GET /admin/v1/agents/alpha: readers and alpha\'s owner', async () => {
    await runMatrix({
      name: 'GET /admin/v1/agents/alpha',
      expect: expect([...READERS, 'ownerA'], 200),
      call: (t) => gw.admin('GET', '/admin/v1/agents/alpha', { token: t }),
      check: (r) => assert.equal((r.json.agent && !r.json.name ? r.json.agent : r.json).name, 'alpha'),
    });
  });

  test('GET /admin/v1/agents/alpha/permissions: readers and alpha\'s owner', async () => {
    await runMatrix({
      name: 'GET /admin/v1/agents/alpha/permissions',
      expect: expect([...READERS, 'ownerA'], 200),
      call: (t) => gw.admin('GET', '/admin/v1/agents/alpha/permissions', { token: t }),
      check: (r) => {
        assert.equal(r.json.agent, 'alpha');
        assert.ok(Array.isArray(r.json.allowed));
      },
    });
  });

  test('POST /admin/v1/agents/alpha/tokens: admin and alpha\'s owner', async () => {
    await runMatrix({
      name: 'POST /admin/v1/agents/alpha/tokens',
      expect: expect(['admin', 'ownerA'], 201),
      call: (t) => gw.admin('POST', '/admin/v1/agents/alpha/tokens', { token: t, body: { models: ['m'], max_cost_usd: 1, ttl_s: 60 } }),
      check: (r, p) => {
        assert.match(r.json.token, /^alt_/);
        assert.equal(r.json.agent, 'alpha');
        changes.push({ kind: 'token.minted', actor: `admin:${tok[p].id}`, what: r.json.id });
      },
    });
  });

  test('GET /admin/v1/keys?agent=alpha: readers and alpha\'s owner; no secrets', async () => {
    await runMatrix({
      name: 'GET /admin/v1/keys?agent=alpha',
      expect: expect([...READERS, 'ownerA'], 200),
      call: (t) => gw.admin('GET', '/admin/v1/keys?agent=alpha', { token: t }),
      check: (r) => {
        const rows = listRows(r.text);
        assert.ok(rows.length >= 1, r.text);
        for (const row of rows) assert.equal(row.agent, 'alpha');
        assert.ok(!r.text.includes(gw.keys.alpha), 'no key secret in the list');
        assert.ok(!/alk_[A-Za-z0-9_-]{20,}/.test(r.text), 'nothing that looks like a secret');
      },
    });
  });

  test('POST /admin/v1/keys {agent: alpha}: admin and alpha\'s owner; the key is shown once and works', async () => {
    await runMatrix({
      name: 'POST /admin/v1/keys',
      expect: expect(['admin', 'ownerA'], 201),
      call: (t, p) => gw.admin('POST', '/admin/v1/keys', { token: t, body: { agent: 'alpha', label: `by-${p}`, expires_in_s: 3600 } }),
      check: async (r, p) => {
        const secret = Object.values(r.json).find((v) => typeof v === 'string' && v.startsWith('alk_'));
        assert.ok(secret, `the new key in the answer: ${r.text}`);
        gw.allKeys.push(secret);
        const ok = await waitFor(async () => (await gw.post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }] }, { key: secret })).status === 200, { timeout: 3000, interval: 100 });
        assert.ok(ok, 'the new key authenticates as alpha');
        changes.push({ kind: 'key.created', actor: `admin:${tok[p].id}` });
      },
    });
  });

  test('an owner\'s view is narrowed where the table leaves the agent open: keys without ?agent, escalations?agent=other', async () => {
    const k = await gw.admin('GET', '/admin/v1/keys', { token: tok.ownerA.token });
    assert.ok(k.status === 200 || k.status === 403, `${k.status} ${k.text}`);
    if (k.status === 200) {
      const rows = listRows(k.text);
      assert.ok(rows.length >= 1);
      assert.deepEqual([...new Set(rows.map((r) => r.agent))], ['alpha'], `only alpha's keys: ${k.text.slice(0, 300)}`);
    }
    const all = await gw.admin('GET', '/admin/v1/keys', { token: tok.admin.token });
    assert.equal(all.status, 200, all.text);
    assert.deepEqual([...new Set(listRows(all.text).map((r) => r.agent))].sort(), ['alpha', 'beta'], 'admin sees every agent\'s keys');
    const e = await gw.admin('GET', '/admin/v1/escalations?agent=beta', { token: tok.ownerA.token });
    if (e.status === 200) assert.ok(listRows(e.text).every((x) => x.agent === 'alpha'), e.text.slice(0, 300));
    else assert.equal(e.status, 403, e.text);
  });

  test('POST /admin/v1/keys {agent: beta} by alpha\'s owner is 403', async () => {
    const r = await gw.admin('POST', '/admin/v1/keys', { token: tok.ownerA.token, body: { agent: 'beta', label: 'x', expires_in_s: 60 } });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json?.error?.type, 'permission_denied');
  });

  test('POST /admin/v1/keys/ID/revoke: admin and alpha\'s owner; 404 for an unknown id', async () => {
    let cur;
    await runMatrix({
      name: 'POST /admin/v1/keys/ID/revoke',
      expect: expect(['admin', 'ownerA'], 200),
      prepare: async () => { if (!cur) cur = await newKeyId('alpha'); },
      call: (t) => gw.admin('POST', `/admin/v1/keys/${cur.id}/revoke`, { token: t }),
      check: async (r, p) => {
        changes.push({ kind: 'key.revoked', actor: `admin:${tok[p].id}` });
        const refused = await waitFor(async () => (await gw.post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }] }, { key: cur.key })).status === 401, { timeout: 3000, interval: 100 });
        assert.ok(refused, 'the revoked key no longer authenticates');
      },
      cleanup: (p, r) => { if (r.status === 200) cur = null; },
    });
    const nf = await gw.admin('POST', '/admin/v1/keys/key_000000000000000000000000/revoke', { token: tok.admin.token });
    assert.equal(nf.status, 404, nf.text);
  });

  test('GET /admin/v1/kill: every role but owners', async () => {
    await runMatrix({
      name: 'GET /admin/v1/kill',
      expect: expect(READERS, 200),
      call: (t) => gw.admin('GET', '/admin/v1/kill', { token: t }),
      check: (r) => assert.ok(Array.isArray(listRows(r.text))),
    });
  });

  test('POST /admin/v1/kill: admin and operator', async () => {
    await runMatrix({
      name: 'POST /admin/v1/kill',
      expect: expect(['admin', 'operator'], 200),
      call: (t, p) => gw.admin('POST', '/admin/v1/kill', { token: t, body: { scope: 'agent', target: 'beta', reason: `by ${p}`, drain: false } }),
      check: async (r, p) => {
        const on = await gw.cli(['kill', 'list', '--json']);
        assert.ok(listRows(on.stdout).some((x) => x.target === 'beta' && x.reason === `by ${p}`), `switch on: ${on.stdout}`);
        changes.push({ kind: 'kill.set', actor: `admin:${tok[p].id}` });
      },
      cleanup: async (p, r) => {
        if (r.status === 200) await unkillBeta();
        else {
          const on = await gw.cli(['kill', 'list', '--json']);
          assert.ok(!listRows(on.stdout).some((x) => x.target === 'beta'), `a refused ${p} changed nothing`);
        }
      },
    });
  });

  test('POST /admin/v1/unkill: admin and operator (404 when not on)', async () => {
    await killBeta();
    await runMatrix({
      name: 'POST /admin/v1/unkill',
      expect: expect(['admin', 'operator'], 200),
      call: (t) => gw.admin('POST', '/admin/v1/unkill', { token: t, body: { scope: 'agent', target: 'beta' } }),
      check: (r, p) => { changes.push({ kind: 'kill.cleared', actor: `admin:${tok[p].id}` }); },
      cleanup: async (p, r) => { if (r.status === 200) await killBeta(); },
    });
    await unkillBeta();
    const nf = await gw.admin('POST', '/admin/v1/unkill', { token: tok.admin.token, body: { scope: 'agent', target: 'beta' } });
    assert.equal(nf.status, 404, nf.text);
  });

  test('GET /admin/v1/events: admin and auditor', async () => {
    await runMatrix({
      name: 'GET /admin/v1/events',
      expect: expect(['admin', 'auditor'], 200),
      call: (t) => gw.admin('GET', '/admin/v1/events?agent=alpha&limit=5', { token: t }),
      check: (r) => {
        assert.equal(r.json.object, 'list');
        assert.ok(r.json.data.length >= 1 && r.json.data.length <= 5, `limit 5: ${r.json.data.length}`);
        for (const e of r.json.data) assert.equal(e.agent, 'alpha');
      },
    });
  });

  test('GET /admin/v1/escalations: every role, an owner sees only its agent\'s', async () => {
    await betaServed();
    const a = await newEscalation('alpha');
    const b = await newEscalation('beta');
    await runMatrix({
      name: 'GET /admin/v1/escalations',
      expect: expect([...READERS, 'ownerA', 'ownerB'], 200),
      call: (t) => gw.admin('GET', '/admin/v1/escalations?status=open&limit=100', { token: t }),
      check: (r, p) => {
        const ids = listRows(r.text).map((x) => x.id);
        if (p === 'ownerA') { assert.ok(ids.includes(a) && !ids.includes(b), `ownerA: ${ids}`); }
        else if (p === 'ownerB') { assert.ok(ids.includes(b) && !ids.includes(a), `ownerB: ${ids}`); }
        else assert.ok(ids.includes(a) && ids.includes(b), `${p}: ${ids}`);
      },
    });
    // One escalation: another agent's owner is refused (403 per the general
    // rule, 404 as the escalation API answered before: either).
    await runMatrix({
      name: 'GET /admin/v1/escalations/ID',
      expect: expect([...READERS, 'ownerA'], 200, 403, { ownerB: [403, 404] }),
      call: (t) => gw.admin('GET', `/admin/v1/escalations/${a}`, { token: t }),
      check: (r) => assert.equal(r.json.id, a),
    });
  });

  test('POST /admin/v1/escalations/ID/resolve: admin and operator', async () => {
    let cur;
    await runMatrix({
      name: 'POST /admin/v1/escalations/ID/resolve',
      expect: expect(['admin', 'operator'], 200),
      prepare: async () => { if (!cur) cur = await newEscalation('alpha'); },
      call: (t) => gw.admin('POST', `/admin/v1/escalations/${cur}/resolve`, { token: t, body: { answer: 'resolved by a person' } }),
      check: (r, p) => { changes.push({ kind: 'escalation.resolved', actor: `admin:${tok[p].id}`, what: cur }); },
      cleanup: (p, r) => { if (r.status === 200) cur = null; },
    });
  });

  test('unknown admin paths need a token too (401), and are 404 with one', async () => {
    const r = await gw.admin('GET', '/admin/v1/nosuch', {});
    assert.ok(r.status === 401 || r.status === 404, `${r.status}`);
    const r2 = await gw.admin('GET', '/admin/v1/nosuch', { token: tok.admin.token });
    assert.equal(r2.status, 404, r2.text);
  });
});

describe('changes are events with the admin token as actor', () => {
  test('key.created, key.revoked, token.minted, kill.set, kill.cleared, escalation.resolved', async () => {
    const kinds = ['key.created', 'key.revoked', 'token.minted', 'kill.set', 'kill.cleared', 'escalation.resolved'];
    for (const k of kinds) assert.ok(changes.some((c) => c.kind === k), `the matrix made a ${k} change`);
    let evs = [];
    await waitFor(async () => {
      evs = (await gw.events()).filter((e) => kinds.includes(e.kind));
      return changes.every((c) => evs.some((e) => e.kind === c.kind && e.actor === c.actor));
    }, { timeout: 5000, interval: 200 });
    const missing = changes.filter((c) => !evs.some((e) => e.kind === c.kind && e.actor === c.actor));
    assert.deepEqual(missing, [], `events seen: ${JSON.stringify(evs.map((e) => [e.kind, e.actor]))}`);
    // No change event was written by a refused principal.
    const refusedActors = ['auditor', 'viewer', 'ownerB'].map((p) => `admin:${tok[p].id}`);
    assert.ok(!evs.some((e) => refusedActors.includes(e.actor)), 'refused calls changed nothing');
    const minted = evs.find((e) => e.kind === 'token.minted');
    assert.equal(minted.agent, 'alpha');
    const ks = evs.find((e) => e.kind === 'kill.set' && e.actor === `admin:${tok.operator.id}`);
    assert.deepEqual(eventDetail(ks), { scope: 'agent', target: 'beta', reason: 'by operator', drain: false });
  });
});
