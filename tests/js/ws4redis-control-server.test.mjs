// The client's control protocol against the real Python server, a private
// redis-server and the `ws` package: several facilities on one socket,
// publish, unsubscribe, refusals, renewals with recovery across a restart, and
// presence per subscription.
// Needs tests/js/node_modules (`npm ci` in tests/js), a redis-server and a
// Python with ws4redis_tornado installed (see harness.mjs); tests/test_js_client.py
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
  Ws4RedisServer,
  presenceFollower,
  presenceIs,
  realServers,
  recordingWebSocket,
  waitUntil,
} from './harness.mjs';

const require = createRequire(import.meta.url);
const WS4Redis = require('../../django_bridge/static/django_bridge/js/ws4redis.js');

const RECONNECT = { reconnect_base_ms: 20, reconnect_max_ms: 100 };
const CALLBACKS = ['connecting', 'connected', 'receive_message', 'disconnected', 'not_recovered', 'refused'];
// Each process rewrites its presence every interval; a killed one's users are gone after three.
const PRESENCE_INTERVAL = '0.2';
const numbers = (prefix, from, to) => Array.from({ length: to - from + 1 }, (_, k) => `${prefix}${from + k}`);

const servers = realServers('control');

async function startServer(Server, ...args) {
  const server = await Server.start(servers.redis.url, ...args);
  servers.defer(() => server.kill());
  return server;
}

async function openPublisher(server, facility) {
  const publisher = await Publisher.open(server, facility);
  servers.defer(() => publisher.close());
  return publisher;
}

// A control client of `server` with the URI `/ws/` + `path`, on a recording `ws` WebSocket.
function connect(server, path = '', options = {}) {
  const recorder = new Recorder();
  const { RecordingWebSocket, sockets } = recordingWebSocket();
  const client = WS4Redis({
    uri: `${server.url}/ws/${path}`,
    control: true,
    WebSocket: RecordingWebSocket,
    ...RECONNECT,
    ...recorder.callbacks(...CALLBACKS),
    ...options,
  });
  servers.defer(() => client.close());
  return { client, recorder, sockets };
}

// The data a subscribe() callback received, and its metas.
function collector() {
  const calls = [];
  return {
    calls,
    callback: (data, meta) => calls.push([data, meta]),
    data: () => calls.map(([data]) => data),
    until: (n) => waitUntil(() => calls.length >= n && calls, `${n} messages`, undefined, () => JSON.stringify(calls)),
  };
}

test('two facilities on one socket: subscribe, publish, unsubscribe, without reconnecting', async () => {
  const server = await startServer(Ws4RedisServer);
  const [chat, news] = [servers.facility(), servers.facility()];
  const { client, recorder, sockets } = connect(server, '?echo');
  const chatMessages = collector();
  const newsMessages = collector();
  const [chatReply, newsReply] = await Promise.all([
    client.subscribe(chat, ['broadcast'], chatMessages.callback),
    client.subscribe(news, ['broadcast'], newsMessages.callback),
  ]);
  assert.equal(sockets[0].protocol, 'ws4redis.control');
  assert.deepEqual(chatReply, { reply: 1, ok: true, audiences: ['broadcast'], channels: ['broadcast'] });
  assert.equal(newsReply.reply, 2);

  // open before anything is published to the news: it would get the last message, persisted, at any
  // moment after opening, and take it for the echo of its own
  const newsPublisher = await openPublisher(server, news);
  assert.deepEqual(await client.publish(chat, 'broadcast', 'hello chat'), { reply: 3, ok: true });
  await client.publish(news, 'broadcast', Buffer.from([0, 10, 255]));
  await waitUntil(() => newsPublisher.echoes.length === 1, 'the binary message on the plain socket');
  await newsPublisher.publish('from a plain socket');
  const [[text, meta]] = await chatMessages.until(1);
  assert.equal(text, 'hello chat');
  assert.deepEqual(meta, { facility: chat, channel: 'broadcast', id: null });
  const [[binary, binaryMeta], [plain]] = await newsMessages.until(2);
  assert.ok(binary instanceof ArrayBuffer);
  assert.deepEqual(Buffer.from(binary), Buffer.from([0, 10, 255]));
  assert.equal(binaryMeta.facility, news);
  assert.equal(plain, 'from a plain socket');

  // switch: leave the news, keep the chat, on the same socket
  assert.deepEqual(await client.unsubscribe(news), { reply: 5, ok: true, audiences: ['broadcast'] });
  await newsPublisher.publish('not for us any more');
  await client.publish(chat, 'broadcast', 'after the switch');
  await chatMessages.until(2);
  assert.deepEqual(chatMessages.data(), ['hello chat', 'after the switch']);
  assert.equal(newsMessages.calls.length, 2);
  assert.equal(sockets.length, 1, 'one socket all along');
  assert.deepEqual(recorder.args('receive_message'), []);
});

test('refusals reject with the server code, and the socket keeps what it had', async () => {
  const server = await startServer(Ws4RedisServer);
  const chat = servers.facility();
  const { client, sockets } = connect(server, '?echo');
  const chatMessages = collector();
  await client.subscribe(chat, ['broadcast'], chatMessages.callback);

  const anonymous = await client.subscribe(chat, ['user'], () => {}).catch((err) => err);
  assert.equal(anonymous.code, 'forbidden', 'an anonymous socket has no user channel');
  assert.equal(anonymous.facility, chat);
  assert.match(anonymous.reason, /\S/);
  const invalid = await client.subscribe('a:b', ['broadcast'], () => {}).catch((err) => err);
  assert.equal(invalid.code, 'invalid-facility');
  const publish = await client.publish('a b', 'broadcast', 'x').catch((err) => err);
  assert.equal(publish.code, 'invalid-facility');

  await client.publish(chat, 'broadcast', 'still subscribed');
  assert.deepEqual((await chatMessages.until(1)).map(([data]) => data), ['still subscribed']);
  assert.equal(sockets.length, 1);
});

test('more channels than the server allows: too-many-subscriptions, and the others stay', async () => {
  const server = await startServer(Ws4RedisServer, '--max-subscriptions', '2');
  const [a, b, c] = [servers.facility(), servers.facility(), servers.facility()];
  const { client } = connect(server, '?echo');
  await client.subscribe(a, ['broadcast']);
  await client.subscribe(b, ['broadcast']);
  const error = await client.subscribe(c, ['broadcast']).catch((err) => err);
  assert.equal(error.code, 'too-many-subscriptions');
  await client.unsubscribe(a);
  assert.deepEqual((await client.subscribe(c, ['broadcast'])).channels, ['broadcast']);
});

test('user channels: each named user subscribes and publishes to their own', async () => {
  const server = await startServer(NamedUsersServer);
  const inbox = servers.facility();
  const john = connect(server, '?as=john&echo');
  const mary = connect(server, '?as=mary&echo');
  const johns = collector();
  const marys = collector();
  await john.client.subscribe(inbox, ['user'], johns.callback);
  await mary.client.subscribe(inbox, ['user'], marys.callback);
  await john.client.publish(inbox, 'user', 'a note to myself');
  const [[note, meta]] = await johns.until(1);
  assert.equal(note, 'a note to myself');
  assert.equal(meta.channel, 'user');
  await mary.client.publish(inbox, 'user', 'mine');
  // John's was published first: had it reached Mary's channel, she would have had it first
  assert.deepEqual((await marys.until(1)).map(([data]) => data), ['mine']);
  assert.deepEqual(johns.data(), ['a note to myself']);
});

test('across a restart of the server, every subscription is renewed and recovers its gap', async () => {
  const server = await startServer(Ws4RedisServer, '--history-size', '100');
  const other = await startServer(Ws4RedisServer, '--history-size', '100');
  const [chat, news] = [servers.facility(), servers.facility()];
  const { client, recorder, sockets } = connect(server, '', { recover: true });
  const chatMessages = collector();
  const newsMessages = collector();
  const first = await client.subscribe(chat, ['broadcast'], chatMessages.callback);
  assert.deepEqual(first.recovery, { broadcast: { id: '0-0', recovered: true } });
  await client.subscribe(news, ['broadcast'], newsMessages.callback);
  const chatPublisher = await openPublisher(other, chat);
  const newsPublisher = await openPublisher(other, news);
  for (const message of numbers('c', 1, 3)) await chatPublisher.publish(message);
  for (const message of numbers('n', 1, 2)) await newsPublisher.publish(message);
  await chatMessages.until(3);
  await newsMessages.until(2);

  await server.kill();
  await recorder.until('disconnected', 1);
  for (const message of numbers('c', 4, 6)) await chatPublisher.publish(message); // while the server is down
  for (const message of numbers('n', 3, 4)) await newsPublisher.publish(message);
  await server.start();
  await recorder.until('connected', 2);
  for (const message of numbers('c', 7, 8)) await chatPublisher.publish(message);
  await newsPublisher.publish('n5');
  await chatMessages.until(8);
  await newsMessages.until(5);
  assert.deepEqual(chatMessages.data(), numbers('c', 1, 8));
  assert.deepEqual(newsMessages.data(), numbers('n', 1, 5));
  assert.deepEqual(recorder.args('not_recovered'), []);
  for (const [, meta] of [...chatMessages.calls, ...newsMessages.calls]) assert.match(meta.id, /^\d+-\d+$/);

  // the renewals asked for what followed the last ids seen before the restart
  const renewals = sockets.at(-1).sentRequests();
  assert.deepEqual(
    renewals.slice(0, 2).map(({ facility, recover }) => [facility, recover]),
    [
      [chat, { broadcast: chatMessages.calls[2][1].id }],
      [news, { broadcast: newsMessages.calls[1][1].id }],
    ],
  );
});

test('a gap the history no longer holds is reported with the facility, and the rest goes on', async () => {
  const server = await startServer(Ws4RedisServer, '--history-size', '2');
  const other = await startServer(Ws4RedisServer, '--history-size', '2');
  const news = servers.facility();
  const lost = [];
  const { client, recorder } = connect(server, '', { recover: true, not_recovered: (...args) => lost.push(args) });
  const newsMessages = collector();
  await client.subscribe(news, ['broadcast'], newsMessages.callback);
  const publisher = await openPublisher(other, news);
  await publisher.publish('n1');
  await newsMessages.until(1);
  await server.kill();
  await recorder.until('disconnected', 1);
  for (const message of numbers('n', 2, 6)) await publisher.publish(message); // n2..n4 are trimmed away
  await server.start();
  await waitUntil(() => lost.length, 'not_recovered');
  assert.deepEqual(lost, [[['broadcast'], news]]);
  await publisher.publish('n7');
  await waitUntil(() => newsMessages.data().includes('n7'), 'the live message n7');
  assert.deepEqual(newsMessages.data(), ['n1', 'n7']);
});

// A server of named users keeping presence on `facility`.
function startPresenceServer(facility) {
  return startServer(NamedUsersServer, '--presence', facility, '--presence-interval', PRESENCE_INTERVAL);
}

// A plain socket on `facility`'s broadcast channel as `user` (null: anonymous), open.
async function openAs(server, facility, user) {
  const ws = new WebSocket(`${server.url}/ws/${facility}?subscribe-broadcast${user ? `&as=${user}` : ''}`);
  servers.defer(() => ws.terminate());
  await once(ws, 'open');
  return ws;
}

test('presence per subscription: who was there, then joins and leaves of plain and control sockets', async () => {
  const [lobby, news] = [servers.facility(), servers.facility()];
  const server = await startPresenceServer(lobby);
  const mary = await openAs(server, lobby, 'mary');
  await openAs(server, lobby, null);
  await presenceIs(server, lobby, { users: { mary: 1 }, anonymous: 1 });

  const { client, sockets } = connect(server, '?as=john');
  const john = presenceFollower(client);
  const reply = await client.subscribe(lobby, ['broadcast', 'user'], null, john.options);
  assert.deepEqual(reply.channels, ['broadcast', 'user']);
  assert.deepEqual(sockets[0].sentRequests()[0].presence, true);
  // who was there, this socket not yet counted, before the reply; then its own arrival, as events
  // (which may have come in the same read as the reply)
  assert.deepEqual(john.calls.slice(0, 2), [
    ['presence', 'broadcast', { mary: 1 }, 1, lobby, ['mary']],
    ['presence', 'user', {}, 0, lobby, []],
  ]);
  await john.until(4);
  assert.deepEqual(john.calls.slice(2), [['joined', 'john', 'broadcast', lobby], ['joined', 'john', 'user', lobby]]);

  // a control socket that did not ask for presence is counted all the same
  const zoe = connect(server, '?as=zoe');
  await zoe.client.subscribe(lobby, ['broadcast']);
  await john.until(5);
  mary.close();
  await john.until(6);
  await zoe.client.unsubscribe(lobby);
  await john.until(7);
  assert.deepEqual(john.calls.slice(4), [
    ['joined', 'zoe', 'broadcast', lobby],
    ['left', 'mary', 'broadcast', lobby],
    ['left', 'zoe', 'broadcast', lobby],
  ]);
  assert.deepEqual(client.present(lobby), ['john']);
  assert.deepEqual(client.present(lobby, 'user'), ['john']);

  const refused = await client.subscribe(news, ['broadcast'], null, { presence: true }).catch((err) => err);
  assert.equal(refused.code, 'bad-request');
  assert.match(refused.reason, /presence is not kept/);
  assert.equal(sockets.length, 1);
});

test('across a restart of the server, the renewal asks for presence again and its snapshot replaces what was known', async () => {
  const lobby = servers.facility();
  const server = await startPresenceServer(lobby);
  const other = await startPresenceServer(lobby);
  const { client, recorder, sockets } = connect(server, '?as=john');
  const john = presenceFollower(client);
  await client.subscribe(lobby, ['broadcast'], null, john.options);
  await john.until(2); // the snapshot, then john's own join
  const mary = await openAs(other, lobby, 'mary');
  await john.until(3);
  assert.deepEqual(client.present(lobby), ['john', 'mary']);

  await server.kill(); // john's process dies; meanwhile mary leaves and zoe arrives
  await recorder.until('disconnected', 1);
  mary.close();
  await openAs(other, lobby, 'zoe');
  // john's entry expires three intervals after his process's last rewrite
  await presenceIs(other, lobby, { users: { zoe: 1 }, anonymous: 0 });
  assert.deepEqual(client.present(lobby), ['john', 'mary'], 'what it knew last, while disconnected');

  await server.start(); // on the same port
  await john.until(5);
  assert.deepEqual(john.calls, [
    ['presence', 'broadcast', {}, 0, lobby, []],
    ['joined', 'john', 'broadcast', lobby],
    ['joined', 'mary', 'broadcast', lobby],
    ['presence', 'broadcast', { zoe: 1 }, 0, lobby, ['zoe']],
    ['joined', 'john', 'broadcast', lobby],
  ]);
  assert.deepEqual(client.present(lobby), ['john', 'zoe']);
  const { ref, ...renewal } = sockets.at(-1).sentRequests()[0];
  assert.deepEqual(renewal, { op: 'subscribe', facility: lobby, audiences: ['broadcast'], presence: true });
});
