// Behaviour of the ws4redis.js client, driven through a fake WebSocket and
// node:test's mocked timers.  Run with: node --test tests/js/
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';

const require = createRequire(import.meta.url);
const WS4Redis = require('../../django_bridge/static/django_bridge/js/ws4redis.js');

const URI = 'ws://example.test/ws/foobar?subscribe-broadcast';

class FakeWebSocket {
  static instances = [];
  static throwOnConstruct = 0; // how many upcoming constructions throw

  constructor(url, ...rest) {
    if (FakeWebSocket.throwOnConstruct > 0) {
      FakeWebSocket.throwOnConstruct--;
      throw new SyntaxError('cannot connect');
    }
    this.url = url;
    this.constructedWith = rest; // the subprotocols, when any were given
    this.protocol = '';
    this.readyState = 0;
    this.binaryType = 'blob';
    this.sent = [];
    this.closeCalls = 0;
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    FakeWebSocket.instances.push(this);
  }

  // the WebSocket API used by the client
  send(data) {
    if (this.readyState === 0) throw new Error('InvalidStateError: still connecting');
    if (this.readyState === 1) this.sent.push(data); // CLOSING/CLOSED discard silently
  }

  close() {
    this.closeCalls++;
    if (this.readyState < 2) this.readyState = 2;
  }

  // drivers for the tests, playing the browser's part
  fireOpen(protocol = this.protocol) {
    this.protocol = protocol;
    this.readyState = 1;
    this.onopen?.({ type: 'open' });
  }

  fireMessage(data) {
    this.onmessage?.({ type: 'message', data });
  }

  fireError() {
    this.onerror?.({ type: 'error' });
  }

  fireClose(code = 1006) {
    this.readyState = 3;
    const evt = { type: 'close', code, reason: '', wasClean: code !== 1006 };
    this.onclose?.(evt);
    return evt;
  }
}

const sockets = () => FakeWebSocket.instances;
const lastSocket = () => sockets().at(-1);

let setTimeoutSpy;
let consoleWarn;

// Delays the client asked for through setTimeout (its reconnect timers).
const timeoutDelays = () => setTimeoutSpy.mock.calls.map((call) => call.arguments[1]);

beforeEach(() => {
  FakeWebSocket.instances = [];
  FakeWebSocket.throwOnConstruct = 0;
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  setTimeoutSpy = mock.method(globalThis, 'setTimeout');
  mock.method(console, 'info', () => {});
  consoleWarn = mock.method(console, 'warn', () => {});
  mock.method(console, 'log', () => {});
  mock.method(console, 'error', () => {});
});

afterEach(() => {
  mock.restoreAll();
  mock.timers.reset();
});

// A client with the fake socket whose callbacks append to `events`.
function makeClient(options = {}) {
  const events = [];
  const client = WS4Redis({
    uri: URI,
    WebSocket: FakeWebSocket,
    connecting: () => events.push(['connecting']),
    connected: () => events.push(['connected']),
    receive_message: (data) => events.push(['receive_message', data]),
    disconnected: (evt) => events.push(['disconnected', evt]),
    ...options,
  });
  const names = () => events.map((e) => e[0]);
  return { client, events, names };
}

describe('construction', () => {
  test('requires a uri', () => {
    for (const bad of [undefined, {}, { uri: '' }, { WebSocket: FakeWebSocket }]) {
      assert.throws(() => WS4Redis(bad), { name: 'Error', message: /uri/ });
    }
    assert.throws(() => new WS4Redis({ WebSocket: FakeWebSocket }), /uri/);
    assert.equal(sockets().length, 0);
  });

  test('is callable with and without new, and connects at once', () => {
    const a = WS4Redis({ uri: URI, WebSocket: FakeWebSocket });
    const b = new WS4Redis({ uri: URI, WebSocket: FakeWebSocket });
    for (const client of [a, b]) {
      assert.ok(client instanceof WS4Redis);
      for (const name of [
        'send_message',
        'close',
        'get_state',
        'is_connecting',
        'is_connected',
        'is_closing',
        'is_closed',
      ]) {
        assert.equal(typeof client[name], 'function', name);
      }
    }
    assert.equal(sockets().length, 2);
    assert.equal(sockets()[0].url, URI);
    assert.equal(sockets()[0].binaryType, 'arraybuffer');
  });

  test('fails clearly without any WebSocket implementation', () => {
    assert.equal(globalThis.WebSocket, undefined, 'Node 20 has no global WebSocket');
    assert.throws(() => WS4Redis({ uri: URI }), /no WebSocket implementation/);
  });

  test('uses the global WebSocket by default', () => {
    const saved = globalThis.WebSocket;
    globalThis.WebSocket = FakeWebSocket;
    try {
      WS4Redis({ uri: URI });
      assert.equal(sockets().length, 1);
    } finally {
      globalThis.WebSocket = saved;
    }
  });
});

describe('callbacks and messages', () => {
  test('fire in order: connecting, connected, receive_message, disconnected', () => {
    const { events, names } = makeClient();
    assert.deepEqual(names(), ['connecting']);
    const ws = lastSocket();
    ws.fireOpen();
    ws.fireMessage('hello');
    const closeEvt = ws.fireClose(1001);
    assert.deepEqual(names(), ['connecting', 'connected', 'receive_message', 'disconnected']);
    assert.equal(events[2][1], 'hello');
    assert.equal(events[3][1], closeEvt, 'disconnected gets the close event');
  });

  test('receive_message gets every message except the heartbeat', () => {
    const { events } = makeClient({ heartbeat_msg: '--heartbeat--' });
    const ws = lastSocket();
    ws.fireOpen();
    const binary = new Uint8Array([1, 2, 3]).buffer;
    ws.fireMessage('one');
    ws.fireMessage('--heartbeat--');
    ws.fireMessage(binary);
    ws.fireMessage('--heartbeat-- and more');
    const received = events.filter((e) => e[0] === 'receive_message').map((e) => e[1]);
    assert.deepEqual(received, ['one', binary, '--heartbeat-- and more']);
    assert.equal(received[1], binary);
  });

  test('without heartbeat_msg, a heartbeat-looking message is an ordinary one', () => {
    const { events } = makeClient();
    lastSocket().fireOpen();
    lastSocket().fireMessage('--heartbeat--');
    assert.deepEqual(events.at(-1), ['receive_message', '--heartbeat--']);
  });

  test('send_message sends strings and binary data over the socket', () => {
    const { client } = makeClient();
    const ws = lastSocket();
    ws.fireOpen();
    const buffer = new ArrayBuffer(4);
    const blob = new Blob(['x']);
    client.send_message('text');
    client.send_message(buffer);
    client.send_message(blob);
    assert.deepEqual(ws.sent, ['text', buffer, blob]);
    assert.equal(ws.sent[1], buffer);
  });
});

describe('reconnecting', () => {
  test('after an unexpected close, within the backoff bound, capped (random ~1)', () => {
    mock.method(Math, 'random', () => 0.999);
    const { names } = makeClient();
    lastSocket().fireOpen();
    lastSocket().fireClose();

    // attempt k waits in [0, min(30000, 1000 * 2^k)); random 0.999 lands at the top
    const bounds = [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
    for (const [k, bound] of bounds.entries()) {
      assert.equal(sockets().length, k + 1);
      const delay = timeoutDelays().at(-1);
      assert.equal(timeoutDelays().length, k + 1, 'one timer per close');
      assert.ok(delay < bound && delay >= 0.99 * bound, `attempt ${k}: ${delay} vs ${bound}`);
      mock.timers.tick(delay - 1);
      assert.equal(sockets().length, k + 1, `attempt ${k} too early`);
      mock.timers.tick(1);
      assert.equal(sockets().length, k + 2, `attempt ${k} did not reconnect`);
      lastSocket().fireError();
      lastSocket().fireClose(); // this attempt fails before opening
    }
    assert.equal(names().filter((n) => n === 'connecting').length, bounds.length + 1);
  });

  test('after an unexpected close, at once when random is 0', () => {
    mock.method(Math, 'random', () => 0);
    makeClient();
    for (let k = 0; k < 8; k++) {
      lastSocket().fireClose();
      assert.equal(timeoutDelays().at(-1), 0);
      mock.timers.tick(0);
      assert.equal(sockets().length, k + 2);
    }
  });

  test('the attempt counter resets on a successful open', () => {
    mock.method(Math, 'random', () => 0.999);
    makeClient();
    for (let k = 0; k < 4; k++) {
      lastSocket().fireClose();
      mock.timers.tick(timeoutDelays().at(-1));
    }
    assert.ok(timeoutDelays().at(-1) >= 7990, 'backoff grew');
    lastSocket().fireOpen();
    lastSocket().fireClose();
    assert.ok(timeoutDelays().at(-1) < 1000, `reset to the first step: ${timeoutDelays().at(-1)}`);
  });

  test('reconnect_base_ms and reconnect_max_ms override the defaults', () => {
    mock.method(Math, 'random', () => 0.999);
    makeClient({ reconnect_base_ms: 100, reconnect_max_ms: 500 });
    for (let k = 0; k < 6; k++) {
      lastSocket().fireClose();
      mock.timers.tick(timeoutDelays().at(-1));
    }
    const delays = timeoutDelays();
    const bounds = [100, 200, 400, 500, 500, 500];
    assert.equal(delays.length, bounds.length);
    delays.forEach((d, k) => assert.ok(d < bounds[k] && d >= 0.99 * bounds[k], `${k}: ${d}`));
  });

  test('when the very first `new WebSocket()` throws', () => {
    // Half the backoff bound each time (500 ms, then 1000 ms): the second attempt falls within
    // the first tick and the third within the second, whatever the jitter would have drawn.
    mock.method(Math, 'random', () => 0.5);
    FakeWebSocket.throwOnConstruct = 2;
    const { client, events, names } = makeClient();
    assert.equal(sockets().length, 0);
    assert.ok(client.is_closed());
    assert.equal(client.get_state(), 3);
    assert.throws(() => client.send_message('x'), /not connected/);
    assert.deepEqual(names(), ['connecting', 'disconnected']);
    assert.equal(events[1][1].code, 1006);
    assert.ok(events[1][1].error instanceof SyntaxError);
    assert.equal(timeoutDelays().length, 1, 'a reconnect is scheduled');

    mock.timers.tick(1000); // the second attempt throws as well
    assert.equal(sockets().length, 0);
    assert.equal(timeoutDelays().length, 2);
    mock.timers.tick(2000);
    assert.equal(sockets().length, 1);
    lastSocket().fireOpen();
    assert.ok(client.is_connected());
    assert.equal(names().filter((n) => n === 'connecting').length, 3);
    assert.equal(names().at(-1), 'connected');
  });

  test('when the very first connection fails with error and close before open', () => {
    const { client, names } = makeClient();
    lastSocket().fireError();
    lastSocket().fireClose();
    assert.deepEqual(names(), ['connecting', 'disconnected']);
    mock.timers.tick(1000);
    assert.equal(sockets().length, 2);
    lastSocket().fireOpen();
    assert.ok(client.is_connected());
  });

  test('never more than one pending reconnect timer', () => {
    makeClient();
    const ws = lastSocket();
    ws.fireClose();
    ws.fireClose();
    assert.equal(timeoutDelays().length, 1);
    mock.timers.tick(30000);
    assert.equal(sockets().length, 2);
  });
});

describe('close()', () => {
  test('stops a pending reconnect', () => {
    const { client, names } = makeClient();
    lastSocket().fireClose();
    assert.equal(timeoutDelays().length, 1, 'a reconnect is pending');
    client.close();
    mock.timers.tick(10 * 60 * 1000);
    assert.equal(sockets().length, 1);
    assert.deepEqual(names(), ['connecting', 'disconnected']);
  });

  test('closes an open socket, reports the close and never reconnects', () => {
    const { client, names } = makeClient({ heartbeat_msg: 'hb' });
    const ws = lastSocket();
    ws.fireOpen();
    client.close();
    assert.equal(ws.closeCalls, 1);
    assert.ok(client.is_closing());
    ws.fireClose(1000);
    assert.ok(client.is_closed());
    mock.timers.tick(10 * 60 * 1000);
    assert.equal(sockets().length, 1);
    assert.deepEqual(ws.sent, [], 'the heartbeat interval was cleared');
    assert.equal(timeoutDelays().length, 0);
    assert.deepEqual(names(), ['connecting', 'connected', 'disconnected']);
  });

  test('closes a socket that is still connecting, for good', () => {
    const { client } = makeClient();
    const ws = lastSocket();
    client.close();
    assert.equal(ws.closeCalls, 1);
    ws.fireError();
    ws.fireClose();
    mock.timers.tick(10 * 60 * 1000);
    assert.equal(sockets().length, 1);
  });

  test('called from the connecting callback, prevents the connection', () => {
    let client = null;
    let attempts = 0;
    client = WS4Redis({
      uri: URI,
      WebSocket: FakeWebSocket,
      connecting: () => {
        if (++attempts === 2) client.close();
      },
    });
    lastSocket().fireClose();
    mock.timers.tick(1000);
    assert.equal(attempts, 2);
    assert.equal(sockets().length, 1);
    mock.timers.tick(10 * 60 * 1000);
    assert.equal(attempts, 2);
  });

  test('called from the disconnected callback, prevents the reconnect', () => {
    let client = null;
    client = WS4Redis({
      uri: URI,
      WebSocket: FakeWebSocket,
      disconnected: () => client.close(),
    });
    lastSocket().fireClose();
    mock.timers.tick(10 * 60 * 1000);
    assert.equal(sockets().length, 1);
  });
});

describe('heartbeats', () => {
  test('three intervals without a server heartbeat close the socket, then reconnect', () => {
    const { client, events, names } = makeClient({ heartbeat_msg: 'hb' });
    const ws = lastSocket();
    ws.fireOpen();
    mock.timers.tick(4999);
    assert.deepEqual(ws.sent, []);
    mock.timers.tick(1);
    assert.deepEqual(ws.sent, ['hb']);
    mock.timers.tick(5000);
    assert.deepEqual(ws.sent, ['hb', 'hb']);
    assert.equal(ws.closeCalls, 0);
    assert.equal(timeoutDelays().length, 0);

    mock.timers.tick(5000); // the third missed heartbeat
    assert.equal(ws.closeCalls, 1);
    assert.equal(consoleWarn.mock.callCount(), 1);
    assert.deepEqual(names().at(-1), 'disconnected');
    assert.equal(events.at(-1)[1].reason, 'missed heartbeats');
    assert.ok(client.is_closed());
    assert.equal(timeoutDelays().length, 1, 'a reconnect is scheduled');

    mock.timers.tick(1000);
    assert.equal(sockets().length, 2);
    assert.deepEqual(ws.sent, ['hb', 'hb'], 'no heartbeats to the abandoned socket');

    // the abandoned socket finishing its close later changes nothing
    ws.fireClose();
    assert.equal(names().filter((n) => n === 'disconnected').length, 1);
    assert.equal(timeoutDelays().length, 1);

    // the new connection has its own, single heartbeat interval
    lastSocket().fireOpen();
    mock.timers.tick(5000);
    assert.deepEqual(lastSocket().sent, ['hb']);
  });

  test('a server heartbeat resets the missed-heartbeat counter', () => {
    const { names } = makeClient({ heartbeat_msg: 'hb' });
    const ws = lastSocket();
    ws.fireOpen();
    mock.timers.tick(10000); // two missed
    ws.fireMessage('hb');
    mock.timers.tick(10000); // two missed again, not three
    assert.equal(ws.closeCalls, 0);
    assert.deepEqual(ws.sent, ['hb', 'hb', 'hb', 'hb']);
    ws.fireMessage('hb');
    mock.timers.tick(10000);
    assert.equal(ws.closeCalls, 0);
    mock.timers.tick(5000);
    assert.equal(ws.closeCalls, 1);
    assert.ok(!names().includes('receive_message'));
  });

  test('an answering server keeps the connection open', () => {
    makeClient({ heartbeat_msg: 'hb', heartbeat_interval_ms: 1000 });
    const ws = lastSocket();
    ws.fireOpen();
    for (let i = 0; i < 20; i++) {
      mock.timers.tick(1000);
      ws.fireMessage('hb');
    }
    assert.equal(ws.sent.length, 20, 'heartbeat_interval_ms is honoured');
    assert.equal(ws.closeCalls, 0);
  });

  test('no heartbeats without heartbeat_msg', () => {
    makeClient();
    const ws = lastSocket();
    ws.fireOpen();
    mock.timers.tick(60000);
    assert.deepEqual(ws.sent, []);
    assert.equal(ws.closeCalls, 0);
  });

  test('never more than one heartbeat interval', () => {
    const setIntervalSpy = mock.method(globalThis, 'setInterval');
    makeClient({ heartbeat_msg: 'hb' });
    const ws = lastSocket();
    ws.fireOpen();
    ws.fireOpen();
    assert.equal(setIntervalSpy.mock.callCount(), 1);
    mock.timers.tick(5000);
    assert.deepEqual(ws.sent, ['hb']);
  });

  test('the interval stops when the connection closes', () => {
    makeClient({ heartbeat_msg: 'hb' });
    const ws = lastSocket();
    ws.fireOpen();
    ws.fireClose();
    const before = ws.sent.length;
    mock.timers.tick(500); // the reconnect happens; the new socket never opens
    mock.timers.tick(60000);
    assert.equal(ws.sent.length, before);
    assert.equal(lastSocket().sent.length, 0);
  });
});

describe('state predicates', () => {
  test('follow readyState', () => {
    const { client } = makeClient();
    const ws = lastSocket();
    const flags = () => [
      client.get_state(),
      client.is_connecting(),
      client.is_connected(),
      client.is_closing(),
      client.is_closed(),
    ];
    assert.deepEqual(flags(), [0, true, false, false, false]);
    ws.fireOpen();
    assert.deepEqual(flags(), [1, false, true, false, false]);
    client.close();
    assert.deepEqual(flags(), [2, false, false, true, false]);
    ws.fireClose(1000);
    assert.deepEqual(flags(), [3, false, false, false, true]);
  });

  test('report closed before any socket exists', () => {
    FakeWebSocket.throwOnConstruct = 1;
    const { client } = makeClient();
    assert.equal(client.get_state(), 3);
    assert.ok(client.is_closed());
    assert.ok(!client.is_connecting() && !client.is_connected() && !client.is_closing());
  });
});

describe('recovery', () => {
  const header = (channel, id) => JSON.stringify({ channel, id });
  const envelope = (channel, id, payload) => `${header(channel, id)}\n${payload}`;
  const report = (channels) => JSON.stringify({ recovery: channels });
  const bytes = (...values) => new Uint8Array(values);
  // A binary envelope as an ArrayBuffer: the header's UTF-8 bytes, a newline, the payload.
  function binaryEnvelope(channel, id, payload) {
    const head = new TextEncoder().encode(`${header(channel, id)}\n`);
    const frame = new Uint8Array(head.length + payload.length);
    frame.set(head);
    frame.set(payload, head.length);
    return frame.buffer;
  }
  const received = (events) => events.filter((e) => e[0] === 'receive_message').map((e) => e[1]);
  // The positions a socket's URL carries, or undefined for a bare `recover`.
  function positionsIn(url) {
    const value = new URL(url).searchParams.get('recover');
    assert.notEqual(value, null, `no recover parameter in ${url}`);
    return value === '' ? undefined : JSON.parse(value);
  }
  function reconnect() {
    lastSocket().fireClose();
    mock.timers.tick(30000);
    lastSocket().fireOpen();
  }

  test('without recover, the URI is used as given and frames are passed on untouched', () => {
    const { events } = makeClient();
    const ws = lastSocket();
    assert.equal(ws.url, URI);
    ws.fireOpen();
    const binary = binaryEnvelope('broadcast', '1-0', bytes(1, 2));
    ws.fireMessage(envelope('broadcast', '1-0', 'hello'));
    ws.fireMessage(report({ broadcast: { id: '1-0', recovered: false } }));
    ws.fireMessage(binary);
    assert.deepEqual(received(events), [
      envelope('broadcast', '1-0', 'hello'),
      report({ broadcast: { id: '1-0', recovered: false } }),
      binary,
    ]);
    assert.equal(received(events)[2], binary);
    reconnect();
    assert.equal(lastSocket().url, URI);
  });

  test('opts in with a bare recover parameter, whatever the URI query looks like', () => {
    const cases = [
      ['ws://example.test/ws/chat', 'ws://example.test/ws/chat?recover'],
      ['ws://example.test/ws/chat?', 'ws://example.test/ws/chat?recover'],
      ['ws://example.test/ws/chat?subscribe-broadcast', 'ws://example.test/ws/chat?subscribe-broadcast&recover'],
      ['ws://example.test/ws/chat?echo&', 'ws://example.test/ws/chat?echo&recover'],
    ];
    for (const [uri, expected] of cases) {
      WS4Redis({ uri, WebSocket: FakeWebSocket, recover: true });
      assert.equal(lastSocket().url, expected);
    }
  });

  test('reconnects without positions while it has none', () => {
    makeClient({ recover: true });
    lastSocket().fireOpen();
    lastSocket().fireMessage(envelope('broadcast', null, 'not in history'));
    reconnect();
    assert.equal(lastSocket().url, `${URI}&recover`);
  });

  test('unwraps text messages: receive_message gets the payload, newlines and all', () => {
    const { events } = makeClient({ recover: true });
    const ws = lastSocket();
    ws.fireOpen();
    ws.fireMessage(envelope('broadcast', '1764547200000-0', 'hello'));
    ws.fireMessage(envelope('user', null, 'two\nlines\n'));
    ws.fireMessage(envelope('group:staff', '1764547200000-1', ''));
    ws.fireMessage(envelope('broadcast', '1764547200000-2', '{"json": true}'));
    assert.deepEqual(received(events), ['hello', 'two\nlines\n', '', '{"json": true}']);
  });

  test('unwraps binary messages into the type the socket gave', () => {
    const { events } = makeClient({ recover: true });
    const ws = lastSocket();
    ws.fireOpen();
    // an ArrayBuffer (browsers, and `ws` with binaryType 'arraybuffer') gives an ArrayBuffer
    ws.fireMessage(binaryEnvelope('broadcast', '5-0', bytes(0, 10, 255, 10)));
    // a Buffer (`ws` by default) gives a Buffer
    ws.fireMessage(Buffer.from(binaryEnvelope('group:café', '5-1', bytes(0xc3, 0x28))));
    const [buffer, nodeBuffer] = received(events);
    assert.ok(buffer instanceof ArrayBuffer);
    assert.deepEqual(new Uint8Array(buffer), bytes(0, 10, 255, 10));
    assert.ok(Buffer.isBuffer(nodeBuffer));
    assert.deepEqual(new Uint8Array(nodeBuffer), bytes(0xc3, 0x28));
    reconnect();
    assert.deepEqual(positionsIn(lastSocket().url), { broadcast: '5-0', 'group:café': '5-1' });
  });

  test('the report is not a message; positions follow messages and reports across reconnects', () => {
    const { events } = makeClient({ recover: true });
    lastSocket().fireOpen();
    lastSocket().fireMessage(envelope('broadcast', '1-0', 'a'));
    lastSocket().fireMessage(envelope('broadcast', '1-1', 'b'));
    lastSocket().fireMessage(envelope('user', null, 'c')); // not in history: no position
    reconnect();
    assert.deepEqual(positionsIn(lastSocket().url), { broadcast: '1-1' });

    lastSocket().fireMessage(envelope('broadcast', '1-2', 'd'));
    lastSocket().fireMessage(
      report({
        broadcast: { id: '1-2', recovered: true },
        user: { id: '0-0', recovered: true },
        session: { id: null, recovered: true },
      }),
    );
    lastSocket().fireMessage(envelope('broadcast', '2-0', 'e'));
    reconnect();
    assert.deepEqual(positionsIn(lastSocket().url), { broadcast: '2-0', user: '0-0', session: null });
    assert.ok(lastSocket().url.startsWith(`${URI}&recover=`));
    assert.doesNotMatch(lastSocket().url.slice(URI.length), /[{}":,]/, 'the positions are URI-encoded');

    lastSocket().fireMessage(report({ broadcast: { id: '2-0', recovered: true } }));
    reconnect();
    assert.deepEqual(positionsIn(lastSocket().url), { broadcast: '2-0', user: '0-0', session: null });
    assert.deepEqual(received(events), ['a', 'b', 'c', 'd', 'e']);
  });

  test('not_recovered gets the labels the server could not recover, once per report', () => {
    const calls = [];
    const { events } = makeClient({ recover: true, not_recovered: (labels) => calls.push(labels) });
    lastSocket().fireOpen();
    lastSocket().fireMessage(
      report({ broadcast: { id: '0-0', recovered: true }, user: { id: '0-0', recovered: true } }),
    );
    assert.deepEqual(calls, []);
    lastSocket().fireMessage(
      report({
        broadcast: { id: '9-0', recovered: false },
        user: { id: '0-0', recovered: true },
        'group:staff': { id: null, recovered: false },
      }),
    );
    assert.deepEqual(calls, [['broadcast', 'group:staff']]);
    assert.deepEqual(received(events), []);
    reconnect();
    assert.deepEqual(positionsIn(lastSocket().url), { broadcast: '9-0', user: '0-0', 'group:staff': null });
  });

  test('without a not_recovered callback, a report with losses is harmless', () => {
    makeClient({ recover: true });
    lastSocket().fireOpen();
    lastSocket().fireMessage(report({ broadcast: { id: '9-0', recovered: false } }));
  });

  test('the plain heartbeat frame still counts as one, and is not passed on', () => {
    const { events } = makeClient({ recover: true, heartbeat_msg: 'hb' });
    const ws = lastSocket();
    ws.fireOpen();
    mock.timers.tick(10000); // two missed
    ws.fireMessage('hb');
    mock.timers.tick(10000); // two missed again, not three
    assert.equal(ws.closeCalls, 0);
    ws.fireMessage(envelope('broadcast', '1-0', 'hb')); // a published heartbeat string, as without recover
    mock.timers.tick(10000);
    assert.equal(ws.closeCalls, 0);
    assert.deepEqual(received(events), []);
    reconnect();
    assert.deepEqual(positionsIn(lastSocket().url), { broadcast: '1-0' });
  });

  test('frames without a header are passed on as they are', () => {
    const { events } = makeClient({ recover: true });
    const ws = lastSocket();
    ws.fireOpen();
    const blob = new Blob(['x']);
    const noNewline = bytes(1, 2, 3).buffer;
    const notJson = new TextEncoder().encode('not json\npayload').buffer;
    ws.fireMessage('--heartbeat--');
    ws.fireMessage('{"no": "recovery"}');
    ws.fireMessage('["a"]\nlist header');
    ws.fireMessage(blob);
    ws.fireMessage(noNewline);
    ws.fireMessage(notJson);
    assert.deepEqual(received(events), [
      '--heartbeat--',
      '{"no": "recovery"}',
      '["a"]\nlist header',
      blob,
      noNewline,
      notJson,
    ]);
  });
});

describe('presence', () => {
  const envelope = (channel, payload) => `${JSON.stringify({ channel, id: null })}\n${payload}`;
  const snapshot = (channel, users, anonymous = 0) => JSON.stringify({ presence: { channel, users, anonymous } });
  const event = (channel, kind, user) => JSON.stringify({ presence: { channel, event: kind, user } });
  const received = (events) => events.filter((e) => e[0] === 'receive_message').map((e) => e[1]);
  const calls = (events, ...names) => events.filter((e) => names.includes(e[0]));

  // A client following presence whose presence, joined and left calls append to `events` too.
  function presenceClient(options = {}) {
    const made = makeClient({
      presence: (channel, users, anonymous) => made.events.push(['presence', channel, users, anonymous]),
      joined: (user, channel) => made.events.push(['joined', user, channel]),
      left: (user, channel) => made.events.push(['left', user, channel]),
      ...options,
    });
    return made;
  }

  function reconnect() {
    lastSocket().fireClose();
    mock.timers.tick(30000);
    lastSocket().fireOpen();
  }

  test('opts in with the presence parameter on every connection, after recover', () => {
    makeClient({ presence: true });
    assert.equal(lastSocket().url, `${URI}&presence`);
    reconnect();
    assert.equal(lastSocket().url, `${URI}&presence`);

    WS4Redis({ uri: 'ws://example.test/ws/chat?', WebSocket: FakeWebSocket, presence: true });
    assert.equal(lastSocket().url, 'ws://example.test/ws/chat?presence');

    makeClient({ presence: () => {}, recover: true });
    assert.equal(lastSocket().url, `${URI}&recover&presence`);
    lastSocket().fireOpen();
    lastSocket().fireMessage(`${JSON.stringify({ channel: 'broadcast', id: '7-0' })}\nx`);
    reconnect();
    const url = new URL(lastSocket().url);
    assert.deepEqual(JSON.parse(url.searchParams.get('recover')), { broadcast: '7-0' });
    assert.ok(url.search.endsWith('&presence'), url.search);
  });

  test('unwraps messages as recover does; presence frames are never messages', () => {
    const { events, client } = presenceClient();
    const ws = lastSocket();
    ws.fireOpen();
    ws.fireMessage(snapshot('broadcast', { john: 2 }, 1));
    ws.fireMessage(envelope('broadcast', 'hello\nworld'));
    ws.fireMessage(event('broadcast', 'join', 'mary'));
    ws.fireMessage(envelope('broadcast', JSON.stringify({ presence: { channel: 'broadcast', users: {} } })));
    assert.deepEqual(received(events), [
      'hello\nworld',
      JSON.stringify({ presence: { channel: 'broadcast', users: {} } }), // a message that looks like one
    ]);
    assert.deepEqual(client.present(), ['john', 'mary']);
    // with ids on (history), a client without recover keeps no positions
    ws.fireMessage(`${JSON.stringify({ channel: 'broadcast', id: '3-0' })}\nwith id`);
    reconnect();
    assert.equal(lastSocket().url, `${URI}&presence`);
    assert.equal(received(events).at(-1), 'with id');
  });

  test('snapshots, joins and leaves reach their callbacks, and present() follows them', () => {
    const { events, client } = presenceClient();
    assert.deepEqual(client.present(), [], 'nothing known before the first snapshot');
    lastSocket().fireOpen();
    lastSocket().fireMessage(snapshot('broadcast', { mary: 1, john: 2 }, 3));
    lastSocket().fireMessage(snapshot('group:staff', { admin: 1 }));
    lastSocket().fireMessage(event('broadcast', 'join', 'zoe'));
    lastSocket().fireMessage(event('broadcast', 'leave', 'john'));
    lastSocket().fireMessage(event('group:staff', 'join', 'mary'));
    assert.deepEqual(calls(events, 'presence', 'joined', 'left'), [
      ['presence', 'broadcast', { mary: 1, john: 2 }, 3],
      ['presence', 'group:staff', { admin: 1 }, 0],
      ['joined', 'zoe', 'broadcast'],
      ['left', 'john', 'broadcast'],
      ['joined', 'mary', 'group:staff'],
    ]);
    assert.deepEqual(client.present(), ['mary', 'zoe']);
    assert.deepEqual(client.present('broadcast'), ['mary', 'zoe']);
    assert.deepEqual(client.present('group:staff'), ['admin', 'mary']);
    assert.deepEqual(client.present('user'), []);
  });

  test('events are set operations: only a change calls joined or left', () => {
    const { events, client } = presenceClient();
    lastSocket().fireOpen();
    lastSocket().fireMessage(snapshot('broadcast', { john: 1 }));
    lastSocket().fireMessage(event('broadcast', 'join', 'john')); // already in the snapshot
    lastSocket().fireMessage(event('broadcast', 'leave', 'mary')); // never known
    lastSocket().fireMessage(event('broadcast', 'leave', 'john'));
    lastSocket().fireMessage(event('broadcast', 'leave', 'john'));
    assert.deepEqual(calls(events, 'joined', 'left'), [['left', 'john', 'broadcast']]);
    assert.deepEqual(client.present(), []);
  });

  test("a reconnect's first snapshot replaces everything known before", () => {
    const { events, client } = presenceClient();
    lastSocket().fireOpen();
    lastSocket().fireMessage(snapshot('broadcast', { john: 1 }));
    lastSocket().fireMessage(snapshot('group:staff', { admin: 1 }));
    lastSocket().fireMessage(event('broadcast', 'join', 'mary'));
    reconnect();
    assert.deepEqual(client.present(), ['john', 'mary'], 'the last known state until the new snapshot');
    lastSocket().fireMessage(snapshot('broadcast', { zoe: 1 }));
    assert.deepEqual(client.present(), ['zoe']);
    assert.deepEqual(client.present('group:staff'), [], 'a channel without a new snapshot is forgotten');
    assert.deepEqual(calls(events, 'joined', 'left'), [['joined', 'mary', 'broadcast']], 'no event invented');
    assert.equal(calls(events, 'presence').length, 3);
  });

  test('user names that are also property names of plain objects are users like any other', () => {
    const { client } = presenceClient();
    lastSocket().fireOpen();
    lastSocket().fireMessage(snapshot('broadcast', { constructor: 1 }));
    lastSocket().fireMessage(event('broadcast', 'join', '__proto__'));
    lastSocket().fireMessage(event('broadcast', 'join', 'hasOwnProperty'));
    assert.deepEqual(client.present(), ['__proto__', 'constructor', 'hasOwnProperty']);
  });

  test('with presence: true and no callbacks, frames are handled all the same', () => {
    const { events, client } = makeClient({ presence: true });
    lastSocket().fireOpen();
    lastSocket().fireMessage(snapshot('broadcast', { john: 1 }));
    lastSocket().fireMessage(event('broadcast', 'join', 'mary'));
    assert.deepEqual(received(events), []);
    assert.deepEqual(client.present(), ['john', 'mary']);
  });

  test('without presence, presence frames are messages as before and present() knows nobody', () => {
    for (const options of [{}, { recover: true }]) {
      const { events, client } = presenceClient({ presence: undefined, ...options });
      lastSocket().fireOpen();
      lastSocket().fireMessage(snapshot('broadcast', { john: 1 }));
      lastSocket().fireMessage(event('broadcast', 'join', 'mary'));
      assert.deepEqual(received(events), [snapshot('broadcast', { john: 1 }), event('broadcast', 'join', 'mary')]);
      assert.deepEqual(calls(events, 'presence', 'joined', 'left'), []);
      assert.deepEqual(client.present(), []);
      assert.ok(!new URL(lastSocket().url).searchParams.has('presence'));
    }
  });
});

describe('control', () => {
  test('without control the socket is made with the URI alone, as always', () => {
    for (const options of [{}, { recover: true }, { presence: true }]) {
      makeClient(options);
      assert.deepEqual(lastSocket().constructedWith, []);
    }
  });

  test('with control every connection offers the ws4redis.control subprotocol', () => {
    mock.method(Math, 'random', () => 0);
    makeClient({ uri: 'ws://example.test/ws/', control: true, recover: true });
    lastSocket().fireOpen('ws4redis.control');
    lastSocket().fireClose();
    mock.timers.tick(0);
    assert.equal(sockets().length, 2);
    for (const socket of sockets()) {
      assert.deepEqual(socket.constructedWith, [['ws4redis.control']]);
      assert.equal(socket.url, 'ws://example.test/ws/', 'no recover parameter without a facility in the URI');
    }
  });

  test('a socket that opened without the subprotocol is closed and counts as a failed attempt', async () => {
    mock.method(Math, 'random', () => 0.999);
    const { client, events, names } = makeClient({ uri: 'ws://example.test/ws/', control: true });
    const subscribed = client.subscribe('chat', ['broadcast']);
    for (let k = 0; k < 3; k++) {
      lastSocket().fireOpen(''); // an older server: it ignores the offer
      assert.equal(lastSocket().closeCalls, 1);
      assert.deepEqual(lastSocket().sent, [], 'nothing is sent to a server that cannot read it');
      const bound = 1000 * 2 ** k;
      assert.ok(timeoutDelays().at(-1) >= 0.99 * bound, 'the backoff grows: no open counted');
      mock.timers.tick(timeoutDelays().at(-1));
    }
    assert.deepEqual(names().filter((n) => n !== 'connecting'), ['disconnected', 'disconnected', 'disconnected']);
    const evt = events.find((e) => e[0] === 'disconnected')[1];
    assert.deepEqual(evt, {
      type: 'close',
      code: 1002,
      wasClean: false,
      reason: 'the server did not select the ws4redis.control subprotocol',
    });
    lastSocket().fireOpen('ws4redis.control'); // a newer server at last
    assert.deepEqual(lastSocket().sent.map((frame) => JSON.parse(frame)), [
      { op: 'subscribe', ref: 1, facility: 'chat', audiences: ['broadcast'] },
    ]);
    lastSocket().fireMessage('{"reply":1,"ok":true,"audiences":["broadcast"],"channels":["broadcast"]}');
    assert.deepEqual(await subscribed, { reply: 1, ok: true, audiences: ['broadcast'], channels: ['broadcast'] });
  });

  test("with recover, the URI's facility keeps its ids in the URI, those of subscribe() in requests", () => {
    mock.method(Math, 'random', () => 0);
    const { client } = makeClient({ uri: 'ws://example.test/ws/lobby?subscribe-broadcast', control: true, recover: true });
    client.subscribe('chat', ['broadcast']);
    let ws = lastSocket();
    assert.equal(ws.url, 'ws://example.test/ws/lobby?subscribe-broadcast&recover');
    ws.fireOpen('ws4redis.control');
    ws.fireMessage('{"recovery":{"broadcast":{"id":"5-0","recovered":true}}}');
    ws.fireMessage('{"facility":"lobby","channel":"broadcast","id":"6-0"}\nin the lobby');
    ws.fireMessage('{"facility":"chat","channel":"broadcast","id":"7-0"}\nin the chat');
    ws.fireClose();
    mock.timers.tick(0);
    ws = lastSocket();
    const recover = new URL(ws.url).searchParams.get('recover');
    assert.deepEqual(JSON.parse(recover), { broadcast: '6-0' });
    ws.fireOpen('ws4redis.control');
    assert.deepEqual(JSON.parse(ws.sent[0]).recover, { broadcast: '7-0' });
  });

  test('the heartbeat is still a heartbeat, and a frame without a header still a message', () => {
    const { events } = makeClient({ uri: 'ws://example.test/ws/', control: true, heartbeat_msg: '--heartbeat--' });
    lastSocket().fireOpen('ws4redis.control');
    lastSocket().fireMessage('--heartbeat--');
    lastSocket().fireMessage('plain');
    assert.deepEqual(events.filter((e) => e[0] === 'receive_message'), [['receive_message', 'plain']]);
  });
});
