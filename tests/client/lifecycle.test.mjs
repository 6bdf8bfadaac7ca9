// lifecycle.test.mjs - signals, reload and `airlock check`.
//
// SIGHUP with a broken config must keep the old snapshot serving and log why;
// SIGHUP with a valid changed config must take effect.  SIGTERM (and SIGINT)
// must let in-flight requests finish, flush their events and exit 0.
// `airlock check` must accept the test config and the shipped examples and
// reject broken files with "FILE:LINE" in its message.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import OpenAI from 'openai';
import {
  startGateway, configYaml, runCliAsync, tempDir, waitFor, sleep, uniq, REPO_ROOT,
} from './helpers.mjs';

const chat = (key, model, headers = {}, extra = {}) => fetch(`http://${key.host}/v1/chat/completions`, {
  method: 'POST',
  headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json', ...headers },
  body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...extra }),
});

describe('SIGHUP reload', () => {
  let gw;
  let alpha;
  let beta;
  before(async () => {
    gw = await startGateway();
    alpha = { host: `127.0.0.1:${gw.port}`, key: gw.keys.alpha };
    beta = { host: `127.0.0.1:${gw.port}`, key: gw.keys.beta };
  });
  after(async () => { if (gw) await gw.close(); });

  test('a broken config is refused, logged, and the old one keeps serving', async () => {
    const good = fs.readFileSync(gw.configPath, 'utf8');
    for (const broken of [
      good.replace('beta:  {owner: beta@example.com, ', 'beta:  {'),          // missing owner
      good.replace('models:\n', 'models:\n  bad: {provider: nowhere, model: x}\n'), // dangling ref
      `${good}\nthis is: [not: valid yaml\n`,                                  // syntax
    ]) {
      const mark = gw.stderr().length;
      fs.writeFileSync(gw.configPath, broken);
      gw.signal('SIGHUP');
      const logged = await waitFor(() => /config\.yaml:\d+/.test(gw.stderr().slice(mark)), { timeout: 3000 });
      assert.ok(logged, `reload failure logged with FILE:LINE; stderr since HUP:\n${gw.stderr().slice(mark)}`);
      assert.equal(gw.handle.exited, false, 'still running');
      let r = await chat(alpha, 'sim-model');
      assert.equal(r.status, 200, await r.text());
      r = await chat(beta, 'sim-model');
      assert.equal(r.status, 200, 'old config (beta still declared with its owner) serves');
      await r.arrayBuffer();
      r = await chat(alpha, 'gpt-4o-mini');
      assert.equal(r.status, 200);
      await r.arrayBuffer();
    }
    fs.writeFileSync(gw.configPath, good);
  });

  test('a valid changed config takes effect', async () => {
    let r = await chat(beta, 'gpt-4o-mini');
    assert.equal(r.status, 403, 'before reload beta may not use gpt-4o-mini');
    await r.arrayBuffer();
    gw.writeConfig({ betaModels: ['sim-model', 'gpt-4o-mini'] });
    gw.signal('SIGHUP');
    const ok = await waitFor(async () => {
      const x = await chat(beta, 'gpt-4o-mini');
      await x.arrayBuffer();
      return x.status === 200;
    }, { timeout: 3000, interval: 100 });
    assert.ok(ok, 'beta may use gpt-4o-mini after reload');
    const c = new OpenAI({ baseURL: gw.baseURL, apiKey: gw.keys.beta, maxRetries: 0 });
    const ids = [];
    for await (const m of c.models.list()) ids.push(m.id);
    assert.deepEqual(ids.sort(), ['gpt-4o-mini', 'sim-model']);
    r = await chat(alpha, 'sim-model');
    assert.equal(r.status, 200, 'alpha unaffected');
    await r.arrayBuffer();
    assert.equal(gw.handle.exited, false);
  });

  test('an agent removed by reload: its keys get 401', async () => {
    gw.writeConfig({ omitBeta: true });
    gw.signal('SIGHUP');
    const gone = await waitFor(async () => {
      const x = await chat(beta, 'sim-model');
      await x.arrayBuffer();
      return x.status === 401;
    }, { timeout: 3000, interval: 100 });
    assert.ok(gone, 'a key whose agent is no longer declared is refused with 401');
    const r = await chat(alpha, 'sim-model');
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    gw.writeConfig({});
    gw.signal('SIGHUP');
    const back = await waitFor(async () => {
      const x = await chat(beta, 'sim-model');
      await x.arrayBuffer();
      return x.status === 200;
    }, { timeout: 3000, interval: 100 });
    assert.ok(back, 'declared again: the same key works again');
  });
});

describe('upstream down', () => {
  test('an unreachable upstream -> 502 OpenAI-shaped, an error event, the gateway stays up', async () => {
    const gw = await startGateway({ keyAgents: ['alpha'] });
    try {
      await gw.mock.stop({ signal: 'SIGKILL' });
      const k = { host: `127.0.0.1:${gw.port}`, key: gw.keys.alpha };
      const rid = uniq('down');
      for (const stream of [false, true]) {
        const r = await chat(k, 'gpt-4o-mini', { 'x-request-id': `${rid}-${stream}` }, { stream });
        const t = await r.text();
        assert.equal(r.status, 502, t);
        const j = JSON.parse(t);
        assert.equal(typeof j.error.message, 'string');
      }
      const evs = await gw.waitEvents((e) => e.request_id.startsWith(rid), { count: 2 });
      assert.equal(evs.length, 2);
      for (const e of evs) {
        assert.equal(e.status, 502);
        assert.equal(e.outcome, 'error');
      }
      const r = await chat(k, 'sim-model');
      assert.equal(r.status, 200, 'other providers unaffected');
      await r.arrayBuffer();
    } finally {
      await gw.close();
    }
  });
});

describe('SIGTERM and SIGINT', () => {
  test('SIGTERM lets in-flight requests finish, flushes their events, exits 0', { timeout: 30000 }, async () => {
    const gw = await startGateway({ keyAgents: ['alpha'] });
    try {
      const k = { host: `127.0.0.1:${gw.port}`, key: gw.keys.alpha };
      const ridSlow = uniq('term-slow');
      const ridStream = uniq('term-stream');
      const slow = chat(k, 'gpt-4o-mini', { 'x-request-id': ridSlow, 'x-mock-latency-ms': '1500' })
        .then(async (r) => ({ status: r.status, text: await r.text() }));
      const streamed = chat(k, 'gpt-4o-mini',
        { 'x-request-id': ridStream, 'x-mock-chunks': '8', 'x-mock-chunk-interval-ms': '150' }, { stream: true })
        .then(async (r) => ({ status: r.status, text: await r.text() }));
      const inflight = await waitFor(async () => (await gw.mock.stats()).in_flight >= 2, { timeout: 3000 });
      assert.ok(inflight, 'both requests reached the upstream');
      const t0 = Date.now();
      gw.signal('SIGTERM');

      // New work is not taken on while draining.
      await sleep(200);
      const refused = await new Promise((resolve) => {
        const s = net.connect({ port: gw.port, host: '127.0.0.1' });
        s.setTimeout(2000);
        let data = '';
        s.on('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
        s.on('data', (d) => { data += d; });
        s.on('error', () => resolve(true));
        s.on('timeout', () => { s.destroy(); resolve(`timeout:${data}`); });
        s.on('close', () => resolve(data === '' || /^HTTP\/1\.1 503 /.test(data) ? true : data));
      });
      assert.equal(refused, true, 'no new request served after SIGTERM');

      const a = await slow;
      const b = await streamed;
      assert.equal(a.status, 200, a.text);
      assert.equal(JSON.parse(a.text).object, 'chat.completion');
      assert.equal(b.status, 200);
      assert.ok(b.text.includes('data: [DONE]'), 'the stream was finished');
      const ex = await Promise.race([gw.handle.exitPromise, sleep(12000).then(() => 'timeout')]);
      assert.notEqual(ex, 'timeout', 'exited after draining');
      assert.equal(ex.code, 0, `exit code ${ex.code} signal ${ex.signal}`);
      assert.ok(Date.now() - t0 < 11000);
      const evs = await gw.events();
      for (const rid of [ridSlow, ridStream]) {
        const e = evs.filter((x) => x.request_id === rid);
        assert.equal(e.length, 1, `one event for ${rid}`);
        assert.equal(e[0].outcome, 'ok');
        assert.equal(e[0].status, 200);
        assert.ok(e[0].output_tokens > 0);
      }
    } finally {
      await gw.close();
    }
  });

  test('SIGINT exits 0 too', async () => {
    const gw = await startGateway({ keyAgents: [] });
    try {
      const r = await gw.stop({ signal: 'SIGINT', timeout: 8000 });
      assert.equal(r.killed, false, 'exited by itself');
      assert.equal(r.code, 0);
    } finally {
      await gw.close();
    }
  });
});

describe('airlock check', () => {
  let dir;
  let good;
  const env = { MOCK_UPSTREAM_KEY: 'dummy-upstream-key' };
  before(() => {
    dir = tempDir();
    good = configYaml({ port: 18080, adminPort: 18081, dir, mockPort: 18082 });
  });
  after(() => { fs.rmSync(dir, { recursive: true, force: true }); });

  const check = (file, e = env) => runCliAsync(['check', '--config', file], { env: e });

  test('accepts the test config', async () => {
    const f = path.join(dir, 'good.yaml');
    fs.writeFileSync(f, good);
    const r = await check(f);
    assert.equal(r.code, 0, r.stderr + r.stdout);
  });

  // [description, line (1-based) to replace, replacement, words the message must name]
  const cases = [
    ['unknown key', 3, 'log: {level: warn, bogus_key: 1}', ['bogus_key']],
    ['wrong type', 1, 'server: {listen: 127.0.0.1:18080, admin_listen: 127.0.0.1:18081, workers: two}', ['workers']],
    ['dangling provider', 11, '  noprice: {provider: nope, model: upstream-free}', ['nope']],
    ['missing env var', 5, '  mock: {type: openai, base_url: "http://127.0.0.1:18082/v1", api_key_env: AIRLOCK_TEST_SURELY_UNSET_VAR}', ['AIRLOCK_TEST_SURELY_UNSET_VAR']],
    ['agent without owner', 15, '  beta:  {models: [sim-model]}', ['owner']],
    ['agent allows an unknown model', 15, '  beta:  {owner: b@example.com, models: [no-such-model]}', ['no-such-model']],
    ['bad provider type', 6, '  sim:  {type: telepathic}', ['type']],
  ];
  for (const [name, line, repl, words] of cases) {
    test(`rejects a config with ${name}, naming FILE:LINE`, async () => {
      const lines = good.split('\n');
      assert.ok(lines[line - 1].trim().length > 0);
      lines[line - 1] = repl;
      const f = path.join(dir, 'broken.yaml');
      fs.writeFileSync(f, lines.join('\n'));
      const r = await check(f);
      const out = r.stderr + r.stdout;
      assert.notEqual(r.code, 0, `exit code for ${name}`);
      assert.ok(out.includes(`broken.yaml:${line}`), `"broken.yaml:${line}" in: ${out}`);
      for (const w of words) assert.ok(out.includes(w), `"${w}" in: ${out}`);
    });
  }

  test('rejects invalid YAML, naming FILE:LINE', async () => {
    const f = path.join(dir, 'syntax.yaml');
    fs.writeFileSync(f, good.replace('  sim-model: {', '  sim-model: {provider: [sim, '));
    const r = await check(f);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr + r.stdout, /syntax\.yaml:\d+/);
  });

  test('rejects a missing file', async () => {
    const r = await check(path.join(dir, 'does-not-exist.yaml'));
    assert.notEqual(r.code, 0);
    assert.ok((r.stderr + r.stdout).includes('does-not-exist.yaml'));
  });

  const exEnv = { OPENAI_API_KEY: 'sk-dummy-for-check', LOCAL_API_KEY: 'dummy-local-key' };
  for (const ex of ['quickstart.yaml', 'openai.yaml']) {
    test(`accepts examples/${ex}`, async () => {
      const f = path.join(REPO_ROOT, 'examples', ex);
      assert.ok(fs.existsSync(f), `${f} exists`);
      const r = await check(f, exEnv);
      assert.equal(r.code, 0, r.stderr + r.stdout);
    });
  }

  test('examples/openai.yaml without OPENAI_API_KEY is refused, naming the variable', async () => {
    const f = path.join(REPO_ROOT, 'examples', 'openai.yaml');
    assert.ok(fs.existsSync(f), `${f} exists`);
    // runCliAsync merges into process.env: drop the variable there meanwhile.
    const saved = process.env.OPENAI_API_KEY;
    delete process.env.OPENAI_API_KEY;
    try {
      const r = await runCliAsync(['check', '--config', f], { env: { LOCAL_API_KEY: 'dummy-local-key' } });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr + r.stdout, /openai\.yaml:\d+/);
      assert.ok((r.stderr + r.stdout).includes('OPENAI_API_KEY'));
    } finally {
      if (saved !== undefined) process.env.OPENAI_API_KEY = saved;
    }
  });
});

describe('events list filters', () => {
  test('--agent, --since and --limit', async () => {
    const gw = await startGateway();
    try {
      const a = { host: `127.0.0.1:${gw.port}`, key: gw.keys.alpha };
      const b = { host: `127.0.0.1:${gw.port}`, key: gw.keys.beta };
      for (let i = 0; i < 3; i++) await (await chat(a, 'sim-model')).arrayBuffer();
      for (let i = 0; i < 2; i++) await (await chat(b, 'sim-model')).arrayBuffer();
      // Requests only: creating the keys was recorded as key.created events too.
      const reqs = async (f) => (await gw.events(f)).filter((e) => e.kind === 'request');
      await waitFor(async () => (await reqs({ agent: 'beta' })).length >= 2, { timeout: 3000 });
      const alphaEvs = await reqs({ agent: 'alpha' });
      const betaEvs = await reqs({ agent: 'beta' });
      assert.equal(alphaEvs.filter((e) => e.model === 'sim-model').length, 3);
      assert.ok(alphaEvs.every((e) => e.agent === 'alpha'));
      assert.equal(betaEvs.length, 2);
      assert.ok(betaEvs.every((e) => e.agent === 'beta'));
      assert.equal((await gw.events({ limit: 2 })).length, 2);
      assert.ok((await gw.events({ since: '1h' })).length >= 5);
      // JSON lines carry the documented fields.
      const e = alphaEvs.find((x) => x.model === 'sim-model');
      for (const f of ['id', 'request_id', 'agent', 'key_id', 'model', 'provider', 'upstream_model', 'status',
        'outcome', 'error_type', 'stream', 'input_tokens', 'output_tokens', 'cached_tokens', 'cost_usd',
        'latency_ms', 'ttft_ms', 'upstream_ms', 'bytes_in', 'bytes_out']) {
        assert.ok(f in e, `event field ${f}`);
      }
      assert.equal(e.provider, 'sim');
      assert.equal(e.upstream_model, 'sim-1');
      const want = (e.input_tokens * 1 + e.output_tokens * 2) / 1e6;
      assert.ok(Math.abs(e.cost_usd - want) < 1e-12, `cost ${e.cost_usd} want ${want}`);
      // Plain (non-JSON) listing works too.
      const r = await runCliAsync(['events', 'list', '--config', gw.configPath], { env: gw.env });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.trim().length > 0);
    } finally {
      await gw.close();
    }
  });
});
