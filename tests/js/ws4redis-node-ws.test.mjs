// The client in Node with the `ws` package against real servers on loopback: a
// handshake refused with 503, and a server that sends recovery envelopes.
// Needs tests/js/node_modules (`npm ci` in tests/js; tests/test_js_client.py
// runs it).  Run with: node --test tests/js/
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { createRequire } from 'node:module';
import { afterEach, beforeEach, mock, test } from 'node:test';

const require = createRequire(import.meta.url);
const WS4Redis = require('../../django_bridge/static/django_bridge/js/ws4redis.js');
let WebSocket;
try {
  WebSocket = require('ws');
} catch (err) {
  throw new Error(`the ws package is missing: run \`npm ci\` in tests/js (${err.message})`);
}

const RECONNECT = { reconnect_base_ms: 20, reconnect_max_ms: 20 };

// Calls of the client's callbacks, in order, which a test can wait for.
class Recorder {
  constructor() {
    this.calls = [];
    this.waiting = [];
  }

  callbacks(...names) {
    return Object.fromEntries(names.map((name) => [name, (arg) => this.record(name, arg)]));
  }

  record(name, arg) {
    this.calls.push([name, arg]);
    this.waiting = this.waiting.filter((w) => !w.done());
  }

  args(name) {
    return this.calls.filter(([n]) => n === name).map(([, arg]) => arg);
  }

  // Resolves once `name` has been called `count` times in all.
  until(name, count) {
    return new Promise((resolve) => {
      const w = { done: () => this.args(name).length >= count && (resolve(this.args(name)), true) };
      if (!w.done()) this.waiting.push(w);
    });
  }
}

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
