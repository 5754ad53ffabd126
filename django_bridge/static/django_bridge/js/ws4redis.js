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
 *   recover                true: recover the messages missed while disconnected
 *                          (see Recovery below; default false)
 *   not_recovered          with recover: called with an array of channel labels
 *                          (e.g. ['broadcast', 'group:staff']) whose missed
 *                          messages the server could no longer send
 *   presence               true: follow who is connected to the channels (see
 *                          Presence below; default false); a function does the
 *                          same and is called presence(channel, users, anonymous)
 *                          with each snapshot: on every (re)connect, once per
 *                          channel, `users` an object {user name: sockets}
 *   joined                 with presence: called joined(user, channel) when a
 *                          user arrives on a channel
 *   left                   with presence: called left(user, channel) when a
 *                          user's last socket on a channel has gone
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
 * Recovery: with `recover: true` the client opts in with the `recover` query
 * parameter: bare on its first connection, then
 * `recover=<encodeURIComponent(JSON positions)>` once it holds positions,
 * where positions maps each channel label ('broadcast', 'user', 'session',
 * 'group:<name>') to the id of the last message it received on it. The
 * server then sends, before anything live, the messages published since
 * those positions, followed by a recovery report, so that a reconnect loses
 * and repeats nothing while the server keeps the channel's history. Every
 * message arrives wrapped as `<header JSON>\n<payload>` (the header is
 * {"channel": label, "id": id-or-null}); the client unwraps it, so
 * receive_message gets exactly what it would get without `recover`: a
 * string for a text message, an ArrayBuffer (or what the WebSocket
 * implementation gives for binary data) for a binary one. The report, a text
 * frame {"recovery": {label: {"id": ..., "recovered": bool}}}, is not passed
 * on: it updates the positions, and when any channel has `recovered: false`
 * (its history was trimmed or expired meanwhile, or is off) not_recovered()
 * is called once with those labels. Positions last as long as this client
 * object, not across page loads. Frames without a header (the heartbeat) are
 * handled as without `recover`.
 *
 * Presence: with `presence` set (true, or the snapshot callback) the client
 * adds the `presence` query parameter to every connection (after `recover`'s
 * when both are given), so the server's facility must keep presence
 * (WS4REDIS_PRESENCE), or the handshake is refused with 400. Messages then
 * arrive wrapped as with `recover` and are unwrapped the same way:
 * receive_message gets exactly what it would get without `presence`. The
 * presence frames, text frames {"presence": {...}} without a newline, are
 * never passed on: right after opening, one snapshot per channel (who was
 * there, before this socket counted) goes to presence(channel, users,
 * anonymous), then each join and leave goes to joined(user, channel) or
 * left(user, channel), only when it changes who is present (a user's own
 * first socket arrives as a join too; anonymous sockets are counted in
 * snapshots only). `ws4redis.present(channel)` returns the sorted names of
 * the users present on a channel label ('broadcast' by default, else 'user',
 * 'session' or 'group:<name>'): the last snapshot with the events since. The
 * first snapshot after a reconnect replaces everything known before it, since
 * events missed while disconnected are never sent; until then present()
 * keeps answering from the last connection.
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
		reconnect_max_ms: 30000,
		recover: false,
		presence: false
	};
	var NEWLINE = 0x0A;
	var decoder = typeof TextDecoder !== 'undefined' ? new TextDecoder('utf-8') : null;

	// The UTF-8 text of the bytes `bytes` (a Uint8Array).
	function utf8_decode(bytes) {
		if (decoder !== null) {
			return decoder.decode(bytes);
		}
		var escaped = '';
		for (var i = 0; i < bytes.length; i++) {
			escaped += '%' + (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
		}
		return decodeURIComponent(escaped);
	}

	// The object `text` holds as JSON, or null when it holds no object.
	function parse_object(text) {
		var value;
		try {
			value = JSON.parse(text);
		} catch (err) {
			return null;
		}
		return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null;
	}

	// A header is {"channel": label, "id": id-or-null}.
	function is_header(header) {
		return header !== null && typeof header.channel === 'string' &&
			(header.id === null || typeof header.id === 'string');
	}

	// Split a frame from a client that opted in to recovery or presence.
	// Returns {header, payload} for a message, {report} for the recovery
	// report, {presence} for a presence frame (only `with_presence`), or null
	// for a frame without a header (e.g. the heartbeat), to be taken as it is.
	function unwrap(data, with_presence) {
		var header, at;
		if (typeof data === 'string') {
			at = data.indexOf('\n');
			if (at < 0) {
				header = parse_object(data);
				if (header && header.recovery && typeof header.recovery === 'object') {
					return {report: header.recovery};
				}
				return with_presence && header && is_presence(header.presence) ?
					{presence: header.presence} : null;
			}
			header = parse_object(data.slice(0, at));
			return is_header(header) ? {header: header, payload: data.slice(at + 1)} : null;
		}
		var is_buffer = Object.prototype.toString.call(data) === '[object ArrayBuffer]';
		var bytes = is_buffer ? new Uint8Array(data) :
			ArrayBuffer.isView(data) && data.subarray ?
				new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
		if (bytes === null) {
			return null;  // e.g. a Blob: binaryType is 'arraybuffer', so none should come
		}
		at = bytes.indexOf(NEWLINE);
		if (at < 0) {
			return null;
		}
		try {
			header = parse_object(utf8_decode(bytes.subarray(0, at)));
		} catch (err) {
			return null;  // not UTF-8
		}
		if (!is_header(header)) {
			return null;
		}
		// the payload in the type the socket gave: an ArrayBuffer, or a view (a Buffer stays one)
		return {header: header, payload: is_buffer ? data.slice(at + 1) : data.subarray(at + 1)};
	}

	// A presence frame's body: {channel, users, anonymous} (a snapshot) or
	// {channel, event: 'join'|'leave', user}.
	function is_presence(body) {
		return body !== null && typeof body === 'object' && typeof body.channel === 'string' &&
			(typeof body.users === 'object' && body.users !== null ||
				typeof body.user === 'string' && (body.event === 'join' || body.event === 'leave'));
	}

	// The sorted keys of `set` (an object used as a set).
	function sorted_keys(set) {
		var keys = [];
		for (var key in set) {
			if (Object.prototype.hasOwnProperty.call(set, key)) {
				keys.push(key);
			}
		}
		return keys.sort();
	}

	// `uri` with the query parameter `param` appended.
	function with_parameter(uri, param) {
		var last = uri.charAt(uri.length - 1);
		var separator = uri.indexOf('?') < 0 ? '?' : last === '?' || last === '&' ? '' : '&';
		return uri + separator + param;
	}

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
		var positions = null;        // with recover: {label: id-or-null}, once any is known
		var present = Object.create(null);  // with presence: {label: {user name: true}}
		var fresh = false;           // with presence: no snapshot yet on this connection

		function callback(name) {
			if (typeof opts[name] === 'function') {
				return opts[name].apply(null, Array.prototype.slice.call(arguments, 1));
			}
		}

		function connection_uri() {
			var uri = opts.uri;
			if (opts.recover) {
				uri = with_parameter(uri, positions === null ? 'recover' :
					'recover=' + encodeURIComponent(JSON.stringify(positions)));
			}
			return opts.presence ? with_parameter(uri, 'presence') : uri;
		}

		function connect() {
			reconnect_timer = null;
			callback('connecting');
			if (closed_by_user) {
				return;  // close() was called from the connecting callback
			}
			var sock;
			try {
				sock = new WebSocketImpl(connection_uri());
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
			fresh = true;
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
			var data = evt.data;
			var frame = opts.recover || opts.presence ? unwrap(data, !!opts.presence) : null;
			if (frame !== null && frame.report) {
				return on_report(frame.report);
			}
			if (frame !== null && frame.presence) {
				return on_presence(frame.presence);
			}
			if (frame !== null) {
				if (opts.recover && frame.header.id !== null) {
					remember(frame.header.channel, frame.header.id);
				}
				data = frame.payload;
			}
			if (opts.heartbeat_msg && data === opts.heartbeat_msg) {
				missed_heartbeats = 0;
			} else {
				return callback('receive_message', data);
			}
		}

		function remember(label, id) {
			positions = positions || {};
			positions[label] = id;
		}

		function on_report(report) {
			var lost = [];
			for (var label in report) {
				if (Object.prototype.hasOwnProperty.call(report, label) && report[label]) {
					remember(label, report[label].id === undefined ? null : report[label].id);
					if (report[label].recovered === false) {
						lost.push(label);
					}
				}
			}
			if (lost.length) {
				callback('not_recovered', lost);
			}
		}

		function on_presence(body) {
			var label = body.channel;
			if (body.users) {
				if (fresh) {
					present = Object.create(null);  // what was known before this connection is stale
					fresh = false;
				}
				present[label] = Object.create(null);
				for (var user in body.users) {
					if (Object.prototype.hasOwnProperty.call(body.users, user)) {
						present[label][user] = true;
					}
				}
				return callback('presence', label, body.users, body.anonymous || 0);
			}
			var users = present[label] = present[label] || Object.create(null);
			var known = Object.prototype.hasOwnProperty.call(users, body.user);
			// Events are set operations: a join or leave the snapshot already showed changes nothing.
			if (body.event === 'join' && !known) {
				users[body.user] = true;
				callback('joined', body.user, label);
			} else if (body.event === 'leave' && known) {
				delete users[body.user];
				callback('left', body.user, label);
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

		this.present = function (channel) {
			var users = present[channel === undefined ? 'broadcast' : channel];
			return users ? sorted_keys(users) : [];
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
