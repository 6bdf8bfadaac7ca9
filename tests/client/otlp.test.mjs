// otlp.test.mjs - the gateway's OTLP/HTTP JSON trace export (notes/audit.md,
// "Traces") seen from a collector and a provider.
//
// A receiver written here plays the OTLP collector on 127.0.0.1 (random
// port): it records every POST to /v1/traces (headers and body) and can be
// scripted to answer 503 a number of times, or to accept and never answer; a
// port where nothing listens plays a collector that is down.  Every body is
// checked against the official opentelemetry-proto definitions (the
// protobufjs types generated from them and published in
// @opentelemetry/otlp-transformer): OTLP/JSON's hex ids become the proto3 JSON
// mapping's base64, the object must load with fromObject, pass verify, every
// key the gateway wrote must survive fromObject/toObject (a misspelt field is
// dropped and fails), and the binary encoding must decode back equal.  A
// second stub plays an OpenAI-shaped provider (model up-bad answers 503) and
// records the request headers, so the traceparent sent upstream is checked.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { startCustomGateway, freePort, waitFor, parseMetrics, metricSum } from './helpers.mjs';

const require = createRequire(import.meta.url);
const protoRoot = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const ExportTraceServiceRequest = protoRoot.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

// ---------------------------------------------------------------- proto check

const HEX_ID = { traceId: 32, spanId: 16, parentSpanId: 16 };

// OTLP/JSON -> proto3 JSON mapping: hex ids to base64 (anywhere they occur).
function hexIdsToBase64(v, where = '$') {
  if (Array.isArray(v)) return v.map((x, i) => hexIdsToBase64(x, `${where}[${i}]`));
  if (!v || typeof v !== 'object') return v;
  const o = {};
  for (const [k, x] of Object.entries(v)) {
    if (k in HEX_ID && typeof x === 'string') {
      assert.ok(x === '' || (x.length === HEX_ID[k] && /^[0-9a-fA-F]+$/.test(x)),
        `${where}.${k}: not ${HEX_ID[k]} hex digits: ${JSON.stringify(x)}`);
      o[k] = Buffer.from(x, 'hex').toString('base64');
    } else {
      o[k] = hexIdsToBase64(x, `${where}.${k}`);
    }
  }
  return o;
}

// Every key of `input` present in `output` with the same value (int64 may be
// a number or a string in JSON; toObject gives strings).
function assertCovered(input, output, where = '$') {
  if (input === null) return;
  if (Array.isArray(input)) {
    assert.ok(Array.isArray(output), `${where}: array lost`);
    assert.equal(output.length, input.length, `${where}: length`);
    input.forEach((x, i) => assertCovered(x, output[i], `${where}[${i}]`));
    return;
  }
  if (typeof input === 'object') {
    assert.ok(output && typeof output === 'object', `${where}: object lost`);
    for (const k of Object.keys(input)) {
      if (input[k] === null) continue;
      assert.ok(k in output, `${where}.${k}: not a field of the OTLP message (dropped by the proto type)`);
      assertCovered(input[k], output[k], `${where}.${k}`);
    }
    return;
  }
  if (typeof input === 'number' && typeof output === 'string') {
    assert.equal(output, String(input), `${where}`);
    return;
  }
  assert.deepEqual(output, input, `${where}`);
}

const TO_OBJ = { longs: String, bytes: String, enums: Number, defaults: false };

function decodeOtlpJson(text) {
  const json = JSON.parse(text);
  const mapped = hexIdsToBase64(json);
  const msg = ExportTraceServiceRequest.fromObject(mapped);
  assert.equal(ExportTraceServiceRequest.verify(msg), null, 'verify');
  const obj = ExportTraceServiceRequest.toObject(msg, TO_OBJ);
  assertCovered(mapped, obj);
  const bin = ExportTraceServiceRequest.encode(msg).finish();
  const back = ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(bin), TO_OBJ);
  assert.deepEqual(back, obj, 'binary round trip');
  return json;
}

function attrValue(v) {
  if (!v) return undefined;
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return Number(v.doubleValue);
  if ('boolValue' in v) return v.boolValue;
  if ('arrayValue' in v) return (v.arrayValue.values || []).map(attrValue);
  if ('kvlistValue' in v) return Object.fromEntries((v.kvlistValue.values || []).map((kv) => [kv.key, attrValue(kv.value)]));
  return undefined;
}

// ---------------------------------------------------------------- receiver

async function startReceiver() {
  const rx = { posts: [], spans: [], errors: [], script: [], sockets: new Set(), hung: [] };
  rx.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const action = rx.script.length ? rx.script.shift() : 200;
      const rec = { path: req.url, method: req.method, headers: req.headers, body, answered: action };
      rx.posts.push(rec);
      if (action === 'hang') { rx.hung.push(res); return; }
      if (action !== 200) {
        res.writeHead(action, { 'content-type': 'application/json' });
        res.end('{"code":14,"message":"unavailable"}');
        return;
      }
      if (req.method === 'POST' && req.url === '/v1/traces') {
        try {
          const json = decodeOtlpJson(body);
          for (const rs of json.resourceSpans || []) {
            for (const ss of rs.scopeSpans || []) {
              for (const sp of ss.spans || []) {
                const attrs = Object.fromEntries((sp.attributes || []).map((a) => [a.key, attrValue(a.value)]));
                rx.spans.push({ ...sp, attrs, resource: rs.resource });
              }
            }
          }
        } catch (e) {
          rx.errors.push(`${e.message}\nbody: ${body.slice(0, 2000)}`);
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  rx.server.on('connection', (c) => { rx.sockets.add(c); c.on('close', () => rx.sockets.delete(c)); });
  rx.close = () => new Promise((resolve) => {
    for (const c of rx.sockets) c.destroy();
    rx.server.close(() => resolve());
  });
  rx.trace = (tid) => rx.spans.filter((s) => s.traceId === tid);
  await new Promise((r) => rx.server.listen(0, '127.0.0.1', r));
  rx.port = rx.server.address().port;
  rx.url = `http://127.0.0.1:${rx.port}`;
  return rx;
}

// ---------------------------------------------------------------- provider stub

async function startProvider() {
  const p = { reqs: [] };
  p.server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { raw += d; });
    req.on('end', () => {
      let body;
      try { body = JSON.parse(raw); } catch { body = {}; }
      p.reqs.push({ path: req.url, headers: req.headers, body });
      if (body.model === 'up-bad') {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"overloaded","type":"server_error"}}');
        return;
      }
      const id = `chatcmpl-${randomBytes(6).toString('hex')}`;
      if (body.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const chunk = (delta, fin, usage) => `data: ${JSON.stringify({
          id, object: 'chat.completion.chunk', created: 1, model: body.model,
          choices: usage ? [] : [{ index: 0, delta, finish_reason: fin }], ...(usage ? { usage } : {}),
        })}\n\n`;
        res.write(chunk({ role: 'assistant', content: 'Hello' }, null));
        res.write(chunk({ content: ' there' }, 'stop'));
        res.write(chunk(null, null, { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 }));
        res.end('data: [DONE]\n\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        id, object: 'chat.completion', created: 1, model: body.model,
        choices: [{ index: 0, message: { role: 'assistant', content: 'Hello there' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 },
      }));
    });
  });
  await new Promise((r) => p.server.listen(0, '127.0.0.1', r));
  p.port = p.server.address().port;
  p.close = () => new Promise((r) => { p.server.closeAllConnections?.(); p.server.close(() => r()); });
  return p;
}

// ---------------------------------------------------------------- setup

let P;              // provider stub
let R1; let R2; let R3;   // receivers: main, capture+503, hanging
let deadPort;
let gwMain; let gwCap; let gwDead; let gwHang; let gwOff;

const yamlFor = (telemetry) => () => [
  telemetry,
  'providers:',
  `  stub: {type: openai, base_url: "http://127.0.0.1:${P.port}/v1", api_key_env: MOCK_UPSTREAM_KEY}`,
  'models:',
  '  m: {provider: stub, model: up-m, price: {input: 1, output: 2}}',
  '  bad: {provider: stub, model: up-bad}',
  'routes:',
  '  chat: {targets: [bad, m], retry: {attempts: 1, on: []}}',
  'agents:',
  '  alpha: {owner: alpha@example.com, models: [m, chat]}',
  '  guarded: {owner: g@example.com, models: [m], guardrails: {input: {pii: {action: redact}}}}',
].join('\n');

const otlp = (url, extra = '') => `telemetry: {service_name: airlock${extra}, otlp: {endpoint: "${url}", headers: {x-api-key: secret1}, flush_ms: 100, timeout_ms: 1000, backoff_ms: 50}}`;

function newTp() {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
}

const client = (gw, key = gw.keys.alpha, tp) => new OpenAI({
  baseURL: gw.baseURL, apiKey: key, maxRetries: 0, timeout: 15000,
  defaultHeaders: tp ? { traceparent: tp.header } : {},
});

const msgs = [{ role: 'user', content: 'Say hello.' }];

async function waitSpans(rx, tid, pred, timeout = 5000) {
  return waitFor(() => {
    const s = rx.trace(tid);
    return pred(s) ? s : undefined;
  }, { timeout, interval: 50 }) || rx.trace(tid);
}

const server = (spans) => spans.filter((s) => s.kind === 2);
const clients = (spans) => spans.filter((s) => s.kind === 3);
const metric = async (gw, name) => metricSum(parseMetrics((await gw.metrics()).text), name);

before(async () => {
  P = await startProvider();
  R1 = await startReceiver();
  R2 = await startReceiver();
  R3 = await startReceiver();
  deadPort = await freePort();
  const keyAgents = ['alpha', 'guarded'];
  [gwMain, gwCap, gwDead, gwHang, gwOff] = await Promise.all([
    startCustomGateway({ yaml: yamlFor(otlp(R1.url)), keyAgents }),
    startCustomGateway({ yaml: yamlFor(otlp(R2.url, ', capture_content: true')), keyAgents }),
    startCustomGateway({ yaml: yamlFor(otlp(`http://127.0.0.1:${deadPort}`)), keyAgents }),
    startCustomGateway({ yaml: yamlFor(otlp(R3.url)), keyAgents }),
    startCustomGateway({ yaml: yamlFor(''), keyAgents }),
  ]);
});

after(async () => {
  for (const r of [R3]) for (const res of r?.hung || []) res.destroy();
  await Promise.all([gwMain, gwCap, gwDead, gwHang, gwOff].filter(Boolean).map((g) => g.close()));
  await Promise.all([P, R1, R2, R3].filter(Boolean).map((x) => x.close()));
});

// ---------------------------------------------------------------- tests

test('non-streamed chat: SERVER span continues the client trace, CLIENT span per attempt, GenAI attributes', async () => {
  const tp = newTp();
  const before = P.reqs.length;
  const r = await client(gwMain, gwMain.keys.alpha, tp).chat.completions.create({ model: 'm', messages: msgs });
  assert.equal(r.choices[0].message.content, 'Hello there');
  const spans = await waitSpans(R1, tp.traceId, (s) => server(s).length && clients(s).length);
  assert.deepEqual(R1.errors, [], 'every export body matches the OTLP proto');
  const srv = server(spans);
  assert.equal(srv.length, 1, `one SERVER span: ${JSON.stringify(spans.map((s) => [s.name, s.kind]))}`);
  const S = srv[0];
  assert.equal(S.name, 'chat m');
  assert.equal(S.parentSpanId.toLowerCase(), tp.spanId);
  const a = S.attrs;
  assert.equal(a['gen_ai.operation.name'], 'chat');
  assert.equal(a['gen_ai.provider.name'], 'openai', JSON.stringify(a));
  assert.equal(a['gen_ai.request.model'], 'm');
  assert.equal(a['gen_ai.response.model'], 'up-m');
  assert.equal(a['gen_ai.response.id'], r.id);
  assert.deepEqual(a['gen_ai.response.finish_reasons'], ['stop']);
  assert.equal(a['gen_ai.usage.input_tokens'], 9);
  assert.equal(a['gen_ai.usage.output_tokens'], 2);
  assert.equal(a['server.address'], '127.0.0.1');
  assert.equal(a['airlock.agent'], 'alpha');
  assert.equal(typeof a['airlock.cost_usd'], 'number');
  assert.ok(Math.abs(a['airlock.cost_usd'] - (9 * 1 + 2 * 2) / 1e6) < 1e-9, `cost ${a['airlock.cost_usd']}`);
  assert.equal(a['http.response.status_code'], 200);
  assert.ok(!('error.type' in a), 'no error.type on success');
  assert.ok(!('gen_ai.input.messages' in a) && !('gen_ai.output.messages' in a), 'no content by default');

  const cl = clients(spans);
  assert.equal(cl.length, 1);
  const C = cl[0];
  assert.equal(C.parentSpanId.toLowerCase(), S.spanId.toLowerCase());
  assert.equal(C.name, 'chat up-m');
  assert.equal(C.attrs['gen_ai.request.model'], 'up-m');
  assert.equal(C.attrs['airlock.attempt'], 1);
  assert.equal(C.attrs['server.address'], '127.0.0.1');
  assert.equal(C.attrs['server.port'], P.port);

  const up = P.reqs.slice(before).filter((q) => q.body.model === 'up-m');
  assert.equal(up.length, 1);
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(up[0].headers.traceparent || '');
  assert.ok(m, `provider traceparent: ${up[0].headers.traceparent}`);
  assert.equal(m[1], tp.traceId);
  assert.equal(m[2], C.spanId.toLowerCase());

  const post = R1.posts.find((p) => p.path === '/v1/traces');
  assert.ok(post, 'POST /v1/traces');
  assert.equal(post.headers['x-api-key'], 'secret1');
  assert.match(post.headers['content-type'] || '', /^application\/json/);
});

test('streamed chat and a route failing over: CLIENT spans carry attempt numbers', async () => {
  const tp = newTp();
  const stream = await client(gwMain, gwMain.keys.alpha, tp).chat.completions.create({
    model: 'm', messages: msgs, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  for await (const ch of stream) text += ch.choices[0]?.delta?.content || '';
  assert.equal(text, 'Hello there');
  const s1 = await waitSpans(R1, tp.traceId, (s) => server(s).length && clients(s).length);
  assert.equal(server(s1).length, 1);
  assert.equal(server(s1)[0].attrs['gen_ai.request.stream'], true);
  assert.equal(clients(s1).length, 1);

  const tp2 = newTp();
  const r = await client(gwMain, gwMain.keys.alpha, tp2).chat.completions.create({ model: 'chat', messages: msgs });
  assert.equal(r.choices[0].message.content, 'Hello there');
  const s2 = await waitSpans(R1, tp2.traceId, (s) => server(s).length && clients(s).length >= 2);
  const S = server(s2)[0];
  assert.ok(S, 'SERVER span');
  assert.equal(S.name, 'chat chat');
  assert.equal(S.attrs['airlock.attempts'], 2);
  const cl = clients(s2).sort((x, y) => x.attrs['airlock.attempt'] - y.attrs['airlock.attempt']);
  assert.equal(cl.length, 2, JSON.stringify(s2.map((s) => [s.name, s.kind, s.attrs])));
  assert.deepEqual(cl.map((c) => c.attrs['airlock.attempt']), [1, 2]);
  assert.equal(cl[0].attrs['gen_ai.request.model'], 'up-bad');
  assert.equal(cl[0].attrs['http.response.status_code'], 503);
  assert.ok(cl[0].attrs['error.type'], 'failed attempt has error.type');
  assert.equal(cl[1].attrs['gen_ai.request.model'], 'up-m');
  assert.ok(!('error.type' in cl[1].attrs));
  for (const c of cl) assert.equal(c.parentSpanId.toLowerCase(), S.spanId.toLowerCase());
  assert.deepEqual(R1.errors, []);
});

test('session headers on the SERVER span; guardrails give an apply_guardrail span', async () => {
  const tp = newTp();
  const r = await gwMain.post('/v1/chat/completions', { model: 'm', messages: msgs }, {
    headers: { traceparent: tp.header, 'x-airlock-session-id': 'sess-42', 'x-airlock-step': '3', 'x-airlock-context-version': 'cv-7' },
  });
  assert.equal(r.status, 200, r.text);
  const s = await waitSpans(R1, tp.traceId, (x) => server(x).length);
  const a = server(s)[0].attrs;
  assert.equal(a['airlock.session_id'], 'sess-42');
  assert.equal(String(a['airlock.step']), '3');
  assert.equal(String(a['airlock.context_version']), 'cv-7');

  const tp2 = newTp();
  const g = await gwMain.post('/v1/chat/completions', {
    model: 'm', messages: [{ role: 'user', content: 'Mail me at jane.doe@example.com please.' }],
  }, { key: gwMain.keys.guarded, headers: { traceparent: tp2.header } });
  assert.equal(g.status, 200, g.text);
  const s2 = await waitSpans(R1, tp2.traceId, (x) => server(x).length && x.some((y) => y.name === 'apply_guardrail'));
  const S = server(s2)[0];
  const gs = s2.filter((y) => y.name === 'apply_guardrail');
  assert.ok(gs.length >= 1, JSON.stringify(s2.map((y) => [y.name, y.kind])));
  const inp = gs.find((y) => y.attrs['airlock.guardrail.direction'] === 'input');
  assert.ok(inp, JSON.stringify(gs.map((y) => y.attrs)));
  assert.equal(inp.kind, 1);
  assert.equal(inp.parentSpanId.toLowerCase(), S.spanId.toLowerCase());
  assert.equal(inp.attrs['gen_ai.operation.name'], 'apply_guardrail');
  assert.equal(inp.attrs['airlock.guardrail.action'], 'redact');
  assert.ok(Array.isArray(inp.attrs['airlock.guardrail.detectors']));
  assert.deepEqual(R1.errors, []);
});

test('capture_content: true adds the messages; a collector answering 503 twice still gets the spans', async () => {
  R2.script.push(503, 503);
  const tp = newTp();
  const r = await client(gwCap, gwCap.keys.alpha, tp).chat.completions.create({ model: 'm', messages: msgs });
  assert.equal(r.choices[0].message.content, 'Hello there');
  const s = await waitSpans(R2, tp.traceId, (x) => server(x).length, 8000);
  const S = server(s)[0];
  assert.ok(S, `spans arrived after 503s (posts: ${R2.posts.map((p) => p.answered).join(',')})`);
  assert.ok(R2.posts.filter((p) => p.answered === 503).length === 2);
  assert.ok(String(S.attrs['gen_ai.input.messages']).includes('Say hello.'), JSON.stringify(S.attrs['gen_ai.input.messages']));
  assert.ok(String(S.attrs['gen_ai.output.messages']).includes('Hello there'));
  assert.deepEqual(R2.errors, []);
  const exported = await waitFor(async () => ((await metric(gwCap, 'airlock_otlp_spans_exported_total')) > 0 ? true : undefined), { timeout: 3000 });
  assert.ok(exported, 'airlock_otlp_spans_exported_total > 0');
  assert.equal(await metric(gwCap, 'airlock_otlp_spans_dropped_total'), 0);
});

test('collector down: 50 requests succeed quickly, spans are dropped and counted', async () => {
  const c = client(gwDead);
  for (let i = 0; i < 50; i++) {
    const t0 = Date.now();
    const r = await c.chat.completions.create({ model: 'm', messages: msgs });
    const ms = Date.now() - t0;
    assert.equal(r.choices[0].message.content, 'Hello there');
    assert.ok(ms < 2000, `request ${i} took ${ms} ms`);
  }
  const dropped = await waitFor(async () => ((await metric(gwDead, 'airlock_otlp_spans_dropped_total')) > 0 ? true : undefined), { timeout: 15000, interval: 250 });
  assert.ok(dropped, `airlock_otlp_spans_dropped_total > 0: ${(await gwDead.metrics()).text.split('\n').filter((l) => l.includes('otlp')).join(' | ')}`);
  const r = await c.chat.completions.create({ model: 'm', messages: msgs });
  assert.equal(r.choices[0].message.content, 'Hello there');
});

test('collector that never answers: requests unaffected', async () => {
  for (let i = 0; i < 20; i++) R3.script.push('hang');
  const c = client(gwHang);
  for (let i = 0; i < 10; i++) {
    const t0 = Date.now();
    const r = await c.chat.completions.create({ model: 'm', messages: msgs });
    assert.equal(r.choices[0].message.content, 'Hello there');
    assert.ok(Date.now() - t0 < 2000, `request ${i} took ${Date.now() - t0} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.ok(R3.posts.length >= 1, 'the exporter did try the hanging collector');
});

test('without telemetry the client traceparent reaches the provider unchanged', async () => {
  const tp = newTp();
  const before = P.reqs.length;
  const r = await client(gwOff, gwOff.keys.alpha, tp).chat.completions.create({ model: 'm', messages: msgs });
  assert.equal(r.choices[0].message.content, 'Hello there');
  const up = P.reqs.slice(before);
  assert.equal(up.length, 1);
  assert.equal(up[0].headers.traceparent, tp.header);
});
