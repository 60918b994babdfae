// HTTP limits set on the command line, against the `limits` server (--max-connections 4
// --max-url-bytes 1024 --max-header-bytes 4096 --header-timeout-ms 2000 --idle-timeout-ms
// 3000, no API key): connections over the limit are closed unanswered, a URL or headers over
// their limits are errors with OpenAI bodies, a client that never finishes its headers and an
// idle keep-alive connection are closed by the server. This file is the only user of that
// server, and its connection-count test runs first (no other connection is open then).
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';

import OpenAI from 'openai';

import { assertErrorShape, client, env, expectApiError, origin, sleep } from './lib/harness.mjs';

const baseURL = env('SPW_LIMITS_URL');

function openSocket() {
  const { hostname, port } = new URL(baseURL);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) }, () => resolve(socket));
    socket.once('error', reject);
  });
}

// Everything the server sends on `socket` until it closes the connection. A server that never
// closes it fails the test by its timeout.
function untilClosed(socket) {
  return new Promise((resolve) => {
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      data += chunk;
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(data));
  });
}

// Sends GET /health on a kept-alive connection and waits for the whole answer.
function health(socket) {
  return new Promise((resolve, reject) => {
    let data = '';
    const onData = (chunk) => {
      data += chunk.toString('latin1');
      if (data.includes('{"status":"ok"}')) {
        socket.off('data', onData);
        resolve(data);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed after ${JSON.stringify(data)}`)));
    socket.write('GET /health HTTP/1.1\r\nHost: spillway\r\n\r\n');
  });
}

test('--max-connections: a connection over the limit is closed without an answer', async () => {
  const open = [];
  for (let i = 0; i < 4; ++i) {
    const socket = await openSocket();
    assert.match(await health(socket), /^HTTP\/1\.1 200 /);
    open.push(socket);
  }
  const extra = await openSocket();
  assert.equal(await untilClosed(extra), '');
  for (const socket of open) socket.destroy();
  // Once the server has seen them go, new connections are served again.
  let status = 0;
  for (let i = 0; i < 200 && status !== 200; ++i) {
    status = await fetch(`${origin(baseURL)}/health`).then(
      (r) => r.text().then(() => r.status),
      () => 0,
    );
    if (status !== 200) await sleep(50);
  }
  assert.equal(status, 200);
});

test('--max-url-bytes and --max-header-bytes: 414 and 431 with OpenAI error bodies', async () => {
  const openai = client({ baseURL });
  let e = await expectApiError(
    () => openai.get(`/models?padding=${'x'.repeat(2000)}`),
    OpenAI.APIError,
    414,
  );
  assertErrorShape(e.error, { type: 'invalid_request_error' });
  const padded = client({ baseURL }, { defaultHeaders: { 'X-Padding': 'y'.repeat(8000) } });
  e = await expectApiError(() => padded.models.list(), OpenAI.APIError, 431);
  assertErrorShape(e.error, { type: 'invalid_request_error' });
  // Within the limits the same calls succeed.
  const page = await client({ baseURL }, { defaultHeaders: { 'X-Padding': 'y'.repeat(500) } })
    .models.list();
  assert.equal(page.data.length, 1);
});

test('--header-timeout-ms: unfinished headers get 408, then the connection closes', async () => {
  const socket = await openSocket();
  const closed = untilClosed(socket);
  // No blank line: the headers never end.
  socket.write('GET /health HTTP/1.1\r\nHost: spillway\r\n');
  assert.match(await closed, /^HTTP\/1\.1 408 /);
});

test('--idle-timeout-ms: an idle keep-alive connection is closed by the server', async () => {
  const socket = await openSocket();
  const closed = untilClosed(socket);
  socket.write('GET /health HTTP/1.1\r\nHost: spillway\r\n\r\n');
  const data = await closed;
  // One kept-alive answer, then nothing until the server closed the idle connection.
  assert.match(data, /^HTTP\/1\.1 200 /);
  assert.doesNotMatch(data, /connection: close/i);
  assert.equal(data.match(/HTTP\/1\.1 /g).length, 1);
});
