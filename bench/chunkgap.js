#!/usr/bin/env node
// chunkgap.js - what a proxy does to a paced SSE stream.  The upstream mock
// sends N content chunks a fixed interval apart (20 x 5 ms in run.sh); this
// client streams the same request several times and timestamps each SSE event
// as it arrives.  A proxy that relays each chunk as soon as it arrives leaves
// the gaps between chunks as the upstream made them (same mean, same p99);
// one that batches shows gaps near 0 followed by long ones ("coalesced"
// counts gaps under --coalesce-us), and one that adds per-chunk work shifts
// each chunk's offset from the first.  run.sh runs it direct, through nginx
// and through airlock and reports the differences.
//
//   node bench/chunkgap.js --url URL --body bench/request-stream.json \
//        [--key KEY] [--model NAME] [--requests 30] [--concurrency 1] \
//        [--coalesce-us 1000] [--target name]
//
// Prints one JSON line: {"kind":"chunkgap", gap_mean_us, gap_p99_us, ...}.
'use strict';

const http = require('http');
const fs = require('fs');
const { parseArgs, need, pct, mean, round, nowUs } = require('./lib');

const args = parseArgs(process.argv.slice(2), {
  requests: '30', concurrency: '1', 'coalesce-us': '1000', timeout: '15', target: '', mode: 'stream',
});
const url = new URL(need(args, 'url'));
if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost') {
  throw new Error('chunkgap only talks to 127.0.0.1');
}
const j = JSON.parse(fs.readFileSync(need(args, 'body'), 'utf8'));
j.stream = true;
if (args.model && args.model !== true) j.model = args.model;
const body = Buffer.from(JSON.stringify(j));
const coalesceUs = Number(args['coalesce-us']);

const agent = new http.Agent({ keepAlive: true, maxSockets: Number(args.concurrency) });
const headers = {
  'content-type': 'application/json',
  'content-length': String(body.length),
  accept: 'text/event-stream',
};
if (args.key && args.key !== true) headers.authorization = `Bearer ${args.key}`;

// One streamed request -> { ok, t0, times: [arrival of each content chunk] }
function streamOnce() {
  return new Promise((resolve) => {
    const t0 = nowUs();
    const times = [];
    let buf = '';
    let settled = false;
    let status = 0;
    let sawDone = false;
    const done = (ok, why) => {
      if (settled) return;
      settled = true;
      resolve({ ok, why, t0, times, status, sawDone });
    };
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers, agent },
      (res) => {
        status = res.statusCode;
        res.setEncoding('utf8');
        res.on('data', (s) => {
          const t = nowUs();
          buf += s;
          // SSE events end with a blank line; the event is "here" when the
          // read that completed it arrived.
          for (;;) {
            const m = /\r?\n\r?\n/.exec(buf);
            if (!m) break;
            const ev = buf.slice(0, m.index);
            buf = buf.slice(m.index + m[0].length);
            const data = ev.split(/\r?\n/).filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(5).trimStart()).join('\n');
            if (data === '') continue;
            if (data === '[DONE]') { sawDone = true; continue; }
            try {
              const o = JSON.parse(data);
              // Content chunks only: the usage chunk (empty choices) follows
              // the last one immediately and would read as a coalesced gap.
              if (Array.isArray(o.choices) && o.choices.length > 0) times.push(t);
            } catch (e) {
              done(false, 'bad json in event');
            }
          }
        });
        res.on('end', () => done(status === 200, `status ${status}`));
        res.on('error', (e) => done(false, String(e)));
      },
    );
    req.setTimeout(Number(args.timeout) * 1000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => done(false, String(e)));
    req.end(body);
  });
}

(async () => {
  const n = Number(args.requests);
  const conc = Number(args.concurrency);
  const results = [];
  await streamOnce(); // warm the connection (and any upstream pool)
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      results.push(await streamOnce());
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  agent.destroy();

  const gaps = [];
  const offsets = [];
  const ttfc = [];
  const chunks = [];
  let failed = 0;
  let why = '';
  for (const r of results) {
    if (!r.ok || r.times.length === 0) {
      failed++;
      why = why || r.why || 'no content chunks';
      continue;
    }
    chunks.push(r.times.length);
    ttfc.push(r.times[0] - r.t0);
    for (let i = 1; i < r.times.length; i++) {
      gaps.push(r.times[i] - r.times[i - 1]);
      offsets.push(r.times[i] - r.times[0]);
    }
  }
  const g = gaps.slice().sort((a, b) => a - b);
  const t = ttfc.slice().sort((a, b) => a - b);
  const out = {
    kind: 'chunkgap',
    target: args.target,
    requests: n,
    failed,
    why: failed ? why : undefined,
    chunks_per_request: round(mean(chunks), 1),
    gap_mean_us: round(mean(gaps)),
    gap_p1_us: round(pct(g, 0.01)),
    gap_p50_us: round(pct(g, 0.5)),
    gap_p99_us: round(pct(g, 0.99)),
    gap_max_us: round(g[g.length - 1]),
    coalesced: gaps.filter((x) => x < coalesceUs).length,
    gaps: gaps.length,
    offset_mean_us: round(mean(offsets)),
    ttfc_mean_us: round(mean(ttfc)),
    ttfc_p99_us: round(pct(t, 0.99)),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
})().catch((e) => {
  process.stderr.write(`chunkgap: ${e.stack || e}\n`);
  process.exit(1);
});
