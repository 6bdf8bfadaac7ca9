// backpressure.test.mjs - a client that stops reading a stream must slow the
// upstream down, not make airlock buffer the whole answer.
//
// The mock streams a large answer with no pause between chunks.  The client
// reads the response head and then stops reading.  If airlock pauses its
// upstream transfer when its own write queue is full, the mock's socket
// fills and its unsent backlog grows past its own high-water mark (256 KiB),
// while airlock's memory stays flat; when the client reads again, the whole
// stream arrives intact.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startGateway, rawConnect, httpRequest, sleep, uniq } from './helpers.mjs';

let gw;
before(async () => { gw = await startGateway({ keyAgents: ['alpha'] }); });
after(async () => { if (gw) await gw.close(); });

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

describe('back-pressure', () => {
  test('a client that stops reading pauses the upstream; nothing is lost when it resumes', async () => {
    await gw.mock.reset();
    const c = await rawConnect(gw.port);
    const rid = uniq('bp');
    const body = JSON.stringify({
      model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'long answer please' }],
    });
    // 20,000 chunks, 200 words each: about 30 MB of SSE, far more than the
    // socket buffers between the three processes can hold.
    await c.write(httpRequest({
      method: 'POST', path: '/v1/chat/completions',
      headers: {
        authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json',
        'x-request-id': rid, 'x-mock-chunks': '20000', 'x-mock-output-tokens': '4000000',
        'x-mock-chunk-interval-ms': '0',
      },
      body,
    }));
    assert.ok(await c.until((x) => x.data.includes('\r\n\r\n'), 5000), 'response head arrives');
    c.sock.pause(); // stop reading: the kernel buffers fill up
    const pid = gw.handle.pid;
    const rss0 = rssKiB(pid);
    await sleep(1500);
    const stats = await gw.mock.stats();
    assert.ok(stats.max_write_backlog > 256 * 1024,
      `upstream was paused: the mock could not write (backlog ${stats.max_write_backlog} B)`);
    assert.equal(stats.in_flight, 1, 'the upstream stream is still open, waiting');
    const grown = rssKiB(pid) - rss0;
    // AddressSanitizer quarantines freed memory, so RSS says nothing there.
    if (!process.env.AIRLOCK_SANITIZED) {
      assert.ok(grown < 8 * 1024, `airlock did not buffer the stream in memory (RSS grew ${grown} KiB)`);
    }

    c.sock.resume();
    assert.ok(await c.until((x) => x.data.includes('data: [DONE]'), 20000), 'the stream completes');
    const text = c.data.toString('latin1');
    const chunks = text.split('data: {').length - 1;
    assert.equal(chunks, 20000, 'every chunk arrived');
    c.destroy();
    const [ev] = await gw.eventFor(rid);
    assert.equal(ev.outcome, 'ok');
    assert.equal(ev.output_tokens, 4000000);
  });
});
