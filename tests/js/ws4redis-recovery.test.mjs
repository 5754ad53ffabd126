// The client's `recover` option against the real Python server (history on),
// a private redis-server, and the `ws` package: unwrapping, positions across
// reconnects, a server restart, a trimmed history, the heartbeat.
// Needs tests/js/node_modules (`npm ci` in tests/js), a redis-server and a
// Python with ws4redis_tornado installed (see harness.mjs); tests/test_js_client.py
// runs it.  Run with: node --test tests/js/
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import { Publisher, Recorder, Ws4RedisServer, realServers, recordingWebSocket, waitUntil } from './harness.mjs';

const require = createRequire(import.meta.url);
const WS4Redis = require('../../django_bridge/static/django_bridge/js/ws4redis.js');

const RECONNECT = { reconnect_base_ms: 20, reconnect_max_ms: 100 };
const CALLBACKS = ['connecting', 'connected', 'receive_message', 'disconnected', 'not_recovered'];
const numbers = (from, to) => Array.from({ length: to - from + 1 }, (_, k) => String(from + k));

const servers = realServers('recovery');
const facility = () => servers.facility();

async function startServer(...args) {
  const server = await Ws4RedisServer.start(servers.redis.url, ...args);
  servers.defer(() => server.kill());
  return server;
}

async function openPublisher(server, name) {
  const publisher = await Publisher.open(server, name);
  servers.defer(() => publisher.close());
  return publisher;
}

async function publishAll(publisher, messages) {
  for (const message of messages) await publisher.publish(message);
}

// A client of `name`'s broadcast channel on `server`, on a recording `ws` WebSocket.
function connect(server, name, options = {}) {
  const recorder = new Recorder();
  const { RecordingWebSocket, sockets } = recordingWebSocket();
  const client = WS4Redis({
    uri: `${server.url}/ws/${name}?subscribe-broadcast`,
    WebSocket: RecordingWebSocket,
    ...RECONNECT,
    ...recorder.callbacks(...CALLBACKS),
    ...options,
  });
  servers.defer(() => client.close());
  return { client, recorder, sockets };
}

// A frame as the spec lays it out, read here independently of the client:
// {report} for the recovery report, else {header, payload}.
function parseFrame(data) {
  if (typeof data === 'string') {
    const at = data.indexOf('\n');
    if (at < 0) return { report: JSON.parse(data).recovery };
    return { header: JSON.parse(data.slice(0, at)), payload: data.slice(at + 1) };
  }
  const bytes = Buffer.from(data);
  const at = bytes.indexOf(0x0a);
  return { header: JSON.parse(bytes.subarray(0, at).toString('utf8')), payload: bytes.subarray(at + 1) };
}

const isReport = (data) => typeof data === 'string' && !data.includes('\n') && 'recovery' in JSON.parse(data);

// The recovery report `socket` received; waits for it.
async function reportOf(socket) {
  const frame = await waitUntil(() => socket.frames.find(isReport), `the recovery report on ${socket.url}`);
  return parseFrame(frame).report;
}

const recoverParameter = (url) => new URL(url).searchParams.get('recover');

test('text and binary messages arrive unwrapped: what a client without recover gets', async () => {
  const server = await startServer('--history-size', '100');
  const name = facility();
  const recovering = connect(server, name, { recover: true });
  const plain = connect(server, name);
  await recovering.recorder.until('connected', 1);
  await plain.recorder.until('connected', 1);
  const [socket] = recovering.sockets;
  assert.deepEqual(await reportOf(socket), { broadcast: { id: '0-0', recovered: true } });

  const binary = Buffer.from([0x00, 0x0a, 0xff, 0x0a, 0x7b]);
  const publisher = await openPublisher(server, name);
  await publishAll(publisher, ['héllo\nwörld', binary, '{"id": null}', '']);

  const received = await recovering.recorder.until('receive_message', 4);
  assert.deepEqual(received, await plain.recorder.until('receive_message', 4));
  assert.equal(received[0], 'héllo\nwörld');
  assert.ok(received[1] instanceof ArrayBuffer, 'binary data as an ArrayBuffer, as without recover');
  assert.deepEqual(Buffer.from(received[1]), binary);
  assert.deepEqual(received.slice(2), ['{"id": null}', '']);

  // what came over the wire was wrapped, each message with its channel and id
  assert.equal(plain.sockets[0].frames[0], 'héllo\nwörld');
  const frames = socket.frames.filter((data) => !isReport(data)).map(parseFrame);
  assert.deepEqual(
    frames.map(({ header }) => header.channel),
    ['broadcast', 'broadcast', 'broadcast', 'broadcast'],
  );
  for (const { header } of frames) assert.match(header.id, /^\d+-\d+$/);
  assert.ok(socket.frames[2] instanceof ArrayBuffer, 'the binary message came in a binary frame');
  assert.deepEqual(frames[1].payload, binary);
  assert.deepEqual(recovering.recorder.args('not_recovered'), []);
});

test('positions are carried into the reconnect URL, and a reconnect repeats nothing', async () => {
  const server = await startServer('--history-size', '100');
  const name = facility();
  const { recorder, sockets } = connect(server, name, { recover: true });
  await recorder.until('connected', 1);
  await reportOf(sockets[0]);
  const publisher = await openPublisher(server, name);
  await publishAll(publisher, numbers(1, 3));
  await recorder.until('receive_message', 3);
  const lastId = parseFrame(sockets[0].frames.at(-1)).header.id;

  sockets[0].terminate(); // as a network failure would
  await recorder.until('connected', 2);
  const uri = `${server.url}/ws/${name}?subscribe-broadcast`;
  assert.equal(sockets[0].url, `${uri}&recover`);
  assert.equal(sockets[1].url, `${uri}&recover=${encodeURIComponent(JSON.stringify({ broadcast: lastId }))}`);
  assert.deepEqual(await reportOf(sockets[1]), { broadcast: { id: lastId, recovered: true } });

  await publisher.publish('4');
  await recorder.until('receive_message', 4);
  assert.deepEqual(recorder.args('receive_message'), numbers(1, 4));
  assert.deepEqual(recorder.args('not_recovered'), []);
});

test('across a restart of the server, every message arrives once and in order', async () => {
  const server = await startServer('--history-size', '100');
  const other = await startServer('--history-size', '100');
  const name = facility();
  const { recorder, sockets } = connect(server, name, { recover: true });
  await recorder.until('connected', 1);
  await reportOf(sockets[0]);
  const publisher = await openPublisher(other, name);
  await publishAll(publisher, numbers(1, 5));
  await recorder.until('receive_message', 5);
  const fifth = parseFrame(sockets[0].frames.at(-1)).header.id;

  await server.kill();
  await recorder.until('disconnected', 1);
  await publishAll(publisher, numbers(6, 10)); // while the server is down
  await server.start();
  await recorder.until('connected', 2);
  await publishAll(publisher, numbers(11, 15));
  await recorder.until('receive_message', 15);
  assert.deepEqual(recorder.args('receive_message'), numbers(1, 15));
  assert.deepEqual(recorder.args('not_recovered'), []);

  // every attempt while the server was down asked for what followed the fifth message
  for (const socket of sockets.slice(1)) {
    assert.deepEqual(JSON.parse(recoverParameter(socket.url)), { broadcast: fifth });
  }
  // on the new socket: the gap, the report, then live messages
  const socket = sockets.at(-1);
  const report = await reportOf(socket);
  const kinds = socket.frames.map((data) => (isReport(data) ? 'report' : parseFrame(data).payload));
  assert.deepEqual(kinds, [...numbers(6, 10), 'report', ...numbers(11, 15)]);
  assert.deepEqual(report, { broadcast: { id: parseFrame(socket.frames[4]).header.id, recovered: true } });
});

test("a client that has received nothing yet recovers from the report's position", async () => {
  const server = await startServer('--history-size', '100');
  const other = await startServer('--history-size', '100');
  const name = facility();
  const { recorder, sockets } = connect(server, name, { recover: true });
  await recorder.until('connected', 1);
  assert.deepEqual(await reportOf(sockets[0]), { broadcast: { id: '0-0', recovered: true } });

  await server.kill();
  await recorder.until('disconnected', 1);
  const publisher = await openPublisher(other, name);
  await publishAll(publisher, numbers(1, 5)); // more than the one message a channel persists
  await server.start();
  await recorder.until('connected', 2);
  assert.deepEqual(JSON.parse(recoverParameter(sockets.at(-1).url)), { broadcast: '0-0' });
  await publishAll(publisher, numbers(6, 7));
  await recorder.until('receive_message', 7);
  assert.deepEqual(recorder.args('receive_message'), numbers(1, 7));
  assert.deepEqual(recorder.args('not_recovered'), []);
});

test('not_recovered is called, once, when the position was trimmed from the history', async () => {
  const server = await startServer('--history-size', '3');
  const other = await startServer('--history-size', '3');
  const name = facility();
  const { recorder, sockets } = connect(server, name, { recover: true });
  await recorder.until('connected', 1);
  await reportOf(sockets[0]);
  const publisher = await openPublisher(other, name);
  await publisher.publish('0');
  await recorder.until('receive_message', 1);

  await server.kill();
  await recorder.until('disconnected', 1);
  await publishAll(publisher, numbers(1, 10)); // 1..7 are trimmed away
  await server.start();
  await recorder.until('connected', 2);
  assert.deepEqual(await recorder.until('not_recovered', 1), [['broadcast']]);
  assert.equal((await reportOf(sockets.at(-1))).broadcast.recovered, false);

  await publisher.publish('11');
  await waitUntil(() => recorder.args('receive_message').includes('11'), 'the live message 11');
  // nothing of the gap, not even the persisted message: the page is told to reload its state
  assert.deepEqual(recorder.args('receive_message'), ['0', '11']);

  // the next reconnect starts from a position the server holds: nothing more to report
  sockets.at(-1).terminate();
  await recorder.until('connected', 3);
  assert.equal((await reportOf(sockets.at(-1))).broadcast.recovered, true);
  assert.equal(recorder.args('not_recovered').length, 1);
});

test("the server's heartbeat, a plain frame, still counts as one and is not a message", async () => {
  const server = await startServer('--history-size', '100', '--heartbeat', 'hb');
  const other = await startServer('--history-size', '100');
  const name = facility();
  // 2.5 s between the client's own heartbeats: the server's (every 4 s) keep it alive
  const options = { recover: true, heartbeat_msg: 'hb', heartbeat_interval_ms: 2500 };
  const { recorder, sockets } = connect(server, name, options);
  await recorder.until('connected', 1);
  const publisher = await openPublisher(other, name);
  await publisher.publish('1');
  await waitUntil(() => sockets[0].frames.includes('hb'), "the server's heartbeat");
  await publisher.publish('2');
  await recorder.until('receive_message', 2);
  assert.deepEqual(recorder.args('receive_message'), ['1', '2']);
  assert.deepEqual(recorder.args('disconnected'), []);
  assert.equal(sockets.length, 1);
});
