// guard_latency.js - the client half of bench/guard_latency.sh: sends the
// same ~2 KB chat request to two gateways (guardrails off / on), one at a
// time over keep-alive, alternating, then (--report) compares the servers'
// own latencies from their event logs.  No dependencies.
'use strict';

const http = require('http');
const fs = require('fs');
const { parseArgs, pct } = require('./lib.js');

const args = parseArgs(process.argv.slice(2), { n: '3000' });

function body(stream) {
  const sys = 'You are the support assistant for Northwind Outfitters, an online retailer of hiking ' +
    'and camping gear. Answer in two or three short paragraphs. Be precise about order numbers, ' +
    'dates and amounts; never invent a tracking number. If the customer asks for a refund over ' +
    '200 USD, say that a human agent will confirm it within one business day. Do not discuss ' +
    'competitors. Our return window is 30 days from delivery; items must be unused and in their ' +
    'original packaging. Shipping is free over 75 USD within the continental United States.';
  const msgs = [
    { role: 'system', content: sys },
    { role: 'user', content: 'Hi, I ordered the Alpine 2 tent (order 20240517-88213) on May 17 and it ' +
      'arrived with a torn rain fly. Can I get a replacement before my trip on June 3?' },
    { role: 'assistant', content: 'I am sorry to hear that. I can arrange a replacement rain fly. ' +
      'Could you confirm the email address and phone number on the order so I can send a prepaid ' +
      'return label?' },
    { role: 'user', content: 'Sure, it is jordan.miles@example.org and my phone is (415) 555-0142. ' +
      'I paid with the card ending 1111, the full number was 4111 1111 1111 1111 if you need it. ' +
      'My employee id for the discount is EMP-204518. Please also tell me whether the replacement ' +
      'will arrive before June 3 if you ship it tomorrow by ground from the Denver warehouse, and ' +
      'whether I need to return the torn fly first or can keep using it until the new one comes.' },
  ];
  return JSON.stringify({ model: 'gpt-4o-mini', temperature: 0.2, max_tokens: 256, stream,
    user: 'bench-user-0042', messages: msgs });
}

function once(agent, base, key, payload) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    let ttfb = null;
    const req = http.request(base + '/v1/chat/completions', {
      method: 'POST', agent,
      headers: { 'content-type': 'application/json', authorization: 'Bearer ' + key,
        'content-length': Buffer.byteLength(payload) },
    }, (res) => {
      res.on('data', () => { if (ttfb === null) ttfb = process.hrtime.bigint(); });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error('status ' + res.statusCode));
        const t1 = process.hrtime.bigint();
        resolve({ total: Number(t1 - t0) / 1e3, ttfb: Number((ttfb || t1) - t0) / 1e3 });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function run() {
  const n = Number(args.n);
  const out = { off: { ns: [], s: [] }, on: { ns: [], s: [] }, bytes: Buffer.byteLength(body(false)) };
  const ag = { off: new http.Agent({ keepAlive: true, maxSockets: 1 }),
    on: new http.Agent({ keepAlive: true, maxSockets: 1 }) };
  const p = { false: body(false), true: body(true) };
  for (let i = 0; i < n + 200; i++) {
    for (const v of (i % 2 ? ['off', 'on'] : ['on', 'off'])) {
      const stream = i % 4 >= 2;
      const r = await once(ag[v], args[v], args[v + '-key'], p[stream]);
      if (i >= 200) out[v][stream ? 's' : 'ns'].push(r); /* 200 warm-up rounds */
    }
  }
  fs.writeFileSync(args.out, JSON.stringify(out));
}

function stats(a) {
  const s = [...a].sort((x, y) => x - y);
  return { p50: pct(s, 0.5), p99: pct(s, 0.99) };
}

function report() {
  const c = JSON.parse(fs.readFileSync(args.client));
  const ev = (f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
    .filter((e) => e.kind === 'request' && e.status === 200);
  const off = ev(args['off-events']);
  const on = ev(args['on-events']);
  const lat = (a, stream) => stats(a.filter((e) => e.stream === stream).map((e) => e.latency_ms * 1000));
  const ttft = (a) => stats(a.filter((e) => e.stream && e.ttft_ms != null).map((e) => e.ttft_ms * 1000));
  const held = on.filter((e) => e.stream && e.guardrails).map((e) => JSON.parse(JSON.stringify(e.guardrails)).hold_max_bytes || 0);
  const row = (name, a, b) => `| ${name} | ${a.p50.toFixed(1)} | ${b.p50.toFixed(1)} | ${(b.p50 - a.p50).toFixed(1)} | ${a.p99.toFixed(1)} | ${b.p99.toFixed(1)} | ${(b.p99 - a.p99).toFixed(1)} |`;
  const lines = [
    `request body ${c.bytes} bytes; ${c.off.ns.length} non-streamed and ${c.off.s.length} streamed requests per gateway`,
    '',
    '| microseconds | p50 off | p50 on | added p50 | p99 off | p99 on | added p99 |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    row('server latency, non-stream', lat(off, false), lat(on, false)),
    row('server latency, stream', lat(off, true), lat(on, true)),
    row('server time to first byte, stream', ttft(off), ttft(on)),
    row('client round trip, non-stream', stats(c.off.ns.map((r) => r.total)), stats(c.on.ns.map((r) => r.total))),
    row('client time to first byte, stream', stats(c.off.s.map((r) => r.ttfb)), stats(c.on.s.map((r) => r.ttfb))),
    '',
    `stream hold-back: at most ${Math.max(0, ...held)} bytes held at once (max over ${held.length} streams)`,
  ];
  console.log(lines.join('\n'));
}

(args.report ? Promise.resolve(report()) : run()).catch((e) => { console.error(e); process.exit(1); });
