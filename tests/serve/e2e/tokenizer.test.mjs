// Usage counts equal the tokenizer's counts: the `vocab` server serves a random-weight model
// with the Llama SPM vocabulary, whose tokenization of llama.cpp's test strings is known
// (ggml-vocab-llama-spm.gguf.inp/.out, ids without BOS).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI from 'openai';

import { client, env, expectApiError, vocabTestVectors } from './lib/harness.mjs';

const MODEL = 'vocab-tiny';
const openai = client({ baseURL: env('SPW_VOCAB_URL') });
const vectors = vocabTestVectors(env('SPW_SHARED_DIR'));

test('the test vectors are the 46 strings of llama.cpp', () => {
  assert.equal(vectors.length, 46);
  assert.ok(vectors.some((v) => v.ids.length > 100));
});

test('prompt_tokens of a text prompt is the reference token count plus BOS', async () => {
  const counts = await Promise.all(
    vectors.map(async ({ text }) => {
      const r = await openai.completions.create({
        model: MODEL,
        prompt: text,
        max_tokens: 1,
        temperature: 0,
      });
      return r.usage.prompt_tokens;
    }),
  );
  const mismatches = [];
  vectors.forEach(({ text, ids }, i) => {
    if (counts[i] !== ids.length + 1) {
      mismatches.push(`${JSON.stringify(text)}: ${counts[i]} != ${ids.length} + 1`);
    }
  });
  assert.deepEqual(mismatches, []);
});

test('several text prompts in one request count each prompt once', async () => {
  const some = vectors.filter((v) => v.text.length > 0).slice(0, 8);
  const r = await openai.completions.create({
    model: MODEL,
    prompt: some.map((v) => v.text),
    max_tokens: 2,
    temperature: 0,
    n: 2,
  });
  assert.equal(r.choices.length, 16);
  assert.equal(
    r.usage.prompt_tokens,
    some.reduce((sum, v) => sum + v.ids.length + 1, 0),
  );
});

test('a token-array prompt is taken as it is', async () => {
  // BOS + "▁Once ▁upon ▁a ▁time".
  const r = await openai.completions.create({
    model: MODEL,
    prompt: [1, 9038, 2501, 263, 931],
    max_tokens: 3,
    temperature: 0,
    echo: true,
  });
  assert.equal(r.usage.prompt_tokens, 5);
  assert.equal(r.usage.completion_tokens, 3);
  assert.match(r.choices[0].text, /Once upon a time/);
  // The same prompt as text gives the same count and the same (greedy) continuation.
  const text = await openai.completions.create({
    model: MODEL,
    prompt: 'Once upon a time',
    max_tokens: 3,
    temperature: 0,
  });
  assert.equal(text.usage.prompt_tokens, 5);
  const ids = await openai.completions.create({
    model: MODEL,
    prompt: [1, 9038, 2501, 263, 931],
    max_tokens: 3,
    temperature: 0,
  });
  assert.equal(ids.choices[0].text, text.choices[0].text);
});

test('completion_tokens equals max_tokens when the finish reason is "length"', async () => {
  const r = await openai.completions.create({
    model: MODEL,
    prompt: 'Hello world',
    max_tokens: 9,
    temperature: 0,
    logprobs: 1,
  });
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 9);
  assert.equal(r.choices[0].logprobs.tokens.length, 9);
});

test('a token id outside the vocabulary is a BadRequestError naming it', async () => {
  const e = await expectApiError(
    () => openai.completions.create({ model: MODEL, prompt: [1, 32000], max_tokens: 1 }),
    OpenAI.BadRequestError,
    400,
  );
  assert.equal(e.param, 'prompt[0][1]');
  assert.match(e.message, /32000/);
  await expectApiError(
    () => openai.completions.create({ model: MODEL, prompt: [[1, 2], [1, -5]], max_tokens: 1 }),
    OpenAI.BadRequestError,
    400,
  );
});
