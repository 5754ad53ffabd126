// The client's control protocol (`control: true`) against a server scripted
// after its specification (control-server.mjs), over real loopback sockets
// with the `ws` package: requests and replies, routing of tagged messages,
// renewals after a reconnect, recovery and presence per facility, refusals.
// Needs tests/js/node_modules (`npm ci` in tests/js).  Run with: node --test tests/js/
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { afterEach, beforeEach, mock, test } from 'node:test';

import { CONTROL, ScriptedServer } from './control-server.mjs';
import { Recorder, WebSocket, presenceFollower, waitUntil } from './harness.mjs';

const require = createRequire(import.meta.url);
const WS4Redis = require('../../django_bridge/static/django_bridge/js/ws4redis.js');

const RECONNECT = { reconnect_base_ms: 20, reconnect_max_ms: 50 };
const CALLBACKS = ['connecting', 'connected', 'disconnected', 'receive_message', 'not_recovered', 'refused'];

let closers = [];

beforeEach(() => {
  mock.method(console, 'info', () => {});
  mock.method(console, 'warn', () => {});
});

afterEach(async () => {
  for (const close of closers.reverse()) await close();
  closers = [];
  mock.restoreAll();
});

async function startServer(options) {
  const server = await ScriptedServer.start(options);
  closers.push(() => server.close());
  return server;
}

// A control client of `server` (URI `/ws/` plus `path`), its callbacks recorded.
function connect(server, { path = '', ...options } = {}) {
  const recorder = new Recorder();
  const client = WS4Redis({
    uri: `${server.url}/ws/${path}`,
    control: true,
    WebSocket,
    ...RECONNECT,
    ...recorder.callbacks(...CALLBACKS),
    ...options,
  });
  closers.push(() => client.close());
  return { client, recorder };
}

// Calls of a subscribe() callback, as [data, meta].
function collector() {
  const calls = [];
  const callback = (data, meta) => calls.push([data, meta]);
  return { calls, callback, until: (n) => waitUntil(() => calls.length >= n && calls, `${n} messages`) };
}

const requestsOf = (ws) => ws.requests.map((r) => r.header);
const withoutRefs = (headers) => headers.map(({ ref, ...rest }) => rest);

test('offers the control subprotocol; subscribe resolves with the reply; messages reach the callback with meta', async () => {
  const server = await startServer();
  const { client, recorder } = connect(server, { path: '?as=john&groups=staff,chatters' });
  await recorder.until('connected', 1);
  const [ws] = server.sockets;
  assert.equal(ws.protocol, CONTROL);

  const chat = collector();
  const reply = await client.subscribe('chat', ['broadcast', 'group'], chat.callback);
  assert.deepEqual(reply, {
    reply: 1,
    ok: true,
    audiences: ['broadcast', 'group'],
    channels: ['broadcast', 'group:staff', 'group:chatters'],
  });
  assert.deepEqual(requestsOf(ws), [{ op: 'subscribe', ref: 1, facility: 'chat', audiences: ['broadcast', 'group'] }]);

  server.publishTo('broadcast:chat', 'héllo\nwörld');
  server.publishTo('group:chatters:chat', Buffer.from([0, 10, 255]), true);
  const [[text, textMeta], [binary, binaryMeta]] = await chat.until(2);
  assert.equal(text, 'héllo\nwörld');
  assert.deepEqual(textMeta, { facility: 'chat', channel: 'broadcast', id: '1-0' });
  assert.ok(binary instanceof ArrayBuffer, 'binary data as an ArrayBuffer, as without control');
  assert.deepEqual(Buffer.from(binary), Buffer.from([0, 10, 255]));
  assert.deepEqual(binaryMeta, { facility: 'chat', channel: 'group:chatters', id: '2-0' });
  assert.deepEqual(recorder.args('receive_message'), []);
});

test('requests made before the socket opens go out once it opens, in order, and settle with their replies', async () => {
  const server = await startServer();
  const { client, recorder } = connect(server, { path: '?echo' });
  const chat = collector();
  const subscribed = client.subscribe('chat', ['broadcast'], chat.callback);
  const published = client.publish('chat', 'broadcast', 'first');
  const unsubscribed = client.unsubscribe('other');
  assert.equal(await unsubscribed, null, 'nothing to undo without a socket');
  assert.equal(recorder.args('connected').length, 0);

  assert.deepEqual((await subscribed).channels, ['broadcast']);
  assert.deepEqual(await published, { reply: 2, ok: true });
  assert.deepEqual(withoutRefs(requestsOf(server.sockets[0])), [
    { op: 'subscribe', facility: 'chat', audiences: ['broadcast'] },
    { op: 'publish', facility: 'chat', audience: 'broadcast' },
  ]);
  assert.deepEqual(await chat.until(1), [['first', { facility: 'chat', channel: 'broadcast', id: '1-0' }]]);
});

test('publish sends text in a text frame and binary data in a binary one, behind the header', async () => {
  const server = await startServer();
  const { client, recorder } = connect(server, { path: '?as=john' });
  await recorder.until('connected', 1);
  const bytes = new Uint8Array([0x7b, 0x0a, 0xff]);
  await client.publish('chat', 'user', 'a\nb');
  await client.publish('chat', 'broadcast', bytes.buffer);
  await client.publish('chat', 'broadcast', Buffer.from(bytes));
  await client.publish('chat', 'broadcast', bytes.subarray(1));
  await client.publish('chat', 'broadcast', new Blob(['blob\n', bytes]));
  const requests = server.sockets[0].requests;
  assert.deepEqual(
    requests.map(({ header, binary }) => [header.op, header.audience, binary]),
    [['publish', 'user', false], ...Array(4).fill(['publish', 'broadcast', true])],
  );
  assert.equal(requests[0].payload, 'a\nb');
  assert.deepEqual(requests.slice(1).map((r) => [...r.payload]), [
    [0x7b, 0x0a, 0xff],
    [0x7b, 0x0a, 0xff],
    [0x0a, 0xff],
    [...Buffer.from('blob\n'), 0x7b, 0x0a, 0xff],
  ]);
  assert.deepEqual(server.histories.get('user:john:chat').entries.map((e) => e.payload), ['a\nb']);
});

test('unsubscribe ends the callbacks at once, dropping what was on its way', async () => {
  const server = await startServer();
  const { client, recorder } = connect(server, { path: '?as=john' });
  await recorder.until('connected', 1);
  const chat = collector();
  await client.subscribe('chat', ['broadcast', 'user'], chat.callback);
  const [ws] = server.sockets;
  // the server sends a message before it reads the unsubscribe: the client has already let go
  server.refusal = (op) => {
    if (op === 'unsubscribe') server.publishTo('user:john:chat', 'late');
    return null;
  };
  assert.deepEqual(await client.unsubscribe('chat', ['user']), { reply: 2, ok: true, audiences: ['user'] });
  assert.deepEqual(requestsOf(ws).at(-1), { op: 'unsubscribe', ref: 2, facility: 'chat', audiences: ['user'] });
  server.publishTo('user:john:chat', 'after');
  server.publishTo('broadcast:chat', 'still');
  await chat.until(1);
  await client.unsubscribe('chat');
  assert.deepEqual(requestsOf(ws).at(-1), { op: 'unsubscribe', ref: 3, facility: 'chat' });
  server.publishTo('broadcast:chat', 'gone');
  await client.publish('chat', 'broadcast', 'a round trip later'); // anything sent before this reply came before it
  assert.deepEqual(chat.calls.map(([data]) => data), ['still']);
  assert.deepEqual(recorder.args('receive_message'), []);
});

test('a later subscribe of the same audience replaces its callback; without one, receive_message gets it', async () => {
  const server = await startServer();
  const { client, recorder } = connect(server);
  const first = collector();
  const second = collector();
  await client.subscribe('chat', ['broadcast'], first.callback);
  server.publishTo('broadcast:chat', '1');
  await first.until(1);
  await client.subscribe('chat', ['broadcast'], second.callback);
  server.publishTo('broadcast:chat', '2');
  await second.until(1);
  await client.subscribe('news', ['broadcast']);
  server.publishTo('broadcast:news', '3');
  await recorder.until('receive_message', 1);
  assert.deepEqual(first.calls.map(([data]) => data), ['1']);
  assert.deepEqual(second.calls.map(([data]) => data), ['2']);
  assert.deepEqual(recorder.calls.filter(([name]) => name === 'receive_message').length, 1);
  assert.equal(recorder.args('receive_message')[0], '3');
});

test('a refused subscribe rejects with the code and reason, and is not renewed', async () => {
  const server = await startServer();
  const { client, recorder } = connect(server);
  await recorder.until('connected', 1);
  server.refusal = (op, header) => (header.facility === 'secret' ? 'forbidden' : null);
  await client.subscribe('chat', ['broadcast']);
  const error = await client.subscribe('secret', ['broadcast'], () => {}).catch((err) => err);
  assert.ok(error instanceof Error);
  assert.equal(error.code, 'forbidden');
  assert.equal(error.reason, 'scripted forbidden');
  assert.equal(error.facility, 'secret');
  assert.deepEqual(error.reply, { reply: 2, ok: false, error: 'forbidden', reason: 'scripted forbidden' });
  const invalid = await client.subscribe('a:b', ['broadcast']).catch((err) => err);
  assert.equal(invalid.code, 'invalid-facility');

  server.sockets[0].terminate();
  await recorder.until('connected', 2);
  await waitUntil(() => server.sockets[1].requests.length === 1, 'the renewal');
  assert.deepEqual(withoutRefs(requestsOf(server.sockets[1])), [
    { op: 'subscribe', facility: 'chat', audiences: ['broadcast'] },
  ]);
  assert.deepEqual(recorder.args('refused'), []);
});

test('arguments of the wrong type reject with bad-request, sending nothing', async () => {
  const server = await startServer();
  const { client, recorder } = connect(server);
  await recorder.until('connected', 1);
  const attempts = [
    client.subscribe('chat', [], () => {}),
    client.subscribe('chat', 'broadcast', () => {}),
    client.subscribe('chat', ['everyone'], () => {}),
    client.subscribe('', ['broadcast'], () => {}),
    client.subscribe('chat', ['broadcast'], 'not a function'),
    client.subscribe('chat', ['broadcast'], null, 'presence'),
    client.subscribe('chat', ['broadcast'], null, { presence: 'yes' }),
    client.subscribe('chat', ['broadcast'], null, { joined: () => {} }),
    client.subscribe('chat', ['broadcast'], null, { presence: true, left: 'not a function' }),
    client.unsubscribe(42),
    client.unsubscribe('chat', ['everyone']),
    client.publish('chat', 'broadcast', { an: 'object' }),
    client.publish('chat', 'all', 'text'),
  ];
  for (const outcome of await Promise.allSettled(attempts)) {
    assert.equal(outcome.status, 'rejected');
    assert.equal(outcome.reason.code, 'bad-request');
  }
  await client.publish('chat', 'broadcast', 'one that goes');
  assert.equal(server.sockets[0].requests.length, 1);
});

test('without control, the control calls throw; with control, presence is asked per subscription', () => {
  const client = WS4Redis({ uri: 'ws://127.0.0.1:9/ws/x', WebSocket: class { readyState = 0; close() {} } });
  for (const call of [() => client.subscribe('x', ['broadcast']), () => client.unsubscribe('x'), () => client.publish('x', 'broadcast', 'y')]) {
    assert.throws(call, /needs the option control: true/);
  }
  client.close();
  assert.throws(
    () => WS4Redis({ uri: 'ws://127.0.0.1:9/ws/', control: true, presence: true, WebSocket }),
    /presence cannot be combined with control .* subscribe\(facility, audiences, callback, \{presence: true\}\)/,
  );
});

test('after a reconnect every subscription is renewed before the publishes that waited; a publish in flight is rejected', async () => {
  const server = await startServer();
  const { client, recorder } = connect(server, { path: '?as=john' });
  const chat = collector();
  await client.subscribe('chat', ['broadcast'], chat.callback);
  await client.subscribe('chat', ['user'], chat.callback);
  await client.subscribe('news', ['broadcast']);
  await client.unsubscribe('news');
  server.holdReplies = true;
  const inFlight = client.publish('chat', 'broadcast', 'maybe');
  const pendingSubscribe = client.subscribe('weather', ['broadcast']);
  await waitUntil(() => server.sockets[0].requests.length === 6, 'the publish and subscribe to arrive');
  server.holdReplies = false;
  server.sockets[0].terminate();

  const error = await inFlight.catch((err) => err);
  assert.equal(error.code, 'disconnected');
  const queued = client.publish('chat', 'broadcast', 'after');
  const renewed = await pendingSubscribe;
  assert.deepEqual(renewed.channels, ['broadcast'], 'the renewal answered the subscribe lost with the socket');
  assert.equal(recorder.args('connected').length, 2);
  await queued;
  assert.deepEqual(withoutRefs(requestsOf(server.sockets[1])), [
    { op: 'subscribe', facility: 'chat', audiences: ['broadcast', 'user'] },
    { op: 'subscribe', facility: 'weather', audiences: ['broadcast'] },
    { op: 'publish', facility: 'chat', audience: 'broadcast' },
  ]);
  server.publishTo('user:john:chat', 'for john');
  assert.deepEqual((await chat.until(1)).map(([data]) => data), ['for john']);
});

test('with recover, each subscribe asks for what followed its last ids, per facility, and reports lost gaps', async () => {
  const server = await startServer();
  const { client, recorder } = connect(server, { recover: true, path: '?as=john' });
  const chat = collector();
  const news = collector();
  const first = await client.subscribe('chat', ['broadcast', 'user'], chat.callback);
  assert.deepEqual(first.recovery, { broadcast: { id: '0-0', recovered: true }, user: { id: '0-0', recovered: true } });
  await client.subscribe('news', ['broadcast'], news.callback);
  const [ws] = server.sockets;
  assert.deepEqual(withoutRefs(requestsOf(ws)).map((r) => r.recover), [{}, {}]);
  server.publishTo('broadcast:chat', 'c1');
  server.publishTo('user:john:chat', 'u1');
  server.publishTo('broadcast:news', 'n1');
  await chat.until(2);
  await news.until(1);

  server.historySize = 2;
  ws.terminate();
  await recorder.until('disconnected', 1);
  for (const n of [2, 3]) server.publishTo('broadcast:chat', `c${n}`);
  for (const n of [2, 3, 4]) server.publishTo('broadcast:news', `n${n}`); // n2 is trimmed away
  await recorder.until('connected', 2);
  await recorder.until('not_recovered', 1);
  assert.deepEqual(withoutRefs(requestsOf(server.sockets[1])), [
    { op: 'subscribe', facility: 'chat', audiences: ['broadcast', 'user'], recover: { broadcast: '1-0', user: '2-0' } },
    { op: 'subscribe', facility: 'news', audiences: ['broadcast'], recover: { broadcast: '3-0' } },
  ]);
  assert.deepEqual(recorder.calls.filter(([name]) => name === 'not_recovered').length, 1);
  await chat.until(4);
  assert.deepEqual(chat.calls.map(([data]) => data), ['c1', 'u1', 'c2', 'c3']);
  assert.deepEqual(news.calls.map(([data]) => data), ['n1'], 'nothing of a lost gap');
});

test('not_recovered gets the labels and the facility', async () => {
  const server = await startServer();
  const labels = [];
  const { client, recorder } = connect(server, { recover: true, not_recovered: (...args) => labels.push(args) });
  await client.subscribe('news', ['broadcast']);
  server.publishTo('broadcast:news', 'n1');
  await recorder.until('receive_message', 1);
  server.historySize = 1;
  server.sockets[0].terminate();
  await recorder.until('disconnected', 1);
  server.publishTo('broadcast:news', 'n2');
  server.publishTo('broadcast:news', 'n3');
  await waitUntil(() => labels.length, 'not_recovered');
  assert.deepEqual(labels, [[['broadcast'], 'news']]);
});

test('ids are forgotten with unsubscribe: a facility subscribed again starts afresh', async () => {
  const server = await startServer();
  const { client, recorder } = connect(server, { recover: true });
  await client.subscribe('news', ['broadcast']);
  server.publishTo('broadcast:news', 'n1');
  await recorder.until('receive_message', 1);
  await client.unsubscribe('news');
  server.publishTo('broadcast:news', 'n2');
  await client.subscribe('news', ['broadcast']);
  assert.deepEqual(requestsOf(server.sockets[0]).map((r) => r.recover), [{}, undefined, {}]);
  assert.deepEqual(recorder.args('receive_message'), ['n1']);
});

test('a renewal the server refuses drops the facility and calls refused; unavailable reconnects instead', async () => {
  const server = await startServer();
  const { client, recorder } = connect(server);
  await client.subscribe('chat', ['broadcast']);
  await client.subscribe('news', ['broadcast']);

  server.refusal = (op, header) => (op === 'subscribe' && header.facility === 'news' ? 'unavailable' : null);
  server.sockets[0].terminate();
  await recorder.until('connected', 2);
  // the renewal of news is refused with unavailable: the client closes and tries again
  const [evt] = (await recorder.until('disconnected', 2)).slice(1);
  assert.equal(evt.code, 1011);
  server.refusal = (op, header) => (op === 'subscribe' && header.facility === 'news' ? 'forbidden' : null);
  const [error] = await recorder.until('refused', 1);
  assert.equal(error.code, 'forbidden');
  assert.equal(error.facility, 'news');
  const last = server.sockets.at(-1);
  assert.deepEqual(withoutRefs(requestsOf(last)).map((r) => r.facility), ['chat', 'news']);

  server.refusal = () => null;
  last.terminate();
  await waitUntil(() => server.sockets.length > 3 && server.sockets.at(-1).requests.length, 'the next renewal');
  assert.deepEqual(withoutRefs(requestsOf(server.sockets.at(-1))).map((r) => r.facility), ['chat']);
});

test('close() rejects everything unsettled with closed', async () => {
  const server = await startServer();
  const { client, recorder } = connect(server);
  await recorder.until('connected', 1);
  server.holdReplies = true;
  const sent = [client.subscribe('chat', ['broadcast']), client.publish('chat', 'broadcast', 'x'), client.unsubscribe('y')];
  await waitUntil(() => server.sockets[0].requests.length === 3, 'the requests to arrive');
  client.close();
  const later = [client.publish('chat', 'broadcast', 'after close'), client.subscribe('x', ['broadcast']), client.unsubscribe('x')];
  for (const outcome of await Promise.allSettled([...sent, ...later])) {
    assert.equal(outcome.status, 'rejected');
    assert.equal(outcome.reason.code, 'closed');
  }
  assert.equal(server.sockets[0].requests.length, 3);
});

test("the URI's own facility goes to receive_message with meta, and its unsubscribe holds across reconnects", async () => {
  const server = await startServer();
  const { client, recorder } = connect(server, { path: 'lobby?subscribe-broadcast' });
  await recorder.until('connected', 1);
  server.publishTo('broadcast:lobby', 'hello');
  const [message] = await recorder.until('receive_message', 1);
  assert.equal(message, 'hello');
  await client.unsubscribe('lobby');
  server.sockets[0].terminate();
  await recorder.until('connected', 2);
  await waitUntil(() => server.sockets[1].requests.length === 1, 'the repeated unsubscribe');
  assert.deepEqual(withoutRefs(requestsOf(server.sockets[1])), [{ op: 'unsubscribe', facility: 'lobby', audiences: ['broadcast'] }]);
  assert.equal(server.sockets[1].subscribed.size, 0);
  await client.subscribe('lobby', ['broadcast']);
  server.sockets[1].terminate();
  await recorder.until('connected', 3);
  await waitUntil(() => server.sockets[2].requests.length === 1, 'the renewal');
  assert.deepEqual(withoutRefs(requestsOf(server.sockets[2])), [{ op: 'subscribe', facility: 'lobby', audiences: ['broadcast'] }]);
});

test('a server that does not select the subprotocol counts as a failed connection, tried again', async () => {
  const server = await startServer({ selectProtocol: false });
  const { recorder } = connect(server);
  await recorder.until('disconnected', 2);
  assert.equal(recorder.args('connected').length, 0, 'the `ws` package fails the handshake itself');
  assert.equal(recorder.args('connecting').length >= 2, true);
});

test('a subscribe with presence gets a snapshot per channel before its reply, then joins and leaves', async () => {
  const server = await startServer();
  server.presence.set('broadcast:lobby', { users: { mary: 2 }, anonymous: 1 });
  server.presence.set('group:staff:lobby', { users: { bob: 1 }, anonymous: 0 });
  const { client, recorder } = connect(server, { path: '?as=john&groups=staff,chatters' });
  await recorder.until('connected', 1);
  const lobby = presenceFollower(client);
  const reply = await client.subscribe('lobby', ['broadcast', 'group'], null, lobby.options);
  assert.deepEqual(reply.channels, ['broadcast', 'group:staff', 'group:chatters']);
  assert.deepEqual(requestsOf(server.sockets[0]), [
    { op: 'subscribe', ref: 1, facility: 'lobby', audiences: ['broadcast', 'group'], presence: true },
  ]);
  assert.deepEqual(lobby.calls, [
    ['presence', 'broadcast', { mary: 2 }, 1, 'lobby', ['mary']],
    ['presence', 'group:staff', { bob: 1 }, 0, 'lobby', ['bob']],
    ['presence', 'group:chatters', {}, 0, 'lobby', []],
  ]);

  server.announce('broadcast:lobby', 'join', 'john');
  server.announce('broadcast:lobby', 'join', 'mary'); // in the snapshot already: no call
  server.announce('group:staff:lobby', 'leave', 'bob');
  server.announce('group:chatters:lobby', 'leave', 'nobody'); // never there: no call
  server.announce('broadcast:lobby', 'join', 'zoe');
  await lobby.until(6);
  assert.deepEqual(lobby.calls.slice(3), [
    ['joined', 'john', 'broadcast', 'lobby'],
    ['left', 'bob', 'group:staff', 'lobby'],
    ['joined', 'zoe', 'broadcast', 'lobby'],
  ]);
  assert.deepEqual(client.present('lobby'), ['john', 'mary', 'zoe']);
  assert.deepEqual(client.present('lobby', 'broadcast'), ['john', 'mary', 'zoe']);
  assert.deepEqual(client.present('lobby', 'group:staff'), []);
  assert.deepEqual(client.present('chat'), []);
  assert.deepEqual(recorder.args('receive_message'), []);
});

test('renewals ask for presence again: the new snapshot replaces what was known, a channel gone is forgotten', async () => {
  const server = await startServer();
  server.presence.set('broadcast:lobby', { users: { mary: 1 }, anonymous: 0 });
  server.presence.set('group:b:lobby', { users: { bob: 1 }, anonymous: 0 });
  const { client, recorder } = connect(server, { path: '?as=john&groups=a,b', recover: true });
  const lobby = presenceFollower(client);
  const subscribed = client.subscribe('lobby', ['broadcast', 'group'], null, lobby.options); // before the socket opens
  await client.subscribe('chat', ['broadcast']);
  await subscribed;
  assert.deepEqual(withoutRefs(requestsOf(server.sockets[0])), [
    { op: 'subscribe', facility: 'lobby', audiences: ['broadcast', 'group'], recover: {}, presence: true },
    { op: 'subscribe', facility: 'chat', audiences: ['broadcast'], recover: {} },
  ]);
  assert.deepEqual(client.present('lobby', 'group:b'), ['bob']);

  server.identify = (who) => ({ ...who, groups: ['a'] }); // john left the group b meanwhile
  server.presence.set('broadcast:lobby', { users: { zoe: 1 }, anonymous: 0 });
  // an event the new socket gets before its snapshot is left to the snapshot, which the server reads later
  const early = { presence: { facility: 'lobby', channel: 'broadcast', event: 'leave', user: 'mary' } };
  server.refusal = (op, header, ws) => {
    if (op === 'subscribe' && header.facility === 'lobby') server.send(ws, JSON.stringify(early), false);
    return null;
  };
  server.sockets[0].terminate();
  await recorder.until('disconnected', 1);
  assert.deepEqual(client.present('lobby'), ['mary'], 'what it knew last, while disconnected');
  await recorder.until('connected', 2);
  await client.publish('chat', 'broadcast', 'a round trip'); // sent after the renewals, answered after them
  assert.deepEqual(withoutRefs(requestsOf(server.sockets[1])).slice(0, 2), [
    { op: 'subscribe', facility: 'lobby', audiences: ['broadcast', 'group'], recover: { broadcast: '0-0', 'group:a': '0-0', 'group:b': '0-0' }, presence: true },
    { op: 'subscribe', facility: 'chat', audiences: ['broadcast'], recover: { broadcast: '0-0' } },
  ]);
  assert.deepEqual(lobby.calls.slice(3), [
    ['presence', 'broadcast', { zoe: 1 }, 0, 'lobby', ['zoe']],
    ['presence', 'group:a', {}, 0, 'lobby', []],
  ]);
  assert.deepEqual(client.present('lobby'), ['zoe']);
  assert.deepEqual(client.present('lobby', 'group:b'), [], 'no longer subscribed, so no longer known');
});

test('presence is asked per audience: a later subscribe without it, an unsubscribe and a refusal each hold', async () => {
  const server = await startServer();
  server.keepsPresence = (facility) => facility === 'lobby';
  server.presence.set('broadcast:lobby', { users: { mary: 1 }, anonymous: 0 });
  const { client, recorder } = connect(server, { path: '?as=john' });
  await recorder.until('connected', 1);
  const [ws] = server.sockets;

  await client.subscribe('news', ['broadcast']);
  const refused = await client.subscribe('news', ['broadcast'], null, { presence: true }).catch((err) => err);
  assert.equal(refused.code, 'bad-request', 'the news keep no presence');
  const lobby = presenceFollower(client);
  await client.subscribe('lobby', ['broadcast', 'user'], null, lobby.options);
  assert.equal(lobby.calls.length, 2);
  await client.subscribe('lobby', ['user']); // the user channel without presence from now on
  assert.deepEqual(client.present('lobby', 'user'), []);
  server.announce('user:john:lobby', 'join', 'john'); // the server still sends it: the client drops it
  server.announce('broadcast:lobby', 'join', 'john');
  await lobby.until(3);
  // a presence frame of a facility that never asked for it: neither a callback nor a message
  server.send(ws, JSON.stringify({ presence: { facility: 'news', channel: 'broadcast', event: 'join', user: 'eve' } }), false);
  await client.unsubscribe('lobby', ['broadcast']);
  assert.deepEqual(client.present('lobby'), [], 'forgotten with the unsubscribe');

  ws.terminate();
  await recorder.until('connected', 2);
  await client.publish('news', 'broadcast', 'a round trip');
  assert.deepEqual(withoutRefs(requestsOf(server.sockets[1])), [
    { op: 'subscribe', facility: 'news', audiences: ['broadcast'] },
    { op: 'subscribe', facility: 'lobby', audiences: ['user'] },
    { op: 'publish', facility: 'news', audience: 'broadcast' },
  ]);
  assert.deepEqual(lobby.calls.slice(2), [['joined', 'john', 'broadcast', 'lobby']]);
  assert.deepEqual(recorder.args('receive_message'), []);
  assert.deepEqual(recorder.args('refused'), []);
});
