// pii_eval.test.mjs - precision and recall of the built-in PII entities on
// the labelled set of pii_eval_gen.mjs, through `airlock guard scan`.
//
// Generates the set (seeded: the same 2000 snippets on every run), feeds it
// to `airlock guard scan --config FILE` as JSON lines on stdin (FILE has
// `guardrails: {input: {pii: redact}}`, so every built-in entity acts), and
// reads one JSON line back per snippet with the findings' entities and byte
// spans.  A finding is a true positive when an inserted value of the same
// entity overlaps its span, else a false positive (findings on the hard
// negatives, on a value of another entity, or anywhere else); an inserted
// value is found when some finding of its entity overlaps it.  Writes the
// table (per entity, per locale for recall, and the misses by shape) to
// bench/pii-eval.md with the command that produced it, then holds the
// floor: precision and recall >= 0.90 for EMAIL, CREDIT_CARD, IBAN, US_SSN,
// IP_ADDRESS and SECRET, >= 0.85 for PHONE.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { airlockBin, REPO_ROOT, tempDir, sanitizerReport } from './helpers.mjs';
import { generate, ENTITIES } from './pii_eval_gen.mjs';

const SEED = 20261122;
const N = 2000;
const FLOOR = { EMAIL: 0.9, CREDIT_CARD: 0.9, IBAN: 0.9, US_SSN: 0.9, IP_ADDRESS: 0.9, SECRET: 0.9, PHONE: 0.85 };
const OUT_MD = path.join(REPO_ROOT, 'bench', 'pii-eval.md');

const overlaps = (a, b) => a.start < b.end && b.start < a.end;

// The shape of a value, for the misses table ("+dd dddd dddddd").
const shape = (v) => v.replace(/[A-Z]/g, 'A').replace(/[a-z]/g, 'a').replace(/[0-9]/g, 'd')
  .replace(/a{4,}/g, 'a…').replace(/A{4,}/g, 'A…');

function secretKind(v) {
  if (/^AKIA|^ASIA/.test(v)) return 'aws';
  if (/^sk-proj-/.test(v)) return 'openai-proj';
  if (/^sk-/.test(v)) return 'openai';
  if (/^github_pat_/.test(v)) return 'github-fine';
  if (/^gh[a-z]_/.test(v)) return 'github';
  if (/^xox/.test(v)) return 'slack';
  if (/^eyJ/.test(v)) return 'jwt';
  return 'other';
}

function scan(rows, dir) {
  const cfg = path.join(dir, 'scan.yaml');
  fs.writeFileSync(cfg, [
    'server: {listen: 127.0.0.1:1, admin_listen: 127.0.0.1:2, workers: 1}',
    `store: {url: "sqlite://${dir}/scan.db"}`,
    'log: {level: warn}',
    'providers:',
    '  sim: {type: simulated}',
    'models:',
    '  s: {provider: sim, model: s1}',
    'guardrails:',
    '  input: {pii: redact}',
    'agents:',
    '  a: {owner: a@example.com, models: [s]}',
    '',
  ].join('\n'));
  const input = rows.map((r) => JSON.stringify({ text: r.text })).join('\n') + '\n';
  const t0 = Date.now();
  const r = spawnSync(airlockBin(), ['guard', 'scan', '--config', cfg], {
    cwd: REPO_ROOT, input, encoding: 'utf8', timeout: 300000, maxBuffer: 64 << 20,
  });
  return { ...r, ms: Date.now() - t0, cfg };
}

test('PII precision and recall on the faker set (airlock guard scan)', async () => {
  const rows = generate({ seed: SEED, n: N });
  assert.equal(rows.length, N);
  const dir = tempDir('piieval-');
  const r = scan(rows, dir);
  assert.equal(r.error, undefined, `spawn: ${r.error}`);
  assert.equal(r.status, 0, `airlock guard scan exit ${r.status}: ${r.stderr.slice(0, 2000)}`);
  assert.equal(sanitizerReport(r.stderr), null, 'no sanitizer report from the scan');
  const lines = r.stdout.split('\n').filter((l) => l.trim());
  assert.equal(lines.length, rows.length, `one output line per input line (${lines.length} for ${rows.length})`);

  const st = Object.fromEntries(ENTITIES.map((e) => [e, { tp: 0, fp: 0, n: 0, found: 0 }]));
  const byLocale = {};
  const misses = {}; // entity -> shape/kind -> {count, example}
  const falsePos = {}; // entity -> what it hit -> {count, example}
  const note = (tbl, ent, key, ex) => {
    tbl[ent] = tbl[ent] || {};
    const e = tbl[ent][key] || (tbl[ent][key] = { count: 0, example: ex });
    e.count++;
  };
  let otherEntities = 0;

  rows.forEach((row, i) => {
    const out = JSON.parse(lines[i]);
    assert.ok(Array.isArray(out.findings), `line ${i}: findings array: ${lines[i]}`);
    const len = Buffer.byteLength(row.text);
    const buf = Buffer.from(row.text);
    for (const f of out.findings) {
      assert.ok(Number.isInteger(f.start) && Number.isInteger(f.end) && f.start >= 0 && f.start < f.end && f.end <= len,
        `line ${i}: span [${f.start}, ${f.end}) within ${len} bytes`);
      if (!st[f.entity]) { otherEntities++; continue; }
      const hit = row.spans.some((s) => s.entity === f.entity && overlaps(s, f));
      if (hit) { st[f.entity].tp++; continue; }
      st[f.entity].fp++;
      const onSpan = row.spans.find((s) => overlaps(s, f));
      const onNeg = row.negatives.find((s) => overlaps(s, f));
      const what = onSpan ? `a ${onSpan.entity}` : onNeg ? `a ${onNeg.kind}` : 'other text';
      note(falsePos, f.entity, what, buf.subarray(f.start, f.end).toString());
    }
    for (const s of row.spans) {
      const e = st[s.entity];
      e.n++;
      byLocale[row.locale] = byLocale[row.locale] || {};
      const bl = byLocale[row.locale][s.entity] || (byLocale[row.locale][s.entity] = { n: 0, found: 0 });
      bl.n++;
      if (out.findings.some((f) => f.entity === s.entity && overlaps(s, f))) {
        e.found++;
        bl.found++;
      } else {
        const got = out.findings.filter((f) => overlaps(s, f)).map((f) => f.entity);
        const key = s.entity === 'SECRET' ? secretKind(s.value) : `${row.locale} ${shape(s.value)}`;
        note(misses, s.entity, got.length ? `${key} (found as ${got.join('+')})` : key, s.value);
      }
    }
  });

  const res = ENTITIES.map((e) => {
    const x = st[e];
    const p = x.tp + x.fp ? x.tp / (x.tp + x.fp) : 1;
    const rc = x.n ? x.found / x.n : 1;
    const f1 = p + rc ? (2 * p * rc) / (p + rc) : 0;
    return { e, ...x, p, r: rc, f1 };
  });
  const fmt = (v) => v.toFixed(3);
  const locales = Object.keys(byLocale).sort();
  const top = (tbl, ent, k = 6) => Object.entries(tbl[ent] || {}).sort((a, b) => b[1].count - a[1].count).slice(0, k);

  const md = [
    '# PII detection: precision and recall',
    '',
    `Produced by \`cd tests/client && node --test pii_eval.test.mjs\` (it writes this file), which runs`,
    `\`airlock guard scan --config FILE\` (FILE: \`guardrails: {input: {pii: redact}}\`) over the ${N} snippets of`,
    `\`node tests/client/pii_eval_gen.mjs --seed ${SEED} --n ${N}\` (support, sales and coding text in en_US, en_GB,`,
    'de, fr and en_IN, values from @faker-js/faker; see the header of pii_eval_gen.mjs). A finding is a true',
    'positive when an inserted value of the same entity overlaps it; every other finding (on hard negatives:',
    'order numbers, UUIDs, timestamps, versions, prices, git SHAs, public keys; on another entity; elsewhere) is a',
    'false positive. Recall: inserted values overlapped by a finding of their entity.',
    '',
    `Run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, scan time ${r.ms} ms for ${N} snippets.`,
    '',
    '| entity | values | found | TP findings | FP findings | precision | recall | F1 | floor |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...res.map((x) => `| ${x.e} | ${x.n} | ${x.found} | ${x.tp} | ${x.fp} | ${fmt(x.p)} | ${fmt(x.r)} | ${fmt(x.f1)} | ${FLOOR[x.e].toFixed(2)} |`),
    '',
    otherEntities ? `(${otherEntities} findings of other entities ignored.)\n` : '',
    'About the data: values are kept as faker writes them. Some of faker\'s de phone numbers are longer than',
    'the German numbering plan allows (e.g. `02043 09582068`, 12 significant digits) and some en_GB ones lack',
    'the trunk 0 (`500439295`); a plan-aware validator that rejects them counts as a miss here. Order numbers',
    'include SAP-style 10-digit purchase orders (`45xxxxxxxx`), which only context tells from a NANP number.',
    '',
    '## Recall per locale',
    '',
    `| entity | ${locales.join(' | ')} |`,
    `| --- | ${locales.map(() => '---:').join(' | ')} |`,
    ...ENTITIES.map((e) => `| ${e} | ${locales.map((l) => {
      const b = byLocale[l][e];
      return b ? `${fmt(b.found / b.n)} (${b.n})` : '-';
    }).join(' | ')} |`),
    '',
    '## Most frequent misses (entity: locale and shape, or secret kind; count; example)',
    '',
    ...ENTITIES.flatMap((e) => top(misses, e).map(([k, v]) => `- ${e}: \`${k}\` x${v.count}, e.g. \`${v.example}\``)),
    '',
    '## Most frequent false positives (entity: what the finding covered; count; example)',
    '',
    ...ENTITIES.flatMap((e) => top(falsePos, e).map(([k, v]) => `- ${e} on ${k} x${v.count}, e.g. \`${v.example}\``)),
    '',
  ].join('\n');
  fs.mkdirSync(path.dirname(OUT_MD), { recursive: true });
  fs.writeFileSync(OUT_MD, md);
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`\n${md}\n`);

  const below = res.filter((x) => x.p < FLOOR[x.e] || x.r < FLOOR[x.e]);
  assert.deepEqual(below.map((x) => `${x.e} P=${fmt(x.p)} R=${fmt(x.r)} (floor ${FLOOR[x.e]})`), [],
    'every entity at or above its floor (see bench/pii-eval.md)');
});

test('the generator is deterministic and its spans are exact', () => {
  const a = generate({ seed: SEED, n: 200 });
  const b = generate({ seed: SEED, n: 200 });
  assert.deepEqual(a, b);
  for (const row of a) {
    const buf = Buffer.from(row.text);
    for (const s of [...row.spans, ...row.negatives]) assert.equal(buf.subarray(s.start, s.end).toString(), s.value);
  }
});
