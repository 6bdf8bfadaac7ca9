// dashboard.test.mjs - deploy/grafana/airlock.json against a real scrape.
//
// Starts one `airlock mock` and one `airlock serve` (test config of
// helpers.mjs), sends chat completions (plain and streamed, through the mock
// and the simulated provider) and an embeddings request with the official
// `openai` SDK, then scrapes /metrics.  The dashboard must be valid Grafana
// JSON with a datasource variable and an agent variable, every panel but the
// row headers must have a query, and every metric name any PromQL expression
// uses (histogram _bucket/_sum/_count folded to the family) must be a family
// the gateway really exports.  The same scrape is checked for the
// OpenTelemetry GenAI histograms: the bucket bounds of the GenAI metrics
// conventions, both token types, both operations and time to first token.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { startGateway, waitFor, parseMetrics, metricSum, REPO_ROOT } from './helpers.mjs';

const DASHBOARD = path.join(REPO_ROOT, 'deploy', 'grafana', 'airlock.json');

// ExplicitBucketBoundaries of the OpenTelemetry GenAI metrics conventions.
const TOKEN_BOUNDS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
  16777216, 67108864];
const DURATION_BOUNDS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
  20.48, 40.96, 81.92];
const TTFT_BOUNDS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
  5.0, 7.5, 10.0];

let gw;
let scrape;      // the /metrics text after the requests
let samples;     // parsed samples
let families;    // Set of family names from # TYPE lines
let dash;

// Metric names a PromQL expression selects: quoted strings, label matchers
// and the label lists of by/without/on/ignoring/group_* are removed first,
// so only selectors remain; every airlock metric starts airlock_ or gen_ai_.
function metricNames(expr) {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\[[^\]]*\]/g, '');
  const names = new Set();
  for (const m of s.matchAll(/\b((?:airlock|gen_ai)_[a-zA-Z0-9_:]*)\b(?!\s*\()/g)) names.add(m[1]);
  return [...names];
}

function family(name) {
  return name.replace(/_(bucket|sum|count)$/, '');
}

// The le bounds rendered for a histogram family (finite ones, ascending).
function finiteBounds(name) {
  const les = new Set(samples.filter((s) => s.name === `${name}_bucket`).map((s) => s.labels.le));
  assert.ok(les.has('+Inf'), `${name} has a +Inf bucket`);
  les.delete('+Inf');
  return [...les].map(Number).sort((a, b) => a - b);
}

before(async () => {
  gw = await startGateway();
  const alpha = new OpenAI({ baseURL: gw.baseURL, apiKey: gw.keys.alpha, maxRetries: 0, timeout: 15000 });
  const msgs = [{ role: 'user', content: 'Say hello.' }];

  const r1 = await alpha.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs });
  assert.equal(r1.object, 'chat.completion');
  for (const model of ['gpt-4o-mini', 'sim-model']) {
    const stream = await alpha.chat.completions.create({ model, messages: msgs, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content || '';
    assert.ok(text.length > 0, `${model} streamed an answer`);
  }
  const r2 = await alpha.chat.completions.create({ model: 'sim-model', messages: msgs });
  assert.equal(r2.object, 'chat.completion');
  const emb = await alpha.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' });
  assert.ok(emb.data.length > 0);

  // Metrics are recorded when a request's event is finished, right after
  // its last byte: wait until all five are in.
  await waitFor(async () => {
    scrape = (await gw.metrics()).text;
    samples = parseMetrics(scrape);
    return metricSum(samples, 'gen_ai_server_request_duration_seconds_count') === 5;
  }, { timeout: 5000, interval: 50 });
  families = new Set([...scrape.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]));
  dash = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
});

after(async () => {
  if (gw) await gw.close();
});

describe('deploy/grafana/airlock.json', () => {
  test('is a Grafana dashboard with panels, a datasource variable and an agent variable', () => {
    assert.equal(typeof dash.title, 'string');
    assert.equal(typeof dash.uid, 'string');
    assert.ok(Number.isInteger(dash.schemaVersion) && dash.schemaVersion >= 36, `schemaVersion ${dash.schemaVersion}`);
    assert.ok(Array.isArray(dash.panels) && dash.panels.length >= 10, 'panels');
    assert.ok(dash.__inputs.some((i) => i.name === 'DS_PROMETHEUS' && i.pluginId === 'prometheus'));
    const vars = Object.fromEntries(dash.templating.list.map((v) => [v.name, v]));
    assert.equal(vars.datasource?.type, 'datasource');
    assert.equal(vars.datasource.query, 'prometheus');
    assert.equal(vars.agent?.type, 'query');
    const agentQuery = typeof vars.agent.query === 'string' ? vars.agent.query : vars.agent.query.query;
    assert.equal(agentQuery, 'label_values(airlock_requests_total, agent)');
    const ids = dash.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  });

  test('every panel has a query on the datasource variable (row headers only group)', () => {
    for (const p of dash.panels) {
      if (p.type === 'row') {
        assert.ok(!p.targets || p.targets.length === 0, `row ${p.title} has no queries`);
        continue;
      }
      assert.ok(Array.isArray(p.targets) && p.targets.length > 0, `panel "${p.title}" has a target`);
      assert.equal(p.datasource?.uid, '${datasource}', `panel "${p.title}" uses $datasource`);
      for (const t of p.targets) {
        assert.equal(typeof t.expr, 'string', `panel "${p.title}" target ${t.refId} has an expr`);
        assert.ok(t.expr.length > 0);
      }
      const { x, y, w, h } = p.gridPos;
      assert.ok(x >= 0 && w > 0 && x + w <= 24 && y >= 0 && h > 0, `panel "${p.title}" fits the grid`);
    }
  });

  test('every metric an expression uses is exported by the gateway', () => {
    const used = new Set();
    for (const p of dash.panels) {
      for (const t of p.targets || []) {
        const names = metricNames(t.expr);
        assert.ok(names.length > 0, `panel "${p.title}": no metric in ${t.expr}`);
        for (const n of names) {
          used.add(family(n));
          assert.ok(families.has(family(n)),
            `panel "${p.title}" uses ${n}, which /metrics does not export (expr: ${t.expr})`);
        }
      }
    }
    // The panels the dashboard promises.
    for (const n of ['airlock_requests_total', 'airlock_request_duration_seconds',
      'gen_ai_client_token_usage', 'gen_ai_server_time_to_first_token_seconds',
      'airlock_cost_usd_total', 'airlock_guardrail_verdicts_total', 'airlock_event_queue_depth']) {
      assert.ok(used.has(n), `the dashboard shows ${n}`);
    }
    // The extractor itself: a label name in by() or a matcher is no metric.
    assert.deepEqual(metricNames('sum by (gen_ai_request_model, le) (rate(gen_ai_client_token_usage_bucket{gen_ai_token_type="input"}[5m]))'),
      ['gen_ai_client_token_usage_bucket']);
  });
});

describe('GenAI histograms in the scrape', () => {
  test('have the bucket bounds of the OpenTelemetry GenAI metrics conventions', () => {
    for (const [name, type] of [['gen_ai_client_token_usage', 'histogram'],
      ['gen_ai_client_operation_duration_seconds', 'histogram'],
      ['gen_ai_server_request_duration_seconds', 'histogram'],
      ['gen_ai_server_time_to_first_token_seconds', 'histogram']]) {
      assert.match(scrape, new RegExp(`^# TYPE ${name} ${type}$`, 'm'));
      assert.match(scrape, new RegExp(`^# HELP ${name} `, 'm'));
    }
    assert.deepEqual(finiteBounds('gen_ai_client_token_usage'), TOKEN_BOUNDS);
    assert.deepEqual(finiteBounds('gen_ai_client_operation_duration_seconds'), DURATION_BOUNDS);
    assert.deepEqual(finiteBounds('gen_ai_server_request_duration_seconds'), DURATION_BOUNDS);
    assert.deepEqual(finiteBounds('gen_ai_server_time_to_first_token_seconds'), TTFT_BOUNDS);
  });

  test('count input and output tokens, chat and embeddings, and streamed first tokens', () => {
    const tok = (labels) => metricSum(samples, 'gen_ai_client_token_usage_sum', labels);
    assert.ok(tok({ gen_ai_token_type: 'input' }) > 0, 'input tokens');
    assert.ok(tok({ gen_ai_token_type: 'output' }) > 0, 'output tokens');
    assert.ok(metricSum(samples, 'gen_ai_client_token_usage_count', { gen_ai_token_type: 'input' }) >= 5);
    assert.ok(tok({ gen_ai_operation_name: 'embeddings', gen_ai_token_type: 'input' }) > 0, 'embeddings input');
    assert.equal(metricSum(samples, 'gen_ai_server_request_duration_seconds_count', { gen_ai_operation_name: 'chat' }), 4);
    assert.equal(metricSum(samples, 'gen_ai_server_request_duration_seconds_count', { gen_ai_operation_name: 'embeddings' }), 1);
    assert.equal(metricSum(samples, 'gen_ai_server_request_duration_seconds_count', {
      gen_ai_request_model: 'sim-model', gen_ai_provider_name: 'sim', gen_ai_response_model: 'sim-1',
    }), 2);
    // Two streams, and only streams.
    assert.equal(metricSum(samples, 'gen_ai_server_time_to_first_token_seconds_count'), 2);
    // Every observed request reached its upstream.
    assert.equal(metricSum(samples, 'gen_ai_client_operation_duration_seconds_count'), 5);
    assert.ok(!samples.some((s) => s.name.startsWith('gen_ai_') && 'error_type' in s.labels), 'no failures');
    // +Inf agrees with _count for every series.
    for (const s of samples.filter((x) => x.name.endsWith('_count') && x.name.startsWith('gen_ai_'))) {
      const base = s.name.slice(0, -'_count'.length);
      const inf = samples.find((b) => b.name === `${base}_bucket` && b.labels.le === '+Inf'
        && Object.entries(s.labels).every(([k, v]) => b.labels[k] === v)
        && Object.keys(b.labels).length === Object.keys(s.labels).length + 1);
      assert.ok(inf, `+Inf bucket for ${s.name}${JSON.stringify(s.labels)}`);
      assert.equal(inf.value, s.value);
    }
  });
});
