// The client in Node with the `ws` package against servers on loopback that
// refuse or stall the handshake (the real server's part is in
// ws4redis-recovery.test.mjs).
// Needs tests/js/node_modules (`npm ci` in tests/js; tests/test_js_client.py
// runs it).  Run with: node --test tests/js/
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { createRequire } from 'node:module';
import { afterEach, beforeEach, mock, test } from 'node:test';

import { Recorder, WebSocket } from './harness.mjs';

const require = createRequire(import.meta.url);
const WS4Redis = require('../../django_bridge/static/django_bridge/js/ws4redis.js');

const RECONNECT = { reconnect_base_ms: 20, reconnect_max_ms: 20 };

async function listen(server) {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `ws://127.0.0.1:${server.address().port}`;
}

let client = null;
let server = null;

beforeEach(() => {
  mock.method(console, 'info', () => {});
});

afterEach(async () => {
  client?.close();
  client = null;
  if (server !== null) {
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
    server = null;
  }
  mock.restoreAll();
});

test('a handshake refused with 503 does not crash Node, and the client tries again', async () => {
  const upgrades = [];
  server = http.createServer();
  server.on('upgrade', (req, socket) => {
    upgrades.push(req.url);
    socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\nConnection: close\r\n\r\ndraining');
  });
  const base = await listen(server);
  const recorder = new Recorder();
  client = WS4Redis({
    uri: `${base}/ws/foobar?subscribe-broadcast`,
    WebSocket,
    ...RECONNECT,
    ...recorder.callbacks('connecting', 'connected', 'disconnected', 'receive_message'),
  });
  await recorder.until('connecting', 3);
  client.close();
  const names = recorder.calls.map(([name]) => name);
  assert.deepEqual(names.slice(0, 5), ['connecting', 'disconnected', 'connecting', 'disconnected', 'connecting']);
  assert.equal(recorder.args('disconnected')[0].code, 1006);
  assert.ok(upgrades.length >= 2, 'the server saw the retry');
  assert.deepEqual(upgrades.slice(0, 2), ['/ws/foobar?subscribe-broadcast', '/ws/foobar?subscribe-broadcast']);
});

test('with recover, a refused handshake does not crash Node, and every retry opts in', async () => {
  const upgrades = [];
  server = http.createServer();
  server.on('upgrade', (req, socket) => {
    upgrades.push(req.url);
    socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\nConnection: close\r\n\r\ndraining');
  });
  const base = await listen(server);
  const recorder = new Recorder();
  client = WS4Redis({
    uri: `${base}/ws/foobar?subscribe-broadcast`,
    WebSocket,
    recover: true,
    ...RECONNECT,
    ...recorder.callbacks('connecting', 'disconnected'),
  });
  await recorder.until('disconnected', 3);
  client.close();
  assert.deepEqual(upgrades.slice(0, 3), Array(3).fill('/ws/foobar?subscribe-broadcast&recover'));
});

test('close() while the handshake is under way does not crash Node', async () => {
  server = http.createServer();
  const upgraded = new Promise((resolve) => server.on('upgrade', (req, socket) => resolve(socket))); // never answered
  const base = await listen(server);
  const recorder = new Recorder();
  client = WS4Redis({ uri: `${base}/ws/x`, WebSocket, ...recorder.callbacks('disconnected') });
  const socket = await upgraded;
  client.close(); // `ws` aborts the handshake with an 'error'
  const [evt] = await recorder.until('disconnected', 1);
  assert.equal(evt.code, 1006);
  socket.destroy();
});
