/*!
 * ws4redis.js -- browser client for ws4redis-tornado websockets.
 *
 * A dependency-free classic script: include it with
 *     <script src="{% static 'django_bridge/js/ws4redis.js' %}"></script>
 * and use the global `WS4Redis`. It also works as a CommonJS module
 * (`module.exports`), and `ws4redis.mjs` next to it re-exports it as an ES
 * module. Loading it always defines `globalThis.WS4Redis`.
 *
 * The API is that of the jQuery client of django-websocket-redis (ws4redis),
 * without the jQuery dependency:
 *
 *     var ws4redis = WS4Redis({            // `new WS4Redis(...)` works too
 *         uri: '{{ WEBSOCKET_URI }}foobar?subscribe-broadcast',
 *         connecting: on_connecting,       // before every connection attempt
 *         connected: on_connected,         // when the socket has opened
 *         receive_message: on_message,     // with evt.data, heartbeats excluded
 *         disconnected: on_disconnected,   // with the close event
 *         heartbeat_msg: {{ WS4REDIS_HEARTBEAT }}
 *     });
 *     ws4redis.send_message('Hello');      // string, ArrayBuffer or Blob
 *     ws4redis.close();                    // close for good: no reconnects
 *
 * State: is_connecting(), is_connected(), is_closing(), is_closed(), and
 * get_state() for the raw readyState (0..3; 3 while there is no socket).
 *
 * Other options (all optional):
 *   reconnect_base_ms      base of the reconnect backoff (default 1000)
 *   reconnect_max_ms       cap of the reconnect backoff (default 30000)
 *   heartbeat_interval_ms  heartbeat period when heartbeat_msg is set (default 5000)
 *   WebSocket              WebSocket constructor to use (default: the global one);
 *                          in Node, `require('ws')` (the `ws` package) works
 *
 * Reconnecting: after every close that was not requested through close() --
 * including a first connection that never opened and `new WebSocket()`
 * throwing -- the client reconnects after a random delay ("full jitter") in
 * [0, min(reconnect_max_ms, reconnect_base_ms * 2^k)) milliseconds, where k
 * counts the failed attempts since the last successful open (k = 0 for the
 * first retry, so it happens within a second by default).
 *
 * Heartbeats: with heartbeat_msg set, every heartbeat_interval_ms the client
 * counts one missed heartbeat and sends heartbeat_msg; a message from the
 * server equal to heartbeat_msg resets the count and is not passed on to
 * receive_message. When the count reaches 3 the connection is considered
 * dead: the socket is closed and abandoned (a dead peer may never finish the
 * closing handshake), disconnected() is called with a close-like object
 * {type: 'close', code: 1006, reason: 'missed heartbeats', wasClean: false},
 * and the client reconnects as after any other unexpected close. If
 * `new WebSocket()` throws, disconnected() likewise gets such an object with
 * the exception as its `error` property, so every connecting() is followed
 * by either connected() or disconnected().
 *
 * Errors: the client sets an onerror handler that does nothing, since every
 * error is followed by a close event, which reconnects. It is there for the
 * `ws` package in Node, whose WebSocket emits 'error' as an EventEmitter and
 * so would crash the process without a listener (e.g. when a draining server
 * refuses the handshake with 503).
 */
(function (root, factory) {
	'use strict';
	var WS4Redis = factory();
	if (typeof module === 'object' && module && module.exports) {
		module.exports = WS4Redis;
	}
	if (root) {
		root.WS4Redis = WS4Redis;
	}
}(typeof globalThis !== 'undefined' ? globalThis :
	typeof self !== 'undefined' ? self :
	typeof window !== 'undefined' ? window : this, function () {
	'use strict';

	var CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;
	var MAX_MISSED_HEARTBEATS = 3;
	var DEFAULTS = {
		heartbeat_msg: null,
		heartbeat_interval_ms: 5000,
		reconnect_base_ms: 1000,
		reconnect_max_ms: 30000
	};

	function WS4Redis(options) {
		if (!(this instanceof WS4Redis)) {
			return new WS4Redis(options);
		}
		if (!options || !options.uri) {
			throw new Error('WS4Redis: options.uri (the websocket URI) is required');
		}
		var opts = {}, key;
		for (key in DEFAULTS) {
			opts[key] = DEFAULTS[key];
		}
		for (key in options) {
			if (Object.prototype.hasOwnProperty.call(options, key) && options[key] !== undefined) {
				opts[key] = options[key];
			}
		}
		var WebSocketImpl = opts.WebSocket ||
			(typeof WebSocket !== 'undefined' ? WebSocket : null);
		if (typeof WebSocketImpl !== 'function') {
			throw new Error('WS4Redis: no WebSocket implementation available');
		}

		var ws = null;               // the current socket, null while there is none
		var attempts = 0;            // failed attempts since the last successful open
		var reconnect_timer = null;
		var heartbeat_interval = null;
		var missed_heartbeats = 0;
		var closed_by_user = false;

		function callback(name, arg) {
			if (typeof opts[name] === 'function') {
				return opts[name](arg);
			}
		}

		function connect() {
			reconnect_timer = null;
			callback('connecting');
			if (closed_by_user) {
				return;  // close() was called from the connecting callback
			}
			var sock;
			try {
				sock = new WebSocketImpl(opts.uri);
			} catch (err) {
				ws = null;
				disconnect({
					type: 'close', code: 1006, wasClean: false, error: err,
					reason: String(err && err.message || err)
				});
				return;
			}
			ws = sock;
			sock.binaryType = 'arraybuffer';
			sock.onopen = function () {
				if (sock === ws) {
					on_open();
				}
			};
			sock.onmessage = function (evt) {
				if (sock === ws) {
					return on_message(evt);
				}
			};
			sock.onclose = function (evt) {
				if (sock === ws) {
					disconnect(evt);
				}
			};
			// An error is always followed by a close event, which reconnects; but
			// the `ws` package's WebSocket throws an 'error' nobody listens to.
			sock.onerror = function () {};
		}

		function on_open() {
			console.info('WS4Redis: connected to ' + opts.uri);
			attempts = 0;
			if (opts.heartbeat_msg && heartbeat_interval === null) {
				missed_heartbeats = 0;
				var interval = setInterval(function () {
					// Ignore a tick of an interval that has been cleared: clearing an
					// interval from its own callback does not stop every timer
					// implementation (e.g. node:test's mock timers in Node 20).
					if (interval !== heartbeat_interval) {
						clearInterval(interval);
					} else {
						send_heartbeat();
					}
				}, opts.heartbeat_interval_ms);
				heartbeat_interval = interval;
			}
			callback('connected');
		}

		function on_message(evt) {
			if (opts.heartbeat_msg && evt.data === opts.heartbeat_msg) {
				missed_heartbeats = 0;
			} else {
				return callback('receive_message', evt.data);
			}
		}

		function send_heartbeat() {
			missed_heartbeats++;
			if (missed_heartbeats < MAX_MISSED_HEARTBEATS) {
				try {
					ws.send(opts.heartbeat_msg);
					return;
				} catch (err) {
					// fall through: a socket that cannot send is as good as dead
				}
			}
			console.warn('WS4Redis: closing connection to ' + opts.uri +
				' after ' + missed_heartbeats + ' missed heartbeats');
			var sock = ws;
			ws = null;  // abandon it: its late events are ignored
			try {
				sock.close();
			} catch (err) {
				// nothing more can be done with this socket
			}
			disconnect({type: 'close', code: 1006, wasClean: false, reason: 'missed heartbeats'});
		}

		function stop_heartbeat() {
			if (heartbeat_interval !== null) {
				clearInterval(heartbeat_interval);
				heartbeat_interval = null;
			}
		}

		// The single path for every end of a connection (or connection attempt).
		function disconnect(evt) {
			stop_heartbeat();
			callback('disconnected', evt);
			if (!closed_by_user) {
				schedule_reconnect();
			}
		}

		function schedule_reconnect() {
			if (reconnect_timer !== null) {
				return;
			}
			var bound = Math.min(opts.reconnect_max_ms,
				opts.reconnect_base_ms * Math.pow(2, Math.min(attempts, 30)));
			var delay = Math.floor(Math.random() * bound);
			attempts++;
			console.info('WS4Redis: connection to ' + opts.uri +
				' closed, reconnecting in ' + delay + ' ms');
			reconnect_timer = setTimeout(connect, delay);
		}

		function state() {
			return ws ? ws.readyState : CLOSED;
		}

		this.send_message = function (message) {
			if (!ws) {
				throw new Error('WS4Redis: not connected');
			}
			ws.send(message);
		};

		this.close = function () {
			closed_by_user = true;
			if (reconnect_timer !== null) {
				clearTimeout(reconnect_timer);
				reconnect_timer = null;
			}
			stop_heartbeat();
			if (ws && (ws.readyState === CONNECTING || ws.readyState === OPEN)) {
				ws.close();
			}
		};

		this.get_state = state;
		this.is_connecting = function () {
			return state() === CONNECTING;
		};
		this.is_connected = function () {
			return state() === OPEN;
		};
		this.is_closing = function () {
			return state() === CLOSING;
		};
		this.is_closed = function () {
			return state() === CLOSED;
		};

		connect();
	}

	return WS4Redis;
}));
