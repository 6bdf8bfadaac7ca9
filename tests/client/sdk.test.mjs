// sdk.test.mjs - airlock as the official `openai` npm package sees it.
//
// One `airlock mock` upstream and one `airlock serve` (test config of
// helpers.mjs) for the whole file.  Each test talks to the gateway through
// `new OpenAI({baseURL, apiKey})` with nothing else changed, and checks what
// reached the upstream through the mock's /_mock/last and /_mock/stats, and
// what was recorded through `airlock events list --json`.  A unique marker is
// put in prompts so the final test can prove that no prompt, agent key or
// upstream key ever reached the gateway's logs.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  startGateway, uniq, sleep, waitFor, parseMetrics, metricSum, openaiError, dumpTail,
  ALPHA_MODELS, parseSSE,
} from './helpers.mjs';

const MARKER = uniq('PROMPT-MARKER');
let gw;
let mock;
let alpha; // OpenAI client for agent alpha
let beta;

function client(apiKey, opts = {}) {
  return new OpenAI({ baseURL: gw.baseURL, apiKey, maxRetries: 0, timeout: 15000, ...opts });
}

const msgs = (text = 'Say hello.') => [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: `${text} ${MARKER}` },
];

// Expects promise to reject with an instance of cls and the given status;
// returns the error.
async function expectError(promise, cls, status) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${cls.name} (${status}), got success`);
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
  assert.equal(err.status, status, `status: ${err.message}`);
  return err;
}

function assertOpenAIErrorObject(err) {
  // The SDK puts body.error into err.error.
  assert.equal(typeof err.error, 'object', `error body not OpenAI-shaped: ${err.message}`);
  assert.ok(err.error, `error body not OpenAI-shaped: ${err.message}`);
  assert.equal(typeof err.error.message, 'string');
  assert.ok(err.error.message.length > 0);
  assert.equal(typeof err.error.type, 'string');
  assert.ok('code' in err.error, 'error.code present (may be null)');
}

before(async () => {
  gw = await startGateway();
  mock = gw.mock;
  alpha = client(gw.keys.alpha);
  beta = client(gw.keys.beta);
});

after(async () => {
  if (gw) await gw.close();
});

describe('chat completions, non-streaming', () => {
  test('via the mock upstream', async () => {
    const { data, response } = await alpha.chat.completions.create({
      model: 'gpt-4o-mini', messages: msgs(),
    }).withResponse();
    assert.equal(response.status, 200);
    assert.equal(data.object, 'chat.completion');
    assert.equal(typeof data.id, 'string');
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0].message.role, 'assistant');
    assert.equal(typeof data.choices[0].message.content, 'string');
    assert.ok(data.choices[0].message.content.length > 0);
    assert.ok(data.choices[0].finish_reason);
    assert.ok(data.usage.prompt_tokens > 0);
    assert.ok(data.usage.completion_tokens > 0);
    assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
    const last = await mock.last();
    assert.equal(last.path, '/v1/chat/completions');
  });

  test('via the simulated provider (no upstream call)', async () => {
    await mock.reset();
    const data = await alpha.chat.completions.create({ model: 'sim-model', messages: msgs() });
    assert.equal(data.object, 'chat.completion');
    assert.ok(data.choices[0].message.content.length > 0);
    assert.equal(data.usage.completion_tokens, 12, 'simulated output_tokens: 12');
    assert.ok(data.usage.prompt_tokens > 0);
    const st = await mock.stats();
    assert.equal(st.requests, 0, 'simulated provider must not call the mock');
  });

  test('the simulated provider is deterministic', async () => {
    const a = await alpha.chat.completions.create({ model: 'sim-model', messages: msgs('determinism') });
    const b = await alpha.chat.completions.create({ model: 'sim-model', messages: msgs('determinism') });
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    assert.deepEqual(a.usage, b.usage);
  });

  test('agent beta can use its allowed simulated model', async () => {
    const data = await beta.chat.completions.create({ model: 'sim-model', messages: msgs() });
    assert.ok(data.choices[0].message.content.length > 0);
  });
});

describe('chat completions, streaming', () => {
  async function collect(stream) {
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    return chunks;
  }
  const text = (chunks) => chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join('');

  test('deltas reassemble to the non-streamed content (simulated)', async () => {
    const req = { model: 'sim-model', messages: msgs('stream me') };
    const whole = await alpha.chat.completions.create(req);
    const chunks = await collect(await alpha.chat.completions.create({ ...req, stream: true }));
    assert.ok(chunks.length >= 2, `expected several chunks, got ${chunks.length}`);
    for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(text(chunks), whole.choices[0].message.content);
    const fin = chunks.filter((c) => c.choices?.[0]?.finish_reason);
    assert.equal(fin.length, 1, 'exactly one chunk carries finish_reason');
    assert.ok(chunks.every((c) => !c.usage), 'no usage chunk when not asked');
  });

  test('deltas reassemble to a non-empty text (mock upstream)', async () => {
    const chunks = await collect(await alpha.chat.completions.create({
      model: 'gpt-4o-mini', messages: msgs('stream via mock'), stream: true,
    }));
    assert.ok(text(chunks).length > 0);
    assert.ok(chunks.some((c) => c.choices?.[0]?.finish_reason));
  });

  test('stream_options.include_usage: true ends with a usage chunk', async () => {
    for (const model of ['gpt-4o-mini', 'sim-model']) {
      const rid = uniq('usage-on');
      const chunks = await collect(await alpha.chat.completions.create({
        model, messages: msgs('usage on'), stream: true, stream_options: { include_usage: true },
      }, { headers: { 'x-request-id': rid } }));
      const lastChunk = chunks[chunks.length - 1];
      assert.ok(lastChunk.usage, `${model}: last chunk has usage`);
      assert.deepEqual(lastChunk.choices, [], `${model}: usage chunk has no choices`);
      assert.ok(lastChunk.usage.prompt_tokens > 0);
      assert.ok(lastChunk.usage.completion_tokens > 0);
      assert.equal(chunks.filter((c) => c.usage).length, 1, `${model}: exactly one usage chunk`);
      const [ev] = await gw.eventFor(rid);
      assert.ok(ev, `${model}: event recorded`);
      assert.equal(ev.input_tokens, lastChunk.usage.prompt_tokens);
      assert.equal(ev.output_tokens, lastChunk.usage.completion_tokens);
      assert.equal(ev.stream, true);
    }
  });

  test('without include_usage: no usage chunk, upstream still asked, event has tokens', async () => {
    await mock.reset();
    const rid = uniq('usage-off');
    const chunks = await collect(await alpha.chat.completions.create({
      model: 'gpt-4o-mini', messages: msgs('usage off'), stream: true,
    }, { headers: { 'x-request-id': rid } }));
    assert.ok(chunks.length > 0);
    assert.ok(chunks.every((c) => !c.usage), 'client did not ask: no usage chunk');
    assert.ok(chunks.every((c) => Array.isArray(c.choices) && c.choices.length > 0),
      'no empty-choices (usage) chunk leaks to the client');
    const last = await mock.last();
    const sent = JSON.parse(last.body);
    assert.equal(sent.stream, true);
    assert.equal(sent.stream_options?.include_usage, true, 'gateway asks the upstream for usage');
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev, 'event recorded');
    assert.ok(ev.input_tokens > 0, `input_tokens ${ev.input_tokens}`);
    assert.ok(ev.output_tokens > 0, `output_tokens ${ev.output_tokens}`);
    assert.equal(ev.stream, true);
    assert.equal(ev.outcome, 'ok');
  });

  test('include_usage: false explicitly also hides usage', async () => {
    const chunks = await collect(await alpha.chat.completions.create({
      model: 'gpt-4o-mini', messages: msgs(), stream: true, stream_options: { include_usage: false },
    }));
    assert.ok(chunks.every((c) => !c.usage));
  });

  test('raw SSE framing ends with data: [DONE]', async () => {
    const r = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'sim-model', messages: msgs(), stream: true }),
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') || '', /^text\/event-stream/);
    const body = await r.text();
    const { events, done } = parseSSE(body);
    assert.ok(done, 'stream ends with [DONE]');
    assert.ok(events.length >= 2);
  });
});

describe('tool calls', () => {
  const tools = [{
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Weather for a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  }];

  test('non-streamed tool call has JSON arguments', async () => {
    const data = await alpha.chat.completions.create({
      model: 'gpt-4o-mini', messages: msgs('weather in Paris?'), tools, tool_choice: 'auto',
    });
    const ch = data.choices[0];
    assert.equal(ch.finish_reason, 'tool_calls');
    assert.ok(Array.isArray(ch.message.tool_calls) && ch.message.tool_calls.length >= 1);
    for (const tc of ch.message.tool_calls) {
      assert.equal(tc.type, 'function');
      assert.equal(typeof tc.id, 'string');
      assert.equal(tc.function.name, 'get_weather');
      assert.doesNotThrow(() => JSON.parse(tc.function.arguments), `arguments: ${tc.function.arguments}`);
    }
    const sent = JSON.parse((await mock.last()).body);
    assert.deepEqual(sent.tools, tools, 'tools pass through');
  });

  test('streamed tool call deltas assemble to JSON arguments', async () => {
    const stream = await alpha.chat.completions.create({
      model: 'gpt-4o-mini', messages: msgs('weather in Oslo?'), tools, stream: true,
    });
    const calls = new Map();
    let finish = null;
    for await (const c of stream) {
      const ch = c.choices?.[0];
      if (!ch) continue;
      if (ch.finish_reason) finish = ch.finish_reason;
      for (const d of ch.delta?.tool_calls ?? []) {
        const cur = calls.get(d.index) ?? { id: '', name: '', args: '' };
        if (d.id) cur.id = d.id;
        if (d.function?.name) cur.name += d.function.name;
        if (d.function?.arguments) cur.args += d.function.arguments;
        calls.set(d.index, cur);
      }
    }
    assert.equal(finish, 'tool_calls');
    assert.ok(calls.size >= 1, 'at least one streamed tool call');
    for (const tc of calls.values()) {
      assert.equal(tc.name, 'get_weather');
      assert.ok(tc.id.length > 0);
      assert.doesNotThrow(() => JSON.parse(tc.args), `arguments: ${tc.args}`);
    }
  });

  test('tool_choice "none" answers with text', async () => {
    const data = await alpha.chat.completions.create({
      model: 'gpt-4o-mini', messages: msgs(), tools, tool_choice: 'none',
    });
    const m = data.choices[0].message;
    assert.ok(!m.tool_calls || m.tool_calls.length === 0);
    assert.ok(typeof m.content === 'string' && m.content.length > 0);
  });
});

describe('JSON mode', () => {
  test('response_format json_object gives parseable JSON content', async () => {
    const data = await alpha.chat.completions.create({
      model: 'gpt-4o-mini', messages: msgs('answer in JSON'), response_format: { type: 'json_object' },
    });
    const content = data.choices[0].message.content;
    let parsed;
    assert.doesNotThrow(() => { parsed = JSON.parse(content); }, `content: ${content}`);
    assert.equal(typeof parsed, 'object');
    const sent = JSON.parse((await mock.last()).body);
    assert.deepEqual(sent.response_format, { type: 'json_object' });
  });

  test('streamed JSON mode reassembles to parseable JSON', async () => {
    const stream = await alpha.chat.completions.create({
      model: 'gpt-4o-mini', messages: msgs('answer in JSON'), response_format: { type: 'json_object' }, stream: true,
    });
    let s = '';
    for await (const c of stream) s += c.choices?.[0]?.delta?.content ?? '';
    assert.doesNotThrow(() => JSON.parse(s), `content: ${s}`);
  });
});

describe('embeddings', () => {
  test('float embeddings', async () => {
    const rid = uniq('emb');
    const data = await alpha.embeddings.create({
      model: 'text-embedding-3-small', input: ['hello', `world ${MARKER}`], encoding_format: 'float',
    }, { headers: { 'x-request-id': rid } });
    assert.equal(data.object, 'list');
    assert.equal(data.data.length, 2);
    const dim = data.data[0].embedding.length;
    assert.ok(dim > 0);
    data.data.forEach((d, i) => {
      assert.equal(d.object, 'embedding');
      assert.equal(d.index, i);
      assert.equal(d.embedding.length, dim);
      assert.ok(d.embedding.every((x) => typeof x === 'number' && Number.isFinite(x)));
    });
    assert.ok(data.usage.prompt_tokens > 0);
    const last = await mock.last();
    assert.equal(last.path, '/v1/embeddings');
    assert.equal(JSON.parse(last.body).model, 'upstream-embed');
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev, 'event recorded');
    assert.equal(ev.model, 'text-embedding-3-small');
    assert.equal(ev.input_tokens, data.usage.prompt_tokens);
    assert.ok(Math.abs(ev.cost_usd - data.usage.prompt_tokens * 0.02 / 1e6) < 1e-12, `cost ${ev.cost_usd}`);
  });

  test('SDK default (base64, decoded by the SDK)', async () => {
    // The SDK asks for encoding_format=base64 by default and decodes it.
    const data = await alpha.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' });
    assert.equal(data.data.length, 1);
    const e = data.data[0].embedding;
    assert.ok(e.length > 0);
    assert.ok(Array.from(e).every((x) => typeof x === 'number' && Number.isFinite(x)));
    const sent = JSON.parse((await mock.last()).body);
    assert.equal(sent.encoding_format, 'base64');
  });
});

describe('models', () => {
  test("models.list returns exactly alpha's aliases", async () => {
    const ids = [];
    for await (const m of alpha.models.list()) {
      assert.equal(m.object, 'model');
      assert.equal(typeof m.id, 'string');
      ids.push(m.id);
    }
    assert.deepEqual(ids.sort(), [...ALPHA_MODELS].sort());
  });

  test("models.list returns exactly beta's aliases", async () => {
    const ids = [];
    for await (const m of beta.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['sim-model']);
  });
});

describe('what reaches the upstream', () => {
  // Odd number formats and escapes prove the body is not re-serialized.
  const rawBody = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"caf\\u00e9 \\"q\\" ' + MARKER + '"}],'
    + '"seed":42,"logprobs":true,"top_logprobs":2,"n":1,"temperature":0.70,"max_tokens":100,'
    + '"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}],'
    + '"tool_choice":"none","parallel_tool_calls":false,"x_unknown":{"nested":[1,2.50,1e2,null,"\\ud83d\\ude00"]}}';

  async function send(body, headers = {}) {
    const r = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json', ...headers },
      body,
    });
    return { status: r.status, text: await r.text(), headers: r.headers };
  }

  test('unknown fields pass through; model is rewritten (semantically)', async () => {
    const r = await send(rawBody);
    assert.equal(r.status, 200, r.text);
    const last = await mock.last();
    const expected = JSON.parse(rawBody);
    expected.model = 'upstream-mini';
    assert.deepEqual(JSON.parse(last.body), expected);
  });

  test('body reaches the upstream byte-for-byte except the model', async () => {
    const r = await send(rawBody);
    assert.equal(r.status, 200, r.text);
    const last = await mock.last();
    assert.equal(last.body, rawBody.replace('"model":"gpt-4o-mini"', '"model":"upstream-mini"'));
  });

  test('upstream gets the provider key, never the client key', async () => {
    const r = await send(rawBody, { 'x-mock-latency-ms': '1' });
    assert.equal(r.status, 200, r.text);
    const last = await mock.last();
    assert.equal(last.headers.authorization, `Bearer ${gw.upstreamKey}`);
    assert.equal(last.headers['x-mock-latency-ms'], '1', 'x-mock-* forwarded as configured');
    const all = JSON.stringify(last);
    assert.ok(!all.includes(gw.keys.alpha), 'client key must not reach the upstream');
    assert.ok(!('x-api-key' in last.headers) || last.headers['x-api-key'] !== gw.keys.alpha);
  });

  test('x-api-key authenticates too, and is not forwarded', async () => {
    const r = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'x-api-key': gw.keys.alpha, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: msgs() }),
    });
    const t = await r.text();
    assert.equal(r.status, 200, t);
    const last = await mock.last();
    assert.ok(!JSON.stringify(last).includes(gw.keys.alpha), 'client key must not reach the upstream');
  });
});

describe('errors surface as the SDK classes', () => {
  test('invalid JSON -> BadRequestError 400', async () => {
    const bad = client(gw.keys.alpha, {
      fetch: (url, init) => fetch(url, { ...init, body: '{"model": "gpt-4o-mini", "messages": [' }),
    });
    const err = await expectError(bad.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs() }),
      OpenAI.BadRequestError, 400);
    assertOpenAIErrorObject(err);
    assert.ok(err.requestID, 'x-request-id on error');
  });

  test('unknown key -> AuthenticationError 401', async () => {
    const c = client('alk_this-key-does-not-exist-0000000000000000000000');
    const err = await expectError(c.chat.completions.create({ model: 'sim-model', messages: msgs() }),
      OpenAI.AuthenticationError, 401);
    assertOpenAIErrorObject(err);
  });

  test('missing key -> 401 (raw)', async () => {
    const r = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'sim-model', messages: msgs() }),
    });
    assert.equal(r.status, 401);
    openaiError(await r.text());
  });

  test('model outside the allow-list -> PermissionDeniedError 403', async () => {
    await mock.reset();
    let err = await expectError(beta.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs() }),
      OpenAI.PermissionDeniedError, 403);
    assertOpenAIErrorObject(err);
    err = await expectError(alpha.chat.completions.create({ model: 'secret-model', messages: msgs() }),
      OpenAI.PermissionDeniedError, 403);
    assertOpenAIErrorObject(err);
    assert.equal((await mock.stats()).requests, 0, 'a refused request never reaches the upstream');
  });

  test('unknown model -> NotFoundError 404', async () => {
    const err = await expectError(alpha.chat.completions.create({ model: 'no-such-model', messages: msgs() }),
      OpenAI.NotFoundError, 404);
    assertOpenAIErrorObject(err);
  });

  test('unknown path -> 404, wrong method -> 405, OpenAI-shaped', async () => {
    const auth = { authorization: `Bearer ${gw.keys.alpha}` };
    let r = await fetch(`${gw.url}/v1/nope`, { headers: auth });
    assert.equal(r.status, 404);
    openaiError(await r.text());
    assert.ok(r.headers.get('x-request-id'));
    r = await fetch(`${gw.baseURL}/chat/completions`, { headers: auth });
    assert.equal(r.status, 405);
    openaiError(await r.text());
    assert.ok(r.headers.get('x-request-id'));
  });

  test('body over max_body_bytes -> APIError 413', async () => {
    const big = 'x'.repeat(70000);
    const err = await expectError(alpha.chat.completions.create({ model: 'sim-model', messages: msgs(big) }),
      OpenAI.APIError, 413);
    assertOpenAIErrorObject(err);
  });

  test('upstream 500 surfaces with its status and an OpenAI-shaped body', async () => {
    const err = await expectError(alpha.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs() },
      { headers: { 'x-mock-status': '500' } }), OpenAI.InternalServerError, 500);
    assertOpenAIErrorObject(err);
  });

  test('upstream 400 surfaces as BadRequestError', async () => {
    const err = await expectError(alpha.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs() },
      { headers: { 'x-mock-status': '400' } }), OpenAI.BadRequestError, 400);
    assertOpenAIErrorObject(err);
  });

  test('upstream 500 on a stream request surfaces as an error', async () => {
    const err = await expectError(alpha.chat.completions.create(
      { model: 'gpt-4o-mini', messages: msgs(), stream: true },
      { headers: { 'x-mock-status': '500' } },
    ), OpenAI.InternalServerError, 500);
    assertOpenAIErrorObject(err);
  });
});

describe('request ids', () => {
  test('x-request-id is echoed', async () => {
    const rid = uniq('rid');
    const { response } = await alpha.chat.completions.create({ model: 'sim-model', messages: msgs() },
      { headers: { 'x-request-id': rid } }).withResponse();
    assert.equal(response.headers.get('x-request-id'), rid);
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev, 'event carries the request id');
  });

  test('x-request-id is generated when absent, unique per request', async () => {
    const a = await alpha.chat.completions.create({ model: 'sim-model', messages: msgs() }).withResponse();
    const b = await alpha.chat.completions.create({ model: 'sim-model', messages: msgs() }).withResponse();
    const ia = a.response.headers.get('x-request-id');
    const ib = b.response.headers.get('x-request-id');
    assert.ok(ia && ib);
    assert.notEqual(ia, ib);
  });

  test('every response carries x-request-id (errors, health, models)', async () => {
    for (const [url, init] of [
      [`${gw.url}/healthz`, {}],
      [`${gw.url}/readyz`, {}],
      [`${gw.baseURL}/models`, { headers: { authorization: `Bearer ${gw.keys.alpha}` } }],
      [`${gw.baseURL}/models`, {}],
      [`${gw.url}/nope`, {}],
    ]) {
      const r = await fetch(url, init);
      await r.arrayBuffer();
      assert.ok(r.headers.get('x-request-id'), `${url} -> ${r.status} has x-request-id`);
    }
    const rid = uniq('err-rid');
    const r = await fetch(`${gw.baseURL}/chat/completions`, { method: 'POST', headers: { 'x-request-id': rid }, body: '{}' });
    await r.arrayBuffer();
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('x-request-id'), rid);
  });

  test('/healthz and /readyz answer 200', async () => {
    for (const p of ['/healthz', '/readyz']) {
      const r = await fetch(`${gw.url}${p}`);
      await r.arrayBuffer();
      assert.equal(r.status, 200, p);
    }
  });
});

describe('usage, cost and events', () => {
  test('priced model: cost follows the price table', async () => {
    const rid = uniq('cost');
    const data = await alpha.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs() },
      { headers: { 'x-request-id': rid } });
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev, 'event recorded');
    assert.equal(ev.agent, 'alpha');
    assert.equal(ev.model, 'gpt-4o-mini');
    assert.equal(ev.provider, 'mock');
    assert.equal(ev.upstream_model, 'upstream-mini');
    assert.equal(ev.status, 200);
    assert.equal(ev.outcome, 'ok');
    assert.equal(ev.stream, false);
    assert.equal(ev.input_tokens, data.usage.prompt_tokens);
    assert.equal(ev.output_tokens, data.usage.completion_tokens);
    const cached = ev.cached_tokens ?? 0;
    const want = ((ev.input_tokens - cached) * 0.15 + cached * 0.075 + ev.output_tokens * 0.60) / 1e6;
    assert.ok(Math.abs(ev.cost_usd - want) < 1e-12, `cost ${ev.cost_usd} want ${want}`);
    assert.equal(typeof ev.key_id, 'string');
    assert.ok(ev.key_id.length > 0);
    assert.ok(ev.latency_ms >= 0);
    assert.ok(ev.bytes_in > 0 && ev.bytes_out > 0);
  });

  test('unknown price: cost null, usage still recorded', async () => {
    const rid = uniq('noprice');
    const data = await alpha.chat.completions.create({ model: 'noprice', messages: msgs() },
      { headers: { 'x-request-id': rid } });
    assert.ok(data.usage.prompt_tokens > 0);
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev, 'event recorded');
    assert.equal(ev.cost_usd, null);
    assert.equal(ev.input_tokens, data.usage.prompt_tokens);
    assert.equal(ev.output_tokens, data.usage.completion_tokens);
    assert.equal(ev.upstream_model, 'upstream-free');
  });

  test('rejected requests are recorded too', async () => {
    const rid = uniq('rejected');
    await expectError(beta.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs() },
      { headers: { 'x-request-id': rid } }), OpenAI.PermissionDeniedError, 403);
    const evs = await gw.eventFor(rid);
    assert.equal(evs.length, 1);
    assert.equal(evs[0].status, 403);
    assert.equal(evs[0].outcome, 'rejected');
    assert.equal(evs[0].agent, 'beta');
  });

  test('aborting a stream cancels upstream and records one client_closed event', async () => {
    await mock.reset();
    const rid = uniq('abort');
    const ac = new AbortController();
    const stream = await alpha.chat.completions.create({
      model: 'gpt-4o-mini', messages: msgs('long stream'), stream: true,
    }, {
      signal: ac.signal,
      headers: { 'x-request-id': rid, 'x-mock-chunk-interval-ms': '200', 'x-mock-chunks': '20' },
    });
    let got = 0;
    const t0 = Date.now();
    try {
      for await (const c of stream) {
        if (c.choices?.[0]?.delta?.content) got++;
        if (got >= 2) ac.abort();
      }
    } catch (e) {
      assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', `unexpected ${e}`);
    }
    assert.ok(got >= 2 && got < 20, `aborted mid-way after ${got} content chunks`);
    const abortedAt = Date.now();
    assert.ok(abortedAt - t0 < 3000);
    const st = await waitFor(async () => {
      const s = await mock.stats();
      return s.client_disconnects >= 1 ? s : undefined;
    }, { timeout: 2000, interval: 25 });
    assert.ok(st, `mock saw no client disconnect within 2 s: ${JSON.stringify(await mock.stats())}`);
    assert.equal(st.client_disconnects, 1);
    const evs = await gw.eventFor(rid);
    assert.equal(evs.length, 1, 'one event');
    assert.equal(evs[0].outcome, 'client_closed');
    assert.equal(evs[0].status, 499);
    assert.equal(evs[0].stream, true);
    await sleep(300);
    assert.equal((await gw.events()).filter((e) => e.request_id === rid).length, 1, 'still exactly one event');
    assert.equal((await mock.stats()).in_flight, 0, 'no upstream transfer left behind');
  });
});

describe('upstream faults and timings', () => {
  test('malformed upstream JSON -> 502, OpenAI-shaped, one error event', async () => {
    const rid = uniq('malformed');
    const err = await expectError(alpha.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs() },
      { headers: { 'x-request-id': rid, 'x-mock-malformed': '1' } }), OpenAI.APIError, 502);
    assertOpenAIErrorObject(err);
    const evs = await gw.eventFor(rid);
    assert.equal(evs.length, 1);
    assert.equal(evs[0].status, 502);
    assert.equal(evs[0].outcome, 'error');
  });

  test('upstream 429 with Retry-After surfaces as RateLimitError with the header', async () => {
    const err = await expectError(alpha.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs() },
      { headers: { 'x-mock-status': '429', 'x-mock-retry-after': '7' } }), OpenAI.RateLimitError, 429);
    assertOpenAIErrorObject(err);
    assert.equal(err.headers.get('retry-after'), '7');
  });

  test('upstream reset mid-stream: the client sees a broken stream, one error event', async () => {
    const rid = uniq('reset');
    const r = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json', 'x-request-id': rid,
        'x-mock-reset-mid': '1', 'x-mock-chunks': '10', 'x-mock-chunk-interval-ms': '20',
      },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: msgs(), stream: true }),
      signal: AbortSignal.timeout(10000),
    });
    let text = '';
    try { text = await r.text(); } catch { /* a cut-off body is fine */ }
    assert.ok(!text.includes('data: [DONE]'), 'a reset stream must not look complete');
    const evs = await gw.eventFor(rid);
    assert.equal(evs.length, 1, 'one event');
    assert.equal(evs[0].outcome, 'error');
    assert.equal(evs[0].stream, true);
  });

  test('latency fields reflect upstream latency (non-stream)', async () => {
    const rid = uniq('latency');
    await alpha.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs() },
      { headers: { 'x-request-id': rid, 'x-mock-latency-ms': '300' } });
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev);
    assert.ok(ev.latency_ms >= 290, `latency_ms ${ev.latency_ms}`);
    assert.ok(ev.upstream_ms >= 290 && ev.upstream_ms <= ev.latency_ms + 1, `upstream_ms ${ev.upstream_ms}`);
    assert.ok(ev.ttft_ms >= 290 && ev.ttft_ms <= ev.latency_ms + 1, `ttft_ms ${ev.ttft_ms}`);
    assert.ok(ev.latency_ms < 2000);
  });

  test('stream chunks are relayed as they arrive, not batched', async () => {
    const rid = uniq('relay');
    const stream = await alpha.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs(), stream: true },
      { headers: { 'x-request-id': rid, 'x-mock-chunks': '6', 'x-mock-chunk-interval-ms': '150' } });
    const times = [];
    for await (const c of stream) if (c.choices?.[0]?.delta?.content) times.push(Date.now());
    assert.ok(times.length >= 5, `content chunks: ${times.length}`);
    const spread = times[times.length - 1] - times[0];
    assert.ok(spread >= 500, `chunks arrived within ${spread} ms: batched`);
    const [ev] = await gw.eventFor(rid);
    assert.ok(ev.ttft_ms >= 0 && ev.ttft_ms < ev.latency_ms - 400, `ttft ${ev.ttft_ms} latency ${ev.latency_ms}`);
  });

  test('a client leaving before the first byte cancels the upstream too', async () => {
    await mock.reset();
    const rid = uniq('early-abort');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const p = alpha.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs(), stream: true },
      { signal: ac.signal, headers: { 'x-request-id': rid, 'x-mock-stall-ms': '4000' } });
    await assert.rejects(p, (e) => e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError');
    const st = await waitFor(async () => {
      const x = await mock.stats();
      return x.client_disconnects >= 1 ? x : undefined;
    }, { timeout: 2000 });
    assert.ok(st, `mock saw no disconnect within 2 s: ${JSON.stringify(await mock.stats())}`);
    const evs = await gw.eventFor(rid);
    assert.equal(evs.length, 1);
    assert.equal(evs[0].outcome, 'client_closed');
    assert.equal(evs[0].status, 499);
  });

  test('a long completion is relayed whole (stream and not)', async () => {
    const headers = { 'x-mock-output-tokens': '20000' };
    const a = await alpha.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs() }, { headers });
    assert.equal(a.usage.completion_tokens, 20000);
    assert.ok(a.choices[0].message.content.length > 20000);
    const stream = await alpha.chat.completions.create({
      model: 'gpt-4o-mini', messages: msgs(), stream: true, stream_options: { include_usage: true },
    }, { headers });
    let s = '';
    let usage = null;
    for await (const c of stream) {
      s += c.choices?.[0]?.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
    assert.equal(usage?.completion_tokens, 20000);
    assert.equal(s.length, a.choices[0].message.content.length);
  });

  test('a body just under max_body_bytes is accepted and forwarded intact', async () => {
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'y'.repeat(60000) }] });
    const r = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json' }, body,
    });
    assert.equal(r.status, 200, await r.text());
    assert.equal((await mock.last()).body, body.replace('"model":"gpt-4o-mini"', '"model":"upstream-mini"'));
  });

  test('missing model -> 400', async () => {
    const r = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${gw.keys.alpha}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages: msgs() }),
    });
    assert.equal(r.status, 400);
    openaiError(await r.text());
  });

  test('beta may not embed with a model outside its list -> 403', async () => {
    await expectError(beta.embeddings.create({ model: 'text-embedding-3-small', input: 'x', encoding_format: 'float' }),
      OpenAI.PermissionDeniedError, 403);
  });
});

describe('keys at runtime', () => {
  test('keys create prints only an alk_ key; keys list holds no secret', async () => {
    const { key, stdout } = await gw.createKeyAsync('beta', ['--label', 'listcheck']);
    assert.match(key, /^alk_[A-Za-z0-9_-]{43,}$/);
    assert.equal(stdout.trim().split('\n').length, 1, 'key alone on stdout');
    const { rows, raw } = await gw.listKeys();
    assert.ok(rows.length >= 3);
    for (const k of gw.allKeys) assert.ok(!raw.includes(k), 'keys list must not print a secret');
    const row = rows.find((r) => r.label === 'listcheck');
    assert.ok(row, 'label listed');
    assert.equal(row.agent, 'beta');
    assert.equal(typeof row.id, 'string');
  });

  test('a key created while serving works within 1.5 s; revoked, 401 within 1.5 s', async () => {
    const label = uniq('live');
    const { key } = await gw.createKeyAsync('alpha', ['--label', label]);
    const c = client(key);
    const t0 = Date.now();
    let ok = false;
    while (Date.now() - t0 < 1500 && !ok) {
      try {
        await c.chat.completions.create({ model: 'sim-model', messages: msgs() });
        ok = true;
      } catch (e) {
        if (!(e instanceof OpenAI.AuthenticationError)) throw e;
        await sleep(50);
      }
    }
    assert.ok(ok, 'new key honoured within 1.5 s');

    const { rows } = await gw.listKeys();
    const row = rows.find((r) => r.label === label);
    assert.ok(row, 'new key listed');
    await gw.revokeKey(row.id);
    const t1 = Date.now();
    let refused = false;
    while (Date.now() - t1 < 1500 && !refused) {
      try {
        await c.chat.completions.create({ model: 'sim-model', messages: msgs() });
        await sleep(50);
      } catch (e) {
        if (!(e instanceof OpenAI.AuthenticationError)) throw e;
        refused = true;
      }
    }
    assert.ok(refused, 'revoked key refused within 1.5 s');
    await expectError(c.models.list(), OpenAI.AuthenticationError, 401);
  });
});

describe('metrics and logs', () => {
  test('metrics count requests by agent, model, provider, status', async () => {
    const before = metricSum(parseMetrics((await gw.metrics()).text), 'airlock_requests_total',
      { agent: 'alpha', model: 'gpt-4o-mini', provider: 'mock', status: '200' }) ?? 0;
    for (let i = 0; i < 3; i++) await alpha.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs() });
    const m = await gw.metrics();
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type') || '', /^text\/plain/);
    const samples = parseMetrics(m.text);
    const after = metricSum(samples, 'airlock_requests_total',
      { agent: 'alpha', model: 'gpt-4o-mini', provider: 'mock', status: '200' });
    assert.ok(after !== undefined, 'airlock_requests_total{agent="alpha",model="gpt-4o-mini",provider="mock",status="200"} present');
    assert.equal(after - before, 3);
    const forbidden = metricSum(samples, 'airlock_requests_total', { agent: 'beta', status: '403' });
    assert.ok(forbidden >= 1, 'rejections counted with their status');
    assert.ok(samples.some((s) => s.name.endsWith('_bucket') && 'le' in s.labels), 'latency histograms present');
  });

  test('metrics count tokens, cost and unknown prices', async () => {
    const scrape = async () => parseMetrics((await gw.metrics()).text);
    const lbl = { agent: 'alpha', model: 'gpt-4o-mini' };
    let m = await scrape();
    const in0 = metricSum(m, 'airlock_tokens_total', { ...lbl, type: 'input' }) ?? 0;
    const out0 = metricSum(m, 'airlock_tokens_total', { ...lbl, type: 'output' }) ?? 0;
    const cost0 = metricSum(m, 'airlock_cost_usd_total', lbl) ?? 0;
    const unk0 = metricSum(m, 'airlock_price_unknown_total') ?? 0;
    const d = await alpha.chat.completions.create({ model: 'gpt-4o-mini', messages: msgs() });
    await alpha.chat.completions.create({ model: 'noprice', messages: msgs() });
    m = await scrape();
    assert.equal(metricSum(m, 'airlock_tokens_total', { ...lbl, type: 'input' }) - in0, d.usage.prompt_tokens);
    assert.equal(metricSum(m, 'airlock_tokens_total', { ...lbl, type: 'output' }) - out0, d.usage.completion_tokens);
    const want = (d.usage.prompt_tokens * 0.15 + d.usage.completion_tokens * 0.60) / 1e6;
    assert.ok(Math.abs(metricSum(m, 'airlock_cost_usd_total', lbl) - cost0 - want) < 1e-9);
    assert.equal(metricSum(m, 'airlock_price_unknown_total') - unk0, 1, 'unknown price counted');
    for (const g of ['airlock_inflight_requests', 'airlock_open_connections', 'airlock_event_queue_depth']) {
      assert.ok(metricSum(m, g) !== undefined, `${g} present`);
    }
  });

  test('metrics are not served on the public listener', async () => {
    const r = await fetch(`${gw.url}/metrics`);
    const t = await r.text();
    assert.ok(r.status === 404 || r.status === 401, `public /metrics -> ${r.status}`);
    assert.ok(!t.includes('airlock_requests_total'));
  });

  test('stderr never holds an agent key, the upstream key or a prompt', async () => {
    // Stop first so everything (including shutdown logs) is in.
    const r = await gw.stop({ signal: 'SIGTERM', timeout: 8000 });
    assert.equal(r.code, 0, 'SIGTERM exits 0');
    const err = gw.stderr();
    for (const k of gw.allKeys) assert.ok(!err.includes(k), 'an agent key appears in the logs');
    assert.ok(!err.includes(gw.upstreamKey), 'the upstream key appears in the logs');
    assert.ok(!err.includes(MARKER), 'a prompt appears in the logs');
    // Logs are JSON lines.
    for (const line of err.split('\n').filter(Boolean)) {
      assert.doesNotThrow(() => JSON.parse(line), `log line is not JSON: ${line.slice(0, 200)}`);
    }
  });
});

process.on('exit', (code) => {
  if (code !== 0 && gw) dumpTail('airlock serve', gw.stderr());
});
