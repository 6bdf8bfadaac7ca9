#!/usr/bin/env node
// ratelat.js - fixed-rate (open-loop) latency probe.  wrk keeps N
// connections busy as fast as the server answers, which measures throughput
// but mixes queueing into latency.  This sends requests at a fixed rate
// (default 200/s for 10 s) over keep-alive connections, whatever the answers
// do, and reports percentiles of each request's own time from send to the
// last body byte (and to the first body byte).  Its own overhead (Node's HTTP
// client, ~100 us) is the same for every target, so compare targets by the
// difference of their percentiles, not by the absolute numbers.
//
//   node bench/ratelat.js --url http://127.0.0.1:8080/v1/chat/completions \
//        --body bench/request.json [--key KEY] [--rate 200] [--duration 10] \
//        [--warmup 1] [--target name] [--mode nonstream]
//
// Prints one JSON line: {"kind":"ratelat", p50_us, p90_us, p99_us, ...}.
'use strict';

const http = require('http');
const fs = require('fs');
const { parseArgs, need, pct, round, nowUs, sleep } = require('./lib');

const args = parseArgs(process.argv.slice(2), {
  rate: '200', duration: '10', warmup: '1', timeout: '10', conns: '64',
  target: '', mode: '',
});
const url = new URL(need(args, 'url'));
if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost') {
  throw new Error('ratelat only talks to 127.0.0.1');
}
let body = fs.readFileSync(need(args, 'body'));
if (args.model) {
  const j = JSON.parse(body);
  j.model = args.model;
  body = Buffer.from(JSON.stringify(j));
}
const rate = Number(args.rate);
const duration = Number(args.duration);
const warmup = Number(args.warmup);
const timeoutMs = Number(args.timeout) * 1000;

const agent = new http.Agent({ keepAlive: true, maxSockets: Number(args.conns) });
const headers = {
  'content-type': 'application/json',
  'content-length': String(body.length),
  accept: 'application/json, text/event-stream',
};
if (args.key && args.key !== true) headers.authorization = `Bearer ${args.key}`;

const st = { total: [], ttfb: [], non2xx: 0, errors: 0, sent: 0, firstBody: null, statuses: {} };

function one(record) {
  return new Promise((resolve) => {
    const t0 = nowUs();
    let tFirst = 0;
    let done = false;
    const finish = (ok, status) => {
      if (done) return;
      done = true;
      if (record) {
        if (ok) {
          const t1 = nowUs();
          st.total.push(t1 - t0);
          st.ttfb.push((tFirst || t1) - t0);
        } else if (status) {
          st.non2xx++;
          st.statuses[status] = (st.statuses[status] || 0) + 1;
        } else {
          st.errors++;
        }
      }
      resolve();
    };
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'POST', headers, agent },
      (res) => {
        const ok = res.statusCode >= 200 && res.statusCode < 300;
        const keep = st.firstBody === null ? [] : null;
        res.on('data', (c) => {
          if (!tFirst) tFirst = nowUs();
          if (keep && keep.length < 64) keep.push(c);
        });
        res.on('end', () => {
          if (keep && st.firstBody === null) st.firstBody = Buffer.concat(keep).toString('utf8', 0, 65536);
          finish(ok, res.statusCode);
        });
        res.on('error', () => finish(false, 0));
        res.on('aborted', () => finish(false, 0));
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', () => finish(false, 0));
    req.end(body);
  });
}

// Open loop: request i is due at start + i/rate whatever earlier ones do.
async function phase(seconds, record) {
  const n = Math.round(rate * seconds);
  const intervalUs = 1e6 / rate;
  const pending = [];
  const start = nowUs();
  let lateUs = 0;
  for (let i = 0; i < n; i++) {
    const due = start + i * intervalUs;
    const wait = due - nowUs();
    if (wait > 1000) await sleep(Math.floor(wait / 1000));
    lateUs = Math.max(lateUs, nowUs() - due);
    if (record) st.sent++;
    pending.push(one(record));
  }
  const sendSpan = (nowUs() - start) / 1e6;
  await Promise.all(pending);
  return { sendSpan, lateUs };
}

(async () => {
  if (warmup > 0) await phase(warmup, false);
  const { sendSpan, lateUs } = await phase(duration, true);
  agent.destroy();
  const total = st.total.slice().sort((a, b) => a - b);
  const ttfb = st.ttfb.slice().sort((a, b) => a - b);
  const fb = st.firstBody || '';
  const out = {
    kind: 'ratelat',
    target: args.target,
    mode: args.mode,
    rate,
    duration_s: duration,
    sent: st.sent,
    ok: total.length,
    non2xx: st.non2xx,
    statuses: st.statuses,
    errors: st.errors,
    achieved_rps: round(st.sent / sendSpan, 1),
    max_send_lag_us: round(lateUs, 0),
    p50_us: round(pct(total, 0.5)),
    p90_us: round(pct(total, 0.9)),
    p99_us: round(pct(total, 0.99)),
    max_us: round(total[total.length - 1]),
    ttfb_p50_us: round(pct(ttfb, 0.5)),
    ttfb_p99_us: round(pct(ttfb, 0.99)),
    // A 200 with an error page would make any latency meaningless.
    body_ok: fb.includes('"choices"'),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
})().catch((e) => {
  process.stderr.write(`ratelat: ${e.stack || e}\n`);
  process.exit(1);
});
