// Every error class of the API surfacing as the SDK's typed error (and, where the SDK cannot
// produce the request, as the documented status and body over plain fetch). `main` server.
// 429 is in queue.test.mjs, 503 (not ready, while shutting down) in unready.test.mjs, 414 and
// 431 (URL and header limits) in limits.test.mjs.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI from 'openai';

import {
  assertErrorShape,
  client,
  expectApiError,
  mainServer,
  MODEL,
  origin,
} from './lib/harness.mjs';

const server = mainServer();
const openai = client(server);
const user = [{ role: 'user', content: 'Hi' }];
const chat = (params) =>
  openai.chat.completions.create({ model: MODEL, messages: user, ...params });
const complete = (params) => openai.completions.create({ model: MODEL, prompt: 'Hi', ...params });

async function post(pathname, body, headers = {}) {
  const res = await fetch(`${server.baseURL}${pathname}`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Authorization: `Bearer ${server.apiKey}`,
      ...headers,
    },
    body,
  });
  const text = await res.text();
  return { res, json: JSON.parse(text) };
}

test('401: a wrong API key is an AuthenticationError on every /v1 route', async () => {
  const wrong = client({ ...server, apiKey: 'not-the-key' });
  for (const call of [
    () => wrong.chat.completions.create({ model: MODEL, messages: user }),
    () => wrong.completions.create({ model: MODEL, prompt: 'Hi' }),
    () => wrong.models.list(),
    () => wrong.chat.completions.create({ model: MODEL, messages: user, stream: true }),
  ]) {
    const e = await expectApiError(call, OpenAI.AuthenticationError, 401);
    assertErrorShape(e.error, { type: 'authentication_error' });
    assert.equal(e.headers.get('www-authenticate'), 'Bearer');
  }
  // No Authorization header at all; probes stay open.
  const res = await fetch(`${server.baseURL}/models`);
  assert.equal(res.status, 401);
  assertErrorShape((await res.json()).error, { type: 'authentication_error' });
  assert.equal((await fetch(`${origin(server.baseURL)}/health`)).status, 200);
  assert.equal((await fetch(`${origin(server.baseURL)}/ready`)).status, 200);
});

test('404: an unknown model is a NotFoundError with param "model"', async () => {
  for (const call of [
    () => chat({ model: 'gpt-4o' }),
    () => complete({ model: 'gpt-4o' }),
    () => chat({ model: 'gpt-4o', stream: true }),
    () => openai.models.retrieve('gpt-4o'),
  ]) {
    const e = await expectApiError(call, OpenAI.NotFoundError, 404);
    assertErrorShape(e.error, { param: 'model' });
    assert.match(e.message, /gpt-4o/);
  }
});

test('404: an unknown route answers with an OpenAI error body', async () => {
  const e = await expectApiError(
    () => openai.post('/embeddings', { body: { model: MODEL, input: 'x' } }),
    OpenAI.NotFoundError,
    404,
  );
  assertErrorShape(e.error);
});

test('400: invalid values are BadRequestErrors naming the parameter', async () => {
  const cases = [
    [() => chat({ temperature: -1 }), 'temperature'],
    [() => chat({ temperature: 3 }), 'temperature'],
    [() => chat({ top_p: 1.5 }), 'top_p'],
    [() => chat({ n: 0 }), 'n'],
    [() => chat({ max_tokens: 0 }), 'max_tokens'],
    [() => chat({ max_completion_tokens: -3 }), 'max_completion_tokens'],
    [() => chat({ presence_penalty: 5 }), 'presence_penalty'],
    [() => chat({ top_logprobs: 50, logprobs: true }), 'top_logprobs'],
    [() => chat({ stop: ['a', 'b', 'c', 'd', 'e'] }), 'stop'],
    [() => chat({ messages: 'Hi' }), 'messages'],
    [() => chat({ messages: [] }), 'messages'],
    [() => chat({ messages: [{ role: 'wizard', content: 'Hi' }] }), 'messages[0].role'],
    [() => chat({ temperature: 'hot' }), 'temperature'],
    [() => chat({ stream: true, temperature: -1 }), 'temperature'],
    [() => complete({ max_tokens: -1 }), 'max_tokens'],
    [() => complete({ logprobs: 6 }), 'logprobs'],
    [() => complete({ prompt: 42 }), 'prompt'],
  ];
  for (const [call, param] of cases) {
    const e = await expectApiError(call, OpenAI.BadRequestError, 400);
    assertErrorShape(e.error, { type: 'invalid_request_error' });
    assert.equal(e.param, param, `${e.message} (expected param ${param})`);
  }
});

test('400: malformed JSON is a BadRequestError', async () => {
  // An SDK client whose transport garbles the body.
  const garbling = client(server, {
    fetch: (url, init) => fetch(url, { ...init, body: '{"model": "stories260K", "messages": [' }),
  });
  const e = await expectApiError(
    () => garbling.chat.completions.create({ model: MODEL, messages: user }),
    OpenAI.BadRequestError,
    400,
  );
  assertErrorShape(e.error, { type: 'invalid_request_error' });
  const bodies = ['', 'null', '[]', '{"model": "stories260K", "prompt": "x",}', '\u00ff\u00fe'];
  for (const body of bodies) {
    const { res, json } = await post('/completions', body);
    assert.equal(res.status, 400, body);
    assertErrorShape(json.error, { type: 'invalid_request_error' });
  }
});

test('400: a prompt plus max_tokens beyond the context is a BadRequestError', async () => {
  // stories260K has a context of 2048 tokens.
  let e = await expectApiError(
    () => complete({ max_tokens: 5000 }),
    OpenAI.BadRequestError,
    400,
  );
  assertErrorShape(e.error, { type: 'invalid_request_error' });
  const long = 'Lily went to the park with her mom. '.repeat(400);
  e = await expectApiError(
    () => complete({ prompt: long, max_tokens: 1 }),
    OpenAI.BadRequestError,
    400,
  );
  assert.equal(e.param, 'prompt');
  e = await expectApiError(
    () => chat({ messages: [{ role: 'user', content: long }], max_tokens: 1 }),
    OpenAI.BadRequestError,
    400,
  );
  assert.equal(e.param, 'messages');
  // Without max_tokens a chat gets the rest of the context, but there is none left.
  await expectApiError(
    () => chat({ messages: [{ role: 'user', content: long }] }),
    OpenAI.BadRequestError,
    400,
  );
  // The same with streaming: the error comes before the stream starts.
  await expectApiError(
    () => chat({ messages: [{ role: 'user', content: long }], max_tokens: 1, stream: true }),
    OpenAI.BadRequestError,
    400,
  );
});

test('413: a body over the server limit (256 KiB here) is an APIError, status 413', async () => {
  const big = 'x'.repeat(300 * 1024);
  const e = await expectApiError(
    () => chat({ messages: [{ role: 'user', content: big }] }),
    OpenAI.APIError,
    413,
  );
  assertErrorShape(e.error, { type: 'invalid_request_error' });
  const { res, json } = await post(
    '/chat/completions',
    JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: big }] }),
  );
  assert.equal(res.status, 413);
  assertErrorShape(json.error);
  // The server still answers afterwards.
  assert.equal((await chat({ max_tokens: 1 })).choices.length, 1);
});

test('405: a wrong method on a known route, with Allow', async () => {
  const res = await fetch(`${server.baseURL}/chat/completions`, {
    headers: { Authorization: `Bearer ${server.apiKey}` },
  });
  assert.equal(res.status, 405);
  assert.match(res.headers.get('allow') ?? '', /POST/);
  assertErrorShape((await res.json()).error);
  const del = await fetch(`${server.baseURL}/models`, {
    method: 'DELETE',
    headers: { Authorization: `Bearer ${server.apiKey}` },
  });
  assert.equal(del.status, 405);
  // The SDK surfaces it as an APIError with that status.
  await expectApiError(() => openai.get('/completions'), OpenAI.APIError, 405);
});

test('400: echo with logprobs beyond the limit names logprobs', async () => {
  // Echo with logprobs scores the prompt (completions.test.mjs); the usual bounds still hold.
  for (const max_tokens of [0, 2]) {
    const e = await expectApiError(
      () => complete({ echo: true, logprobs: 6, max_tokens }),
      OpenAI.BadRequestError,
      400,
    );
    assertErrorShape(e.error, { param: 'logprobs' });
  }
});
