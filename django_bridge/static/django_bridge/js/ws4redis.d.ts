/**
 * Types of ws4redis.js, the browser (and Node) client of ws4redis-tornado
 * websockets. ws4redis.js's header comment documents the behaviour; these
 * declarations follow it. For `require('ws4redis-tornado')` (CommonJS);
 * ws4redis.d.mts re-exports them for the ES module.
 */

declare namespace WS4Redis {
  /** An audience of a facility: whose channel it is. */
  type Audience = 'broadcast' | 'user' | 'group' | 'session';

  /** A channel's label: 'broadcast', 'user', 'session' or 'group:<name>'. */
  type ChannelLabel = string;

  /**
   * A message as receive_message and subscribe() callbacks get it: a string for
   * a text message; for a binary one what the WebSocket gives with binaryType
   * 'arraybuffer' (an ArrayBuffer; a view, such as a Node Buffer, where the
   * implementation gives one).
   */
  type MessageData = string | ArrayBuffer | ArrayBufferView;

  /** A Blob, as far as the client needs one (so that no DOM types are required). */
  interface BlobLike {
    readonly size: number;
    readonly type: string;
    arrayBuffer(): Promise<ArrayBuffer>;
  }

  /** What publish() takes: a string is a text message, binary data a binary one. */
  type PublishData = string | ArrayBuffer | ArrayBufferView | BlobLike;

  /** A WebSocket constructor: the browser's, or the `ws` package's in Node. */
  type WebSocketConstructor = new (url: string, protocols?: string[]) => object;

  /** Where a message came from, on a control socket. */
  interface MessageMeta {
    facility: string;
    channel: ChannelLabel;
    /** The message's history id; null without history. */
    id: string | null;
  }

  /** Per channel label, where the client now stands and whether the gap was sent. */
  type RecoveryReport = Record<ChannelLabel, { id: string | null; recovered: boolean }>;

  /** A close event, or the close-like object the client makes when it gives a socket up. */
  interface CloseInfo {
    type: 'close' | string;
    code: number;
    reason: string;
    wasClean: boolean;
    /** The exception, when `new WebSocket()` threw. */
    error?: unknown;
  }

  /** Who is on a channel, user name -> their sockets. */
  type PresenceUsers = Record<string, number>;

  /** The server's reply to a request. */
  interface Reply {
    reply: number | string | null;
    ok: true;
  }

  interface SubscribeReply extends Reply {
    /** The audiences granted. */
    audiences: Audience[];
    /** The labels of the channels subscribed. */
    channels: ChannelLabel[];
    /** With recover. */
    recovery?: RecoveryReport;
  }

  interface UnsubscribeReply extends Reply {
    /** The audiences that were subscribed and are no longer. */
    audiences?: Audience[];
  }

  interface RefusedReply {
    reply: number | string | null;
    ok: false;
    error: string;
    reason: string;
  }

  /** The server's codes, then the client's own. */
  type ErrorCode =
    | 'bad-request'
    | 'invalid-facility'
    | 'forbidden'
    | 'too-many-subscriptions'
    | 'unavailable'
    | 'disconnected'
    | 'cancelled'
    | 'closed';

  /** How a control request's Promise is rejected. */
  interface RequestError extends Error {
    code: ErrorCode;
    reason: string;
    facility: string;
    /** The server's reply, when it refused. */
    reply: RefusedReply | null;
  }

  type MessageCallback = (data: MessageData, meta: MessageMeta) => void;

  /** What a subscribe() on a control socket asks of its audiences' presence. */
  interface SubscribeOptions {
    /**
     * Follow who is on the channels (the facility must keep presence); a
     * function is also called with each snapshot, before the reply, on every
     * (re)subscribe.
     */
    presence?: boolean | ((channel: ChannelLabel, users: PresenceUsers, anonymous: number, facility: string) => void);
    /** With presence: a user arrived on a channel. */
    joined?: (user: string, channel: ChannelLabel, facility: string) => void;
    /** With presence: a user's last socket on a channel has gone. */
    left?: (user: string, channel: ChannelLabel, facility: string) => void;
  }

  interface Options {
    /** The websocket URI, e.g. '{{ WEBSOCKET_URI }}foobar?subscribe-broadcast'. */
    uri: string;
    /** Before every connection attempt. */
    connecting?: () => void;
    /** When the socket has opened. */
    connected?: () => void;
    /** Every message but the heartbeat; `meta` on a control socket only. */
    receive_message?: (data: MessageData, meta?: MessageMeta) => void;
    /** With the close event (or a close-like object). */
    disconnected?: (evt: CloseInfo) => void;
    /** The heartbeat string ({{ WS4REDIS_HEARTBEAT }}); null: no heartbeats. */
    heartbeat_msg?: string | null;
    /** Default 5000. */
    heartbeat_interval_ms?: number;
    /** Default 1000. */
    reconnect_base_ms?: number;
    /** Default 30000. */
    reconnect_max_ms?: number;
    /** The WebSocket constructor; in Node, `require('ws')`. */
    WebSocket?: WebSocketConstructor;
    /** Recover the messages missed while disconnected. */
    recover?: boolean;
    /** With recover: the channels whose gap the server could not send (and, with control, their facility). */
    not_recovered?: (labels: ChannelLabel[], facility?: string) => void;
    /** Follow who is connected; a function is also called with each snapshot. Not with control: subscribe() takes it. */
    presence?: boolean | ((channel: ChannelLabel, users: PresenceUsers, anonymous: number) => void);
    /** With presence: a user arrived on a channel. */
    joined?: (user: string, channel: ChannelLabel) => void;
    /** With presence: a user's last socket on a channel has gone. */
    left?: (user: string, channel: ChannelLabel) => void;
    /** Speak the control protocol: subscribe(), unsubscribe() and publish() on the open socket. */
    control?: boolean;
    /** With control: a subscription renewed after a reconnect was refused, and dropped. */
    refused?: (error: RequestError) => void;
  }

  interface Client {
    /** Send a string or binary data as it is (on a control socket: a raw request). */
    send_message(message: PublishData): void;
    /** Close for good: no reconnects; with control, unsettled requests are rejected ('closed'). */
    close(): void;
    /** With presence: the sorted user names on a channel ('broadcast' by default). */
    present(channel?: ChannelLabel): string[];
    /** With control: the sorted user names on a facility's channel ('broadcast' by default), for a subscribe() with presence. */
    present(facility: string, channel?: ChannelLabel): string[];
    /** The socket's readyState, 3 while there is none. */
    get_state(): 0 | 1 | 2 | 3;
    is_connecting(): boolean;
    is_connected(): boolean;
    is_closing(): boolean;
    is_closed(): boolean;
    /** With control: subscribe audiences of a facility; `callback` gets their messages, `options` ask for presence. */
    subscribe(
      facility: string,
      audiences: Audience[],
      callback?: MessageCallback | null,
      options?: SubscribeOptions,
    ): Promise<SubscribeReply>;
    /** With control: unsubscribe audiences of a facility (all of them without `audiences`); null when not connected. */
    unsubscribe(facility: string, audiences?: Audience[]): Promise<UnsubscribeReply | null>;
    /** With control: publish to one audience of a facility. */
    publish(facility: string, audience: Audience, data: PublishData): Promise<Reply>;
  }
}

interface WS4RedisConstructor {
  (options: WS4Redis.Options): WS4Redis.Client;
  new (options: WS4Redis.Options): WS4Redis.Client;
  readonly prototype: WS4Redis.Client;
}

declare const WS4Redis: WS4RedisConstructor;

export = WS4Redis;
