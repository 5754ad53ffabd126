// Every option, callback and method of ws4redis.js, as a bundler's user writes
// them: type-checked by tests/test_js_package.py with `tsc --noEmit --strict`
// against the package's declarations (imported by the package's name).
import WS4Redis, { WS4Redis as Named } from 'ws4redis-tornado';

type Client = ReturnType<typeof WS4Redis>;

const log: string[] = [];

class NodeWebSocket {
  readyState = 0;
  constructor(readonly url: string, readonly protocols?: string[]) {}
}

const options: WS4Redis.Options = {
  uri: 'wss://example.com/ws/',
  control: true,
  recover: true,
  heartbeat_msg: '--heartbeat--',
  heartbeat_interval_ms: 5000,
  reconnect_base_ms: 1000,
  reconnect_max_ms: 30000,
  WebSocket: NodeWebSocket,
  connecting: () => log.push('connecting'),
  connected: () => log.push('connected'),
  disconnected: (evt) => log.push(`closed ${evt.code} ${evt.reason} ${evt.wasClean}`),
  receive_message: (data, meta) => log.push(typeof data === 'string' ? data : `${data.byteLength} bytes from ${meta?.facility}`),
  not_recovered: (labels, facility) => log.push(`lost ${labels.join()} of ${facility ?? 'the URI'}`),
  refused: (error) => log.push(`${error.facility}: ${error.code} ${error.reason}`),
};
const ws: Client = WS4Redis(options);

// The plain protocol with presence, as a constructor.
const lobby = new Named({
  uri: 'wss://example.com/ws/lobby?subscribe-broadcast',
  presence: (channel, users, anonymous) => log.push(`${channel}: ${Object.keys(users).length} + ${anonymous}`),
  joined: (user, channel) => log.push(`${user} joined ${channel}`),
  left: (user, channel) => log.push(`${user} left ${channel}`),
});
const here: string[] = lobby.present('broadcast').concat(lobby.present());
const state: 0 | 1 | 2 | 3 = lobby.get_state();
const flags: boolean[] = [lobby.is_connecting(), lobby.is_connected(), lobby.is_closing(), lobby.is_closed()];
lobby.send_message('Hello');
lobby.send_message(new Uint8Array([1, 2, 3]));
lobby.close();

function show(data: WS4Redis.MessageData, meta: WS4Redis.MessageMeta): void {
  const text = typeof data === 'string' ? data : `${data.byteLength} bytes`;
  log.push(`${meta.facility}/${meta.channel}@${meta.id ?? '-'}: ${text}`);
}

async function switchRoom(from: string, to: string): Promise<WS4Redis.SubscribeReply> {
  const left: WS4Redis.UnsubscribeReply | null = await ws.unsubscribe(from);
  log.push(left === null ? 'not connected' : `left ${left.audiences?.join() ?? ''}`);
  await ws.unsubscribe(from, ['group', 'user']);
  const reply = await ws.subscribe(to, ['broadcast', 'group'], show);
  const granted: WS4Redis.Audience[] = reply.audiences;
  const labels: string[] = reply.channels;
  const recovered = reply.recovery?.[labels[0]]?.recovered;
  log.push(`${granted.join()} ${labels.join()} ${recovered}`);
  await ws.subscribe('notifications', ['user', 'session']);
  await ws.subscribe('notifications', ['user'], null);
  return reply;
}

// Presence per subscription on the control socket.
async function enterLobby(room: string): Promise<string[]> {
  const following: WS4Redis.SubscribeOptions = {
    presence: (channel, users, anonymous, facility) => log.push(`${facility}/${channel}: ${Object.keys(users).length} + ${anonymous}`),
    joined: (user, channel, facility) => log.push(`${user} joined ${facility}/${channel}`),
    left: (user, channel, facility) => log.push(`${user} left ${facility}/${channel}`),
  };
  await ws.subscribe(room, ['broadcast', 'group'], show, following);
  await ws.subscribe('lobby', ['broadcast'], null, { presence: true });
  return ws.present(room).concat(ws.present(room, 'group:staff'));
}

async function say(room: string): Promise<void> {
  try {
    const reply: WS4Redis.Reply = await ws.publish(room, 'broadcast', 'Hello');
    log.push(String(reply.reply));
    await ws.publish(room, 'group', new Uint8Array([0, 1]).buffer);
    await ws.publish(room, 'user', new Uint8Array([2, 3]));
  } catch (err) {
    const error = err as WS4Redis.RequestError;
    const code: WS4Redis.ErrorCode = error.code;
    log.push(`${code}: ${error.reason} (${error.facility}, ${error.reply?.error ?? 'no reply'})`);
  }
}

export { enterLobby, flags, here, say, state, switchRoom };
