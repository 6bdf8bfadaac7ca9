// anthropic.test.mjs - the Anthropic side of airlock, through the official
// SDKs.
//
// Outbound: a route whose first target (an OpenAI-type `airlock mock`) always
// answers 500 and whose second is a provider of `type: anthropic` pointing at
// another `airlock mock` (which speaks /v1/messages).  The official `openai`
// package must not notice: non-stream, streaming (reassembled text) and tool
// calls (parsed arguments) look like OpenAI; the Anthropic mock's
// /_mock/last shows what was really sent (x-api-key, anthropic-version,
// system prompt, tool_result blocks).
//
// Inbound: `POST /v1/messages` with the official `@anthropic-ai/sdk`
// (baseURL = the gateway, apiKey = an agent key), served both by an
// OpenAI-type mock and by the Anthropic-type mock: messages.create,
// messages.stream -> finalMessage, tool_use blocks, and errors mapped to the
// SDK's classes.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startCustomGateway, startMocks, mockProvider, uniq } from './helpers.mjs';

let gw;
let OA; let AN; let G;

before(async () => {
  [OA, AN, G] = await startMocks(3);
  gw = await startCustomGateway({
    yaml: () => [
      'providers:',
      mockProvider('poa', OA, { forward: false }),
      mockProvider('pan', AN, { type: 'anthropic', extra: 'anthropic_version: "2023-06-01", stream_idle_timeout: 10s' }),
      mockProvider('pg', G),
      'models:',
      '  oa: {provider: poa, model: up-oa}',
      '  claude: {provider: pan, model: claude-up, context_window: 200000, max_output_tokens: 1024}',
      '  gpt: {provider: pg, model: up-gpt, context_window: 128000}',
      'routes:',
      '  chat:',
      '    targets: [oa, claude]',
      '    retry: {attempts: 1, backoff_base: 10ms, backoff_cap: 20ms}',
      'agents:',
      '  alpha: {owner: alpha@example.com, models: [chat, claude, gpt, oa]}',
      '  beta: {owner: beta@example.com, models: [gpt]}',
    ].join('\n'),
    keyAgents: ['alpha', 'beta'],
  });
  await OA.config({ status: 500, 'fail-rate': 1 });
});

after(async () => {
  if (gw) await gw.close([OA, AN, G]);
  else for (const m of [OA, AN, G]) if (m) await m.stop();
});

const openai = () => new OpenAI({ baseURL: gw.baseURL, apiKey: gw.keys.alpha, maxRetries: 0, timeout: 15000 });
const anthropic = (opts = {}) => new Anthropic({
  baseURL: gw.url, apiKey: gw.keys.alpha, maxRetries: 0, timeout: 15000, ...opts,
});

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
const WEATHER_TOOL_ANTH = {
  name: 'get_weather',
  description: 'Current weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

async function messagesCount(mock) {
  const st = await mock.stats();
  return st.messages ?? st.by_path?.['/v1/messages'];
}

async function lastBody(mock) {
  const last = await mock.last();
  return { last, body: JSON.parse(last.body) };
}

async function expectError(promise, cls, status) {
  let err;
  try { await promise; } catch (e) { err = e; }
  assert.ok(err, `expected ${cls.name} (${status}), got success`);
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
  assert.equal(err.status, status, err.message);
  return err;
}

describe('OpenAI client, route falls back to an Anthropic provider', () => {
  test('non-stream: an OpenAI chat completion from the Anthropic upstream', async () => {
    await OA.reset();
    await AN.reset();
    const m0 = await messagesCount(AN);
    const rid = uniq('anth-ns');
    const { data, response } = await openai().chat.completions.create({
      model: 'chat',
      messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello.' }],
    }, { headers: { 'x-request-id': rid } }).withResponse();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-airlock-target'), 'claude');
    assert.equal(response.headers.get('x-airlock-attempts'), '2');
    assert.equal(data.object, 'chat.completion');
    assert.equal(typeof data.id, 'string');
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0].message.role, 'assistant');
    assert.equal(typeof data.choices[0].message.content, 'string');
    assert.ok(data.choices[0].message.content.length > 0);
    assert.equal(data.choices[0].finish_reason, 'stop');
    assert.ok(data.usage.prompt_tokens > 0);
    assert.ok(data.usage.completion_tokens > 0);
    assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);

    assert.equal(await OA.count(), 1, 'primary tried once');
    assert.equal((await messagesCount(AN)) - (m0 || 0), 1, 'the Anthropic mock counted one messages request');
    const { last, body } = await lastBody(AN);
    assert.equal(last.path, '/v1/messages');
    const hdr = Object.fromEntries(Object.entries(last.headers).map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(hdr['x-api-key'], gw.upstreamKey, 'x-api-key carries the provider key');
    assert.equal(hdr['anthropic-version'], '2023-06-01');
    assert.ok(!String(hdr.authorization || '').includes(gw.keys.alpha), 'the agent key never goes upstream');
    assert.equal(body.model, 'claude-up');
    assert.ok(Number.isInteger(body.max_tokens) && body.max_tokens > 0, 'max_tokens is always sent');
    const sys = typeof body.system === 'string' ? body.system : JSON.stringify(body.system);
    assert.match(sys, /You are terse\./, 'system message moved to the top-level system');
    assert.ok(body.messages.every((m) => m.role === 'user' || m.role === 'assistant'));

    const [ev] = await gw.eventFor(rid);
    assert.ok(ev, 'event recorded');
    assert.equal(ev.route, 'chat');
    assert.equal(ev.n_attempts, 2);
    assert.ok(ev.output_tokens > 0);
  });

  test('streaming: chunks reassemble to the same text, usage on request', async () => {
    const req = { model: 'chat', messages: [{ role: 'user', content: 'stream please' }] };
    const whole = await openai().chat.completions.create(req);
    const stream = await openai().chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.ok(chunks.length >= 2, `several chunks, got ${chunks.length}`);
    for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
    const text = chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join('');
    assert.ok(text.length > 0);
    assert.equal(text, whole.choices[0].message.content, 'streamed text equals the non-streamed text');
    const fin = chunks.filter((c) => c.choices?.[0]?.finish_reason);
    assert.equal(fin.length, 1);
    assert.equal(fin[0].choices[0].finish_reason, 'stop');
    const usage = chunks.filter((c) => c.usage);
    assert.equal(usage.length, 1, 'one usage chunk');
    assert.ok(usage[0].usage.prompt_tokens > 0 && usage[0].usage.completion_tokens > 0);
    const { body } = await lastBody(AN);
    assert.equal(body.stream, true, 'the Anthropic upstream was asked to stream');
  });

  test('tools: tool_calls with parseable arguments (non-stream)', async () => {
    const data = await openai().chat.completions.create({
      model: 'chat',
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
      tools: [WEATHER_TOOL],
    });
    const msg = data.choices[0].message;
    assert.equal(data.choices[0].finish_reason, 'tool_calls');
    assert.ok(Array.isArray(msg.tool_calls) && msg.tool_calls.length >= 1, JSON.stringify(msg));
    const tc = msg.tool_calls[0];
    assert.equal(tc.type, 'function');
    assert.equal(typeof tc.id, 'string');
    assert.ok(tc.id.length > 0);
    assert.equal(tc.function.name, 'get_weather');
    const args = JSON.parse(tc.function.arguments);
    assert.equal(typeof args, 'object');
    assert.ok(args && !Array.isArray(args));
    const { body } = await lastBody(AN);
    assert.ok(Array.isArray(body.tools));
    assert.equal(body.tools[0].name, 'get_weather');
    assert.deepEqual(body.tools[0].input_schema, WEATHER_TOOL.function.parameters, 'parameters became input_schema');
  });

  test('tools: streamed tool_call deltas assemble to parseable arguments', async () => {
    const stream = await openai().chat.completions.create({
      model: 'chat',
      messages: [{ role: 'user', content: 'What is the weather in Oslo?' }],
      tools: [WEATHER_TOOL],
      stream: true,
    });
    const calls = [];
    let finish = null;
    for await (const c of stream) {
      const ch = c.choices?.[0];
      if (!ch) continue;
      if (ch.finish_reason) finish = ch.finish_reason;
      for (const d of ch.delta?.tool_calls || []) {
        const i = d.index ?? 0;
        calls[i] = calls[i] || { id: '', name: '', args: '' };
        if (d.id) calls[i].id = d.id;
        if (d.function?.name) calls[i].name += d.function.name;
        if (d.function?.arguments) calls[i].args += d.function.arguments;
      }
    }
    assert.equal(finish, 'tool_calls');
    assert.ok(calls.length >= 1);
    assert.equal(calls[0].name, 'get_weather');
    assert.ok(calls[0].id.length > 0);
    const args = JSON.parse(calls[0].args);
    assert.equal(typeof args, 'object');
  });

  test('a tool result goes upstream as a tool_result block', async () => {
    const data = await openai().chat.completions.create({
      model: 'claude',
      messages: [
        { role: 'user', content: 'Weather in Rome?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_abc123', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }] },
        { role: 'tool', tool_call_id: 'call_abc123', content: 'sunny, 24C' },
      ],
      tools: [WEATHER_TOOL],
    });
    assert.equal(data.object, 'chat.completion');
    const { body } = await lastBody(AN);
    const flat = JSON.stringify(body.messages);
    const asst = body.messages.find((m) => m.role === 'assistant');
    assert.ok(asst, flat);
    const tu = (Array.isArray(asst.content) ? asst.content : []).find((b) => b.type === 'tool_use');
    assert.ok(tu, `assistant tool_use block: ${flat}`);
    assert.equal(tu.id, 'call_abc123');
    assert.deepEqual(tu.input, { city: 'Rome' });
    const tr = body.messages.flatMap((m) => (Array.isArray(m.content) ? m.content : [])).find((b) => b.type === 'tool_result');
    assert.ok(tr, `tool_result block: ${flat}`);
    assert.equal(tr.tool_use_id, 'call_abc123');
    assert.match(JSON.stringify(tr.content), /sunny, 24C/);
  });

  test('Anthropic-shaped upstream errors become OpenAI errors', async () => {
    const c = openai();
    const e400 = await expectError(c.chat.completions.create({
      model: 'claude', messages: [{ role: 'user', content: 'x' }],
    }, { headers: { 'x-mock-status': '400' } }), OpenAI.BadRequestError, 400);
    assert.equal(typeof e400.error?.message, 'string');
    assert.equal(typeof e400.error?.type, 'string');
    const e500 = await expectError(c.chat.completions.create({
      model: 'claude', messages: [{ role: 'user', content: 'x' }],
    }, { headers: { 'x-mock-status': '500' } }), OpenAI.InternalServerError, 500);
    assert.equal(typeof e500.error?.message, 'string');
    // The gateway still serves.
    const ok = await c.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'x' }] });
    assert.ok(ok.choices[0].message.content.length > 0);
  });
});

describe('inbound /v1/messages with the Anthropic SDK', () => {
  for (const model of ['gpt', 'claude']) {
    describe(`served by ${model === 'gpt' ? 'an OpenAI-type' : 'an Anthropic-type'} provider`, () => {
      test('messages.create (non-stream)', async () => {
        const rid = uniq(`msg-${model}`);
        const msg = await anthropic().messages.create({
          model, max_tokens: 256, system: 'You are terse.',
          messages: [{ role: 'user', content: 'Say hello.' }],
        }, { headers: { 'x-request-id': rid } });
        assert.equal(msg.type, 'message');
        assert.equal(msg.role, 'assistant');
        assert.equal(typeof msg.id, 'string');
        assert.ok(Array.isArray(msg.content) && msg.content.length >= 1);
        assert.equal(msg.content[0].type, 'text');
        assert.ok(msg.content[0].text.length > 0);
        assert.equal(msg.stop_reason, 'end_turn');
        assert.ok(msg.usage.input_tokens > 0);
        assert.ok(msg.usage.output_tokens > 0);
        const upstream = model === 'gpt' ? G : AN;
        const last = await upstream.last();
        assert.equal(last.path, model === 'gpt' ? '/v1/chat/completions' : '/v1/messages');
        if (model === 'gpt') {
          const b = JSON.parse(last.body);
          assert.equal(b.messages[0].role, 'system', 'system prompt became a system message');
          assert.match(JSON.stringify(b.messages[0].content), /You are terse\./);
        }
        const [ev] = await gw.eventFor(rid);
        assert.ok(ev, 'event recorded for /v1/messages');
        assert.equal(ev.input_tokens, msg.usage.input_tokens);
        assert.equal(ev.output_tokens, msg.usage.output_tokens);
      });

      test('messages.stream -> finalMessage equals the non-streamed message', async () => {
        const req = { model, max_tokens: 256, messages: [{ role: 'user', content: 'stream me' }] };
        const whole = await anthropic().messages.create(req);
        const stream = anthropic().messages.stream(req);
        let deltas = '';
        stream.on('text', (t) => { deltas += t; });
        const fin = await stream.finalMessage();
        assert.equal(fin.role, 'assistant');
        assert.equal(fin.content[0].type, 'text');
        assert.ok(fin.content[0].text.length > 0);
        assert.equal(fin.content[0].text, deltas, 'text events add up to the final text');
        assert.equal(fin.content[0].text, whole.content[0].text);
        assert.equal(fin.stop_reason, 'end_turn');
        assert.ok(fin.usage.output_tokens > 0);
      });

      test('tools: a tool_use block with an input object', async () => {
        const msg = await anthropic().messages.create({
          model, max_tokens: 256,
          messages: [{ role: 'user', content: 'Weather in Lisbon?' }],
          tools: [WEATHER_TOOL_ANTH],
        });
        const tu = msg.content.find((b) => b.type === 'tool_use');
        assert.ok(tu, JSON.stringify(msg.content));
        assert.equal(tu.name, 'get_weather');
        assert.equal(typeof tu.id, 'string');
        assert.ok(tu.id.length > 0);
        assert.equal(typeof tu.input, 'object');
        assert.ok(tu.input && !Array.isArray(tu.input));
        assert.equal(msg.stop_reason, 'tool_use');
      });

      test('tools, streamed: finalMessage has the tool_use block', async () => {
        const fin = await anthropic().messages.stream({
          model, max_tokens: 256,
          messages: [{ role: 'user', content: 'Weather in Lima?' }],
          tools: [WEATHER_TOOL_ANTH],
        }).finalMessage();
        const tu = fin.content.find((b) => b.type === 'tool_use');
        assert.ok(tu, JSON.stringify(fin.content));
        assert.equal(tu.name, 'get_weather');
        assert.equal(typeof tu.input, 'object');
        assert.equal(fin.stop_reason, 'tool_use');
      });
    });
  }

  test('Bearer auth (authToken) works as well as x-api-key', async () => {
    const c = new Anthropic({ baseURL: gw.url, authToken: gw.keys.alpha, apiKey: null, maxRetries: 0, timeout: 15000 });
    const msg = await c.messages.create({ model: 'gpt', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(msg.type, 'message');
  });

  test('unknown model -> NotFoundError with an Anthropic-shaped body', async () => {
    const err = await expectError(anthropic().messages.create({
      model: 'no-such-model', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }],
    }), Anthropic.NotFoundError, 404);
    assert.equal(err.error?.type, 'error', JSON.stringify(err.error));
    assert.equal(err.error?.error?.type, 'not_found_error');
    assert.equal(typeof err.error?.error?.message, 'string');
  });

  test('bad key -> AuthenticationError; model not allowed -> PermissionDeniedError', async () => {
    const e1 = await expectError(anthropic({ apiKey: 'sk-not-a-real-key' }).messages.create({
      model: 'gpt', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }],
    }), Anthropic.AuthenticationError, 401);
    assert.equal(e1.error?.error?.type, 'authentication_error');
    const e2 = await expectError(anthropic({ apiKey: gw.keys.beta }).messages.create({
      model: 'claude', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }],
    }), Anthropic.PermissionDeniedError, 403);
    assert.equal(e2.error?.error?.type, 'permission_error');
  });

  test('invalid body -> BadRequestError (invalid_request_error)', async () => {
    const err = await expectError(anthropic().messages.create({
      model: 'gpt', max_tokens: 64, messages: 'not a list',
    }), Anthropic.BadRequestError, 400);
    assert.equal(err.error?.error?.type, 'invalid_request_error');
  });

  for (const model of ['gpt', 'claude']) {
    test(`upstream errors on /v1/messages (${model}) -> the SDK's error classes`, async () => {
      const req = { model, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] };
      const e500 = await expectError(anthropic().messages.create(req, { headers: { 'x-mock-status': '500' } }),
        Anthropic.InternalServerError, 500);
      assert.equal(e500.error?.type, 'error', JSON.stringify(e500.error));
      assert.equal(typeof e500.error?.error?.type, 'string');
      assert.equal(typeof e500.error?.error?.message, 'string');
      const e429 = await expectError(anthropic().messages.create(req, { headers: { 'x-mock-status': '429', 'x-mock-retry-after': '7' } }),
        Anthropic.RateLimitError, 429);
      assert.equal(e429.error?.error?.type, 'rate_limit_error', JSON.stringify(e429.error));
      assert.equal(e429.headers?.get?.('retry-after'), '7', 'the provider\'s Retry-After is passed on');
      const e400 = await expectError(anthropic().messages.create(req, { headers: { 'x-mock-status': '400' } }),
        Anthropic.BadRequestError, 400);
      assert.equal(e400.error?.error?.type, 'invalid_request_error', JSON.stringify(e400.error));
    });
  }

  test('/v1/messages through the fallback route (OpenAI 500 -> Anthropic)', async () => {
    const msg = await anthropic().messages.create({
      model: 'chat', max_tokens: 128, messages: [{ role: 'user', content: 'hello via route' }],
    });
    assert.equal(msg.type, 'message');
    assert.ok(msg.content[0].text.length > 0);
  });
});
