// Legacy completions through the official SDK, against the `main` server (stories260K).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { client, collectStream, env, mainServer, MODEL } from './lib/harness.mjs';

const openai = client(mainServer());

// The streaming form of a completion call, with the usage chunk, collected.
async function streamWithUsage(params) {
  return collectStream(
    await openai.completions.create({
      ...params,
      stream: true,
      stream_options: { include_usage: true },
    }),
    'completion',
  );
}
const models = path.join(env('SPW_SHARED_DIR'), 'models');
const prompt = 'Once upon a time, there was a little dog named';

test('greedy completion of the empty prompt reproduces the llama2.c reference', async () => {
  // stories260K_greedy256.txt: 256 greedy tokens after BOS (`spillway generate` prints them
  // followed by a newline).
  const golden = readFileSync(path.join(models, 'stories260K_greedy256.txt'), 'utf8');
  const r = await openai.completions.create({
    model: MODEL,
    prompt: '',
    max_tokens: 256,
    temperature: 0,
  });
  assert.equal(r.object, 'text_completion');
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.model, MODEL);
  assert.equal(r.choices[0].text, golden.replace(/\n$/, ''));
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.prompt_tokens, 1);
  assert.equal(r.usage.completion_tokens, 256);
  assert.equal(r.usage.total_tokens, 257);
});

test('a token-array prompt continues the reference exactly', async () => {
  // The reference ids (BOS first): prompting with the first 65 gives the next 32.
  const ids = readFileSync(path.join(models, 'stories260K_greedy256_ids.txt'), 'utf8')
    .trim()
    .split(/\s+/)
    .map(Number);
  const r = await openai.completions.create({
    model: MODEL,
    prompt: ids.slice(0, 65),
    max_tokens: 32,
    temperature: 0,
    logprobs: 0,
  });
  assert.equal(r.usage.prompt_tokens, 65);
  assert.equal(r.usage.completion_tokens, 32);
  // The logprobs tokens are the pieces of the reference ids 65..96, in order; their text is the
  // completion.
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, 32);
  assert.equal(lp.tokens.join(''), r.choices[0].text);
  const golden = readFileSync(path.join(models, 'stories260K_greedy256.txt'), 'utf8');
  assert.ok(golden.includes(r.choices[0].text), JSON.stringify(r.choices[0].text));
});

test('the streamed completion equals the non-streaming one (temperature 0, seed)', async () => {
  const params = { model: MODEL, prompt, max_tokens: 48, temperature: 0, seed: 3 };
  const whole = await openai.completions.create(params);
  const s = await streamWithUsage(params);
  assert.equal(s.texts.get(0), whole.choices[0].text);
  assert.equal(s.finish.get(0), whole.choices[0].finish_reason);
  for (const chunk of s.chunks) {
    assert.equal(chunk.object, 'text_completion');
    assert.equal(chunk.id, s.chunks[0].id);
  }
  assert.deepEqual(s.chunks.at(-1).usage, whole.usage);
  assert.deepEqual(s.chunks.at(-1).choices, []);
});

test('finish_reason "length" means exactly max_tokens completion tokens', async () => {
  for (const max_tokens of [1, 7, 20]) {
    const r = await openai.completions.create({ model: MODEL, prompt, max_tokens, temperature: 0 });
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, max_tokens);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + max_tokens);
  }
});

test('several prompts with n = 2: choices in prompt-major order', async () => {
  const prompts = [prompt, 'Lily and Ben went to the park.'];
  const params = { model: MODEL, max_tokens: 16, temperature: 0 };
  const r = await openai.completions.create({ ...params, prompt: prompts, n: 2 });
  assert.deepEqual(
    r.choices.map((c) => c.index),
    [0, 1, 2, 3],
  );
  const one = await openai.completions.create({ ...params, prompt: prompts[0] });
  const two = await openai.completions.create({ ...params, prompt: prompts[1] });
  assert.equal(r.choices[0].text, one.choices[0].text);
  assert.equal(r.choices[1].text, one.choices[0].text);
  assert.equal(r.choices[2].text, two.choices[0].text);
  assert.equal(r.choices[3].text, two.choices[0].text);
  // Each prompt counts once; each choice's tokens count.
  assert.equal(r.usage.prompt_tokens, one.usage.prompt_tokens + two.usage.prompt_tokens);
  assert.equal(
    r.usage.completion_tokens,
    2 * (one.usage.completion_tokens + two.usage.completion_tokens),
  );
  const s = await collectStream(
    await openai.completions.create({ ...params, prompt: prompts, n: 2, stream: true }),
    'completion',
  );
  for (let i = 0; i < 4; ++i) assert.equal(s.texts.get(i), r.choices[i].text);
});

test('echo puts the prompt before the completion', async () => {
  const params = { model: MODEL, prompt, max_tokens: 12, temperature: 0 };
  const plain = await openai.completions.create(params);
  const echoed = await openai.completions.create({ ...params, echo: true });
  assert.equal(echoed.choices[0].text, prompt + plain.choices[0].text);
  const s = await collectStream(
    await openai.completions.create({ ...params, echo: true, stream: true }),
    'completion',
  );
  assert.equal(s.texts.get(0), prompt + plain.choices[0].text);
});

test('echo with max_tokens 0 returns the prompt alone, streamed when asked', async () => {
  const params = { model: MODEL, prompt, max_tokens: 0, echo: true, temperature: 0 };
  const plain = await openai.completions.create({ ...params, max_tokens: 1, echo: false });
  const r = await openai.completions.create(params);
  assert.equal(r.choices[0].text, prompt);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.prompt_tokens, plain.usage.prompt_tokens);
  assert.equal(r.usage.completion_tokens, 0);
  const s = await streamWithUsage(params);
  assert.equal(s.texts.get(0), prompt);
  assert.equal(s.finish.get(0), 'length');
  assert.deepEqual(s.chunks.at(-1).usage, r.usage);
});

test('completion logprobs: tokens, token_logprobs, top_logprobs, text_offset agree', async () => {
  const params = { model: MODEL, prompt, max_tokens: 24, temperature: 0, logprobs: 3 };
  const r = await openai.completions.create(params);
  const c = r.choices[0];
  const lp = c.logprobs;
  assert.equal(lp.tokens.length, 24);
  assert.equal(lp.token_logprobs.length, 24);
  assert.equal(lp.top_logprobs.length, 24);
  assert.equal(lp.text_offset.length, 24);
  assert.equal(lp.tokens.join(''), c.text);
  let offset = lp.text_offset[0];
  for (let t = 0; t < 24; ++t) {
    assert.equal(lp.text_offset[t], offset);
    offset += lp.tokens[t].length;
    const top = Object.entries(lp.top_logprobs[t]).sort((a, b) => b[1] - a[1]);
    assert.ok(top.length >= 1 && top.length <= 3, JSON.stringify(lp.top_logprobs[t]));
    assert.ok(lp.token_logprobs[t] <= 0);
    // Greedy: the chosen token is the most likely one.
    assert.equal(top[0][0], lp.tokens[t]);
    assert.ok(Math.abs(top[0][1] - lp.token_logprobs[t]) < 1e-4);
  }
  const s = await collectStream(
    await openai.completions.create({ ...params, stream: true }),
    'completion',
  );
  assert.deepEqual(
    s.logprobs.get(0).map((e) => [e.token, e.logprob]),
    lp.tokens.map((t, i) => [t, lp.token_logprobs[i]]),
  );
});

// The legacy logprobs object as [token, logprob, top_logprobs] entries.
function entries(lp) {
  return lp.tokens.map((t, i) => [t, lp.token_logprobs[i], lp.top_logprobs[i]]);
}

test('echo with logprobs 0 and max_tokens 0 scores every prompt token', async () => {
  const params = { model: MODEL, prompt, max_tokens: 0, echo: true, logprobs: 0 };
  const r = await openai.completions.create(params);
  const c = r.choices[0];
  assert.equal(c.text, prompt);
  assert.equal(c.finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 0);
  const lp = c.logprobs;
  // One entry per prompt token (BOS included); the first has no context, so null.
  assert.equal(lp.tokens.length, r.usage.prompt_tokens);
  assert.ok(lp.tokens.length > 5);
  assert.equal(lp.token_logprobs.length, lp.tokens.length);
  assert.equal(lp.top_logprobs.length, lp.tokens.length);
  assert.equal(lp.text_offset.length, lp.tokens.length);
  assert.equal(lp.token_logprobs[0], null);
  assert.equal(lp.top_logprobs[0], null);
  for (let t = 1; t < lp.tokens.length; ++t) {
    assert.equal(typeof lp.token_logprobs[t], 'number');
    assert.ok(lp.token_logprobs[t] < 0, `${t}: ${lp.token_logprobs[t]}`);
  }
  assert.equal(lp.tokens.join(''), prompt);
  let offset = 0;
  for (let t = 0; t < lp.tokens.length; ++t) {
    assert.equal(lp.text_offset[t], offset);
    offset += lp.tokens[t].length;
  }
  // Streaming gives the same entries, with the echoed prompt's chunk.
  const s = await collectStream(
    await openai.completions.create({ ...params, stream: true }),
    'completion',
  );
  assert.equal(s.texts.get(0), prompt);
  assert.equal(s.finish.get(0), 'length');
  const streamed = s.logprobs.get(0);
  assert.deepEqual(
    streamed.map((e) => [e.token, e.top]),
    entries(lp).map(([token, , top]) => [token, top]),
  );
  streamed.forEach((e, t) => {
    const want = lp.token_logprobs[t];
    assert.ok(e.logprob === want || Math.abs(e.logprob - want) < 1e-4, `${t}`);
  });
});

test('echo with logprobs 2 and n 2: prompt entries, then the generated ones', async () => {
  const base = { model: MODEL, prompt, temperature: 0 };
  const scored = (
    await openai.completions.create({ ...base, max_tokens: 0, echo: true, logprobs: 2 })
  ).choices[0].logprobs;
  const plain = await openai.completions.create({ ...base, max_tokens: 6, logprobs: 2 });
  const params = { ...base, max_tokens: 6, echo: true, logprobs: 2, n: 2 };
  const r = await openai.completions.create(params);
  assert.equal(r.choices.length, 2);
  const near = (a, b) => a === b || Math.abs(a - b) < 1e-4;
  for (const c of r.choices) {
    assert.equal(c.text, prompt + plain.choices[0].text);
    const got = entries(c.logprobs);
    const want = [...entries(scored), ...entries(plain.choices[0].logprobs)];
    assert.equal(got.length, want.length);
    assert.equal(c.logprobs.tokens.join(''), c.text);
    for (let t = 0; t < got.length; ++t) {
      assert.equal(got[t][0], want[t][0]);
      assert.ok(near(got[t][1], want[t][1]), `${t}: ${got[t][1]} vs ${want[t][1]}`);
      if (t === 0) {
        assert.equal(got[t][2], null);
        continue;
      }
      const top = Object.entries(got[t][2]);
      assert.ok(top.length >= 1 && top.length <= 2, JSON.stringify(got[t][2]));
      for (const [token, logprob] of top) assert.ok(near(logprob, want[t][2][token]));
    }
  }
  const s = await collectStream(
    await openai.completions.create({ ...params, stream: true }),
    'completion',
  );
  for (let i = 0; i < 2; ++i) {
    assert.equal(s.texts.get(i), r.choices[i].text);
    assert.deepEqual(
      s.logprobs.get(i).map((e) => e.token),
      r.choices[i].logprobs.tokens,
    );
    s.logprobs.get(i).forEach((e, t) => {
      assert.ok(near(e.logprob, r.choices[i].logprobs.token_logprobs[t]), `${i} ${t}`);
    });
  }
});

test('stop strings end a completion before their first occurrence', async () => {
  const params = { model: MODEL, prompt, max_tokens: 60, temperature: 0 };
  const full = (await openai.completions.create(params)).choices[0].text;
  const m = /\s([A-Za-z]{3,})\b/g;
  m.lastIndex = 15;
  const word = m.exec(full);
  assert.ok(word, JSON.stringify(full));
  const before = full.slice(0, word.index + 1);
  assert.equal(before.indexOf(word[1]), -1);
  const r = await openai.completions.create({ ...params, stop: word[1] });
  assert.equal(r.choices[0].text, before);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await collectStream(
    await openai.completions.create({ ...params, stop: [word[1]], stream: true }),
    'completion',
  );
  assert.equal(s.texts.get(0), before);
  assert.equal(s.finish.get(0), 'stop');
});
