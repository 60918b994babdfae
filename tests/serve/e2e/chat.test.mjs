// Chat completions and the models list through the official SDK, against the `main` server.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { client, collectStream, mainServer, MODEL } from './lib/harness.mjs';

const server = mainServer();
const openai = client(server);
const messages = [{ role: 'user', content: 'Tell me a story about Lily and her dog.' }];

function assertUsage(usage) {
  assert.ok(Number.isInteger(usage.prompt_tokens) && usage.prompt_tokens > 0);
  assert.ok(Number.isInteger(usage.completion_tokens) && usage.completion_tokens > 0);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
}

test('models list and retrieve name the served model', async () => {
  const page = await openai.models.list();
  assert.deepEqual(
    page.data.map((m) => m.id),
    [MODEL],
  );
  assert.equal(page.data[0].object, 'model');
  assert.equal(typeof page.data[0].owned_by, 'string');
  assert.ok(Number.isInteger(page.data[0].created));
  const model = await openai.models.retrieve(MODEL);
  assert.equal(model.id, MODEL);
  assert.equal(model.object, 'model');
});

test('non-streaming chat has the OpenAI shape and consistent usage', async () => {
  const r = await openai.chat.completions.create({
    model: MODEL,
    messages,
    max_tokens: 40,
    temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, MODEL);
  assert.ok(Number.isInteger(r.created));
  assert.equal(r.choices.length, 1);
  const [c] = r.choices;
  assert.equal(c.index, 0);
  assert.equal(c.message.role, 'assistant');
  assert.equal(typeof c.message.content, 'string');
  assert.ok(c.message.content.length > 0);
  assert.ok(['stop', 'length'].includes(c.finish_reason));
  assertUsage(r.usage);
  if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 40);
});

test('the streamed chat equals the non-streaming one (temperature 0, same seed)', async () => {
  const params = { model: MODEL, messages, max_tokens: 64, temperature: 0, seed: 7 };
  const whole = await openai.chat.completions.create(params);
  const stream = await openai.chat.completions.create({
    ...params,
    stream: true,
    stream_options: { include_usage: true },
  });
  const s = await collectStream(stream, 'chat');
  assert.equal(s.texts.get(0), whole.choices[0].message.content);
  assert.equal(s.finish.get(0), whole.choices[0].finish_reason);

  // The first chunk carries the role; every chunk has the same id and the chunk object type;
  // the usage chunk comes last, with no choices, and matches the non-streaming usage.
  assert.equal(s.chunks[0].choices[0].delta.role, 'assistant');
  for (const chunk of s.chunks) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.equal(chunk.id, s.chunks[0].id);
    assert.equal(chunk.model, MODEL);
  }
  const last = s.chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, whole.usage);
  for (const chunk of s.chunks.slice(0, -1)) assert.ok(chunk.usage == null);
  // Flushed per token: more than a couple of content chunks for 64 tokens.
  const contentChunks = s.chunks.filter((c) => c.choices[0]?.delta?.content);
  assert.ok(contentChunks.length > 10, `only ${contentChunks.length} content chunks`);
});

test('without include_usage a stream carries no usage chunk', async () => {
  const stream = await openai.chat.completions.create({
    model: MODEL,
    messages,
    max_tokens: 8,
    temperature: 0,
    stream: true,
  });
  const s = await collectStream(stream, 'chat');
  for (const chunk of s.chunks) assert.ok(chunk.usage == null);
  assert.ok(s.finish.has(0));
});

test('sampling with a seed is repeatable, streaming or not', async () => {
  const params = { model: MODEL, messages, max_tokens: 48, temperature: 0.9, seed: 1234 };
  const a = await openai.chat.completions.create(params);
  const b = await openai.chat.completions.create(params);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const s = await collectStream(
    await openai.chat.completions.create({ ...params, stream: true }),
    'chat',
  );
  assert.equal(s.texts.get(0), a.choices[0].message.content);
  // A different seed gives a different story (48 sampled tokens at temperature 0.9).
  const other = await openai.chat.completions.create({ ...params, seed: 4321 });
  assert.notEqual(other.choices[0].message.content, a.choices[0].message.content);
});

test('n = 2 returns two choices; streamed choices equal the non-streaming ones', async () => {
  const params = { model: MODEL, messages, max_tokens: 32, temperature: 1, seed: 99, n: 2 };
  const whole = await openai.chat.completions.create({ ...params, logprobs: true });
  assert.deepEqual(
    whole.choices.map((c) => c.index),
    [0, 1],
  );
  // Choice i samples with seed + i: the two stories differ.
  assert.notEqual(whole.choices[0].message.content, whole.choices[1].message.content);
  // Usage counts the prompt once and the tokens of both choices (an end-of-generation token
  // counts but has no logprobs entry).
  let tokens = 0;
  for (const c of whole.choices) {
    tokens += c.logprobs.content.length + (c.finish_reason === 'stop' ? 1 : 0);
    if (c.finish_reason === 'length') assert.equal(c.logprobs.content.length, 32);
  }
  assert.equal(whole.usage.completion_tokens, tokens);
  const single = await openai.chat.completions.create({ ...params, n: 1 });
  assert.equal(whole.usage.prompt_tokens, single.usage.prompt_tokens);
  assert.equal(single.choices[0].message.content, whole.choices[0].message.content);

  const s = await collectStream(
    await openai.chat.completions.create({
      ...params,
      stream: true,
      stream_options: { include_usage: true },
    }),
    'chat',
  );
  assert.equal(s.texts.get(0), whole.choices[0].message.content);
  assert.equal(s.texts.get(1), whole.choices[1].message.content);
  assert.deepEqual(s.chunks.at(-1).usage, whole.usage);
  // Both choices start with a role chunk.
  for (const i of [0, 1]) {
    const first = s.chunks.find((c) => c.choices[0]?.index === i);
    assert.equal(first.choices[0].delta.role, 'assistant');
  }
  assert.equal(s.finish.get(0), whole.choices[0].finish_reason);
  assert.equal(s.finish.get(1), whole.choices[1].finish_reason);
});

test('at temperature 0 both of n = 2 choices are the greedy text', async () => {
  const r = await openai.chat.completions.create({
    model: MODEL,
    messages,
    max_tokens: 24,
    temperature: 0,
    n: 2,
  });
  assert.equal(r.choices.length, 2);
  assert.equal(r.choices[0].message.content, r.choices[1].message.content);
});

// A word of the greedy text that starts after its first 20 characters, and the text before it.
function splitAtLaterWord(text) {
  const match = /\s([A-Za-z]{3,})\b/g;
  match.lastIndex = 20;
  const m = match.exec(text);
  assert.ok(m, `no word to stop at in ${JSON.stringify(text)}`);
  return { stop: m[1], before: text.slice(0, m.index + 1) };
}

test('a stop string ends the text before its first occurrence', async () => {
  const params = { model: MODEL, messages, max_tokens: 80, temperature: 0 };
  const full = (await openai.chat.completions.create(params)).choices[0].message.content;
  const { stop, before } = splitAtLaterWord(full);
  assert.equal(before.indexOf(stop), -1, 'the chosen word occurs earlier');

  const r = await openai.chat.completions.create({ ...params, stop });
  assert.equal(r.choices[0].message.content, before);
  assert.equal(r.choices[0].finish_reason, 'stop');
  // Several stop strings: the earliest match wins; a string that never occurs does nothing.
  const r2 = await openai.chat.completions.create({ ...params, stop: ['zzzz-never', stop] });
  assert.equal(r2.choices[0].message.content, before);
  const s = await collectStream(
    await openai.chat.completions.create({ ...params, stop: [stop], stream: true }),
    'chat',
  );
  assert.equal(s.texts.get(0), before);
  assert.equal(s.finish.get(0), 'stop');
});

test('chat logprobs are present and consistent with the text (greedy)', async () => {
  const params = {
    model: MODEL,
    messages,
    max_tokens: 30,
    temperature: 0,
    logprobs: true,
    top_logprobs: 3,
  };
  const r = await openai.chat.completions.create(params);
  const c = r.choices[0];
  const content = c.logprobs.content;
  assert.equal(
    content.length + (c.finish_reason === 'stop' ? 1 : 0),
    r.usage.completion_tokens,
  );
  assert.equal(content.map((e) => e.token).join(''), c.message.content);
  for (const e of content) {
    assert.ok(e.logprob <= 0 && Number.isFinite(e.logprob), JSON.stringify(e));
    assert.equal(e.top_logprobs.length, 3);
    for (let k = 1; k < 3; ++k) {
      assert.ok(e.top_logprobs[k - 1].logprob >= e.top_logprobs[k].logprob);
    }
    // Greedy decoding picks the most likely token.
    assert.equal(e.token, e.top_logprobs[0].token);
    assert.ok(Math.abs(e.logprob - e.top_logprobs[0].logprob) < 1e-4, JSON.stringify(e));
    // Probabilities of distinct tokens sum to at most 1.
    const mass = e.top_logprobs.reduce((sum, t) => sum + Math.exp(t.logprob), 0);
    assert.ok(mass <= 1 + 1e-4, `top-3 probability mass ${mass}`);
  }
  // Streamed, each content chunk carries its token's entry: the same list.
  const s = await collectStream(
    await openai.chat.completions.create({ ...params, stream: true }),
    'chat',
  );
  assert.deepEqual(s.logprobs.get(0), content);
  // Without logprobs there are none.
  const plain = await openai.chat.completions.create({
    ...params,
    logprobs: false,
    top_logprobs: undefined,
  });
  assert.ok(plain.choices[0].logprobs == null);
});

test('chat uses the documented fallback template (stories260K has none)', async () => {
  // "<s>User: {content}\n\nAssistant:" — the same tokens as the completions prompt without
  // "<s>" (completions add BOS), so the greedy continuations agree.
  const content = 'Tell me a story about Lily and her dog.';
  const chat = await openai.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content }],
    max_tokens: 40,
    temperature: 0,
  });
  const completion = await openai.completions.create({
    model: MODEL,
    prompt: `User: ${content}\n\nAssistant:`,
    max_tokens: 40,
    temperature: 0,
  });
  assert.equal(chat.usage.prompt_tokens, completion.usage.prompt_tokens);
  assert.equal(chat.choices[0].message.content, completion.choices[0].text);
  // A system message and earlier turns are rendered as "System: …" / "Assistant: …" blocks.
  const history = [
    { role: 'system', content: 'You tell short stories.' },
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: [{ type: 'text', text: 'A story, please.' }] },
  ];
  const chat2 = await openai.chat.completions.create({
    model: MODEL,
    messages: history,
    max_tokens: 20,
    temperature: 0,
  });
  const completion2 = await openai.completions.create({
    model: MODEL,
    prompt:
      'System: You tell short stories.\n\nUser: Hi\n\nAssistant: Hello.\n\n' +
      'User: A story, please.\n\nAssistant:',
    max_tokens: 20,
    temperature: 0,
  });
  assert.equal(chat2.usage.prompt_tokens, completion2.usage.prompt_tokens);
  assert.equal(chat2.choices[0].message.content, completion2.choices[0].text);
});

test('max_completion_tokens bounds the answer like max_tokens', async () => {
  const r = await openai.chat.completions.create({
    model: MODEL,
    messages,
    max_completion_tokens: 5,
    temperature: 0,
  });
  assert.ok(r.usage.completion_tokens <= 5);
  if (r.choices[0].finish_reason === 'length') assert.equal(r.usage.completion_tokens, 5);
});

test('unknown fields are ignored as OpenAI does; `user` is accepted', async () => {
  const params = { model: MODEL, messages, max_tokens: 12, temperature: 0 };
  const plain = await openai.chat.completions.create(params);
  const extra = await openai.chat.completions.create({
    ...params,
    user: 'e2e-user',
    metadata: { purpose: 'test' },
    some_future_field: { nested: [1, 2, { deep: true }] },
  });
  assert.equal(extra.choices[0].message.content, plain.choices[0].message.content);
});

test('top_p and the penalties reach the sampler', async () => {
  const params = { model: MODEL, messages, max_tokens: 48, seed: 11 };
  const greedy = (await openai.chat.completions.create({ ...params, temperature: 0 })).choices[0]
    .message.content;
  // A nucleus this small holds only the most likely token: sampling at temperature 1 is greedy.
  const nucleus = await openai.chat.completions.create({ ...params, temperature: 1, top_p: 1e-6 });
  assert.equal(nucleus.choices[0].message.content, greedy);
  // Greedy text of 48 tokens repeats tokens; penalizing repeats changes it.
  for (const penalty of [{ presence_penalty: 2 }, { frequency_penalty: 2 }]) {
    const r = await openai.chat.completions.create({ ...params, temperature: 0, ...penalty });
    assert.notEqual(r.choices[0].message.content, greedy, JSON.stringify(penalty));
  }
});
