// regressions.test.mjs - one case per bug found in review, so none returns.
//
// Each test names the failure it guards against.  Several only show their
// teeth under AddressSanitizer (make test runs this suite on the sanitizer
// build too): there, a use-after-free is a crash and a failed test.

import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  startGateway, rawConnect, httpRequest, parseResponses, sleep, uniq, waitFor, runCli, tempDir,
} from './helpers.mjs';

const open = [];
after(async () => { for (const g of open) await g.close().catch(() => {}); });
async function gateway(opts) {
  const g = await startGateway(opts);
  open.push(g);
  return g;
}
const chat = (model, extra = {}) => JSON.stringify({
  model, messages: [{ role: 'user', content: 'regression' }], ...extra,
});
function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe('regressions', () => {
  test('a stream paused and resumed many times by its reader is relayed whole', async () => {
    const gw = await gateway({ keyAgents: ['alpha'] });
    for (let round = 0; round < 3; round++) {
      const c = await rawConnect(gw.port);
      const rid = uniq('resume');
      await c.write(httpRequest({
        method: 'POST', path: '/v1/chat/completions',
        headers: {
          authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json', 'x-request-id': rid,
          'x-mock-chunks': '4000', 'x-mock-output-tokens': '400000', 'x-mock-chunk-interval-ms': '0',
        },
        body: chat('gpt-4o-mini', { stream: true }),
      }));
      // Read in bursts with pauses, so airlock pauses and resumes its
      // upstream many times, the last time with the whole answer held.
      for (let i = 0; i < 12 && !c.data.includes('data: [DONE]'); i++) {
        c.sock.pause();
        await sleep(120);
        c.sock.resume();
        await sleep(30);
      }
      assert.ok(await c.until((x) => x.data.includes('data: [DONE]'), 20000), 'stream completes');
      assert.equal(c.data.toString('latin1').split('data: {').length - 1, 4000);
      c.destroy();
      const [ev] = await gw.eventFor(rid);
      assert.equal(ev.outcome, 'ok');
    }
  });

  test('shutdown grace running out with upstream transfers open: exit 0, every event written', async () => {
    const gw = await gateway({ keyAgents: ['alpha'], server: { shutdown_grace_ms: 400 } });
    const rids = [uniq('grace'), uniq('grace')];
    const conns = [];
    for (const rid of rids) {
      const c = await rawConnect(gw.port);
      await c.write(httpRequest({
        method: 'POST', path: '/v1/chat/completions',
        headers: {
          authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json', 'x-request-id': rid,
          'x-mock-chunks': '20', 'x-mock-chunk-interval-ms': '300',
        },
        body: chat('gpt-4o-mini', { stream: true }),
      }));
      conns.push(c);
    }
    for (const c of conns) assert.ok(await c.until((x) => x.data.includes('data: {'), 5000), 'streams under way');
    const r = await gw.stop({ signal: 'SIGTERM', timeout: 8000 });
    assert.equal(r.killed, false, 'exited by itself');
    assert.equal(r.code, 0, `exit status 0 (stderr: ${gw.stderr().slice(-2000)})`);
    for (const rid of rids) {
      const [ev] = await gw.eventFor(rid);
      assert.ok(ev, `event for ${rid} written`);
      assert.equal(ev.error_type, 'shutdown');
      assert.equal(ev.status, 503);
    }
    for (const c of conns) c.destroy();
  });

  test('a client that stops reading is disconnected after idle_timeout_ms and recorded as 499', async () => {
    const gw = await gateway({ keyAgents: ['alpha'], server: { idle_timeout_ms: 1000 } });
    await gw.mock.reset();
    const c = await rawConnect(gw.port);
    const rid = uniq('stall');
    await c.write(httpRequest({
      method: 'POST', path: '/v1/chat/completions',
      headers: {
        authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json', 'x-request-id': rid,
        'x-mock-chunks': '20000', 'x-mock-output-tokens': '4000000', 'x-mock-chunk-interval-ms': '0',
      },
      body: chat('gpt-4o-mini', { stream: true }),
    }));
    assert.ok(await c.until((x) => x.data.includes('\r\n\r\n'), 5000));
    c.sock.pause();
    const [ev] = await gw.eventFor(rid, { timeout: 8000 });
    assert.ok(ev, 'the stalled request was ended and recorded');
    assert.equal(ev.status, 499);
    assert.equal(ev.outcome, 'client_closed');
    assert.ok(await waitFor(async () => (await gw.mock.stats()).client_disconnects >= 1, { timeout: 8000 }),
      'the upstream transfer was cancelled');
    c.destroy();
  });

  test('bodies of requests without a valid key are not kept in memory; the answer is still 401', async () => {
    const gw = await gateway({ keyAgents: ['alpha'] });
    const pid = gw.handle.pid;
    const body = Buffer.alloc(60000, 'a');
    // One complete request: the client still gets the right error.
    const one = await rawConnect(gw.port);
    await one.write(httpRequest({
      method: 'POST', path: '/v1/chat/completions',
      headers: { authorization: 'Bearer alk_wrong', 'content-type': 'application/json' },
      body,
    }));
    assert.ok(await one.untilResponses(1, 5000));
    const [res] = one.responses();
    assert.equal(res.status, 401);
    assert.equal(JSON.parse(res.body.toString()).error.code, 'invalid_api_key');
    one.destroy();
    // 150 keyless clients each send all but the last byte of a 60 KB body.
    const rss0 = rssKiB(pid);
    const conns = [];
    for (let i = 0; i < 150; i++) {
      const c = await rawConnect(gw.port);
      const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n`;
      await c.write(Buffer.concat([Buffer.from(head), body.subarray(0, body.length - 1)]));
      conns.push(c);
    }
    await sleep(300);
    const grown = rssKiB(pid) - rss0;
    for (const c of conns) c.destroy();
    // AddressSanitizer quarantines freed memory, so RSS says nothing there.
    if (!process.env.AIRLOCK_SANITIZED) {
      assert.ok(grown < 4096, `pending unauthenticated bodies cost ${grown} KiB (150 x 60 KB would be ~8800)`);
    }
  });

  test('a provider refusing airlock\'s own credentials is a 502, not the agent\'s 401', async () => {
    const gw = await gateway({ keyAgents: ['alpha'] });
    const r = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json', 'x-mock-status': '401' },
      body: chat('gpt-4o-mini'),
    });
    assert.equal(r.status, 502);
    const j = await r.json();
    assert.equal(j.error.code, 'upstream_auth_failed');
  });

  test('a provider key holding CR/LF is refused at load, never sent as headers', () => {
    const dir = tempDir();
    const cfg = path.join(dir, 'c.yaml');
    fs.writeFileSync(cfg, [
      'providers:',
      '  p: {type: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: CRLF_KEY}',
      'models:',
      '  m: {provider: p}',
      'agents:',
      '  a: {owner: o@example.com, models: [m]}',
      '',
    ].join('\n'));
    const r = runCli(['check', '--config', cfg], { env: { CRLF_KEY: 'sk-test\r\nX-Injected: yes' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /c\.yaml:2: providers\.p\.api_key_env: .*control character/);
    assert.ok(!r.stderr.includes('sk-test'), 'the secret is not echoed');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('keys list shows when each key was last used', async () => {
    const gw = await gateway({ keyAgents: ['alpha'] });
    const t0 = Date.now();
    const idle = await gw.createKeyAsync('alpha', ['--label', 'unused']);
    const r = await fetch(`${gw.baseURL}/models`, { headers: { authorization: `Bearer ${gw.keys.alpha}` } });
    assert.equal(r.status, 200);
    const ok = await waitFor(async () => {
      const { rows } = await gw.listKeys();
      return rows.some((k) => k.label !== 'unused' && k.last_used_ms && k.last_used_ms >= t0 - 1000);
    }, { timeout: 4000, interval: 200 });
    assert.ok(ok, 'the used key shows a last use within a few seconds');
    const { rows } = await gw.listKeys();
    const unused = rows.find((k) => k.label === 'unused');
    assert.ok(unused && !unused.last_used_ms, 'a key never used shows none');
    assert.ok(idle.key.startsWith('alk_'));
  });

  test('HEAD is served wherever GET is', async () => {
    const gw = await gateway({ keyAgents: ['alpha'] });
    const r = await fetch(`${gw.baseURL}/models`, { method: 'HEAD', headers: { authorization: `Bearer ${gw.keys.alpha}` } });
    assert.equal(r.status, 200);
  });
});
