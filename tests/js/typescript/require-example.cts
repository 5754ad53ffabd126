// The CommonJS entry point's types: `require('ws4redis-tornado')`.
import WS4Redis = require('ws4redis-tornado');

const client: WS4Redis.Client = WS4Redis({ uri: 'ws://localhost:8000/ws/', control: true });
export const subscribed: Promise<WS4Redis.SubscribeReply> = client.subscribe('chat', ['broadcast'], (data, meta) => {
  client.publish(meta.facility, 'broadcast', typeof data === 'string' ? data.toUpperCase() : data);
});
