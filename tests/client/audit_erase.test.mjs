// audit_erase.test.mjs - sealed payloads, erasure, purge and key rotation.
//
// With `audit.capture: full` the request as received, as sent upstream and
// the response are stored sealed per record; `airlock audit show` (and the
// admin API for auditors) decrypts them; `audit erase --agent|--session`
// destroys the data keys of the matching records only; the chain still
// verifies afterwards; a master key rotation keeps old records readable.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { runCliAsync, startCustomGateway } from './helpers.mjs';

const sha256 = (s) => createHash('sha256').update(s).digest('hex');

describe('sealed payloads, erasure and rotation', () => {
  let gw;
  let base;
  let kid = 'k1';
  const sent = {}; // request id -> { agent, session, body, response }
  before(async () => {
    base = fs.mkdtempSync('/tmp/al_erase_');
    for (const k of ['k1', 'k2']) {
      const r = await runCliAsync(['audit', 'keygen', '--master', '--out', path.join(base, `${k}.key`)]);
      assert.equal(r.code, 0, r.stderr);
    }
    gw = await startCustomGateway({
      keyAgents: ['alpha', 'beta'],
      yaml: () => `providers: {sim: {type: simulated}}
models: {gpt-4o-mini: {provider: sim}}
agents: {alpha: {owner: qa, models: [gpt-4o-mini]}, beta: {owner: qa, models: [gpt-4o-mini]}}
audit:
  capture: full
  master_keys: [{id: k1, file: ${base}/k1.key}${kid === 'k2' ? `, {id: k2, file: ${base}/k2.key}` : ''}]
  master_key_id: ${kid}`,
    });
  });
  after(async () => {
    if (gw) await gw.close();
    fs.rmSync(base, { recursive: true, force: true });
  });

  async function send(agent, session, i) {
    const body = JSON.stringify({ model: 'gpt-4o-mini', user: `user-${agent}`, messages: [{ role: 'user', content: `secret plan ${agent} ${i}` }] });
    const r = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.keys[agent]}`, 'content-type': 'application/json', 'x-airlock-session-id': session },
      body,
    });
    const response = await r.text();
    assert.equal(r.status, 200, response);
    sent[r.headers.get('x-request-id')] = { agent, session, body, response };
  }

  // seq of every request record by request id (from `audit show`).
  async function records() {
    const out = {};
    for (let seq = 1; seq < 200; seq++) {
      const r = await runCliAsync(['audit', 'show', '--seq', String(seq), '--config', gw.configPath]);
      if (r.code !== 0) break;
      const doc = JSON.parse(r.stdout);
      if (doc.record.kind === 'request') out[doc.record.request_id] = { seq, doc };
    }
    return out;
  }

  test('show decrypts what was received, sent and answered; commitments match', async () => {
    for (let i = 0; i < 3; i++) {
      await send('alpha', 'sess-a', i);
      await send('beta', 'sess-b', i);
    }
    await send('beta', 'sess-c', 9);
    await new Promise((r) => setTimeout(r, 100));
    const recs = await records();
    assert.equal(Object.keys(recs).length, 7);
    for (const [rid, want] of Object.entries(sent)) {
      const { doc } = recs[rid];
      assert.equal(doc.payload_state, 'sealed');
      assert.equal(doc.payload.received, want.body);
      assert.equal(doc.payload.response, want.response);
      assert.ok(doc.payload.sent.includes(`secret plan ${want.agent}`));
      assert.equal(doc.record.commit.received, sha256(want.body));
      assert.equal(doc.record.commit.response, sha256(want.response));
      assert.equal(doc.record.user, `user-${want.agent}`);
      assert.equal(doc.record.payload.kid, 'k1');
      assert.equal(doc.record.payload.alg, 'A256GCM');
    }
  });

  test('the admin API shows a record to auditors only', async () => {
    const recs = await records();
    const { seq } = Object.values(recs)[0];
    const auditor = await gw.adminToken('auditor');
    const viewer = await gw.adminToken('viewer');
    const a = await gw.admin('GET', `/admin/v1/audit/records/${seq}`, { token: auditor });
    assert.equal(a.status, 200, a.text);
    assert.equal(a.json.payload_state, 'sealed');
    assert.ok(a.json.payload.received.includes('secret plan'));
    const v = await gw.admin('GET', `/admin/v1/audit/records/${seq}`, { token: viewer });
    assert.equal(v.status, 403);
    assert.ok(!v.text.includes('secret plan'));
    const nf = await gw.admin('GET', '/admin/v1/audit/records/999999', { token: auditor });
    assert.equal(nf.status, 404);
  });

  test('erase --agent destroys that agent\'s payloads only; the chain still verifies', async () => {
    const e = await runCliAsync(['audit', 'erase', '--agent', 'alpha', '--config', gw.configPath]);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /erased 3 payloads/);
    const recs = await records();
    for (const [rid, want] of Object.entries(sent)) {
      const { doc } = recs[rid];
      if (want.agent === 'alpha') {
        assert.equal(doc.payload_state, 'erased');
        assert.equal(doc.payload, null);
        assert.ok(!JSON.stringify(doc).includes('secret plan'));
      } else {
        assert.equal(doc.payload_state, 'sealed');
        assert.equal(doc.payload.received, want.body);
      }
    }
    const s = await runCliAsync(['audit', 'erase', '--session', 'sess-c', '--config', gw.configPath]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /erased 1 payloads?/);
    const p = await runCliAsync(['audit', 'purge', '--config', gw.configPath]);
    assert.equal(p.code, 0, p.stderr); // retention_days 0: nothing to purge
    const v = await runCliAsync(['audit', 'verify', '--config', gw.configPath]);
    assert.equal(v.code, 0, v.stderr);
    // The erasures are audit records themselves.
    const ev = await gw.events();
    assert.ok(ev.some((x) => x.kind === 'audit.erased' && x.detail && x.detail.agent === 'alpha'));
  });

  test('a master key rotation keeps old records readable', async () => {
    await gw.stop({ signal: 'SIGTERM', timeout: 8000 });
    kid = 'k2';
    const cfg = fs.readFileSync(gw.configPath, 'utf8')
      .replace(/master_keys: \[\{id: k1, file: ([^}]+)\}\]/, (m, f) => `master_keys: [{id: k1, file: ${f}}, {id: k2, file: ${base}/k2.key}]`)
      .replace('master_key_id: k1', 'master_key_id: k2');
    fs.writeFileSync(gw.configPath, cfg);
    await gw.start();
    await send('beta', 'sess-d', 10);
    const recs = await records();
    const kids = Object.values(recs).map((r) => r.doc.record.payload.kid);
    assert.ok(kids.includes('k1') && kids.includes('k2'), kids.join(','));
    for (const { doc } of Object.values(recs))
      if (doc.payload_state === 'sealed') assert.ok(doc.payload.received.includes('secret plan'));
    const v = await runCliAsync(['audit', 'verify', '--config', gw.configPath]);
    assert.equal(v.code, 0, v.stderr);
  });
});
