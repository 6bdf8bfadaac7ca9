// events.test.mjs - every request leaves exactly one event.
//
// Sends 10,000 requests through one gateway with ~50 in flight over
// keep-alive connections (built-in fetch), a deterministic mix: successes
// through the simulated provider and the mock (streamed and not), ~10%
// upstream 500s (x-mock-status), ~5% streams the client aborts after the
// first bytes (slow chunks).  Each request carries its own x-request-id, and
// the client notes what it saw.  Then the store must hold exactly 10,000 new
// events, one per request id, each with the outcome and status the client saw.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startGateway, waitFor, sleep } from './helpers.mjs';

const TOTAL = 10000;
const CONCURRENCY = 50;
let gw;

before(async () => {
  gw = await startGateway({ keyAgents: ['alpha'], server: { idle_timeout_ms: 30000 } });
});
after(async () => {
  if (gw) await gw.close();
});

function sqliteCount(db, where = '') {
  const r = spawnSync('sqlite3', [db, `select count(*) from events ${where}`], { encoding: 'utf8', timeout: 10000 });
  if (r.error || r.status !== 0) return { error: r.error?.message || r.stderr };
  return { count: Number(r.stdout.trim()) };
}

// kind of request i (deterministic mix)
function kindOf(i) {
  if (i % 20 === 7) return 'abort';          // 5%
  if (i % 10 === 3) return i % 20 === 3 ? 'err500' : 'err500-stream'; // 10%
  const k = i % 4;
  return ['sim', 'sim-stream', 'mock', 'mock-stream'][k];
}

async function one(i, runId) {
  const kind = kindOf(i);
  const rid = `${runId}-${i}`;
  const stream = kind.endsWith('stream') || kind === 'abort';
  const model = kind.startsWith('sim') ? 'sim-model' : 'gpt-4o-mini';
  const headers = {
    authorization: `Bearer ${gw.keys.alpha}`,
    'content-type': 'application/json',
    'x-request-id': rid,
  };
  if (kind.startsWith('err500')) headers['x-mock-status'] = '500';
  if (kind === 'abort') {
    headers['x-mock-chunks'] = '20';
    headers['x-mock-chunk-interval-ms'] = '100';
  }
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: `request ${i}` }], stream });
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error('timeout')), 20000);
  try {
    const r = await fetch(`${gw.baseURL}/chat/completions`, { method: 'POST', headers, body, signal: ac.signal });
    if (kind === 'abort') {
      if (r.status !== 200) return { rid, kind, outcome: 'unexpected', status: r.status, detail: await r.text() };
      const reader = r.body.getReader();
      const first = await reader.read(); // some bytes of the stream arrived
      if (first.done) return { rid, kind, outcome: 'unexpected', status: r.status, detail: 'stream ended at once' };
      ac.abort();
      try { await reader.cancel(); } catch { /* aborted */ }
      return { rid, kind, outcome: 'client_closed', status: 499 };
    }
    const text = await r.text();
    if (r.status === 200) {
      if (stream && !text.includes('data: [DONE]')) {
        return { rid, kind, outcome: 'unexpected', status: r.status, detail: 'stream without [DONE]' };
      }
      if (!stream) JSON.parse(text);
      return { rid, kind, outcome: 'ok', status: 200 };
    }
    return { rid, kind, outcome: 'error', status: r.status, detail: text.slice(0, 200) };
  } catch (e) {
    return { rid, kind, outcome: 'unexpected', status: 0, detail: String(e) };
  } finally {
    clearTimeout(timer);
  }
}

describe('event log', () => {
  test(`${TOTAL} mixed requests leave exactly ${TOTAL} events`, { timeout: 90000 }, async (t) => {
    const runId = `ev${Date.now().toString(36)}`;
    await sleep(200);
    const baseline = (await gw.events()).length;
    const t0 = Date.now();
    const seen = new Array(TOTAL);
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < TOTAL && Date.now() - t0 < 75000) {
        const i = next++;
        seen[i] = await one(i, runId);
      }
    }));
    const sent = seen.filter(Boolean);
    assert.equal(sent.length, TOTAL, `only ${sent.length} requests sent within 75 s`);
    const unexpected = sent.filter((s) => s.outcome === 'unexpected' || (s.outcome === 'error' && s.status !== 500));
    assert.equal(unexpected.length, 0, `unexpected answers, e.g. ${JSON.stringify(unexpected.slice(0, 3))}`);
    const want = { ok: 0, error: 0, client_closed: 0 };
    for (const s of sent) want[s.outcome]++;
    assert.equal(want.client_closed, TOTAL / 20);
    assert.equal(want.error, TOTAL / 10);

    // All events land (the writer flushes every 5 ms; allow a few seconds).
    let evs = [];
    await waitFor(async () => {
      evs = (await gw.events()).filter((e) => e.request_id.startsWith(`${runId}-`));
      return evs.length >= TOTAL;
    }, { timeout: 5000, interval: 200 });
    await sleep(300);
    evs = (await gw.events()).filter((e) => e.request_id.startsWith(`${runId}-`));
    const all = await gw.events();
    assert.equal(all.length - baseline, TOTAL, `new events in the store: ${all.length - baseline}`);
    assert.equal(evs.length, TOTAL, 'events carrying this run\'s request ids');

    const byRid = new Map();
    for (const e of evs) {
      assert.ok(!byRid.has(e.request_id), `two events for ${e.request_id}`);
      byRid.set(e.request_id, e);
    }
    const got = { ok: 0, error: 0, client_closed: 0 };
    const mismatches = [];
    for (const s of sent) {
      const e = byRid.get(s.rid);
      if (!e) { mismatches.push({ rid: s.rid, missing: true }); continue; }
      got[e.outcome] = (got[e.outcome] || 0) + 1;
      if (e.outcome !== s.outcome || e.status !== s.status) {
        mismatches.push({ rid: s.rid, kind: s.kind, client: [s.outcome, s.status], event: [e.outcome, e.status] });
      }
      if (e.stream !== (s.kind.endsWith('stream') || s.kind === 'abort')) mismatches.push({ rid: s.rid, stream: e.stream });
    }
    assert.deepEqual(got, want, 'outcome counts: events vs client');
    assert.equal(mismatches.length, 0, `mismatches, e.g. ${JSON.stringify(mismatches.slice(0, 5))}`);

    const sq = sqliteCount(gw.dbPath);
    assert.ok(!sq.error, `sqlite3 count failed: ${sq.error}`);
    assert.equal(sq.count, all.length, 'sqlite3 count(*) from events agrees with events list');

    // Every abort cancelled its upstream transfer.
    const st = await waitFor(async () => {
      const s = await gw.mock.stats();
      return s.in_flight === 0 ? s : undefined;
    }, { timeout: 3000 });
    assert.ok(st, 'mock has nothing in flight');
    assert.ok(st.client_disconnects >= TOTAL / 20, `mock saw ${st.client_disconnects} disconnects`);
    t.diagnostic(`${TOTAL} requests and checks in ${Date.now() - t0} ms`);
  });
});
