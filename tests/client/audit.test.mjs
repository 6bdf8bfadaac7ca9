// audit.test.mjs - issue 6's audit trail, black-box against the binary.
//
// 1. records and checkpoints: every request (chat, streamed chat, embeddings,
//    a 401, a 404) and every change made by the CLI (keys create/revoke,
//    kill/unkill) has a canonical-JSON record chained by seq/prev; the
//    commitments of a non-streamed chat are the SHA-256 of the bytes we sent
//    and received; `audit verify` passes; the witness file's notes verify;
//    inclusion and consistency proofs verify offline and fail once edited.
// 2. tamper drill on copies of the store (triggers dropped in the copy with
//    the sqlite3 command-line tool of scripts/deps.sh): changed, deleted,
//    inserted, swapped and truncated records are each named with their
//    sequence number; the triggers refuse edits on the original; a key
//    that did not sign the checkpoints is rejected.
// 3. crash drill: SIGKILL under concurrent load with durability: sync; every
//    2xx answer has its event and its record; the chain verifies.
// 4. capture: full: show decrypts, erase by agent/session/date, purge, master
//    key rotation, the admin API's auditor/viewer split.
// 5. configuration errors reported by `airlock check`.
// Node 20 has no node:sqlite, so SQL goes through `sqlite3` (a Debian package
// listed in scripts/deps.sh).  The gateway's once-a-minute purge timer is
// covered by a unit test, not here (records older than a day cannot be made
// quickly black-box).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import {
  mockProvider, parseJsonLines, runCliAsync, sleep, startCustomGateway, startMock, tempDir,
} from './helpers.mjs';

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

function sql(db, statements) {
  const r = spawnSync('sqlite3', ['-bail', db], { input: statements, encoding: 'utf8', timeout: 30000 });
  return { code: r.status, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

function rows(db, q) {
  const r = sql(db, q);
  assert.equal(r.code, 0, `sqlite3: ${r.stderr}${r.error || ''}`);
  return r.stdout.split('\n').filter(Boolean);
}

// JSON re-serialized with sorted keys and no whitespace: what canonical JSON
// must equal for the values a record holds.
function canon(v) {
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v && typeof v === 'object') {
    const ks = Object.keys(v).sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
    return `{${ks.map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

// The text with every number token outside strings respelled as JS would
// print it (canonical JSON keeps numbers as written; canon() cannot).
function jsNumbers(t) {
  let out = '';
  for (let i = 0; i < t.length;) {
    if (t[i] === '"') {
      let j = i + 1;
      while (t[j] !== '"') j += t[j] === '\\' ? 2 : 1;
      out += t.slice(i, j + 1);
      i = j + 1;
    } else if (/[-0-9]/.test(t[i])) {
      const m = /^-?\d+(\.\d+)?([eE][-+]?\d+)?/.exec(t.slice(i));
      out += String(Number(m[0]));
      i += m[0].length;
    } else {
      out += t[i++];
    }
  }
  return out;
}

// Flip one hex digit of a string at index i.
function flipHex(s, i = 0) {
  const c = s[i];
  return s.slice(0, i) + (c === '0' ? '1' : '0') + s.slice(i + 1);
}

async function keygen(out, extra = []) {
  const r = await runCliAsync(['audit', 'keygen', '--out', out, ...extra]);
  assert.equal(r.code, 0, `keygen: ${r.stderr}`);
  return r;
}

// ------------------------------------------------------------------ 1 + 2

describe('records, checkpoints, proofs, tamper drill', () => {
  let gw;
  let mock;
  let base;
  let keyFile;
  let witness;
  let sdk;
  const plain = []; // {body, response, rid}
  const reqIds = [];
  let killReason;
  let newKeyId;

  before(async () => {
    base = tempDir('al_audit_');
    keyFile = path.join(base, 'sign.key');
    witness = path.join(base, 'witness.log');
    const kg = await keygen(keyFile, ['--name', 'test.airlock']);
    assert.ok(fs.existsSync(`${keyFile}.pub`), 'keygen wrote no .pub');
    assert.equal(kg.stdout.trim(), fs.readFileSync(`${keyFile}.pub`, 'utf8').trim());
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
    mock = await startMock();
    gw = await startCustomGateway({
      keyAgents: ['alpha', 'beta'],
      yaml: () => [
        'providers:',
        mockProvider('mock', mock),
        'models:',
        '  gpt-4o-mini: {provider: mock, model: upstream-mini, price: {input: 0.15, output: 0.60}}',
        '  text-embedding-3-small: {provider: mock, model: upstream-embed, price: {input: 0.02, output: 0}}',
        'agents:',
        '  alpha: {owner: qa, models: [gpt-4o-mini, text-embedding-3-small]}',
        '  beta: {owner: qa, models: [gpt-4o-mini]}',
        `audit: {signing_key: ${keyFile}, checkpoint_every: 5, checkpoint_interval_ms: 200, witness: {file: ${witness}}}`,
      ].join('\n'),
    });
    sdk = new OpenAI({ apiKey: gw.keys.alpha, baseURL: gw.baseURL, maxRetries: 0 });

    // Non-streamed chats with fixed bodies (bytes known).
    for (let i = 0; i < 8; i++) {
      const body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"audit question ${i}"}]}`;
      const r = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json' },
        body,
      });
      const buf = Buffer.from(await r.arrayBuffer());
      assert.equal(r.status, 200, buf.toString());
      const rid = r.headers.get('x-request-id');
      plain.push({ body, response: buf, rid });
      reqIds.push(rid);
    }
    // Streamed chats through the SDK.
    for (let i = 0; i < 4; i++) {
      const { data: stream, response } = await sdk.chat.completions
        .create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: `stream ${i}` }] })
        .withResponse();
      let text = '';
      for await (const c of stream) text += c.choices[0]?.delta?.content || '';
      assert.ok(text.length > 0);
      reqIds.push(response.headers.get('x-request-id'));
    }
    // Embeddings.
    for (let i = 0; i < 3; i++) {
      const { response } = await sdk.embeddings.create({ model: 'text-embedding-3-small', input: `embed ${i}` }).withResponse();
      reqIds.push(response.headers.get('x-request-id'));
    }
    // A 401 (bad key) and a 404 (unknown model).
    const bad = new OpenAI({ apiKey: 'sk-not-a-key', baseURL: gw.baseURL, maxRetries: 0 });
    await assert.rejects(bad.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e.status === 401);
    await assert.rejects(sdk.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e.status === 404);
    // More plain chats, to reach ~20 requests.
    for (let i = 0; i < 3; i++) {
      const r = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `more ${i}` }] }).withResponse();
      reqIds.push(r.response.headers.get('x-request-id'));
    }

    // Changes through the CLI.
    const before = parseJsonLines((await gw.cli(['keys', 'list', '--json'])).stdout).map((k) => k.id);
    const kc = await gw.cli(['keys', 'create', '--agent', 'beta']);
    assert.equal(kc.code, 0, kc.stderr);
    const after = parseJsonLines((await gw.cli(['keys', 'list', '--json'])).stdout);
    newKeyId = after.map((k) => k.id).find((id) => !before.includes(id));
    assert.ok(newKeyId, 'no new key id in keys list');
    const kr = await gw.cli(['keys', 'revoke', newKeyId]);
    assert.equal(kr.code, 0, kr.stderr);
    killReason = 'audit drill stop';
    const k = await gw.cli(['kill', '--agent', 'beta', '--reason', killReason]);
    assert.equal(k.code, 0, k.stderr);
    const u = await gw.cli(['unkill', '--agent', 'beta']);
    assert.equal(u.code, 0, u.stderr);
    // A few requests after the changes so a checkpoint covers them, then
    // SIGTERM: the writer drains and signs a last checkpoint.
    for (let i = 0; i < 2; i++) {
      const r = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `after ${i}` }] }).withResponse();
      reqIds.push(r.response.headers.get('x-request-id'));
    }
    await sleep(500);
    const st = await gw.stop({ signal: 'SIGTERM', timeout: 8000 });
    assert.equal(st.code, 0, `serve exit ${st.code}\n${gw.stderr().slice(-3000)}`);
  });

  after(async () => {
    if (mock) await mock.stop();
    if (gw) fs.rmSync(gw.dir, { recursive: true, force: true });
    if (base) fs.rmSync(base, { recursive: true, force: true });
  });

  const records = () => rows(gw.dbPath, 'SELECT record FROM audit_log ORDER BY seq;');

  test('every request and every change has a canonical, chained record', async () => {
    const texts = records();
    const recs = texts.map((t) => JSON.parse(t));
    texts.forEach((t, i) => {
      assert.equal(canon(recs[i]), jsNumbers(t), `record ${i + 1} is not canonical JSON`);
      assert.doesNotMatch(t, /^\s|\s$/);
      assert.equal(recs[i].v, 1);
      assert.equal(recs[i].seq, i + 1);
      const prev = i === 0 ? '0'.repeat(64) : sha256(Buffer.concat([Buffer.from([0]), Buffer.from(texts[i - 1])]));
      assert.equal(recs[i].prev, prev, `record ${i + 1}: prev is not the leaf hash of record ${i}`);
      assert.match(recs[i].ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(recs[i].event_id, `record ${i + 1} has no event_id`);
    });
    const kinds = recs.map((r) => r.kind);
    for (const k of ['key.created', 'key.revoked', 'kill.set', 'kill.cleared']) {
      assert.ok(kinds.includes(k), `no ${k} record; kinds: ${[...new Set(kinds)].join(',')}`);
    }
    const changes = recs.filter((r) => r.kind !== 'request');
    for (const c of changes) {
      assert.ok(c.actor, `change ${c.seq} (${c.kind}) has no actor`);
      // detail may be left out when there is nothing to say (key.created has none).
      if (c.detail !== undefined) assert.equal(typeof c.detail, 'object', `change ${c.seq}: detail is not an object`);
    }
    assert.ok(JSON.stringify(recs.find((r) => r.kind === 'kill.set')).includes(killReason), 'kill.set record lacks the reason');

    // Every event has its record; every 2xx request id has an event.
    const evs = parseJsonLines((await gw.cli(['events', 'list', '--json', '--limit', '0'])).stdout);
    const byEvent = new Map(recs.map((r) => [r.event_id, r]));
    for (const rid of reqIds) {
      const ev = evs.find((e) => e.request_id === rid);
      assert.ok(ev, `no event for request ${rid}`);
      const rec = byEvent.get(ev.id) || recs.find((r) => r.request_id === rid);
      assert.ok(rec, `no audit record for request ${rid} (event ${ev.id})`);
      assert.equal(rec.kind, 'request');
    }
    const reqRecs = recs.filter((r) => r.kind === 'request');
    assert.ok(reqRecs.some((r) => r.status === 401), 'no record of the 401');
    assert.ok(reqRecs.some((r) => r.status === 404), 'no record of the 404');
    assert.ok(reqRecs.some((r) => r.stream === true), 'no streamed request record');
    assert.ok(reqRecs.some((r) => String(r.path).includes('embeddings')), 'no embeddings record');
    assert.ok(reqRecs.length >= 22, `${reqRecs.length} request records`);
    // The contract's request fields: an authenticated request names its key.
    const noKey = reqRecs.filter((r) => r.status === 200 && !r.key_id).map((r) => r.seq);
    assert.deepEqual(noKey, [], `request records without key_id (seq): ${noKey.join(',')}`);
    for (const e of evs) assert.ok(byEvent.has(e.id), `event ${e.id} (${e.kind || e.request_id}) has no record`);
  });

  test('a key.revoked record names the key it revoked', () => {
    const rv = records().map((t) => JSON.parse(t)).find((r) => r.kind === 'key.revoked');
    assert.ok(JSON.stringify(rv).includes(newKeyId), `key.revoked record does not name the key ${newKeyId}: ${JSON.stringify(rv)}`);
  });

  test('commit.received/response are the SHA-256 of the bytes sent and received', async () => {
    const recs = records().map((t) => JSON.parse(t));
    const evs = parseJsonLines((await gw.cli(['events', 'list', '--json', '--limit', '0'])).stdout);
    for (const p of plain) {
      const ev = evs.find((e) => e.request_id === p.rid);
      const rec = recs.find((r) => r.event_id === ev.id);
      assert.ok(rec?.commit, `record for ${p.rid} has no commit`);
      assert.equal(rec.commit.received, sha256(Buffer.from(p.body)), 'commit.received');
      assert.equal(rec.commit.response, sha256(p.response), 'commit.response');
      assert.match(rec.commit.sent, /^[0-9a-f]{64}$/);
    }
  });

  test('audit verify passes and counts every record and checkpoint', async () => {
    const n = records().length;
    const cps = rows(gw.dbPath, 'SELECT count(*) FROM audit_checkpoints;')[0];
    assert.ok(Number(cps) >= 4, `${cps} checkpoints`);
    const v = await gw.cli(['audit', 'verify']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, new RegExp(`^verified ${n} records, ${cps} checkpoints, root [0-9a-f]{64}`));
    // The last checkpoint covers every record (SIGTERM signs one).
    const last = Number(rows(gw.dbPath, 'SELECT max(size) FROM audit_checkpoints;')[0]);
    assert.equal(last, n, 'the last checkpoint does not cover the whole log');
  });

  test('the witness file holds signed notes that verify against the key', async () => {
    const text = fs.readFileSync(witness, 'utf8');
    const notes = text.split(/\n\n(?=\S)/).filter((s) => s.trim());
    assert.ok(notes.length >= 2, `${notes.length} notes in the witness file`);
    assert.ok(notes[0].startsWith('airlock\n'), `origin line: ${notes[0].split('\n')[0]}`);
    assert.match(text, /\u2014 test\.airlock /, 'no signature line by the key name');
    const v = await gw.cli(['audit', 'verify', '--checkpoint', witness]);
    assert.equal(v.code, 0, v.stderr);
    const pub = fs.readFileSync(`${keyFile}.pub`, 'utf8').trim();
    const v2 = await gw.cli(['audit', 'verify', '--checkpoint', witness, '--key', pub]);
    assert.equal(v2.code, 0, v2.stderr);
  });

  test('inclusion proofs verify, and fail once edited', async () => {
    const pf = path.join(base, 'proof.json');
    const p = await gw.cli(['audit', 'proof', '--seq', '3']);
    assert.equal(p.code, 0, p.stderr);
    const doc = JSON.parse(p.stdout);
    assert.equal(doc.seq, 3);
    assert.ok(doc.proof.length > 0);
    fs.writeFileSync(pf, p.stdout);
    const ok = await runCliAsync(['audit', 'verify-proof', pf, '--key-file', `${keyFile}.pub`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^ok: record 3 is included in the log of size ${doc.tree_size} signed by test\\.airlock`));
    const bad1 = { ...doc, proof: [flipHex(doc.proof[0], 5), ...doc.proof.slice(1)] };
    fs.writeFileSync(pf, JSON.stringify(bad1));
    const r1 = await runCliAsync(['audit', 'verify-proof', pf, '--key-file', `${keyFile}.pub`]);
    assert.equal(r1.code, 1, `edited path hash: ${r1.stdout}${r1.stderr}`);
    const bad2 = { ...doc, record: doc.record.replace('"seq":3', '"seq":3,"x":1').replace(/"kind":"[^"]*"/, '"kind":"forged"') };
    fs.writeFileSync(pf, JSON.stringify(bad2));
    const r2 = await runCliAsync(['audit', 'verify-proof', pf, '--key-file', `${keyFile}.pub`]);
    assert.equal(r2.code, 1, `edited record: ${r2.stdout}${r2.stderr}`);
    // Not covered by any checkpoint -> exit 1.
    const none = await gw.cli(['audit', 'proof', '--seq', '100000']);
    assert.equal(none.code, 1);
  });

  test('consistency between two checkpoints verifies, and fails once edited', async () => {
    const sizes = rows(gw.dbPath, 'SELECT size FROM audit_checkpoints ORDER BY id;').map(Number);
    const old = sizes.find((s) => s > 1 && s < sizes[sizes.length - 1]);
    assert.ok(old, `checkpoint sizes ${sizes}`);
    const c = await gw.cli(['audit', 'consistency', '--old', String(old)]);
    assert.equal(c.code, 0, c.stderr);
    const doc = JSON.parse(c.stdout);
    assert.equal(doc.old_size, old);
    assert.equal(doc.new_size, sizes[sizes.length - 1]);
    const cf = path.join(base, 'cons.json');
    fs.writeFileSync(cf, c.stdout);
    const ok = await runCliAsync(['audit', 'verify-consistency', cf, '--key-file', `${keyFile}.pub`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(doc.proof.length > 0);
    fs.writeFileSync(cf, JSON.stringify({ ...doc, proof: [flipHex(doc.proof[0], 7), ...doc.proof.slice(1)] }));
    const bad = await runCliAsync(['audit', 'verify-consistency', cf, '--key-file', `${keyFile}.pub`]);
    assert.equal(bad.code, 1, `edited consistency proof: ${bad.stdout}${bad.stderr}`);
    fs.writeFileSync(cf, JSON.stringify({ ...doc, old_root: flipHex(doc.old_root, 0) }));
    const bad2 = await runCliAsync(['audit', 'verify-consistency', cf, '--key-file', `${keyFile}.pub`]);
    assert.equal(bad2.code, 1, `edited old root: ${bad2.stdout}${bad2.stderr}`);
  });

  // ---- tamper drill on copies

  async function tampered(name, edit) {
    const db = path.join(base, `${name}.db`);
    fs.copyFileSync(gw.dbPath, db);
    for (const s of ['-wal']) if (fs.existsSync(gw.dbPath + s)) fs.copyFileSync(gw.dbPath + s, db + s);
    const cfg = path.join(base, `${name}.yaml`);
    fs.writeFileSync(cfg, fs.readFileSync(gw.configPath, 'utf8').replace(/sqlite:\/\/[^"]+/, `sqlite://${db}`));
    const r = sql(db, `DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;\n${edit}\n`);
    assert.equal(r.code, 0, r.stderr);
    return runCliAsync(['audit', 'verify', '--config', cfg], { env: gw.env });
  }

  test('tamper: the triggers refuse UPDATE and DELETE on the original', () => {
    const u = sql(gw.dbPath, "UPDATE audit_log SET record = '{}' WHERE seq = 3;");
    assert.notEqual(u.code, 0);
    assert.match(u.stderr, /audit_log is append-only/);
    const d = sql(gw.dbPath, 'DELETE FROM audit_log WHERE seq = 3;');
    assert.notEqual(d.code, 0);
    assert.match(d.stderr, /append-only/);
    const cu = sql(gw.dbPath, 'UPDATE audit_checkpoints SET size = 1;');
    assert.notEqual(cu.code, 0);
    const cd = sql(gw.dbPath, 'DELETE FROM audit_checkpoints;');
    assert.notEqual(cd.code, 0);
  });

  test('tamper: a changed record text is named', async () => {
    const v = await tampered('changed', `UPDATE audit_log SET record = replace(record, '"status":200', '"status":201') WHERE seq = 6;`);
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.match(v.stderr, /^audit: record 6 changed/m);
  });

  test('tamper: a deleted record is named', async () => {
    const v = await tampered('deleted', 'DELETE FROM audit_log WHERE seq = 7;');
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.match(v.stderr, /^audit: record 7 removed/m);
  });

  test('tamper: an inserted record is named', async () => {
    const v = await tampered('inserted', `
      UPDATE audit_log SET seq = seq + 100000 WHERE seq >= 5;
      UPDATE audit_log SET seq = seq - 99999 WHERE seq >= 100005;
      INSERT INTO audit_log(seq, ts_ms, kind, record)
        SELECT 5, ts_ms, kind, replace(record, '"seq":4,', '"seq":5,') FROM audit_log WHERE seq = 4;`);
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.match(v.stderr, /^audit: record 5 inserted/m);
  });

  test('tamper: two swapped record texts are named', async () => {
    const v = await tampered('swapped', `
      CREATE TEMP TABLE t AS SELECT seq, record FROM audit_log WHERE seq IN (8, 9);
      UPDATE audit_log SET record = (SELECT record FROM t WHERE seq = 9) WHERE seq = 8;
      UPDATE audit_log SET record = (SELECT record FROM t WHERE seq = 8) WHERE seq = 9;`);
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.match(v.stderr, /^audit: records 8 and 9 reordered/m);
  });

  test('tamper: a truncated log is named', async () => {
    const n = Number(rows(gw.dbPath, 'SELECT count(*) FROM audit_log;')[0]);
    const k = 3;
    const v = await tampered('truncated', `DELETE FROM audit_log WHERE seq > ${n - k};`);
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.match(v.stderr, new RegExp(`^audit: log truncated: checkpoint \\d+ covers ${n} records, the store has ${n - k} \\(records ${n - k + 1}\\.\\.${n} missing\\)`, 'm'));
  });

  test('tamper: checkpoints checked with another key are rejected', async () => {
    const other = path.join(base, 'other.key');
    await keygen(other, ['--name', 'test.airlock']);
    const pub = fs.readFileSync(`${other}.pub`, 'utf8').trim();
    const v = await gw.cli(['audit', 'verify', '--key', pub]);
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.match(v.stderr, /^audit: checkpoint \d+: not signed by test\.airlock/m);
    // A witness file signed by another key (same origin/name): a gateway
    // run with the other key writes one; verify with ours rejects it.
    const pf = path.join(base, 'proof-other.json');
    const p = await gw.cli(['audit', 'proof', '--seq', '2']);
    fs.writeFileSync(pf, p.stdout);
    const vp = await runCliAsync(['audit', 'verify-proof', pf, '--key', pub]);
    assert.equal(vp.code, 1, `proof checked against another key: ${vp.stdout}${vp.stderr}`);
  });
});

// ------------------------------------------------------------------ 3

describe('crash drill: SIGKILL under load with durability: sync', () => {
  let gw;
  before(async () => {
    gw = await startCustomGateway({
      yaml: () => `providers: {sim: {type: simulated, simulated: {latency_ms: 2}}}
models: {gpt-4o-mini: {provider: sim}}
agents: {alpha: {owner: qa, models: [gpt-4o-mini]}}
audit: {durability: sync}`,
    });
  });
  after(() => { if (gw) fs.rmSync(gw.dir, { recursive: true, force: true }); });

  test('every 2xx answer has an event and a record; verify passes', async () => {
    const ok = [];
    let sent = 0;
    let killed = false;
    const worker = async () => {
      while (!killed && sent < 300) {
        const i = sent++;
        try {
          const r = await fetch(`${gw.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `crash ${i}` }] }),
            signal: AbortSignal.timeout(10000),
          });
          await r.text();
          if (r.status >= 200 && r.status < 300) ok.push(r.headers.get('x-request-id'));
        } catch { /* cut by the kill */ }
      }
    };
    const workers = Array.from({ length: 12 }, worker);
    const t0 = Date.now();
    while (ok.length < 150 && sent < 300 && Date.now() - t0 < 20000) await sleep(5);
    gw.stopping = true;
    process.kill(gw.handle.pid, 'SIGKILL');
    killed = true;
    await Promise.all(workers);
    await gw.handle.exitPromise;
    assert.ok(ok.length >= 50, `only ${ok.length} answers before the kill`);
    assert.ok(sent < 300 || ok.length < sent, 'the kill came after the load ended');

    const ev = await runCliAsync(['events', 'list', '--config', gw.configPath, '--json', '--limit', '0'], { env: gw.env, timeout: 60000 });
    assert.equal(ev.code, 0, ev.stderr);
    const evs = parseJsonLines(ev.stdout);
    const byRid = new Map(evs.map((e) => [e.request_id, e]));
    const missing = ok.filter((id) => !byRid.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${ok.length} answered requests have no event`);
    const recs = rows(gw.dbPath, 'SELECT record FROM audit_log;').map((t) => JSON.parse(t));
    const evIds = new Set(recs.map((r) => r.event_id));
    const unaudited = ok.filter((id) => !evIds.has(byRid.get(id).id));
    assert.deepEqual(unaudited, [], `${unaudited.length} answered requests have no audit record`);
    const v = await runCliAsync(['audit', 'verify', '--config', gw.configPath], { env: gw.env, timeout: 60000 });
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, new RegExp(`^verified ${recs.length} records`));
  });
});

// ------------------------------------------------------------------ 4

describe('capture: full — show, erase, purge, rotation, admin API', () => {
  let gw;
  let base;
  let kid = 'k1';
  const sent = []; // {agent, session, body, rid, seq}

  before(async () => {
    base = tempDir('al_audit_full_');
    for (const k of ['k1', 'k2']) {
      const r = await runCliAsync(['audit', 'keygen', '--master', '--out', path.join(base, `${k}.key`)]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(fs.readFileSync(path.join(base, `${k}.key`), 'utf8').trim(), /^[0-9a-f]{64}$/i);
    }
    gw = await startCustomGateway({
      keyAgents: ['alpha', 'beta'],
      yaml: () => `providers: {sim: {type: simulated}}
models: {gpt-4o-mini: {provider: sim}}
agents: {alpha: {owner: qa, models: [gpt-4o-mini]}, beta: {owner: qa, models: [gpt-4o-mini]}}
audit:
  capture: full
  retention_days: 1
  master_keys: [{id: k1, file: ${base}/k1.key}${kid === 'k2' ? `, {id: k2, file: ${base}/k2.key}` : ''}]
${kid === 'k2' ? '  master_key_id: k2' : ''}`,
    });
  });
  after(async () => {
    if (gw) await gw.close();
    if (base) fs.rmSync(base, { recursive: true, force: true });
  });

  async function send(agent, session, i) {
    const body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"secret plan ${agent} ${i}"}]}`;
    const r = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.keys[agent]}`, 'content-type': 'application/json', 'x-airlock-session-id': session },
      body,
    });
    const response = await r.text();
    assert.equal(r.status, 200, response);
    const s = { agent, session, body, response, rid: r.headers.get('x-request-id') };
    sent.push(s);
    return s;
  }

  // Fills in s.seq for every sent request (event id -> record).
  async function locate() {
    const evs = parseJsonLines((await gw.cli(['events', 'list', '--json', '--limit', '0'])).stdout);
    const recs = rows(gw.dbPath, 'SELECT seq, event_id FROM audit_log;').map((l) => l.split('|'));
    for (const s of sent) {
      if (s.seq) continue;
      const ev = evs.find((e) => e.request_id === s.rid);
      const rec = ev && recs.find((r) => r[1] === ev.id);
      s.seq = rec ? Number(rec[0]) : undefined;
    }
  }
  async function show(seq) {
    const r = await gw.cli(['audit', 'show', '--seq', String(seq)]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  }
  const waitRecords = async (n) => {
    for (let i = 0; i < 100; i++) {
      await locate();
      if (sent.filter((s) => s.seq).length >= n) return;
      await sleep(50);
    }
  };

  test('show decrypts the received body; erase by agent spares the other agent', async () => {
    for (let i = 0; i < 3; i++) await send('alpha', 'sess-a', i);
    for (let i = 0; i < 3; i++) await send('beta', 'sess-b', i);
    await waitRecords(6);
    for (const s of sent) {
      assert.ok(s.seq, `no record for ${s.rid}`);
      const d = await show(s.seq);
      assert.equal(d.seq, s.seq);
      assert.equal(d.payload_state, 'sealed');
      assert.equal(d.payload.received, s.body);
      assert.equal(d.payload.response, s.response);
      assert.equal(d.record.payload.alg, 'A256GCM');
      assert.equal(d.record.payload.kid, 'k1');
      assert.equal(d.record.commit.received, sha256(s.body));
    }
    const e = await gw.cli(['audit', 'erase', '--agent', 'alpha']);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /^erased 3 payloads/);
    for (const s of sent) {
      const d = await show(s.seq);
      if (s.agent === 'alpha') {
        assert.equal(d.payload_state, 'erased', `alpha seq ${s.seq}`);
        assert.equal(d.payload, null);
      } else {
        assert.equal(d.payload_state, 'sealed', `beta seq ${s.seq}`);
        assert.equal(d.payload.received, s.body);
      }
    }
    const recs = rows(gw.dbPath, 'SELECT record FROM audit_log;').map((t) => JSON.parse(t));
    const er = recs.find((r) => r.kind === 'audit.erased');
    assert.ok(er, 'no audit.erased change record');
    assert.ok(JSON.stringify(er.detail).includes('alpha'));
  });

  test('erase by session, then by date; purge destroys nothing recent; verify passes', async () => {
    await send('beta', 'sess-c', 10);
    await send('beta', 'sess-c', 11);
    await waitRecords(sent.length);
    const e = await gw.cli(['audit', 'erase', '--session', 'sess-c']);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /^erased 2 payloads/);
    for (const s of sent.filter((x) => x.session === 'sess-c')) assert.equal((await show(s.seq)).payload_state, 'erased');
    for (const s of sent.filter((x) => x.session === 'sess-b')) assert.equal((await show(s.seq)).payload_state, 'sealed');
    // --before a date in the past erases nothing of today's.
    const eb = await gw.cli(['audit', 'erase', '--agent', 'beta', '--before', '2020-01-01']);
    assert.equal(eb.code, 0, eb.stderr);
    assert.match(eb.stdout, /^erased 0 payloads/);
    for (const s of sent.filter((x) => x.session === 'sess-b')) assert.equal((await show(s.seq)).payload_state, 'sealed');
    // --before tomorrow erases the rest of beta's.
    const tomorrow = new Date(Date.now() + 86400000).toISOString().slice(0, 10);
    const et = await gw.cli(['audit', 'erase', '--agent', 'beta', '--before', tomorrow]);
    assert.equal(et.code, 0, et.stderr);
    assert.match(et.stdout, /^erased 3 payloads/);
    // Retention 1 day: nothing is that old, so purge destroys nothing.
    await send('alpha', 'sess-d', 20);
    await waitRecords(sent.length);
    const keysBefore = rows(gw.dbPath, 'SELECT count(*) FROM audit_keys;')[0];
    const p = await gw.cli(['audit', 'purge']);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(rows(gw.dbPath, 'SELECT count(*) FROM audit_keys;')[0], keysBefore);
    const last = sent[sent.length - 1];
    assert.equal((await show(last.seq)).payload.received, last.body);
    const v = await gw.cli(['audit', 'verify']);
    assert.equal(v.code, 0, v.stderr);
  });

  test('master key rotation: new records sealed with k2, old k1 ones still readable', async () => {
    const old = await send('alpha', 'sess-r', 30);
    await waitRecords(sent.length);
    await gw.stop({ signal: 'SIGTERM' });
    kid = 'k2';
    // startCustomGateway's writeConfig is internal: rewrite the audit section.
    const cfg = fs.readFileSync(gw.configPath, 'utf8');
    fs.writeFileSync(gw.configPath, cfg.replace(/master_keys: \[[^\]]*\]/,
      `master_keys: [{id: k1, file: ${base}/k1.key}, {id: k2, file: ${base}/k2.key}]\n  master_key_id: k2`));
    await gw.start();
    const neu = await send('alpha', 'sess-r', 31);
    await waitRecords(sent.length);
    const dn = await show(neu.seq);
    assert.equal(dn.record.payload.kid, 'k2');
    assert.equal(dn.payload.received, neu.body);
    const dold = await show(old.seq);
    assert.equal(dold.record.payload.kid, 'k1');
    assert.equal(dold.payload.received, old.body);
  });

  test('admin API: auditor reads a record, viewer is refused', async () => {
    const s = sent[sent.length - 1];
    const auditor = await gw.adminToken('auditor');
    const viewer = await gw.adminToken('viewer');
    const a = await gw.admin('GET', `/admin/v1/audit/records/${s.seq}`, { token: auditor });
    assert.equal(a.status, 200, a.text);
    assert.equal(a.json.seq, s.seq);
    assert.deepEqual(a.json, await show(s.seq));
    const v = await gw.admin('GET', `/admin/v1/audit/records/${s.seq}`, { token: viewer });
    assert.equal(v.status, 403, v.text);
    const vf = await gw.cli(['audit', 'verify']);
    assert.equal(vf.code, 0, vf.stderr);
  });
});

// ------------------------------------------------------------------ 5

describe('audit configuration errors', () => {
  let dir;
  before(() => { dir = tempDir('al_audit_cfg_'); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const base = (d, audit) => `server: {listen: "127.0.0.1:1"}
store: {url: "sqlite://${d}/a.db"}
providers: {sim: {type: simulated}}
models: {m: {provider: sim}}
agents: {a: {owner: qa, models: [m]}}
${audit}
`;
  async function check(name, audit) {
    const f = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(f, base(dir, audit));
    return runCliAsync(['check', '--config', f]);
  }

  test('a valid audit section passes check', async () => {
    const r = await check('ok', 'audit: {durability: sync, capture: metadata}');
    assert.equal(r.code, 0, r.stderr);
  });
  test('durability: maybe is refused, naming audit.durability', async () => {
    const r = await check('dur', 'audit: {durability: maybe}');
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /audit\.durability/);
  });
  test('capture: full without master_keys is refused', async () => {
    const r = await check('full', 'audit: {capture: full}');
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /audit\.(master_keys|capture)/);
  });
});
