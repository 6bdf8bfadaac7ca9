// lib.js - small helpers shared by the bench/*.js tools (no dependencies):
// "--name value" argument parsing, nearest-rank percentiles, a monotonic
// clock in microseconds, and reading a process's RSS and CPU from /proc.
'use strict';

const fs = require('fs');

// parseArgs(['--rate', '200', '--flag']) -> { rate: '200', flag: true }
function parseArgs(argv, defaults) {
  const out = Object.assign({}, defaults);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument: ${a}`);
    const name = a.slice(2);
    if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[name] = argv[++i];
    else out[name] = true;
  }
  return out;
}

function need(args, name) {
  if (args[name] === undefined || args[name] === true) {
    throw new Error(`missing --${name}`);
  }
  return args[name];
}

// Nearest-rank percentile of an ascending array; null when empty.
function pct(sorted, p) {
  if (sorted.length === 0) return null;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[idx];
}

function mean(a) {
  if (a.length === 0) return null;
  let s = 0;
  for (const v of a) s += v;
  return s / a.length;
}

function round(v, digits = 1) {
  if (v === null || v === undefined || !Number.isFinite(v)) return null;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

const nowUs = () => Number(process.hrtime.bigint()) / 1e3;

// Resident set size in kB of each pid, summed; null if any is gone.
function rssKb(pids) {
  let total = 0;
  for (const pid of pids) {
    let txt;
    try {
      txt = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    } catch (e) {
      return null;
    }
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(txt);
    if (!m) return null;
    total += Number(m[1]);
  }
  return total;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

module.exports = { parseArgs, need, pct, mean, round, nowUs, rssKb, sleep };
