// timeline.test.mjs - `airlock events list --session S`, the agent-step
// timeline.
//
// One `airlock mock` and one `airlock serve` (test config of helpers.mjs).
// An agent session of three chat requests carries x-airlock-session-id,
// x-airlock-step (1, 2, 3) and x-airlock-context-version (kb-v1, kb-v1,
// kb-v2); other requests run beside it in another session and in none.  The
// timeline must list exactly the session's three events oldest first, one
// line each with its step, model, status, outcome, tokens, latency and
// context version, and a single "context version changed: kb-v1 -> kb-v2"
// marker just before step 3; --json prints the same events as JSON lines.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, runCliAsync, uniq, waitFor } from './helpers.mjs';

let gw;
const SID = uniq('sess');
const OTHER = uniq('sess');

async function chat({ session, step, ctx, model = 'gpt-4o-mini', stream = false }) {
  const headers = {
    authorization: `Bearer ${gw.keys.alpha}`,
    'content-type': 'application/json',
  };
  if (session) headers['x-airlock-session-id'] = session;
  if (step) headers['x-airlock-step'] = step;
  if (ctx) headers['x-airlock-context-version'] = ctx;
  const r = await fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ model, stream, messages: [{ role: 'user', content: `step ${step || '-'}` }] }),
    signal: AbortSignal.timeout(15000),
  });
  await r.text();
  assert.equal(r.status, 200);
}

function timeline(args = []) {
  return runCliAsync(['events', 'list', '--config', gw.configPath, ...args], { env: gw.env, timeout: 30000 });
}

before(async () => {
  gw = await startGateway();
  await chat({ session: SID, step: '1', ctx: 'kb-v1' });
  await chat({ session: OTHER, step: '1', ctx: 'kb-v9' });
  await chat({ session: SID, step: '2', ctx: 'kb-v1', model: 'sim-model', stream: true });
  await chat({});
  await chat({ session: SID, step: '3', ctx: 'kb-v2' });
  // The events reach the store through the writer's queue.
  const ok = await waitFor(async () => {
    const r = await timeline(['--session', SID, '--json']);
    return r.code === 0 && r.stdout.trim().split('\n').filter(Boolean).length === 3;
  }, { timeout: 5000, interval: 100 });
  assert.ok(ok, 'the session\'s three events were recorded');
});

after(async () => {
  if (gw) await gw.close();
});

describe('events list --session', () => {
  test('--json: the session\'s events only, oldest first, with step and context version', async () => {
    const r = await timeline(['--session', SID, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const evs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(evs.length, 3);
    assert.deepEqual(evs.map((e) => e.session_id), [SID, SID, SID]);
    assert.deepEqual(evs.map((e) => e.step), ['1', '2', '3']);
    assert.deepEqual(evs.map((e) => e.context_version), ['kb-v1', 'kb-v1', 'kb-v2']);
    assert.deepEqual(evs.map((e) => e.model), ['gpt-4o-mini', 'sim-model', 'gpt-4o-mini']);
    assert.ok(evs[0].ts <= evs[1].ts && evs[1].ts <= evs[2].ts, 'oldest first');
    assert.ok(!r.stdout.includes('context version changed'), 'no markers in JSON output');
  });

  test('text: one line per step and a marker where the context version changed', async () => {
    const r = await timeline(['--session', SID]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n').filter(Boolean);
    // header, step 1, step 2, marker, step 3
    assert.equal(lines.length, 5, r.stdout);
    assert.match(lines[0], /^TIME\s+STEP\s+MODEL\s+STATUS\s+OUTCOME\s+IN\s+OUT\s+LATENCY_MS\s+CONTEXT$/);
    const row = (l) => l.trim().split(/\s+/);
    const rows = [lines[1], lines[2], lines[4]].map(row);
    for (const [i, cells] of rows.entries()) {
      assert.match(cells[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, `time of step ${i + 1}`);
      assert.equal(cells[1], String(i + 1), 'step');
      assert.equal(cells[3], '200', 'status');
      assert.equal(cells[4], 'ok', 'outcome');
      assert.match(cells[5], /^\d+$/, 'input tokens');
      assert.match(cells[6], /^\d+$/, 'output tokens');
      assert.match(cells[7], /^\d+\.\d$/, 'latency ms');
    }
    assert.deepEqual(rows.map((c) => c[2]), ['gpt-4o-mini', 'sim-model', 'gpt-4o-mini']);
    assert.deepEqual(rows.map((c) => c[8]), ['kb-v1', 'kb-v1', 'kb-v2']);
    assert.equal(lines[3], '  -- context version changed: kb-v1 -> kb-v2');
    assert.ok(!r.stdout.includes('kb-v9'), 'another session is not listed');
  });

  test('--limit keeps the newest steps; other flags still filter', async () => {
    const r = await timeline(['--session', SID, '--limit', '2']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n').filter(Boolean);
    assert.equal(lines.length, 4, r.stdout); // header, step 2, marker, step 3
    assert.equal(lines[1].trim().split(/\s+/)[1], '2');
    assert.equal(lines[2], '  -- context version changed: kb-v1 -> kb-v2');

    const none = await timeline(['--session', SID, '--agent', 'beta']);
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /no events/);

    const unknown = await timeline(['--session', uniq('nosuch')]);
    assert.equal(unknown.code, 0);
    assert.equal(unknown.stdout, '');
  });

  test('without --session the usual table is unchanged; a bad --session is a usage error', async () => {
    const r = await timeline(['--limit', '0']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n').filter(Boolean);
    assert.match(lines[0], /^TIME\s+AGENT\s+MODEL\s+STATUS\s+OUTCOME\s+IN\s+OUT\s+COST_USD\s+LATENCY_MS$/);
    assert.ok(lines.length >= 1 + 5, r.stdout); // and the key.created change records
    assert.ok(!r.stdout.includes('context version changed'));

    const empty = await timeline(['--session', '']);
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /--session/);
    const help = await runCliAsync(['events', 'list', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--session ID/);
    assert.match(help.stdout, /context version changed/);
  });
});
