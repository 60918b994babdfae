// 503 while not ready, against the `unready` server (--unready-grace-ms 10000): after SIGTERM
// it answers /ready and new generations with 503 and Retry-After for the grace period, with
// its listener still open, then exits (run.sh checks the exit status). This file must stay
// the only user of that server.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI from 'openai';

import {
  alive,
  assertErrorShape,
  client,
  env,
  expectApiError,
  MODEL,
  origin,
  sleep,
} from './lib/harness.mjs';

test('503: a server that is not ready is an InternalServerError with Retry-After', async () => {
  const baseURL = env('SPW_UNREADY_URL');
  const pid = Number(env('SPW_UNREADY_PID'));
  const openai = client({ baseURL });
  const probe = async () => {
    const res = await fetch(`${origin(baseURL)}/ready`);
    await res.text();
    return res;
  };
  assert.equal((await probe()).status, 200);
  const before = await openai.completions.create({ model: MODEL, prompt: 'Once', max_tokens: 2 });
  assert.equal(before.choices.length, 1);

  process.kill(pid, 'SIGTERM');
  let ready = await probe();
  for (let i = 0; i < 400 && ready.status === 200; ++i) {
    await sleep(25);
    ready = await probe();
  }
  assert.equal(ready.status, 503);
  assert.match(ready.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);

  const messages = [{ role: 'user', content: 'Hi' }];
  for (const call of [
    () => openai.chat.completions.create({ model: MODEL, messages }),
    () => openai.chat.completions.create({ model: MODEL, messages, stream: true }),
    () => openai.completions.create({ model: MODEL, prompt: 'Once' }),
  ]) {
    const e = await expectApiError(call, OpenAI.InternalServerError, 503);
    assertErrorShape(e.error, { type: 'service_unavailable_error', param: null });
    assert.match(e.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
  }
  // The process is alive (it answers probes) and exits by itself after the grace period.
  assert.equal((await fetch(`${origin(baseURL)}/health`)).status, 200);
  for (let i = 0; i < 600 && alive(pid); ++i) await sleep(100);
  assert.ok(!alive(pid), 'the server is still running 60 s after SIGTERM');
});
