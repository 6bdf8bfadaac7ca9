// otlp_export.test.mjs - OTLP/HTTP JSON traces, checked against the official
// OpenTelemetry protobuf definitions.
//
// A Node receiver on 127.0.0.1 collects what the gateway exports.  Every body
// is turned into the protobuf JSON mapping (OTLP/JSON writes trace and span
// ids as hex; the mapping wants bytes), loaded with the generated
// ExportTraceServiceRequest type of @opentelemetry/otlp-transformer (the
// published opentelemetry-proto definitions compiled with protobufjs),
// verified, encoded to protobuf binary and decoded again; every field the
// gateway wrote must survive the round trip, so a misspelt field name fails.
// Then: the span tree and GenAI attribute names, a client traceparent
// continued and passed to the provider, session headers on the span,
// apply_guardrail spans, content only when configured, and an exporter that
// survives a 503-then-200 collector and a dead one without slowing requests.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';
import { freePort, metricSum, parseMetrics, sleep, startCustomGateway, waitFor } from './helpers.mjs';

const require = createRequire(import.meta.url);
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const ExportTraceServiceRequest = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

// --- the receiver -----------------------------------------------------------

async function startReceiver() {
  const port = await freePort();
  const rx = { port, bodies: [], headers: [], script: [], spans: [] };
  rx.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const status = rx.script.length ? rx.script.shift() : 200;
      if (status === 'hang') return; // never answers
      rx.headers.push(req.headers);
      if (status === 200) {
        const body = Buffer.concat(chunks).toString('utf8');
        rx.bodies.push(body);
        for (const rs of JSON.parse(body).resourceSpans || [])
          for (const ss of rs.scopeSpans || []) for (const s of ss.spans || []) rx.spans.push({ ...s, resource: rs.resource, scope: ss.scope });
      }
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((r) => rx.server.listen(port, '127.0.0.1', r));
  rx.close = () => new Promise((r) => { rx.server.closeAllConnections?.(); rx.server.close(() => r()); });
  return rx;
}

// A scripted OpenAI-shaped provider that records the headers it gets; the
// first `fail` requests answer 503.
async function startProvider() {
  const port = await freePort();
  const p = { port, headers: [], fail: 0 };
  p.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      p.headers.push(req.headers);
      if (p.fail > 0) {
        p.fail--;
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"busy","type":"server_error"}}');
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        id: 'chatcmpl-otlp-1', object: 'chat.completion', created: 1, model: `${body.model}-2024`,
        choices: [{ index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 },
      }));
    });
  });
  await new Promise((r) => p.server.listen(port, '127.0.0.1', r));
  p.close = () => new Promise((r) => { p.server.closeAllConnections?.(); p.server.close(() => r()); });
  return p;
}

// --- protobuf checks --------------------------------------------------------

const hexToB64 = (h) => Buffer.from(h, 'hex').toString('base64');
const ID_FIELDS = new Set(['traceId', 'spanId', 'parentSpanId']);

function toProtoJson(v, key) {
  if (Array.isArray(v)) return v.map((x) => toProtoJson(x));
  if (v && typeof v === 'object') {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = toProtoJson(x, k);
    return o;
  }
  if (ID_FIELDS.has(key) && typeof v === 'string') return hexToB64(v);
  return v;
}

// Every key of `a` must be in `b` (recursively); numbers compared as strings.
function sameFields(a, b, where = '') {
  if (Array.isArray(a)) {
    assert.ok(Array.isArray(b) && b.length === a.length, `${where}: array lost`);
    a.forEach((x, i) => sameFields(x, b[i], `${where}[${i}]`));
    return;
  }
  if (a && typeof a === 'object') {
    assert.ok(b && typeof b === 'object', `${where}: object lost`);
    for (const k of Object.keys(a)) {
      assert.ok(k in b, `field ${where}.${k} is not in the OTLP protobuf definitions`);
      sameFields(a[k], b[k], `${where}.${k}`);
    }
    return;
  }
  if (typeof a === 'boolean' && a === false && b === undefined) return;
  assert.equal(String(b), String(a), `${where}: ${a} became ${b}`);
}

function checkProto(body) {
  const obj = toProtoJson(JSON.parse(body));
  const err = ExportTraceServiceRequest.verify(ExportTraceServiceRequest.fromObject(obj));
  assert.equal(err, null, `verify: ${err}`);
  const msg = ExportTraceServiceRequest.fromObject(obj);
  const bin = ExportTraceServiceRequest.encode(msg).finish();
  const back = ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(bin),
    { longs: String, enums: Number, bytes: String, defaults: false, arrays: true });
  sameFields(obj, back, 'request');
}

const attr = (span, key) => {
  const a = (span.attributes || []).find((x) => x.key === key);
  if (!a) return undefined;
  const v = a.value;
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('boolValue' in v) return v.boolValue;
  if ('arrayValue' in v) return v.arrayValue.values.map((x) => x.stringValue);
  return v;
};

const TP_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const TP_SPAN = '00f067aa0ba902b7';

// --- the suites -------------------------------------------------------------

describe('OTLP export with the GenAI conventions', () => {
  let rx;
  let prov;
  let gw;
  before(async () => {
    rx = await startReceiver();
    prov = await startProvider();
    gw = await startCustomGateway({
      yaml: () => `providers:
  up: {type: openai, base_url: "http://127.0.0.1:${prov.port}/v1"}
models:
  m1: {provider: up, model: model-one, price: {input: 1, output: 2}}
  m2: {provider: up, model: model-two}
routes:
  fallback: {targets: [{model: m1}, {model: m2}], retry: {attempts: 1}}
agents: {alpha: {owner: qa, models: [m1, m2, fallback]}}
guardrails: {input: {pii: {action: redact}}}
telemetry:
  otlp: {endpoint: "http://127.0.0.1:${rx.port}", headers: {x-api-key: secret1}, flush_ms: 50}`,
    });
  });
  after(async () => {
    if (gw) await gw.close();
    if (rx) await rx.close();
    if (prov) await prov.close();
  });

  const spansOf = (traceId) => rx.spans.filter((s) => s.traceId === traceId);

  test('a chat continues the client trace, with a CLIENT span per attempt', async () => {
    const r = await gw.post('/v1/chat/completions',
      { model: 'm1', max_tokens: 20, messages: [{ role: 'user', content: 'write to bob@example.com' }] },
      { headers: { traceparent: `00-${TP_TRACE}-${TP_SPAN}-01`, 'x-airlock-session-id': 'run-7', 'x-airlock-step': '3', 'x-airlock-context-version': 'kb-v2' } });
    assert.equal(r.status, 200, r.text);
    const spans = await waitFor(() => { const s = spansOf(TP_TRACE); return s.length >= 3 ? s : undefined; }, { timeout: 5000 });
    assert.ok(spans, `spans: ${JSON.stringify(rx.spans).slice(0, 500)}`);
    for (const b of rx.bodies) checkProto(b);
    const server = spans.find((s) => s.kind === 2);
    const client = spans.filter((s) => s.kind === 3);
    assert.equal(server.name, 'chat m1');
    assert.equal(server.parentSpanId, TP_SPAN);
    assert.equal(client.length, 1);
    assert.equal(client[0].parentSpanId, server.spanId);
    assert.equal(client[0].name, 'chat model-one');
    assert.equal(attr(server, 'gen_ai.operation.name'), 'chat');
    assert.equal(attr(server, 'gen_ai.provider.name'), 'openai');
    assert.equal(attr(server, 'gen_ai.request.model'), 'm1');
    assert.equal(attr(server, 'gen_ai.response.model'), 'model-one');
    assert.equal(attr(server, 'gen_ai.response.id'), 'chatcmpl-otlp-1');
    assert.deepEqual(attr(server, 'gen_ai.response.finish_reasons'), ['stop']);
    assert.equal(attr(server, 'gen_ai.usage.input_tokens'), 7);
    assert.equal(attr(server, 'gen_ai.usage.output_tokens'), 2);
    assert.equal(attr(server, 'gen_ai.request.max_tokens'), 20);
    assert.equal(attr(server, 'server.address'), '127.0.0.1');
    assert.equal(attr(server, 'airlock.agent'), 'alpha');
    assert.equal(attr(server, 'airlock.session_id'), 'run-7');
    assert.equal(attr(server, 'airlock.step'), '3');
    assert.equal(attr(server, 'airlock.context_version'), 'kb-v2');
    assert.ok(attr(server, 'airlock.cost_usd') > 0);
    assert.equal(attr(server, 'gen_ai.input.messages'), undefined); // content off by default
    assert.equal(attr(client[0], 'server.address'), '127.0.0.1');
    assert.equal(attr(client[0], 'server.port'), prov.port);
    assert.equal(attr(client[0], 'airlock.attempt'), 1);
    const guard = spans.filter((s) => s.name === 'apply_guardrail');
    assert.ok(guard.length >= 1);
    assert.equal(attr(guard[0], 'airlock.guardrail.direction'), 'input');
    assert.equal(attr(guard[0], 'airlock.guardrail.action'), 'redact');
    assert.equal(guard[0].parentSpanId, server.spanId);
    // The provider got the same trace, with the CLIENT span as parent.
    const tp = prov.headers.at(-1).traceparent;
    assert.equal(tp, `00-${TP_TRACE}-${client[0].spanId}-01`);
    // Resource and vendor header.
    assert.ok(server.resource.attributes.some((a) => a.key === 'service.name' && a.value.stringValue === 'airlock'));
    assert.equal(rx.headers.at(-1)['x-api-key'], 'secret1');
  });

  test('a fallback is two CLIENT spans with attempt numbers and error.type on the failed one', async () => {
    prov.fail = 1;
    const trace = 'aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb';
    const r = await gw.post('/v1/chat/completions', { model: 'fallback', messages: [{ role: 'user', content: 'hi' }] },
      { headers: { traceparent: `00-${trace}-1111111111111111-01` } });
    assert.equal(r.status, 200, r.text);
    const spans = await waitFor(() => { const s = spansOf(trace).filter((x) => x.kind === 3); return s.length >= 2 ? spansOf(trace) : undefined; }, { timeout: 5000 });
    assert.ok(spans);
    const client = spans.filter((s) => s.kind === 3).sort((a, b) => attr(a, 'airlock.attempt') - attr(b, 'airlock.attempt'));
    assert.deepEqual(client.map((s) => attr(s, 'airlock.attempt')), [1, 2]);
    assert.equal(client[0].status.code, 2);
    assert.ok(attr(client[0], 'error.type'));
    assert.equal(attr(client[0], 'http.response.status_code'), 503);
    assert.equal(attr(spans.find((s) => s.kind === 2), 'airlock.route'), 'fallback');
  });

  test('a request without traceparent starts a new trace and still sends one upstream', async () => {
    const before = prov.headers.length;
    const r = await gw.post('/v1/chat/completions', { model: 'm1', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 200);
    const tp = prov.headers[before].traceparent;
    assert.match(tp, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const trace = tp.split('-')[1];
    const spans = await waitFor(() => { const s = spansOf(trace); return s.some((x) => x.kind === 2) ? s : undefined; }, { timeout: 5000 });
    assert.ok(spans);
    assert.equal(spans.find((s) => s.kind === 2).parentSpanId || '', '');
  });
});

describe('OTLP exporter resilience', () => {
  let rx;
  let gw;
  before(async () => {
    rx = await startReceiver();
    gw = await startCustomGateway({
      yaml: () => `providers: {sim: {type: simulated}}
models: {gpt-4o-mini: {provider: sim}}
agents: {alpha: {owner: qa, models: [gpt-4o-mini]}}
telemetry:
  capture_content: true
  otlp: {endpoint: "http://127.0.0.1:${rx.port}/v1/traces", flush_ms: 50, backoff_ms: 50, timeout_ms: 1000}`,
    });
  });
  after(async () => {
    if (gw) await gw.close();
    if (rx) await rx.close();
  });

  const chat = () => gw.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }] });

  test('503 twice, then 200: the spans arrive; content attributes when configured', async () => {
    rx.script.push(503, 503);
    const r = await chat();
    assert.equal(r.status, 200);
    const got = await waitFor(() => rx.spans.find((s) => s.kind === 2 && attr(s, 'airlock.request_id') === r.headers.get('x-request-id')), { timeout: 8000 });
    assert.ok(got, 'the span never arrived after the 503s');
    assert.ok(attr(got, 'gen_ai.input.messages').includes('hello there'));
    assert.ok(attr(got, 'gen_ai.output.messages'));
    const m = parseMetrics((await gw.metrics()).text);
    assert.ok(metricSum(m, 'airlock_otlp_spans_exported_total') >= 1);
  });

  test('a dead collector: requests stay fast, spans are dropped and counted', async () => {
    await rx.close();
    const t0 = Date.now();
    for (let i = 0; i < 40; i++) {
      const r = await chat();
      assert.equal(r.status, 200);
      assert.ok(r.ms < 2000, `request took ${r.ms} ms`);
    }
    assert.ok(Date.now() - t0 < 20000);
    const dropped = await waitFor(async () => {
      const m = parseMetrics((await gw.metrics()).text);
      const d = metricSum(m, 'airlock_otlp_spans_dropped_total');
      return d > 0 ? d : undefined;
    }, { timeout: 8000, interval: 200 });
    assert.ok(dropped > 0, 'no dropped spans counted');
  });

  test('a collector that never answers does not hold requests', async () => {
    rx = await startReceiver();
    // (the gateway exports to the old port; this receiver is only here to
    // show a hanging peer: point a second gateway at it)
    rx.script.push('hang', 'hang', 'hang', 'hang');
    const gw2 = await startCustomGateway({
      yaml: () => `providers: {sim: {type: simulated}}
models: {gpt-4o-mini: {provider: sim}}
agents: {alpha: {owner: qa, models: [gpt-4o-mini]}}
telemetry: {otlp: {endpoint: "http://127.0.0.1:${rx.port}", flush_ms: 20, timeout_ms: 500}}`,
    });
    try {
      for (let i = 0; i < 20; i++) {
        const r = await gw2.post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
        assert.equal(r.status, 200);
        assert.ok(r.ms < 2000, `request took ${r.ms} ms`);
      }
      await sleep(100);
    } finally {
      await gw2.close();
    }
  });
});
