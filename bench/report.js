#!/usr/bin/env node
// report.js - turns the raw outputs of a bench run into one markdown report.
//
//   node bench/report.js parse-wrk FILE --target T --mode M --cpu-ticks N
//        --clk-tck 100 [--server-busy PCT] [--client-busy PCT]
//     -> one JSON line {"kind":"wrk", rps, p50_us, p99_us, cpu_us_per_req, ...}
//   node bench/report.js render RESULTS.jsonl INFO.json
//     -> markdown on stdout: throughput, fixed-rate added latency, streaming
//        chunk relay, memory, and the ratios DESIGN.md section 9 budgets.
//
// Budgets are printed next to the figures for reading, never enforced: the
// machine is shared and noisy, and timings are not pass/fail tests.
'use strict';

const fs = require('fs');
const { parseArgs, round } = require('./lib');

// wrk prints durations as 1.23us / 4.56ms / 7.89s / 1.00m.
function wrkTimeUs(s) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(s);
  if (!m) return null;
  const mult = { us: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 }[m[2]];
  return Number(m[1]) * mult;
}

function parseWrk(file, a) {
  const txt = fs.readFileSync(file, 'utf8');
  const num = (re) => {
    const m = re.exec(txt);
    return m ? Number(m[1]) : null;
  };
  const lat = {};
  for (const m of txt.matchAll(/^\s+(50|75|90|99)%\s+(\S+)\s*$/gm)) lat[m[1]] = wrkTimeUs(m[2]);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(txt);
  const requests = num(/^\s*(\d+) requests in/m);
  const span = /^\s*\d+ requests in (\S+),/m.exec(txt);
  const spanS = span ? wrkTimeUs(span[1]) / 1e6 : null;
  const ticks = Number(a['cpu-ticks']);
  const clk = Number(a['clk-tck'] || 100);
  const out = {
    kind: 'wrk',
    target: a.target,
    mode: a.mode,
    requests,
    rps: num(/^Requests\/sec:\s+([\d.]+)/m),
    p50_us: lat['50'] ?? null,
    p90_us: lat['90'] ?? null,
    p99_us: lat['99'] ?? null,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
    socket_errors: sock ? sock.slice(1).reduce((s, x) => s + Number(x), 0) : 0,
    cpu_s: Number.isFinite(ticks) ? ticks / clk : null,
    cpu_us_per_req: requests && Number.isFinite(ticks) ? round((ticks / clk) * 1e6 / requests, 2) : null,
    // The server's own CPU as a share of one core: ~100% means server-bound.
    server_share_pct: spanS && Number.isFinite(ticks) ? round((ticks / clk) / spanS * 100, 1) : null,
    server_busy_pct: a['server-busy'] !== undefined ? Number(a['server-busy']) : null,
    client_busy_pct: a['client-busy'] !== undefined ? Number(a['client-busy']) : null,
  };
  if (out.requests === null || out.rps === null) out.error = 'could not parse wrk output';
  return out;
}

// --- rendering -----------------------------------------------------------

function us(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a < 1000) return `${Math.round(v)} µs`;
  if (a < 1e6) return `${(v / 1e3).toFixed(2)} ms`;
  return `${(v / 1e6).toFixed(2)} s`;
}

function signedUs(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return 'n/a';
  return (v >= 0 ? '+' : '') + us(v);
}

// a - b, or null unless both are numbers (null - 5 would read as -5).
function diff(a, b) {
  return typeof a === 'number' && typeof b === 'number' ? a - b : null;
}

function ratio(a, b) {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a';
  return `${(a / b).toFixed(2)}x`;
}

function table(head, rows) {
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

function render(resultsFile, infoFile) {
  const rs = fs.readFileSync(resultsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const info = infoFile && fs.existsSync(infoFile) ? JSON.parse(fs.readFileSync(infoFile, 'utf8')) : {};
  const find = (kind, target, mode) =>
    rs.find((r) => r.kind === kind && r.target === target && (mode === undefined || r.mode === mode));
  const targets = ['direct', 'nginx', 'airlock', 'airlock-route'];
  const isAirlock = (t) => t === 'airlock' || t === 'airlock-route';
  const modes = ['nonstream', 'stream'];
  const notes = [];
  const out = [];

  out.push(`# airlock benchmark ${info.date || ''}`.trim());
  out.push('');
  out.push(`- command: \`${info.command || 'bash bench/run.sh'}\`${info.commit ? ` at ${info.commit}` : ''}`);
  out.push(`- machine: ${info.cpu || '?'}, ${info.nproc || '?'} cores, ${info.kernel || '?'}`);
  out.push(`- tools: ${info.versions || '?'}`);
  out.push(`- servers on core ${info.server_cpu}; mock, wrk and Node clients on core ${info.client_cpu}; ` +
           `airlock workers: 1, keys + metrics + event log on`);
  out.push(`- throughput: wrk -t1 -c${info.conns} -d${info.duration}s --latency; ` +
           `fixed rate: ${info.rate} req/s for ${info.duration} s; body ${info.body_bytes} bytes`);
  if (info.warning) out.push(`- WARNING: ${info.warning}`);
  out.push('');

  // Throughput
  out.push('## Throughput (closed loop, keep-alive)');
  out.push('');
  const rows = [];
  for (const m of modes) {
    const ng = find('wrk', 'nginx', m);
    for (const t of targets) {
      const r = find('wrk', t, m);
      if (!r) continue;
      const errs = (r.non2xx || 0) + (r.socket_errors || 0);
      if (errs) notes.push(`${t}/${m} throughput run had ${r.non2xx} non-2xx and ${r.socket_errors} socket errors`);
      if (r.error) notes.push(`${t}/${m}: ${r.error}`);
      if (t !== 'direct' && r.server_share_pct !== null && r.server_share_pct < 85) {
        notes.push(`${t}/${m}: the server used ${r.server_share_pct}% of its core: it was not the bottleneck ` +
                   `(client core ${r.client_busy_pct}% busy), so req/s is a lower bound; compare CPU/request`);
      }
      if (t !== 'direct' && r.server_busy_pct !== null && r.server_share_pct !== null &&
          r.server_busy_pct - r.server_share_pct > 10) {
        notes.push(`${t}/${m}: other processes took ~${round(r.server_busy_pct - r.server_share_pct, 0)}% ` +
                   `of the server core during the run; rerun on a quiet machine before trusting req/s`);
      }
      const pc = (v) => (v !== null && v !== undefined ? `${v}%` : 'n/a');
      rows.push([t, m, r.rps !== null ? Math.round(r.rps).toLocaleString('en-US') : 'n/a',
        isAirlock(t) ? ratio(r.rps, ng && ng.rps) : '', us(r.p50_us), us(r.p99_us),
        r.cpu_us_per_req !== null ? `${r.cpu_us_per_req.toFixed(1)} µs` : 'n/a',
        isAirlock(t) ? ratio(r.cpu_us_per_req, ng && ng.cpu_us_per_req) : '',
        pc(r.server_share_pct), t === 'direct' ? '' : pc(r.server_busy_pct), pc(r.client_busy_pct),
        String(errs)]);
    }
  }
  out.push(table(['target', 'mode', 'req/s', 'vs nginx', 'p50', 'p99', 'server CPU/req',
    'CPU vs nginx', 'server CPU', 'server core busy', 'client core busy', 'errors'], rows));
  out.push('');
  out.push('airlock-route is the same airlock process asked for a two-target fallback route ' +
           '(the first target answers), next to airlock asked for the plain model.');
  out.push('');
  out.push('"server" is the mock for direct, the nginx master+worker, or the airlock process (all threads). ' +
           '"server CPU" is its own CPU time over the run as a share of one core (~100%: server-bound); ' +
           '"core busy" counts every process on that core, others\' too. p50/p99 here include queueing ' +
           `behind ${info.conns} connections. Budget: airlock req/s >= nginx on the same core (vs nginx >= 1.00x).`);
  out.push('');

  // Fixed-rate latency
  out.push(`## Added latency at a fixed ${info.rate} req/s (open loop)`);
  out.push('');
  const lrows = [];
  for (const m of modes) {
    const d = find('ratelat', 'direct', m);
    for (const t of targets) {
      const r = find('ratelat', t, m);
      if (!r) continue;
      const errs = (r.non2xx || 0) + (r.errors || 0);
      if (errs) notes.push(`${t}/${m} fixed-rate run: ${r.non2xx} non-2xx ${JSON.stringify(r.statuses)}, ${r.errors} errors`);
      if (!r.body_ok) notes.push(`${t}/${m} fixed-rate run: response body has no "choices"; not a real answer`);
      if (r.achieved_rps < 0.95 * r.rate) notes.push(`${t}/${m}: sent only ${r.achieved_rps} req/s of ${r.rate}`);
      const dd = (k) => (t === 'direct' || !d ? '' : signedUs(diff(r[k], d[k])));
      lrows.push([t, m, us(r.p50_us), us(r.p99_us), dd('p50_us'), dd('p99_us'),
        us(r.ttfb_p50_us), dd('ttfb_p50_us'), String(r.ok), String(errs)]);
    }
  }
  out.push(table(['target', 'mode', 'p50', 'p99', 'added p50', 'added p99', 'first byte p50',
    'added first byte p50', 'ok', 'errors'], lrows));
  out.push('');
  out.push('"added" is the difference to calling the mock directly with the same client. ' +
           'Budget (non-stream, airlock): added p50 <= 50 µs, added p99 <= 250 µs.');
  out.push('');

  // Streaming
  out.push(`## Streaming relay (mock: ${info.chunks} chunks ${info.chunk_ms} ms apart)`);
  out.push('');
  const d = find('chunkgap', 'direct');
  const srows = [];
  for (const t of targets) {
    const r = find('chunkgap', t);
    if (!r) continue;
    if (r.failed) notes.push(`${t} streaming: ${r.failed} of ${r.requests} streams failed (${r.why})`);
    const dd = (k) => (t === 'direct' || !d ? '' : signedUs(diff(r[k], d[k])));
    srows.push([t, r.chunks_per_request ?? 'n/a', us(r.gap_mean_us), us(r.gap_p99_us), dd('gap_mean_us'),
      dd('gap_p99_us'), dd('offset_mean_us'), `${r.coalesced}/${r.gaps}`, us(r.ttfc_mean_us), dd('ttfc_mean_us')]);
  }
  out.push(table(['target', 'chunks/req', 'mean gap', 'p99 gap', 'Δ mean gap', 'Δ p99 gap',
    'Δ chunk offset', 'coalesced', 'first chunk', 'Δ first chunk'], srows));
  out.push('');
  out.push('Δ is against direct. "Δ chunk offset" is the mean change of each chunk\'s time after the first ' +
           'chunk: what relaying adds per chunk. "coalesced" counts gaps under 1 ms (batched chunks). ' +
           'Budget: each chunk leaves within 100 µs of arriving, nothing batched.');
  out.push('');

  // Memory
  out.push('## Memory');
  out.push('');
  const mrows = [];
  const mem = (what) => rs.find((r) => r.kind === 'mem' && r.what === what);
  for (const [what, label, budget] of [
    ['airlock_start', 'airlock RSS after startup (idle)', '<= 16 MB'],
    ['airlock_end', 'airlock RSS after all runs (idle)', ''],
    ['nginx_start', 'nginx master+worker RSS after startup', ''],
  ]) {
    const r = mem(what);
    if (r) mrows.push([label, r.rss_kb !== null ? `${(r.rss_kb / 1024).toFixed(1)} MB` : 'n/a', budget]);
  }
  for (const t of ['airlock', 'nginx']) {
    const r = find('idle', t);
    if (!r) continue;
    if (r.still_open < r.conns) notes.push(`${t} idle connections: only ${r.still_open} of ${r.conns} stayed open`);
    mrows.push([`${t} per idle keep-alive connection (${r.still_open} open)`,
      r.kb_per_conn !== null ? `${r.kb_per_conn.toFixed(1)} KB` : 'n/a', t === 'airlock' ? '<= 16 KB' : '']);
  }
  out.push(table(['what', 'value', 'budget'], mrows));
  out.push('');

  const extra = rs.filter((r) => r.kind === 'note');
  for (const n of extra) notes.push(n.text);
  if (notes.length) {
    out.push('## Notes');
    out.push('');
    for (const n of notes) out.push(`- ${n}`);
    out.push('');
  }
  return out.join('\n');
}

function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === 'parse-wrk') {
    const file = rest.shift();
    const a = parseArgs(rest, {});
    process.stdout.write(`${JSON.stringify(parseWrk(file, a))}\n`);
  } else if (cmd === 'render') {
    process.stdout.write(`${render(rest[0], rest[1])}\n`);
  } else {
    process.stderr.write('usage: report.js parse-wrk FILE --target T --mode M --cpu-ticks N | render RESULTS INFO\n');
    process.exit(2);
  }
}

main();
