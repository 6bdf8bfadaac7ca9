// audit_drill.test.mjs - the audit trail's two drills, black-box.
//
// Crash drill: a gateway with `audit.durability: sync` under continuous
// concurrent load is killed with SIGKILL; every request that got a 2xx must
// have its event and its audit record, and `airlock audit verify` must pass.
// Tamper drill: copies of a store with signed checkpoints are edited
// (triggers dropped in the copy, with the sqlite3 command-line tool): a
// changed, deleted, inserted, reordered and truncated record; `verify` must
// exit 1 and name each with its sequence number; the triggers refuse the
// same edits on the original; a checkpoint from another key is rejected.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { runCliAsync, startCustomGateway, sleep } from './helpers.mjs';

const PROVIDERS = `providers: {sim: {type: simulated}}
models: {gpt-4o-mini: {provider: sim}}
agents: {alpha: {owner: qa, models: [gpt-4o-mini]}}`;

function sql(db, statements) {
  const r = spawnSync('sqlite3', [db], { input: statements, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout || '', stderr: r.stderr || '' };
}

function chat(gw, i) {
  return fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `question ${i}` }] }),
    signal: AbortSignal.timeout(10000),
  });
}

describe('crash drill: kill -9 under load in sync mode', () => {
  let gw;
  before(async () => {
    gw = await startCustomGateway({ yaml: () => `${PROVIDERS}\naudit: {durability: sync}` });
  });
  after(async () => { if (gw) fs.rmSync(gw.dir, { recursive: true, force: true }); });

  test('every 2xx answer has its record and the chain verifies', async () => {
    const ok = [];
    let stop = false;
    let n = 0;
    const worker = async () => {
      while (!stop) {
        const i = n++;
        try {
          const r = await chat(gw, i);
          await r.text();
          if (r.status === 200) ok.push(r.headers.get('x-request-id'));
        } catch { /* the kill cut it: no answer, no promise */ }
      }
    };
    const workers = Array.from({ length: 16 }, worker);
    await sleep(600);
    gw.stopping = true;
    process.kill(gw.handle.pid, 'SIGKILL');
    stop = true;
    await Promise.all(workers);
    await gw.handle.exitPromise;
    assert.ok(ok.length >= 20, `only ${ok.length} answers before the kill`);
    const ev = await runCliAsync(['events', 'list', '--config', gw.configPath, '--json', '--limit', '0'], { timeout: 60000 });
    assert.equal(ev.code, 0, ev.stderr);
    const ids = new Set(ev.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l).request_id));
    const missing = ok.filter((id) => !ids.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${ok.length} answered requests have no event`);
    const recs = sql(gw.dbPath, 'SELECT record FROM audit_log;');
    assert.equal(recs.code, 0, recs.stderr);
    const audited = new Set(recs.stdout.trim().split('\n').map((l) => JSON.parse(l).request_id));
    const unaudited = ok.filter((id) => !audited.has(id));
    assert.deepEqual(unaudited, [], `${unaudited.length} answered requests have no audit record`);
    const v = await runCliAsync(['audit', 'verify', '--config', gw.configPath]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /^verified \d+ records/);
  });
});

describe('tamper drill', () => {
  let gw;
  let keyFile;
  let base;
  before(async () => {
    base = fs.mkdtempSync('/tmp/al_drill_');
    keyFile = path.join(base, 'sign.key');
    const kg = await runCliAsync(['audit', 'keygen', '--out', keyFile, '--name', 'drill.airlock']);
    assert.equal(kg.code, 0, kg.stderr);
    gw = await startCustomGateway({
      yaml: () => `${PROVIDERS}\naudit: {signing_key: ${keyFile}, checkpoint_every: 4, checkpoint_interval_ms: 100}`,
    });
    for (let i = 0; i < 14; i++) {
      const r = await chat(gw, i);
      assert.equal(r.status, 200);
      await r.text();
    }
    // SIGTERM: drained, with a last checkpoint over everything.
    const r = await gw.stop({ signal: 'SIGTERM', timeout: 8000 });
    assert.equal(r.code, 0);
  });
  after(() => {
    fs.rmSync(base, { recursive: true, force: true });
    if (gw) fs.rmSync(gw.dir, { recursive: true, force: true });
  });

  // A copy of the store, its triggers dropped, edited by `edit`, then verified.
  async function tampered(name, edit) {
    const db = path.join(base, `${name}.db`);
    fs.copyFileSync(gw.dbPath, db);
    const cfg = path.join(base, `${name}.yaml`);
    fs.writeFileSync(cfg, fs.readFileSync(path.join(gw.dir, 'config.yaml'), 'utf8')
      .replace(/sqlite:\/\/[^"]+/, `sqlite://${db}`));
    const r = sql(db, `DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;\n${edit}\n`);
    assert.equal(r.code, 0, r.stderr);
    return runCliAsync(['audit', 'verify', '--config', cfg]);
  }

  test('the untouched store verifies, with its checkpoints', async () => {
    const db = path.join(base, 'clean.db');
    fs.copyFileSync(gw.dbPath, db);
    const n = Number(sql(db, 'SELECT count(*) FROM audit_log;').stdout.trim());
    const cps = Number(sql(db, 'SELECT count(*) FROM audit_checkpoints;').stdout.trim());
    assert.ok(n >= 15, `${n} records`);
    assert.ok(cps >= 3, `${cps} checkpoints`);
    const v = await runCliAsync(['audit', 'verify', '--config', path.join(gw.dir, 'config.yaml')]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, new RegExp(`^verified ${n} records, ${cps} checkpoints`));
  });

  test('the triggers refuse UPDATE and DELETE on the original', () => {
    const u = sql(gw.dbPath, "UPDATE audit_log SET record = '{}' WHERE seq = 3;");
    assert.notEqual(u.code, 0);
    assert.match(u.stderr, /append-only/);
    const d = sql(gw.dbPath, 'DELETE FROM audit_log WHERE seq = 3;');
    assert.match(d.stderr, /append-only/);
    const c = sql(gw.dbPath, 'DELETE FROM audit_checkpoints;');
    assert.match(c.stderr, /append-only/);
  });

  test('a changed record is named', async () => {
    const v = await tampered('changed', "UPDATE audit_log SET record = replace(record, '\"status\":200', '\"status\":201') WHERE seq = 6;");
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.match(v.stderr, /audit: record 6 changed/);
  });

  test('a deleted record is named', async () => {
    const v = await tampered('deleted', 'DELETE FROM audit_log WHERE seq = 7;');
    assert.equal(v.code, 1);
    assert.match(v.stderr, /audit: record 7 removed/);
  });

  test('an inserted record is named', async () => {
    // Shift records 5.. up by one and put a forged record at 5.
    const v = await tampered('inserted', `
      UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 5;
      UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1005;
      INSERT INTO audit_log(seq, ts_ms, kind, record) SELECT 5, ts_ms, kind, replace(record, '"seq":4,', '"seq":5,') FROM audit_log WHERE seq = 4;`);
    assert.equal(v.code, 1);
    assert.match(v.stderr, /audit: record 5 inserted/);
  });

  test('reordered records are named', async () => {
    const v = await tampered('reordered', `
      UPDATE audit_log SET seq = 1000 WHERE seq = 8;
      UPDATE audit_log SET seq = 8 WHERE seq = 9;
      UPDATE audit_log SET seq = 9 WHERE seq = 1000;`);
    assert.equal(v.code, 1);
    assert.match(v.stderr, /audit: records 8 and 9 reordered/);
  });

  test('a truncated log is named', async () => {
    const n = Number(sql(gw.dbPath, 'SELECT count(*) FROM audit_log;').stdout.trim());
    const v = await tampered('truncated', `DELETE FROM audit_log WHERE seq > ${n - 3};`);
    assert.equal(v.code, 1);
    assert.match(v.stderr, new RegExp(`audit: log truncated: .*records ${n - 2}\\.\\.${n} missing`));
  });

  test('a checkpoint signed by another key is rejected', async () => {
    const other = path.join(base, 'other.key');
    const kg = await runCliAsync(['audit', 'keygen', '--out', other, '--name', 'drill.airlock']);
    assert.equal(kg.code, 0, kg.stderr);
    const otherPub = fs.readFileSync(`${other}.pub`, 'utf8').trim();
    const v = await runCliAsync(['audit', 'verify', '--config', path.join(gw.dir, 'config.yaml'), '--key', otherPub]);
    assert.equal(v.code, 1);
    assert.match(v.stderr, /audit: checkpoint \d+: not signed by drill\.airlock/);
  });
});

describe('reloads are recorded and do not disturb the chain', () => {
  let gw;
  let base;
  before(async () => {
    base = fs.mkdtempSync('/tmp/al_reload_');
    const kg = await runCliAsync(['audit', 'keygen', '--out', path.join(base, 'sign.key')]);
    assert.equal(kg.code, 0, kg.stderr);
    gw = await startCustomGateway({
      yaml: () => `${PROVIDERS}\naudit: {signing_key: ${base}/sign.key, checkpoint_every: 2, origin: reload.example/log}`,
    });
  });
  after(async () => {
    if (gw) await gw.close();
    fs.rmSync(base, { recursive: true, force: true });
  });

  test('config.reloaded records carry the hashes; checkpoints keep their origin', async () => {
    for (let i = 0; i < 2; i++) {
      process.kill(gw.handle.pid, 'SIGHUP');
      await sleep(300);
    }
    for (let i = 0; i < 6; i++) {
      const r = await chat(gw, i);
      assert.equal(r.status, 200);
      await r.text();
    }
    await sleep(200);
    const ev = await gw.events();
    const loaded = ev.filter((e) => e.kind === 'config.loaded');
    const reloaded = ev.filter((e) => e.kind === 'config.reloaded');
    assert.equal(loaded.length, 1);
    assert.equal(reloaded.length, 2);
    assert.match(reloaded[0].detail.sha256, /^[0-9a-f]{64}$/);
    assert.equal(reloaded[0].detail.previous_sha256, loaded[0].detail.sha256);
    const cp = await gw.admin('GET', '/admin/v1/audit/checkpoint', { token: await gw.adminToken('viewer') });
    assert.equal(cp.status, 200, cp.text);
    assert.ok(cp.json.checkpoint.startsWith('reload.example/log\n'), cp.json.checkpoint);
    const v = await runCliAsync(['audit', 'verify', '--config', gw.configPath]);
    assert.equal(v.code, 0, v.stderr);
  });
});
