// A server scripted after the control protocol's specification, on loopback
// with the `ws` package, for the client's tests: it selects the
// `ws4redis.control` subprotocol, answers subscribe, unsubscribe and publish
// requests, tags every message with its facility, channel and id, keeps a
// short history per channel for `recover`, and lets a test refuse requests,
// hold replies back, or look at every frame a socket sent. Presence is
// scripted: a subscribe with `"presence": true` gets a snapshot per channel
// from `presence` (who a test says is there), then the join and leave events
// a test announces.
//
// Who a socket is comes from its URL: `?as=<user>` (else anonymous),
// `&groups=a,b` and `&session=<key>`, through `identify` (which a test may
// replace); `echo` gives a socket its own publishes.
import { once } from 'node:events';
import http from 'node:http';

import { WebSocket } from './harness.mjs';

export const CONTROL = 'ws4redis.control';
const AUDIENCES = ['broadcast', 'user', 'group', 'session'];
const REF_MAX = 64;

// The labels an audience gives a socket: none when it is not who the audience needs.
function labelsOf(audience, who) {
  if (audience === 'broadcast') return ['broadcast'];
  if (audience === 'user') return who.user ? ['user'] : [];
  if (audience === 'session') return who.session ? ['session'] : [];
  return who.user ? who.groups.map((group) => `group:${group}`) : [];
}

// The Redis channel a label stands for on a socket (user, group and session channels are named).
function channelOf(facility, label, who) {
  if (label === 'user') return `user:${who.user}:${facility}`;
  if (label === 'session') return `session:${who.session}:${facility}`;
  return `${label}:${facility}`;
}

// A request frame: {header, payload, binary} or {error} with what was wrong.
function parseRequest(data, isBinary) {
  const bytes = Buffer.from(data);
  const at = bytes.indexOf(0x0a);
  const head = (at < 0 ? bytes : bytes.subarray(0, at)).toString('utf8');
  let header;
  try {
    header = JSON.parse(head);
  } catch {
    return { error: 'not JSON' };
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) return { error: 'not an object' };
  const payload = at < 0 ? null : bytes.subarray(at + 1);
  return { header, payload: isBinary ? payload : payload?.toString('utf8'), binary: isBinary };
}

export class ScriptedServer {
  // `selectProtocol: false` plays an older server, which never selects the subprotocol.
  static async start(options = {}) {
    const server = new ScriptedServer(options);
    server.http.listen(0, '127.0.0.1');
    await once(server.http, 'listening');
    server.url = `ws://127.0.0.1:${server.http.address().port}`;
    return server;
  }

  constructor({ selectProtocol = true } = {}) {
    this.http = http.createServer();
    this.wss = new WebSocket.Server({
      server: this.http,
      handleProtocols: (protocols) => (selectProtocol && protocols.has(CONTROL) ? CONTROL : false),
    });
    this.sockets = []; // every socket, with .requests (parsed frames) and .subscribed (channel -> label)
    this.histories = new Map(); // Redis channel -> {entries: [{id, payload, binary}], trimmedUpTo: n}
    this.historySize = 100;
    this.ids = 0;
    this.refusal = () => null; // (op, header, socket) -> an error code, or null to serve
    this.presence = new Map(); // Redis channel -> {users: {name: sockets}, anonymous}; none: nobody
    this.keepsPresence = () => true; // (facility) -> whether a subscribe may ask for presence
    this.identify = (who) => who; // who a new socket is, from what its URL says
    this.holdReplies = false; // true: replies wait in socket.held until release()
    this.wss.on('connection', (ws, req) => this.accept(ws, req));
  }

  accept(ws, req) {
    const url = new URL(req.url, 'http://x');
    const params = url.searchParams;
    ws.path = req.url;
    ws.who = this.identify({
      user: params.get('as'),
      groups: (params.get('groups') || '').split(',').filter(Boolean),
      session: params.get('session'),
    });
    ws.echo = params.has('echo');
    ws.requests = [];
    ws.held = [];
    ws.subscribed = new Map();
    ws.following = new Set(); // the Redis channels whose presence the socket asked for
    this.sockets.push(ws);
    const facility = decodeURIComponent(url.pathname.replace(/^\/ws\//, ''));
    const first = AUDIENCES.filter((audience) => params.has(`subscribe-${audience}`));
    if (facility && first.length) this.subscribeChannels(ws, facility, first);
    ws.on('message', (data, isBinary) => this.onFrame(ws, data, isBinary));
  }

  onFrame(ws, data, isBinary) {
    const request = parseRequest(data, isBinary);
    ws.requests.push(request);
    const { header } = request;
    const ref = header && (typeof header.ref === 'number' || (typeof header.ref === 'string' && header.ref.length <= REF_MAX)) ? header.ref : null;
    if (request.error) return this.reply(ws, { reply: null, ok: false, error: 'bad-request', reason: request.error });
    const refused = this.refusal(header.op, header, ws);
    if (refused) return this.reply(ws, { reply: ref, ok: false, error: refused, reason: `scripted ${refused}` });
    if (header.op === 'subscribe') return this.subscribe(ws, ref, header);
    if (header.op === 'unsubscribe') return this.unsubscribe(ws, ref, header);
    if (header.op === 'publish') return this.publish(ws, ref, header, request);
    return this.reply(ws, { reply: ref, ok: false, error: 'bad-request', reason: `unknown op ${header.op}` });
  }

  subscribe(ws, ref, { facility, audiences, recover, presence = false }) {
    const badAudiences = !Array.isArray(audiences) || !audiences.length || audiences.some((a) => !AUDIENCES.includes(a));
    if (typeof facility !== 'string' || badAudiences || typeof presence !== 'boolean') {
      return this.reply(ws, { reply: ref, ok: false, error: 'bad-request', reason: 'facility, audiences or presence' });
    }
    if (presence && !this.keepsPresence(facility)) {
      return this.reply(ws, { reply: ref, ok: false, error: 'bad-request', reason: 'presence is not kept' });
    }
    if (!facility || facility.includes(':')) {
      return this.reply(ws, { reply: ref, ok: false, error: 'invalid-facility', reason: 'bad facility' });
    }
    const granted = audiences.filter((audience) => labelsOf(audience, ws.who).length > 0);
    if (!granted.length) {
      return this.reply(ws, { reply: ref, ok: false, error: 'forbidden', reason: 'no such channel on this socket' });
    }
    const labels = this.subscribeChannels(ws, facility, granted);
    const reply = { reply: ref, ok: true, audiences: granted, channels: labels };
    if (recover !== undefined) reply.recovery = this.recover(ws, facility, labels, recover);
    if (presence) this.snapshots(ws, facility, labels);
    this.reply(ws, reply);
  }

  // Who is on each channel, before the reply; the socket follows their events from now on.
  snapshots(ws, facility, labels) {
    for (const label of labels) {
      const channel = channelOf(facility, label, ws.who);
      const { users, anonymous } = this.presence.get(channel) ?? { users: {}, anonymous: 0 };
      this.send(ws, JSON.stringify({ presence: { facility, channel: label, users, anonymous } }), false);
      ws.following.add(channel);
    }
  }

  // As a user's first socket arriving or last leaving would: the snapshot of `channel` changes and
  // every socket following it gets the event.
  announce(channel, event, user) {
    const present = this.presence.get(channel) ?? { users: {}, anonymous: 0 };
    const users = { ...present.users };
    if (event === 'join') users[user] = 1;
    else delete users[user];
    this.presence.set(channel, { ...present, users });
    for (const ws of this.open.filter((socket) => socket.following.has(channel))) {
      const { facility, label } = ws.subscribed.get(channel);
      this.send(ws, JSON.stringify({ presence: { facility, channel: label, event, user } }), false);
    }
  }

  // Subscribe the socket's channels of `audiences`; returns their labels.
  subscribeChannels(ws, facility, audiences) {
    const labels = audiences.flatMap((audience) => labelsOf(audience, ws.who));
    for (const label of labels) ws.subscribed.set(channelOf(facility, label, ws.who), { facility, label });
    return labels;
  }

  // Send what followed each position; the report {label: {id, recovered}}.
  recover(ws, facility, labels, positions) {
    const report = {};
    for (const label of labels) {
      const { entries, trimmedUpTo } = this.history(channelOf(facility, label, ws.who));
      const last = entries.at(-1)?.id ?? (trimmedUpTo ? `${trimmedUpTo}-0` : '0-0');
      const from = positions[label];
      const after = typeof from === 'string' ? Number(from.split('-')[0]) : null;
      const recovered = after === null || after >= trimmedUpTo;
      if (after !== null && recovered) {
        for (const entry of entries.filter((e) => Number(e.id.split('-')[0]) > after)) {
          this.deliver(ws, facility, label, entry);
        }
      }
      report[label] = { id: last, recovered };
    }
    return report;
  }

  history(channel) {
    if (!this.histories.has(channel)) this.histories.set(channel, { entries: [], trimmedUpTo: 0 });
    return this.histories.get(channel);
  }

  unsubscribe(ws, ref, { facility, audiences }) {
    const dropped = new Set();
    for (const [channel, { facility: f, label }] of ws.subscribed) {
      const audience = label.split(':')[0];
      if (f === facility && (audiences ?? AUDIENCES).includes(audience)) {
        ws.subscribed.delete(channel);
        ws.following.delete(channel);
        dropped.add(audience);
      }
    }
    this.reply(ws, { reply: ref, ok: true, audiences: [...dropped] });
  }

  publish(ws, ref, { facility, audience }, { payload, binary }) {
    const labels = labelsOf(audience, ws.who);
    for (const label of labels) this.publishTo(channelOf(facility, label, ws.who), payload, binary, ws);
    this.reply(ws, { reply: ref, ok: true });
  }

  // As Redis would: append to the channel's history and send to every subscriber of it.
  publishTo(channel, payload, binary = false, from = null) {
    const entry = { id: `${++this.ids}-0`, payload, binary };
    const history = this.history(channel);
    history.entries.push(entry);
    while (history.entries.length > this.historySize) {
      history.trimmedUpTo = Number(history.entries.shift().id.split('-')[0]);
    }
    for (const ws of this.sockets) {
      const subscription = ws.subscribed.get(channel);
      if (subscription && ws.readyState === WebSocket.OPEN && (ws !== from || ws.echo)) {
        this.deliver(ws, subscription.facility, subscription.label, entry);
      }
    }
    return entry.id;
  }

  deliver(ws, facility, label, { id, payload, binary }) {
    const head = `${JSON.stringify({ facility, channel: label, id })}\n`;
    const frame = binary ? Buffer.concat([Buffer.from(head), payload]) : head + payload;
    this.send(ws, frame, binary);
  }

  reply(ws, body) {
    if (this.holdReplies) ws.held.push(body);
    else this.send(ws, JSON.stringify(body), false);
  }

  // Send the replies held back, in order.
  release(ws) {
    for (const body of ws.held.splice(0)) this.send(ws, JSON.stringify(body), false);
  }

  send(ws, frame, binary) {
    if (ws.readyState === WebSocket.OPEN) ws.send(frame, { binary });
  }

  get open() {
    return this.sockets.filter((ws) => ws.readyState === WebSocket.OPEN);
  }

  async close() {
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
    this.http.closeAllConnections?.();
    await new Promise((resolve) => this.http.close(resolve));
  }
}
