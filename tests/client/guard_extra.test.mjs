// guard_extra.test.mjs - guardrail behaviours beyond the contract's list:
// a request asking for logprobs is refused while output guardrails rewrite
// the agent's answers (logprobs would carry the raw tokens around them),
// and is served for an agent without them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCustomGateway } from './helpers.mjs';

let gw;

before(async () => {
  gw = await startCustomGateway({
    keyAgents: ['guarded', 'plain'],
    yaml: () => [
      'providers: {sim: {type: simulated, simulated: {latency_ms: 0}}}',
      'models: {gpt-4o-mini: {provider: sim}}',
      'guardrails: {output: {pii: redact}}',
      'agents:',
      '  guarded: {owner: o@example.com, models: [gpt-4o-mini]}',
      '  plain: {owner: o@example.com, models: [gpt-4o-mini], guardrails: off}',
    ].join('\n'),
  });
});

after(async () => { if (gw) await gw.close(); });

test('logprobs with output redaction on: 400 naming why; off for another agent: served', async () => {
  const body = { model: 'gpt-4o-mini', logprobs: true, messages: [{ role: 'user', content: 'hi' }] };
  const r = await gw.post('/v1/chat/completions', body, { key: gw.keys.guarded });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.type, 'invalid_request_error');
  assert.equal(r.json.error.code, 'logprobs_with_output_guardrails');
  const ok = await gw.post('/v1/chat/completions', { ...body, logprobs: false }, { key: gw.keys.guarded });
  assert.equal(ok.status, 200, ok.text);
  const plain = await gw.post('/v1/chat/completions', body, { key: gw.keys.plain });
  assert.equal(plain.status, 200, plain.text);
});
