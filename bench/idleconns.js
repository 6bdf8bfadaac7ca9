#!/usr/bin/env node
// idleconns.js - memory per idle keep-alive connection.  Reads the RSS of
// the server's processes (--pids, from /proc), opens --n connections, each
// with its own single-socket keep-alive agent so that none is reused, sends
// one request on each (so the connection is past parsing and authentication
// and sits idle the way a real client's pooled connection does), waits for
// the server to settle, reads the RSS again and closes everything.
// (after - before) / n is an upper bound: it also counts allocator growth
// from the requests themselves, so run it after a warm-up.
//
//   node bench/idleconns.js --url URL --body bench/request.json [--key KEY] \
//        --pids 1234[,1235] [--n 1000] [--batch 32] [--target name]
//
// Prints one JSON line: {"kind":"idle", rss_before_kb, rss_after_kb, kb_per_conn}.
'use strict';

const http = require('http');
const fs = require('fs');
const { parseArgs, need, round, rssKb, sleep } = require('./lib');

const args = parseArgs(process.argv.slice(2), { n: '1000', batch: '32', settle: '1000', target: '' });
const url = new URL(need(args, 'url'));
if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost') {
  throw new Error('idleconns only talks to 127.0.0.1');
}
const body = fs.readFileSync(need(args, 'body'));
const pids = String(need(args, 'pids')).split(',').filter(Boolean);
const n = Number(args.n);
const headers = {
  'content-type': 'application/json',
  'content-length': String(body.length),
};
if (args.key && args.key !== true) headers.authorization = `Bearer ${args.key}`;

function once(agent) {
  return new Promise((resolve) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers, agent },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
        res.on('error', () => resolve(0));
      },
    );
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

(async () => {
  const before = rssKb(pids);
  const agents = [];
  let ok = 0;
  for (let i = 0; i < n; i += Number(args.batch)) {
    const batch = [];
    for (let k = i; k < Math.min(n, i + Number(args.batch)); k++) {
      const a = new http.Agent({ keepAlive: true, maxSockets: 1 });
      agents.push(a);
      batch.push(once(a));
    }
    for (const s of await Promise.all(batch)) if (s === 200) ok++;
  }
  await sleep(Number(args.settle));
  let open = 0;
  for (const a of agents) for (const k of Object.keys(a.freeSockets)) open += a.freeSockets[k].length;
  const after = rssKb(pids);
  for (const a of agents) a.destroy();
  const out = {
    kind: 'idle',
    target: args.target,
    conns: n,
    ok,
    still_open: open,
    rss_before_kb: before,
    rss_after_kb: after,
    kb_per_conn: before !== null && after !== null && open > 0 ? round((after - before) / open, 2) : null,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
})().catch((e) => {
  process.stderr.write(`idleconns: ${e.stack || e}\n`);
  process.exit(1);
});
