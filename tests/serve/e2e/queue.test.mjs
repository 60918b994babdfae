// Admission limits and cancellation, against the `queue` server (--max-running 1
// --max-waiting 1, no API key).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI from 'openai';

import { client, env, metric, MODEL, sleep } from './lib/harness.mjs';

const baseURL = env('SPW_QUEUE_URL');
const openai = client({ baseURL });
const messages = [{ role: 'user', content: 'Tell me a long story.' }];

// Waits until the engine is idle (no running or waiting request).
async function idle() {
  for (;;) {
    const running = await metric(baseURL, 'spillway:num_requests_running');
    const waiting = await metric(baseURL, 'spillway:num_requests_waiting');
    assert.ok(running !== undefined && waiting !== undefined, 'the gauges are missing');
    if (running === 0 && waiting === 0) return;
    await sleep(20);
  }
}

test('429: a full queue is a RateLimitError with Retry-After; admitted ones complete', async () => {
  await idle();
  // One request runs and one waits; the others find the queue full. Each admitted request
  // generates up to 400 tokens, long enough for all requests to arrive meanwhile.
  const results = await Promise.allSettled(
    Array.from({ length: 12 }, (_, i) =>
      openai.chat.completions.create({
        model: MODEL,
        messages,
        max_tokens: 400,
        temperature: 1,
        seed: i,
        stream: i % 2 === 0,
      }).then(async (r) => {
        if (!r.choices) {
          let text = '';
          for await (const chunk of r) text += chunk.choices[0]?.delta?.content ?? '';
          return text;
        }
        return r.choices[0].message.content;
      }),
    ),
  );
  const ok = results.filter((r) => r.status === 'fulfilled');
  const rejected = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
  for (const e of rejected) {
    assert.ok(e instanceof OpenAI.RateLimitError, `${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.status, 429);
    assert.equal(e.error.type, 'rate_limit_error');
    assert.match(e.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
  }
  assert.ok(rejected.length >= 1, 'no request was refused');
  assert.ok(ok.length >= 2, `only ${ok.length} request(s) admitted`);
  for (const r of ok) assert.ok(r.value.length > 0);
  await idle();
  const after = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 4 });
  assert.equal(after.choices.length, 1);
});

test('a client that disconnects cancels its generation', async () => {
  await idle();
  const cancelled = 'spillway:request_success_total{finished_reason="cancelled"}';
  const before = await metric(baseURL, 'spillway:generation_tokens_total');
  const cancelledBefore = await metric(baseURL, cancelled);
  const controller = new AbortController();
  const stream = await openai.chat.completions.create(
    { model: MODEL, messages, max_tokens: 2000, temperature: 1, seed: 5, stream: true },
    { signal: controller.signal },
  );
  let chunks = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content && ++chunks === 3) {
      controller.abort();
      break;
    }
  }
  assert.equal(chunks, 3);
  // The server notices the closed connection, cancels, and frees the running slot well before
  // 2000 tokens.
  await idle();
  const generated = (await metric(baseURL, 'spillway:generation_tokens_total')) - before;
  assert.ok(generated < 2000, `${generated} tokens generated after the client left`);
  assert.equal(await metric(baseURL, cancelled), cancelledBefore + 1);
  const next = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 4 });
  assert.equal(next.choices.length, 1);
});
