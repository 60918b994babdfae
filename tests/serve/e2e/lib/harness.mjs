// Shared helpers of the `spillway serve` end-to-end tests. run.sh starts the servers and passes
// their addresses in the environment (see run.sh); the tests only talk to them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import OpenAI from 'openai';

// A required environment variable (run.sh sets all of them).
export function env(name) {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run these tests through run.sh`);
  return value;
}

export const MODEL = 'stories260K';

// The server the SDK is pointed at: base URL (…/v1), API key and model name.
export function mainServer() {
  return { baseURL: env('SPW_MAIN_URL'), apiKey: env('SPW_API_KEY'), model: MODEL };
}

// An SDK client without retries (a retried 429 or 5xx would hide the status under test) and
// with a generous timeout (the sanitizer build is several times slower).
export function client(server, options = {}) {
  return new OpenAI({
    baseURL: server.baseURL,
    apiKey: server.apiKey ?? 'unused',
    maxRetries: 0,
    timeout: 120_000,
    ...options,
  });
}

// The origin (scheme, host, port) of a …/v1 base URL, for /health, /ready and /metrics.
export function origin(baseURL) {
  return new URL(baseURL).origin;
}

// Runs `fn` and returns the error it throws, checking that it is an instance of `type` with
// HTTP status `status`.
export async function expectApiError(fn, type, status) {
  let error;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  assert.ok(error, `expected ${type.name} (${status}), but the call succeeded`);
  assert.ok(
    error instanceof type,
    `expected ${type.name}, got ${error?.constructor?.name}: ${error?.message}`,
  );
  assert.equal(error.status, status, error.message);
  return error;
}

// Checks the OpenAI error body {"error":{"message","type","param","code"}} of an SDK error or of
// a parsed response body.
export function assertErrorShape(error, { type, param } = {}) {
  assert.equal(typeof error.message, 'string');
  assert.ok(error.message.length > 0);
  assert.ok('type' in error && 'param' in error && 'code' in error, JSON.stringify(error));
  if (type !== undefined) assert.equal(error.type, type);
  if (param !== undefined) assert.equal(error.param, param);
}

// Reads an SDK stream to its end: the chunks in order, and per choice index the concatenated
// text (chat deltas or completion text), the finish reasons and the logprobs entries.
export async function collectStream(stream, kind) {
  const chunks = [];
  const texts = new Map();
  const finish = new Map();
  const logprobs = new Map();
  for await (const chunk of stream) {
    chunks.push(chunk);
    for (const choice of chunk.choices ?? []) {
      const i = choice.index;
      if (!texts.has(i)) texts.set(i, '');
      const piece = kind === 'chat' ? choice.delta?.content : choice.text;
      if (piece) texts.set(i, texts.get(i) + piece);
      if (choice.finish_reason) {
        assert.ok(!finish.has(i), `choice ${i} has two finish reasons`);
        finish.set(i, choice.finish_reason);
      }
      if (choice.logprobs) {
        if (!logprobs.has(i)) logprobs.set(i, []);
        if (kind === 'chat') {
          logprobs.get(i).push(...(choice.logprobs.content ?? []));
        } else {
          const lp = choice.logprobs;
          for (let t = 0; t < lp.tokens.length; ++t) {
            logprobs.get(i).push({
              token: lp.tokens[t],
              logprob: lp.token_logprobs[t],
              top: lp.top_logprobs?.[t],
            });
          }
        }
      }
    }
  }
  return { chunks, texts, finish, logprobs };
}

// The llama.cpp tokenizer test vectors of ../shared/models (as test-tokenizer-0 splits them):
// [{text, ids}], ids without BOS.
export function vocabTestVectors(sharedDir) {
  const base = path.join(sharedDir, 'models', 'ggml-vocab-llama-spm.gguf');
  const inputs = readFileSync(`${base}.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
  // The file ends with a separator line; the text after it is not a test.
  inputs.pop();
  const outputs = readFileSync(`${base}.out`, 'utf8').split('\n');
  if (outputs.at(-1) === '') outputs.pop();
  assert.equal(inputs.length, outputs.length, 'the .inp and .out files disagree');
  return inputs.map((text, i) => ({
    text,
    ids: outputs[i].trim() === '' ? [] : outputs[i].trim().split(/\s+/).map(Number),
  }));
}

// The value of a Prometheus series (first sample whose name and labels start with `prefix`),
// or undefined.
export async function metric(baseURL, prefix) {
  const res = await fetch(`${origin(baseURL)}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  for (const line of text.split('\n')) {
    if (line.startsWith(prefix) && (line[prefix.length] === ' ' || line[prefix.length] === '{')) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return undefined;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// True while process `pid` exists (signal 0 probes without signalling).
export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
