// The client's `presence` option against the real Python server (tests/js/named_server.py, which
// is the core's server with `?as=<name>` naming the user), a private redis-server, and the `ws`
// package: snapshots, joins and leaves across sockets and processes, present(), unwrapping,
// reconnects. Needs what ws4redis-recovery.test.mjs needs (see harness.mjs); tests/test_js_client.py
// runs it.  Run with: node --test tests/js/
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import {
  NamedUsersServer,
  Publisher,
  Recorder,
  WebSocket,
  presenceIs,
  realServers,
  recordingWebSocket,
  waitUntil,
} from './harness.mjs';

const require = createRequire(import.meta.url);
const WS4Redis = require('../../django_bridge/static/django_bridge/js/ws4redis.js');

const RECONNECT = { reconnect_base_ms: 20, reconnect_max_ms: 100 };
const CALLBACKS = ['connecting', 'connected', 'receive_message', 'disconnected', 'not_recovered'];
const PRESENCE_CALLBACKS = ['presence', 'joined', 'left'];
// Each process rewrites its presence every interval; a killed one's users are gone after three.
const INTERVAL = '0.2';

const servers = realServers('presence');
const facility = () => servers.facility();

// A server keeping presence on `name`, with `args`.
async function startServer(name, ...args) {
  const server = await NamedUsersServer.start(servers.redis.url, '--presence', name, '--presence-interval', INTERVAL, ...args);
  servers.defer(() => server.kill());
  return server;
}

// A plain socket on `name`'s broadcast channel as `user` (null: anonymous), open.
async function openAs(server, name, user) {
  const ws = new WebSocket(`${server.url}/ws/${name}?subscribe-broadcast${user ? `&as=${user}` : ''}`);
  servers.defer(() => ws.terminate());
  await once(ws, 'open');
  return ws;
}

async function closeSocket(ws) {
  ws.close();
  await once(ws, 'close');
}

// A client of `name` as `user`, following presence, on a recording `ws` WebSocket. Its presence,
// joined and left calls are recorded with all their arguments, and each presence call also with
// what present() answered at that moment.
function connect(server, name, user, { query = 'subscribe-broadcast', ...options } = {}) {
  const recorder = new Recorder();
  const { RecordingWebSocket, sockets } = recordingWebSocket();
  let client = null;
  const record = (callback) => (...args) => {
    recorder.record(callback, callback === 'presence' ? [...args, client.present(args[0])] : args);
  };
  client = WS4Redis({
    uri: `${server.url}/ws/${name}?${query}&as=${user}`,
    WebSocket: RecordingWebSocket,
    ...RECONNECT,
    ...recorder.callbacks(...CALLBACKS),
    ...Object.fromEntries(PRESENCE_CALLBACKS.map((callback) => [callback, record(callback)])),
    ...options,
  });
  servers.defer(() => client.close());
  return { client, recorder, sockets };
}

// The joins and leaves a recorder saw, as ['joined', user, channel] and ['left', user, channel].
const changes = (recorder) => recorder.calls.filter(([name]) => name === 'joined' || name === 'left').map(
  ([name, args]) => [name, ...args],
);

test('the first snapshot names who was there, then the own join; present() lists them sorted', async () => {
  const name = facility();
  const server = await startServer(name);
  await openAs(server, name, 'mary');
  await openAs(server, name, 'mary');
  await openAs(server, name, 'bob');
  await openAs(server, name, null);
  await presenceIs(server, name, { users: { mary: 2, bob: 1 }, anonymous: 1 });

  const { client, recorder } = connect(server, name, 'john', { query: 'subscribe-broadcast&subscribe-user' });
  const [broadcast, user] = await recorder.until('presence', 2);
  // who was there, this socket not yet counted; present() already holds it when the callback runs
  assert.deepEqual(broadcast, ['broadcast', { mary: 2, bob: 1 }, 1, ['bob', 'mary']]);
  assert.deepEqual(user, ['user', {}, 0, []]);
  await recorder.until('joined', 2);
  assert.deepEqual(changes(recorder), [['joined', 'john', 'broadcast'], ['joined', 'john', 'user']]);
  assert.deepEqual(client.present(), ['bob', 'john', 'mary']);
  assert.deepEqual(client.present('broadcast'), ['bob', 'john', 'mary']);
  assert.deepEqual(client.present('user'), ['john']);
  assert.deepEqual(recorder.args('receive_message'), []);
});

test("a user's two sockets on two processes: one join with the first, one leave with the last", async () => {
  const name = facility();
  const server = await startServer(name);
  const other = await startServer(name);
  const { client, recorder } = connect(server, name, 'john');
  await recorder.until('joined', 1); // john's own

  const first = await openAs(other, name, 'mary');
  await recorder.until('joined', 2);
  assert.deepEqual(client.present(), ['john', 'mary']);
  const second = await openAs(server, name, 'mary');
  await presenceIs(server, name, { users: { john: 1, mary: 2 }, anonymous: 0 });
  await closeSocket(first);
  await presenceIs(server, name, { users: { john: 1, mary: 1 }, anonymous: 0 });
  assert.deepEqual(client.present(), ['john', 'mary'], 'mary is still here, through her other socket');
  await closeSocket(second);
  await recorder.until('left', 1);
  assert.deepEqual(client.present(), ['john']);
  assert.deepEqual(changes(recorder), [
    ['joined', 'john', 'broadcast'],
    ['joined', 'mary', 'broadcast'],
    ['left', 'mary', 'broadcast'],
  ]);
  assert.equal(recorder.args('presence').length, 1);
});

test('messages arrive unwrapped, as a plain client gets them; presence frames never do', async () => {
  const name = facility();
  const server = await startServer(name);
  const following = connect(server, name, 'john');
  await following.recorder.until('joined', 1); // john's own
  const plain = connect(server, name, 'mary', { presence: undefined, joined: undefined, left: undefined });
  await following.recorder.until('joined', 2); // mary's

  const binary = Buffer.from([0x00, 0x0a, 0xff, 0x0a, 0x7b]);
  const publisher = await Publisher.open(server, name);
  servers.defer(() => publisher.close());
  const lookalike = JSON.stringify({ presence: { channel: 'broadcast', event: 'join', user: 'eve' } });
  for (const message of ['héllo\nwörld', binary, lookalike, '']) await publisher.publish(message);

  const received = await following.recorder.until('receive_message', 4);
  assert.deepEqual(received, await plain.recorder.until('receive_message', 4));
  assert.equal(received[0], 'héllo\nwörld');
  assert.ok(received[1] instanceof ArrayBuffer, 'binary data as an ArrayBuffer, as without presence');
  assert.deepEqual(Buffer.from(received[1]), binary);
  assert.deepEqual(received.slice(2), [lookalike, '']);
  assert.deepEqual(following.client.present(), ['john', 'mary'], 'a published look-alike is a message');

  // over the wire: the snapshot, the joins, and every message behind its header
  const [socket] = following.sockets;
  assert.equal(new URL(socket.url).search, `?subscribe-broadcast&as=john&presence`);
  const messages = socket.frames.filter((data) => typeof data !== 'string' || data.includes('\n'));
  assert.equal(messages.length, 4);
  assert.ok(messages[0].startsWith('{"channel":"broadcast","id":null}\n'), messages[0]);
  assert.equal(plain.sockets[0].frames[0], 'héllo\nwörld');
});

test('with recover too: positions, the report and presence frames, and every message once', async () => {
  const name = facility();
  const server = await startServer(name, '--history-size', '100');
  const { client, recorder, sockets } = connect(server, name, 'john', { recover: true });
  await recorder.until('joined', 1);
  const publisher = await Publisher.open(server, name);
  servers.defer(() => publisher.close());
  for (const message of ['1', '2']) await publisher.publish(message);
  await recorder.until('receive_message', 2);

  sockets[0].terminate(); // as a network failure would
  await recorder.until('presence', 2);
  await publisher.publish('3');
  await recorder.until('receive_message', 3);
  assert.deepEqual(recorder.args('receive_message'), ['1', '2', '3']);
  assert.deepEqual(recorder.args('not_recovered'), []);
  const url = new URL(sockets.at(-1).url);
  assert.deepEqual(Object.keys(JSON.parse(url.searchParams.get('recover'))), ['broadcast']);
  assert.ok(url.search.endsWith('&presence'), url.search);
  // on the new socket: the recovery report first, then the snapshot
  const kinds = sockets.at(-1).frames.map((data) => Object.keys(JSON.parse(data.split('\n')[0]))[0]);
  assert.deepEqual(kinds.slice(0, 2), ['recovery', 'presence']);
  await waitUntil(() => client.present().includes('john'), 'john present again');
});

test('a reconnect replaces what the client knew with the new snapshot', async () => {
  const name = facility();
  const server = await startServer(name);
  const other = await startServer(name);
  const { client, recorder } = connect(server, name, 'john');
  await recorder.until('joined', 1); // john's own
  const mary = await openAs(other, name, 'mary');
  await recorder.until('joined', 2);
  assert.deepEqual(client.present(), ['john', 'mary']);

  await server.kill(); // john's process dies; meanwhile mary leaves and zoe arrives
  await recorder.until('disconnected', 1);
  await closeSocket(mary);
  await openAs(other, name, 'zoe');
  // john's entry expires three intervals after his process's last rewrite
  await presenceIs(other, name, { users: { zoe: 1 }, anonymous: 0 });
  assert.deepEqual(client.present(), ['john', 'mary'], 'what it knew last, while disconnected');

  await server.start(); // on the same port
  const snapshots = await recorder.until('presence', 2);
  assert.deepEqual(snapshots[1], ['broadcast', { zoe: 1 }, 0, ['zoe']]);
  await waitUntil(() => client.present().includes('john'), "john's own join on the new socket");
  assert.deepEqual(client.present(), ['john', 'zoe']);
  // nothing invented for what happened while it was away: the snapshot says it
  assert.deepEqual(changes(recorder), [
    ['joined', 'john', 'broadcast'],
    ['joined', 'mary', 'broadcast'],
    ['joined', 'john', 'broadcast'],
  ]);
});
