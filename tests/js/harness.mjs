// What the Node tests of the client run against: a private redis-server and
// the real Python server (`python -m ws4redis_tornado`), each a child process
// on a free loopback port in a process group of its own, plus a recorder of
// the client's callbacks and a publisher that goes through the server.
//
// The interpreter is WS4REDIS_PYTHON (tests/test_js_client.py passes its own),
// else the repository's .venv, else python3 on PATH; the Redis binary is
// WS4REDIS_REDIS_SERVER, else redis-server on PATH.
import { after, afterEach, before, beforeEach, mock } from 'node:test';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let WebSocket;
try {
  WebSocket = require('ws');
} catch (err) {
  throw new Error(`the ws package is missing: run \`npm ci\` in tests/js (${err.message})`);
}
export { WebSocket };

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const VENV_PYTHON = path.join(REPO_ROOT, '.venv', 'bin', 'python');
const PYTHON = process.env.WS4REDIS_PYTHON || (existsSync(VENV_PYTHON) ? VENV_PYTHON : 'python3');
const REDIS_SERVER = process.env.WS4REDIS_REDIS_SERVER || 'redis-server';
// Scales every wait, as WS4REDIS_TESTS_TIMEOUT_FACTOR does for the Python suite (tests/utils.py).
const FACTOR = Number(process.env.WS4REDIS_TESTS_TIMEOUT_FACTOR || 1);
export const TIMEOUT_MS = 10000 * FACTOR;
const POLL_MS = 20;

const running = new Set(); // every child still alive, killed on exit whatever happens
process.on('exit', () => {
  for (const child of running) killGroup(child);
});

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Resolves with the predicate's first truthy value; rejects after `timeout` ms naming `what`.
export async function waitUntil(predicate, what, timeout = TIMEOUT_MS, details = () => '') {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}\n${details()}`);
    await sleep(POLL_MS);
  }
}

// A command run as a child in its own process group, its output kept for failure messages.
class ChildProcess {
  constructor(name, command, args) {
    this.name = name;
    this.command = command;
    this.args = args;
    this.child = null;
    this.output = '';
  }

  launch() {
    const child = spawn(this.command, this.args, { cwd: REPO_ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk) => (this.output += chunk));
    child.stderr.on('data', (chunk) => (this.output += chunk));
    child.on('error', (err) => (this.output += `\n${err}`));
    child.exited = new Promise((resolve) => child.on('exit', resolve));
    this.child = child;
    running.add(child);
    child.exited.then(() => running.delete(child));
  }

  get alive() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  describe() {
    return `--- ${this.name} (${this.command} ${this.args.join(' ')}):\n${this.output}`;
  }

  async waitReady(ready) {
    await waitUntil(
      async () => {
        if (this.child.exitCode !== null || this.child.signalCode !== null) {
          throw new Error(`${this.name} exited before it was ready\n${this.describe()}`);
        }
        return ready();
      },
      `${this.name} to be ready`,
      15000 * FACTOR,
      () => this.describe(),
    );
  }

  // SIGKILL the whole group, as in a crash, and wait for the exit.
  async kill() {
    if (this.child === null || !running.has(this.child)) return;
    killGroup(this.child);
    await this.child.exited;
  }
}

export class RedisServer extends ChildProcess {
  constructor(port) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ws4redis-js-redis-'));
    super('redis-server', REDIS_SERVER, [
      '--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir,
    ]);
    this.dir = dir;
    this.port = port;
    this.url = `redis://127.0.0.1:${port}/0`;
  }

  static async start() {
    const server = new RedisServer(await freePort());
    server.launch();
    await server.waitReady(() => answersPing(server.port));
    return server;
  }

  async stop() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function answersPing(port) {
  const socket = net.connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    socket.write('PING\r\n');
    const [data] = await once(socket, 'data');
    return data.toString().startsWith('+PONG');
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

// `python -m ws4redis_tornado --demo` (clients may publish) with `args`, ready once /health answers 200.
export class Ws4RedisServer extends ChildProcess {
  static program = ['-m', 'ws4redis_tornado', '--demo'];

  constructor(redisUrl, port, args) {
    super(new.target.name, PYTHON, [
      ...new.target.program, '--host', '127.0.0.1', '--port', String(port), '--redis', redisUrl, ...args,
    ]);
    this.port = port;
    this.url = `ws://127.0.0.1:${port}`;
  }

  static async start(redisUrl, ...args) {
    return new this(redisUrl, await freePort(), args).start();
  }

  // Start (again, on the same port) and return once /health answers 200.
  async start() {
    this.launch();
    await this.waitReady(async () => {
      try {
        return (await fetch(`http://127.0.0.1:${this.port}/health`)).status === 200;
      } catch {
        return false;
      }
    });
    return this;
  }
}

// tests/js/named_server.py: the same server, but `?as=<name>` connects as that user (the
// core server knows no users); it takes --presence, --presence-interval, --history-size, --heartbeat.
export class NamedUsersServer extends Ws4RedisServer {
  static program = [path.join(REPO_ROOT, 'tests', 'js', 'named_server.py')];
}

// Calls of the client's callbacks, in order, which a test can wait for.
export class Recorder {
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

  // Resolves once `name` has been called `count` times in all; rejects after `timeout` ms.
  until(name, count, timeout = TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = this.waiting.filter((x) => x !== w);
        reject(new Error(`${name} was called ${this.args(name).length} times, not ${count}, within ${timeout} ms`));
      }, timeout);
      const w = {
        done: () => this.args(name).length >= count && (clearTimeout(timer), resolve(this.args(name)), true),
      };
      if (!w.done()) this.waiting.push(w);
    });
  }
}

// subscribe() options that follow presence on a control client, each call
// recorded in `calls` as [callback name, ...its arguments], a snapshot's with
// what present() answered when its callback ran.
export function presenceFollower(client) {
  const calls = [];
  const options = {
    presence: (label, users, anonymous, facility) => {
      calls.push(['presence', label, users, anonymous, facility, client.present(facility, label)]);
    },
    joined: (...args) => calls.push(['joined', ...args]),
    left: (...args) => calls.push(['left', ...args]),
  };
  const until = (n) => waitUntil(() => calls.length >= n && calls, `${n} presence calls`, undefined, () => JSON.stringify(calls));
  return { calls, options, until };
}

// Resolves once the server (tests/js/named_server.py) reads `expected`
// ({users, anonymous}) as who is on `facility`'s broadcast channel in every process.
export async function presenceIs(server, facility, expected) {
  let last;
  await waitUntil(
    async () => {
      last = await (await fetch(`http://127.0.0.1:${server.port}/presence/${facility}`)).json();
      return JSON.stringify(last) === JSON.stringify(expected);
    },
    `presence ${JSON.stringify(expected)} on ${facility}`,
    undefined,
    () => `last read: ${JSON.stringify(last)}`,
  );
}

// A WebSocket class (the `ws` package's) that keeps each socket it makes, the
// raw data of every message each received, before the client sees it, and
// what the client sent (`sent`; `sentRequests()`: the JSON headers of its
// control requests).
export function recordingWebSocket() {
  const sockets = [];
  class RecordingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.frames = [];
      this.sent = [];
      this.addEventListener('message', (evt) => this.frames.push(evt.data));
      sockets.push(this);
    }

    send(data, ...rest) {
      this.sent.push(data);
      return super.send(data, ...rest);
    }

    sentRequests() {
      return this.sent.map((data) => JSON.parse(Buffer.from(typeof data === 'string' ? data : new Uint8Array(data)).toString().split('\n')[0]));
    }
  }
  return { RecordingWebSocket, sockets };
}

// A socket that publishes through a server to `facility`'s broadcast channel,
// each message confirmed by its echo (so it is in Redis, and in the history).
export class Publisher {
  static async open(server, facility) {
    const ws = new WebSocket(`${server.url}/ws/${facility}?subscribe-broadcast&publish-broadcast&echo`);
    const publisher = new Publisher(ws);
    await once(ws, 'open');
    return publisher;
  }

  constructor(ws) {
    this.ws = ws;
    this.echoes = [];
    this.waiting = null;
    ws.on('message', (data, isBinary) => {
      this.echoes.push(isBinary ? data : data.toString());
      this.waiting?.();
    });
  }

  // Publish `message` (a string, or a Buffer for a binary message) and wait for its echo.
  async publish(message) {
    const before = this.echoes.length;
    const echoed = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no echo of ${message} within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
      this.waiting = () => {
        if (this.echoes.length > before) {
          clearTimeout(timer);
          resolve();
        }
      };
    });
    this.ws.send(message);
    await echoed;
    this.waiting = null;
    const echo = this.echoes.at(-1);
    const same = Buffer.isBuffer(message) ? Buffer.isBuffer(echo) && echo.equals(message) : echo === message;
    if (!same) throw new Error(`published ${message} but the echo was ${echo}`);
  }

  close() {
    this.ws.terminate();
  }
}

// The set-up of a test file against real servers: one redis-server for the file, quiet console
// logging, and whatever a test defers (servers, sockets, clients) closed after it, last first.
// `facility()` names a facility no other test of the file uses.
export function realServers(name) {
  const state = { redis: null, closers: [], facilities: 0 };
  before(async () => {
    state.redis = await RedisServer.start();
  });
  after(async () => {
    await state.redis?.stop();
  });
  beforeEach(() => {
    mock.method(console, 'info', () => {});
    mock.method(console, 'warn', () => {});
  });
  afterEach(async () => {
    for (const close of state.closers.reverse()) await close();
    state.closers = [];
    mock.restoreAll();
  });
  return {
    get redis() {
      return state.redis;
    },
    defer(close) {
      state.closers.push(close);
    },
    facility() {
      return `${name}-${process.pid}-${++state.facilities}`;
    },
  };
}
