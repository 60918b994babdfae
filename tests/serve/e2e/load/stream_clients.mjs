// Load generator for `spillway serve` (used by scripts/loadtest): CLIENTS concurrent clients,
// each sending streaming chat completions back to back for SECONDS. Measures per request the
// time to the first content chunk (TTFT), the end-to-end time and the completion tokens (from
// the usage chunk); checks every event's shape; samples the server's RSS from /proc.
// Dependency-free (fetch + streams of node >= 20).
//
// node stream_clients.mjs --url http://127.0.0.1:PORT/v1 --model NAME [--seconds 30]
//     [--clients 64] [--max-tokens 128] [--pid SERVER_PID] [--json OUT.json]
// Prints a summary; exits 1 if any request failed.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    model: { type: 'string' },
    seconds: { type: 'string', default: '30' },
    clients: { type: 'string', default: '64' },
    'max-tokens': { type: 'string', default: '128' },
    pid: { type: 'string' },
    json: { type: 'string' },
  },
});
if (!args.url || !args.model) {
  console.error('usage: stream_clients.mjs --url URL --model NAME [--seconds S] [--clients C] ...');
  process.exit(2);
}
const seconds = Number(args.seconds);
const clients = Number(args.clients);
const maxTokens = Number(args['max-tokens']);
for (const [name, v] of [['seconds', seconds], ['clients', clients], ['max-tokens', maxTokens]]) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`--${name} must be a positive integer`);
    process.exit(2);
  }
}

const prompts = [
  'Tell me a story about a cat.',
  'Once upon a time there was a boy named Tim. What happened next?',
  'Write a short story about Lily and her red ball.',
  'What did the little bird see in the park?',
  'Tell me about a dog who wanted to fly.',
  'Sam and Sue went to the beach. Tell me about their day.',
];

// --- Server memory. ---
const rss = { samples: [], peak: 0 };
function sampleRss() {
  if (!args.pid) return;
  try {
    const status = readFileSync(`/proc/${args.pid}/status`, 'utf8');
    const kib = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
    if (Number.isFinite(kib)) {
      rss.samples.push({ t: performance.now(), bytes: kib * 1024 });
      rss.peak = Math.max(rss.peak, kib * 1024);
    }
  } catch {
    // The process is gone; the request errors will say why.
  }
}

// --- One streaming request. ---
const results = [];
const errors = new Map();
function fail(kind, detail) {
  errors.set(kind, (errors.get(kind) ?? { count: 0, example: detail }));
  errors.get(kind).count += 1;
}

async function oneRequest(seed) {
  const start = performance.now();
  let ttft = null;
  let usage = null;
  let done = false;
  let text = '';
  const res = await fetch(`${args.url}/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      model: args.model,
      messages: [{ role: 'user', content: prompts[seed % prompts.length] }],
      max_tokens: maxTokens,
      temperature: 0.8,
      seed,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (res.status !== 200) {
    fail(`http ${res.status}`, (await res.text()).slice(0, 200));
    return;
  }
  const decoder = new TextDecoder();
  let buffer = '';
  let chunkId = null;
  for await (const bytes of res.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith('data: ')) {
        fail('bad event framing', event.slice(0, 200));
        continue;
      }
      const data = event.slice(6);
      if (data === '[DONE]') {
        done = true;
        continue;
      }
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        fail('bad event JSON', data.slice(0, 200));
        continue;
      }
      if (chunk.error) {
        fail(`error event ${chunk.error.type}`, chunk.error.message);
        continue;
      }
      if (chunk.object !== 'chat.completion.chunk' || (chunkId && chunk.id !== chunkId)) {
        fail('bad chunk shape', data.slice(0, 200));
      }
      chunkId = chunk.id;
      const content = chunk.choices?.[0]?.delta?.content;
      if (content) {
        if (ttft === null) ttft = performance.now() - start;
        text += content;
      }
      if (chunk.usage) usage = chunk.usage;
    }
  }
  if (!done) return fail('stream ended without [DONE]', text.slice(-100));
  if (!usage) return fail('no usage chunk', text.slice(-100));
  if (buffer.trim() !== '') fail('bytes after [DONE]', buffer.slice(0, 200));
  results.push({
    ttft_ms: ttft,
    e2e_ms: performance.now() - start,
    completion_tokens: usage.completion_tokens,
    prompt_tokens: usage.prompt_tokens,
  });
}

// --- The run. ---
sampleRss();
const baselineRss = rss.peak;
const sampler = setInterval(sampleRss, 100);
const t0 = performance.now();
const deadline = t0 + seconds * 1000;
let started = 0;
await Promise.all(
  Array.from({ length: clients }, async (_, c) => {
    let seed = c * 1_000_003;
    while (performance.now() < deadline) {
      ++started;
      try {
        await oneRequest(seed++);
      } catch (e) {
        fail(`client error ${e?.cause?.code ?? e?.name}`, String(e?.cause ?? e));
      }
    }
  }),
);
const elapsed_s = (performance.now() - t0) / 1000;
clearInterval(sampler);
sampleRss();

function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
const ttfts = results.filter((r) => r.ttft_ms !== null).map((r) => r.ttft_ms);
const e2es = results.map((r) => r.e2e_ms);
const tokens = results.reduce((s, r) => s + r.completion_tokens, 0);
const errorCount = [...errors.values()].reduce((s, e) => s + e.count, 0);
// RSS over the run in quarters: a leak shows as steady growth.
const quarters = [1, 2, 3, 4].map((q) => {
  const limit = t0 + (q * elapsed_s * 1000) / 4;
  const inQuarter = rss.samples.filter((s) => s.t <= limit);
  return inQuarter.length ? inQuarter.at(-1).bytes : null;
});
const summary = {
  seconds: elapsed_s,
  clients,
  max_tokens: maxTokens,
  requests: started,
  completed: results.length,
  errors: errorCount,
  error_kinds: Object.fromEntries(errors),
  requests_per_s: results.length / elapsed_s,
  completion_tokens_per_s: tokens / elapsed_s,
  mean_completion_tokens: results.length ? tokens / results.length : 0,
  ttft_ms: { p50: percentile(ttfts, 50), p90: percentile(ttfts, 90), p99: percentile(ttfts, 99) },
  e2e_ms: { p50: percentile(e2es, 50), p99: percentile(e2es, 99) },
  rss_bytes: { before: baselineRss, peak: rss.peak, quarters },
};

const mib = (b) => (b == null ? 'n/a' : `${(b / 1048576).toFixed(1)} MiB`);
const ms = (v) => (v == null ? 'n/a' : `${v.toFixed(1)} ms`);
console.log(
  `streaming chat: ${clients} clients, ${elapsed_s.toFixed(1)} s, max_tokens ${maxTokens}`,
);
console.log(
  `  requests    ${summary.requests} started, ${summary.completed} completed, ` +
    `${errorCount} errors`,
);
for (const [kind, e] of errors) console.log(`    ${kind}: ${e.count} (e.g. ${e.example})`);
console.log(`  throughput  ${summary.requests_per_s.toFixed(1)} requests/s, ` +
  `${summary.completion_tokens_per_s.toFixed(0)} completion tokens/s ` +
  `(${summary.mean_completion_tokens.toFixed(1)} per request)`);
console.log(`  TTFT        p50 ${ms(summary.ttft_ms.p50)}, p90 ${ms(summary.ttft_ms.p90)}, ` +
  `p99 ${ms(summary.ttft_ms.p99)}`);
console.log(`  end to end  p50 ${ms(summary.e2e_ms.p50)}, p99 ${ms(summary.e2e_ms.p99)}`);
if (args.pid) {
  console.log(`  server RSS  before ${mib(baselineRss)}, peak ${mib(rss.peak)}, ` +
    `by quarter ${quarters.map(mib).join(' / ')}`);
}
if (args.json) writeFileSync(args.json, JSON.stringify(summary, null, 2) + '\n');
process.exit(errorCount === 0 && results.length > 0 ? 0 : 1);
