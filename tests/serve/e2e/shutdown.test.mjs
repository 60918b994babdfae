// Graceful shutdown. SIGTERM while a stream is in flight: on the `shutdown` server
// (--shutdown-timeout-ms 60000) the stream finishes and the listener closes; on the `cancel`
// server (--shutdown-timeout-ms 0) the stream ends with an error event, which the SDK raises.
// run.sh then checks that both exit 0. This file must stay the only user of those servers.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI from 'openai';

import { alive, client, collectStream, env, MODEL, origin } from './lib/harness.mjs';

async function waitForExit(pid) {
  for (let i = 0; i < 600 && alive(pid); ++i) await new Promise((r) => setTimeout(r, 100));
  assert.ok(!alive(pid), 'the server is still running 60 s after SIGTERM');
}

test('SIGTERM: the in-flight stream completes, new connections are refused', async () => {
  const baseURL = env('SPW_SHUTDOWN_URL');
  const pid = Number(env('SPW_SHUTDOWN_PID'));
  const openai = client({ baseURL });
  assert.equal((await fetch(`${origin(baseURL)}/ready`)).status, 200);
  const params = { model: MODEL, prompt: '', max_tokens: 400, temperature: 0 };
  const reference = await openai.completions.create(params);
  const stream = await openai.completions.create({
    ...params,
    stream: true,
    stream_options: { include_usage: true },
  });
  let signalled = false;
  const wrapped = (async function* () {
    for await (const chunk of stream) {
      if (!signalled && chunk.choices[0]?.text) {
        signalled = true;
        process.kill(pid, 'SIGTERM');
      }
      yield chunk;
    }
  })();
  const s = await collectStream(wrapped, 'completion');
  assert.ok(signalled);
  assert.equal(s.texts.get(0), reference.choices[0].text);
  assert.equal(s.finish.get(0), reference.choices[0].finish_reason);
  assert.deepEqual(s.chunks.at(-1).usage, reference.usage);
  // The listener is closed (or the process already gone): a new request cannot connect.
  await assert.rejects(
    () => openai.completions.create({ ...params, max_tokens: 1 }),
    OpenAI.APIConnectionError,
  );
  // The process exits by itself (run.sh checks the exit status).
  await waitForExit(pid);
});

test('SIGTERM with no time to finish: the stream ends with an error the SDK raises', async () => {
  const baseURL = env('SPW_CANCEL_URL');
  const pid = Number(env('SPW_CANCEL_PID'));
  const openai = client({ baseURL });
  const stream = await openai.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'Tell me a long story.' }],
    max_tokens: 1500,
    stream: true,
  });
  let chunks = 0;
  await assert.rejects(async () => {
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content && ++chunks === 1) process.kill(pid, 'SIGTERM');
      assert.ok(chunk.choices[0]?.finish_reason == null, 'the stream finished normally');
    }
  }, (error) => {
    assert.ok(error instanceof OpenAI.APIError, `${error?.constructor?.name}: ${error?.message}`);
    assert.equal(typeof error.error?.message, 'string');
    assert.equal(typeof error.error?.type, 'string');
    return true;
  });
  assert.ok(chunks >= 1);
  await waitForExit(pid);
});
