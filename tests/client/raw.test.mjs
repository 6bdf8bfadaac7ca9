// raw.test.mjs - airlock's HTTP/1.1 server seen through plain TCP sockets.
//
// Writes requests byte by byte where it matters (pipelining, chunked bodies,
// Expect: 100-continue, oversized and trickled input, garbage) and parses
// the answers with the small parser in helpers.mjs, so nothing in between
// (fetch, undici) can smooth over what the server really sends.  Limits come
// from the test config: header 8192 B / 1.5 s, body 65536 B / 1.5 s, idle 5 s.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  startGateway, rawConnect, httpRequest, parseResponses, openaiError, sleep, uniq,
} from './helpers.mjs';

let gw;
const HEADER_TIMEOUT = 1500;
const BODY_TIMEOUT = 1500;
const IDLE_TIMEOUT = 5000;

before(async () => {
  gw = await startGateway({ keyAgents: ['alpha'] });
});
after(async () => {
  if (gw) await gw.close();
});

const auth = () => ({ authorization: `Bearer ${gw.keys.alpha}` });
const chatBody = (model = 'sim-model', extra = {}) => JSON.stringify({
  model, messages: [{ role: 'user', content: 'hi' }], ...extra,
});
const chatReq = (rid, model = 'sim-model', headers = {}) => httpRequest({
  method: 'POST', path: '/v1/chat/completions',
  headers: { ...auth(), 'content-type': 'application/json', 'x-request-id': rid, ...headers },
  body: chatBody(model),
});

function assertCompletion(res) {
  assert.equal(res.status, 200, res.body.toString());
  const j = JSON.parse(res.body.toString());
  assert.equal(j.object, 'chat.completion');
  assert.ok(j.choices[0].message.content.length > 0);
  return j;
}

describe('keep-alive and pipelining', () => {
  test('two sequential requests on one connection', async () => {
    const c = await rawConnect(gw.port);
    try {
      await c.write(httpRequest({ path: '/healthz' }));
      assert.ok(await c.untilResponses(1, 3000), 'first response');
      await c.write(chatReq('seq-2'));
      assert.ok(await c.untilResponses(2, 5000), 'second response on the same connection');
      const [a, b] = c.responses();
      assert.equal(a.status, 200);
      assertCompletion(b);
      assert.equal(c.closed, false);
    } finally { c.destroy(); }
  });

  test('pipelined requests in one write are answered in order', async () => {
    const c = await rawConnect(gw.port);
    try {
      const buf = Buffer.concat([
        httpRequest({ path: '/healthz', headers: { 'x-request-id': 'p1' } }),
        // slow upstream first: its answer must still come before the next ones
        chatReq('p2', 'gpt-4o-mini', { 'x-mock-latency-ms': '300' }),
        httpRequest({ path: '/healthz', headers: { 'x-request-id': 'p3' } }),
        chatReq('p4', 'sim-model'),
        httpRequest({ path: '/v1/models', headers: { ...auth(), 'x-request-id': 'p5' } }),
      ]);
      await c.write(buf);
      assert.ok(await c.untilResponses(5, 8000), `5 responses, got:\n${c.data.toString().slice(0, 2000)}`);
      const rs = c.responses();
      // Identify each answer by its body (x-request-id is checked elsewhere).
      const kind = (r) => {
        try {
          const j = JSON.parse(r.body.toString());
          if (j.object === 'chat.completion') return 'chat';
          if (j.object === 'list') return 'models';
          return 'health';
        } catch { return 'health'; }
      };
      assert.deepEqual(rs.map(kind), ['health', 'chat', 'health', 'chat', 'models']);
      assert.equal(rs[0].status, 200);
      assertCompletion(rs[1]);
      assert.equal(rs[1].headers['x-request-id'], 'p2');
      assert.equal(rs[2].status, 200);
      assertCompletion(rs[3]);
      assert.equal(rs[3].headers['x-request-id'], 'p4');
      assert.equal(rs[4].status, 200);
      assert.equal(rs[4].headers['x-request-id'], 'p5');
      assert.equal(parseResponses(c.data).rest.length, 0, 'nothing after the last response');
    } finally { c.destroy(); }
  });
});

describe('request bodies', () => {
  test('chunked request body split across writes', async () => {
    const body = chatBody('gpt-4o-mini', { seed: 7, marker: uniq('chunked') });
    const head = 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n'
      + `Authorization: Bearer ${gw.keys.alpha}\r\nContent-Type: application/json\r\n`
      + 'Transfer-Encoding: chunked\r\n\r\n';
    const c = await rawConnect(gw.port);
    try {
      await c.write(head);
      const parts = [body.slice(0, 5), body.slice(5, 30), body.slice(30, 31), body.slice(31)];
      for (const [i, p] of parts.entries()) {
        const ext = i === 1 ? ';ext=1' : '';
        await c.write(`${Buffer.byteLength(p).toString(16)}${ext}\r\n${p}\r\n`);
        await sleep(40);
      }
      await c.write('0\r\n\r\n');
      assert.ok(await c.untilResponses(1, 5000), c.data.toString());
      assertCompletion(c.responses()[0]);
      const last = await gw.mock.last();
      const want = JSON.parse(body);
      want.model = 'upstream-mini';
      assert.deepEqual(JSON.parse(last.body), want);
    } finally { c.destroy(); }
  });

  test('chunked body over max_body_bytes -> 413', async () => {
    const c = await rawConnect(gw.port);
    try {
      await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n'
        + `Authorization: Bearer ${gw.keys.alpha}\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = 'a'.repeat(16384);
      for (let i = 0; i < 6 && !c.closed && c.data.length === 0; i++) {
        await c.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      }
      assert.ok(await c.untilResponses(1, 3000), 'an answer');
      assert.equal(c.responses()[0].status, 413);
      openaiError(c.responses()[0].body.toString());
    } finally { c.destroy(); }
  });

  test('Expect: 100-continue gets 100 Continue before the body is sent', async () => {
    const body = chatBody();
    const c = await rawConnect(gw.port);
    try {
      await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n'
        + `Authorization: Bearer ${gw.keys.alpha}\r\nContent-Type: application/json\r\n`
        + `Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n\r\n`);
      assert.ok(await c.until(() => c.data.includes('\r\n\r\n'), 2000), 'an interim answer before the body');
      assert.match(c.data.toString('latin1'), /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
      await c.write(body);
      assert.ok(await c.untilResponses(2, 5000));
      const rs = c.responses();
      assert.equal(rs[0].status, 100);
      assertCompletion(rs[1]);
    } finally { c.destroy(); }
  });

  test('Expect: 100-continue with an oversized Content-Length -> 413, no 100', async () => {
    const c = await rawConnect(gw.port);
    try {
      await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n'
        + `Authorization: Bearer ${gw.keys.alpha}\r\nContent-Type: application/json\r\n`
        + 'Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n');
      assert.ok(await c.untilResponses(1, 2000), 'an answer');
      assert.equal(c.responses()[0].status, 413);
    } finally { c.destroy(); }
  });

  test('Content-Length over max_body_bytes -> 413 without reading the body, then close', async () => {
    const c = await rawConnect(gw.port);
    try {
      const t0 = Date.now();
      await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n'
        + `Authorization: Bearer ${gw.keys.alpha}\r\nContent-Type: application/json\r\n`
        + 'Content-Length: 1000000\r\n\r\n');
      assert.ok(await c.untilResponses(1, 2000), 'answered before any body byte was sent');
      assert.ok(Date.now() - t0 < 1400, 'answered at once, not at the body timeout');
      const r = c.responses()[0];
      assert.equal(r.status, 413);
      openaiError(r.body.toString());
      assert.ok(await c.untilClosed(2000), 'connection closed after 413');
      assert.ok(r.headers['x-request-id'], 'the 413 carries x-request-id');
    } finally { c.destroy(); }
  });
});

describe('limits and hostile input', () => {
  test('header over max_header_bytes -> 431', async () => {
    for (const headers of [
      { 'x-big': 'a'.repeat(10000) },
      Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`x-h${i}`, 'b'.repeat(50)])),
    ]) {
      const c = await rawConnect(gw.port);
      try {
        await c.write(httpRequest({ path: '/healthz', headers }));
        assert.ok(await c.untilResponses(1, 3000), 'an answer');
        const r = c.responses()[0];
        assert.equal(r.status, 431);
        openaiError(r.body.toString());
      } finally { c.destroy(); }
    }
  });

  test('slowloris: one header byte every 300 ms is cut off at the header timeout', async () => {
    const c = await rawConnect(gw.port);
    const t0 = Date.now();
    try {
      const text = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(200)}`;
      let i = 0;
      while (!c.closed && Date.now() - t0 < HEADER_TIMEOUT + 3000) {
        if (i < text.length) await c.write(text[i++]);
        await c.until(() => c.closed, 300);
      }
      const elapsed = (c.closedAt ?? Date.now()) - t0;
      assert.ok(c.closed, 'connection closed');
      assert.ok(elapsed <= HEADER_TIMEOUT + 1000, `closed after ${elapsed} ms`);
      assert.ok(elapsed >= HEADER_TIMEOUT - 300, `closed too early (${elapsed} ms)`);
      if (c.data.length) assert.match(c.data.toString('latin1'), /^HTTP\/1\.1 408 /);
    } finally { c.destroy(); }
  });

  test('slow body: one body byte every 300 ms is cut off at the body timeout', async () => {
    const c = await rawConnect(gw.port);
    try {
      await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n'
        + `Authorization: Bearer ${gw.keys.alpha}\r\nContent-Type: application/json\r\n`
        + 'Content-Length: 500\r\n\r\n');
      const t0 = Date.now();
      while (!c.closed && Date.now() - t0 < BODY_TIMEOUT + 3000) {
        await c.write('{');
        await c.until(() => c.closed, 300);
      }
      const elapsed = (c.closedAt ?? Date.now()) - t0;
      assert.ok(c.closed, 'connection closed');
      assert.ok(elapsed <= BODY_TIMEOUT + 1000, `closed after ${elapsed} ms`);
      if (c.data.length) assert.match(c.data.toString('latin1'), /^HTTP\/1\.1 408 /);
    } finally { c.destroy(); }
  });

  test('garbage bytes -> 400 and close', async () => {
    for (const junk of [
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x0d, 0x0a, 0x0d, 0x0a]),
      Buffer.from('HELLO WORLD\r\n\r\n'),
      Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: v\x01\r\n\r\n'),
      Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'),
      Buffer.from('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'),
    ]) {
      const c = await rawConnect(gw.port);
      try {
        await c.write(junk);
        assert.ok(await c.untilClosed(2000), `closed after ${JSON.stringify(junk.toString('latin1'))}`);
        assert.match(c.data.toString('latin1'), /^HTTP\/1\.1 400 /, `answer: ${JSON.stringify(c.data.toString('latin1').slice(0, 200))}`);
      } finally { c.destroy(); }
    }
  });

  test('whitespace between a header name and the colon -> 400 (RFC 9112 5.1)', async () => {
    for (const junk of [
      'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Test : v\r\n\r\n',
      'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
    ]) {
      const c = await rawConnect(gw.port);
      try {
        await c.write(junk);
        await c.untilClosed(2000);
        assert.match(c.data.toString('latin1'), /^HTTP\/1\.1 400 /, `answer to ${JSON.stringify(junk)}: ${JSON.stringify(c.data.toString('latin1').slice(0, 100))}`);
      } finally { c.destroy(); }
    }
  });

  test('Connection: close is honoured', async () => {
    const c = await rawConnect(gw.port);
    try {
      await c.write(httpRequest({ path: '/healthz', headers: { connection: 'close' } }));
      assert.ok(await c.untilClosed(2000), 'server closes after the response');
      const rs = c.responses();
      assert.equal(rs.length, 1);
      assert.equal(rs[0].status, 200);
      assert.match(rs[0].headers.connection || '', /close/i);
    } finally { c.destroy(); }
  });

  test('HTTP/1.0 without keep-alive closes after the response', async () => {
    const c = await rawConnect(gw.port);
    try {
      await c.write(httpRequest({ path: '/healthz', version: '1.0' }));
      assert.ok(await c.untilClosed(2000), 'server closes after the response');
      const rs = c.responses();
      assert.equal(rs.length, 1);
      assert.equal(rs[0].status, 200);
    } finally { c.destroy(); }
  });

  test('a request after Connection: close in the same write is not answered', async () => {
    const c = await rawConnect(gw.port);
    try {
      await c.write(Buffer.concat([
        httpRequest({ path: '/v1/models', headers: { ...auth(), connection: 'close', 'x-request-id': 'c1' } }),
        httpRequest({ path: '/v1/models', headers: { ...auth(), 'x-request-id': 'c2' } }),
      ]));
      assert.ok(await c.untilClosed(2000));
      const rs = c.responses();
      assert.deepEqual(rs.map((r) => r.headers['x-request-id']), ['c1']);
    } finally { c.destroy(); }
  });
});

describe('connections', () => {
  test('1,000 concurrent keep-alive connections each get answered (twice)', { timeout: 60000 }, async () => {
    const N = 1000;
    const lim = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim();
    if (lim !== 'unlimited' && Number(lim) < 4096) {
      assert.fail(`open-file limit is ${lim}: \`ulimit -n\` must be >= 4096 for this test (the scripts set it)`);
    }
    const conns = [];
    let fdError = null;
    try {
      await Promise.all(Array.from({ length: N }, async (_, i) => {
        let c;
        try {
          c = await rawConnect(gw.port);
        } catch (e) {
          if (e.code === 'EMFILE' || e.code === 'ENFILE') fdError = e;
          throw e;
        }
        conns.push(c);
        await c.write(chatReq(`conn-${i}`));
      }));
    } catch (e) {
      if (fdError) {
        assert.fail(`out of file descriptors (${fdError.code}): run with \`ulimit -n\` >= 4096 (the scripts set it)`);
      }
      throw e;
    }
    try {
      const got = await Promise.all(conns.map((c) => c.untilResponses(1, 30000)));
      assert.equal(got.filter(Boolean).length, N, 'every connection answered');
      for (const c of conns) assertCompletion(c.responses()[0]);
      assert.equal(conns.filter((c) => c.closed).length, 0, 'all kept alive');
      await Promise.all(conns.map((c) => c.write(httpRequest({ path: '/v1/models', headers: auth() }))));
      const got2 = await Promise.all(conns.map((c) => c.untilResponses(2, 30000)));
      assert.equal(got2.filter(Boolean).length, N, 'every connection answered a second time');
      for (const c of conns) assert.equal(c.responses()[1].status, 200);
      // The server is still fine afterwards.
      const r = await fetch(`${gw.url}/healthz`);
      assert.equal(r.status, 200);
    } finally {
      for (const c of conns) c.destroy();
    }
  });

  test('an idle keep-alive connection is closed after idle_timeout', { timeout: 15000 }, async () => {
    const c = await rawConnect(gw.port);
    try {
      await c.write(httpRequest({ path: '/healthz' }));
      assert.ok(await c.untilResponses(1, 3000));
      const t0 = Date.now();
      assert.ok(await c.untilClosed(IDLE_TIMEOUT + 1500), 'closed by the server');
      const idle = c.closedAt - t0;
      assert.ok(idle >= IDLE_TIMEOUT - 500, `closed too early: ${idle} ms`);
      assert.ok(idle <= IDLE_TIMEOUT + 1500, `closed too late: ${idle} ms`);
    } finally { c.destroy(); }
  });
});
