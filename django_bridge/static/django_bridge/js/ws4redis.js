/*!
 * ws4redis.js -- browser client for ws4redis-tornado websockets.
 *
 * A dependency-free classic script: include it with
 *     <script src="{% static 'django_bridge/js/ws4redis.js' %}"></script>
 * and use the global `WS4Redis`. It also works as a CommonJS module
 * (`module.exports`), and `ws4redis.mjs` next to it re-exports it as an ES
 * module. Loading it always defines `globalThis.WS4Redis`. This folder is
 * also the npm package `ws4redis-tornado` (package.json), with TypeScript
 * declarations of the whole API in ws4redis.d.ts.
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
 *                          channel, `users` an object {user name: sockets}.
 *                          Not with control, whose subscribe() takes it instead
 *   joined                 with presence: called joined(user, channel) when a
 *                          user arrives on a channel
 *   left                   with presence: called left(user, channel) when a
 *                          user's last socket on a channel has gone
 *   control                true: speak the control protocol, which subscribes
 *                          and publishes on the open socket (see Control below;
 *                          default false)
 *   refused                with control: called refused(error) when a
 *                          subscription that the client renews after a
 *                          reconnect is refused (see Control below)
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
 * Control: with `control: true` every connection offers the websocket
 * subprotocol 'ws4redis.control', and one socket then holds any number of
 * subscriptions that change while it stays open:
 *
 *     var ws4redis = WS4Redis({uri: '{{ WEBSOCKET_URI }}', control: true});
 *     ws4redis.subscribe('chat', ['broadcast', 'group'], function (data, meta) {
 *         // data as receive_message gets it; meta = {facility, channel, id}
 *     }).then(function (reply) { ... }, function (error) { ... });
 *     ws4redis.unsubscribe('chat', ['group']);    // all its audiences without the array
 *     ws4redis.publish('chat', 'broadcast', 'Hello');  // or binary data
 *     ws4redis.subscribe('lobby', ['broadcast'], on_message, {
 *         presence: function (channel, users, anonymous, facility) { ... },  // or true
 *         joined: function (user, channel, facility) { ... },
 *         left: function (user, channel, facility) { ... }
 *     });
 *     ws4redis.present('lobby');                  // ['john', 'mary']; ('lobby', 'group:staff')
 *
 * The URI may end with the websocket URL ('/ws/'): the socket then starts with
 * no subscription. A URI that names a facility and subscribe-* parameters (and
 * publish-* and echo, which say whether a socket gets its own publishes) is
 * subscribed by every handshake, as without control; messages of a facility
 * that subscribe() never named go to receive_message(data, meta). That
 * facility (the part of the URI's path after its last '/') may be unsubscribed
 * too: the client repeats the unsubscribe of the audiences the URI's
 * subscribe-* parameters name after every reconnect.
 *
 * subscribe(facility, audiences, callback, options) subscribes the audiences
 * ('broadcast', 'user', 'group', 'session') of a facility; callback(data, meta)
 * gets every message of those audiences (a later subscribe() of the same
 * audience replaces it, and the options, which ask for presence: see Presence
 * below; without one, receive_message(data, meta) does), where data is
 * what receive_message gets without control and meta is {facility, channel,
 * id}: the channel label ('broadcast', 'user', 'session', 'group:<name>') and
 * the message's history id (null without history). The channels'
 * persisted or recovered messages may come before the reply. unsubscribe(facility,
 * audiences) ends them (every audience of the facility when audiences is
 * left out); messages still on their way are dropped. publish(facility,
 * audience, data) publishes a string as a text message, an ArrayBuffer, typed
 * array (a Node Buffer) or Blob as a binary one, to one audience, with the
 * rights the server's hooks give this socket.
 *
 * Each returns a Promise of the server's reply, an object {reply: ref, ok:
 * true} (subscribe adds `audiences`, those granted, and `channels`, the labels
 * subscribed; with recover also `recovery`). A refusal rejects it with an Error
 * whose `code` is the server's ('bad-request', 'invalid-facility', 'forbidden',
 * 'too-many-subscriptions', 'unavailable') or the client's own ('disconnected',
 * 'cancelled', 'closed', 'bad-request' for arguments of the wrong type), with
 * `reason` (readable text), `facility` and `reply` (the server's reply, if
 * any). The audiences a refused subscribe() added are dropped.
 *
 * Across connections the client keeps what is subscribed, not the requests:
 * after every (re)connect it sends one subscribe per facility with all its
 * audiences before anything else (asking for presence when any of them did).
 * A subscribe() made while there is no open socket, or whose reply was lost
 * with the socket, settles with the reply to that renewal (or rejects with
 * 'cancelled' when unsubscribe() dropped the whole facility first). An unsubscribe() without an open socket resolves at
 * once with null, and one whose socket closed before the reply resolves with
 * null then: the next connection does not subscribe what it dropped.
 * A publish() without an open socket is queued and sent when one opens,
 * after the renewals; one sent on a socket that closed before the reply came
 * is rejected with 'disconnected' and not sent again, since it may have been
 * published already. close() rejects everything unsettled with 'closed', and
 * every request made after it.
 * When the server refuses a renewal (e.g. the user left a group: 'forbidden')
 * the facility is dropped, the subscribe() promises it was to settle are
 * rejected, and refused(error) is called, with error.facility, if the server
 * had confirmed the facility before; 'unavailable' (the server lost Redis)
 * instead closes the socket (disconnected() gets code 1011), and the client
 * reconnects after the usual backoff and tries again.
 *
 * With `recover: true` too, the client keeps the last id per facility and
 * channel, and each subscribe (a renewal included) asks for what followed
 * them; not_recovered(labels, facility) is called when the server could not
 * send a gap. Ids are forgotten with unsubscribe(). The URI's own channels
 * are recovered through its `recover` parameter, as without control.
 *
 * Presence, on a control socket, is asked per subscription: subscribe()'s
 * options {presence, joined, left} mean what the options of the same names
 * mean without control, with the facility as last argument. The facility
 * must keep presence, or the subscribe is refused with 'bad-request', and a
 * refused subscribe() leaves presence as it was. `presence` (true, or the
 * snapshot callback presence(channel, users, anonymous, facility)) asks for a
 * snapshot per channel of the audiences, which comes before the subscribe()
 * promise settles, on every subscribe() and every renewal; then
 * joined(user, channel, facility) and left(user, channel, facility) are
 * called when they change who is present (the socket's own arrival is a
 * join). `ws4redis.present(facility, channel)` returns the sorted names of
 * the users on a channel label of the facility ('broadcast' by default): the
 * last snapshot with the events since. A new socket's snapshot of a channel
 * replaces what was known of it; until it comes, present() answers from the
 * last socket and events of that channel are left to the snapshot (the server
 * reads it after them). A channel a renewal no longer subscribes (a group the
 * user left) is forgotten, as is what is known of the audiences unsubscribe()
 * ends or a later subscribe() asks no presence of (their events are dropped).
 * A socket subscribed to a facility that keeps presence counts as present
 * there whether or not it asked for the events.
 *
 * A server that does not select the subprotocol (an older one) is taken as a
 * failed connection: the socket is closed, disconnected() gets a close-like
 * object with code 1002, and the client tries again after the backoff (the
 * `ws` package and browsers may fail such a handshake themselves, which ends
 * the same way, with code 1006). The `presence` option cannot be combined with
 * `control` (the server refuses the URI's presence parameter on such a socket):
 * subscribe() asks for it. send_message() sends a raw frame, which the server
 * takes as a request.
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
	var CONTROL_PROTOCOL = 'ws4redis.control';
	var AUDIENCES = ['broadcast', 'user', 'group', 'session'];
	var DEFAULTS = {
		heartbeat_msg: null,
		heartbeat_interval_ms: 5000,
		reconnect_base_ms: 1000,
		reconnect_max_ms: 30000,
		recover: false,
		presence: false,
		control: false
	};
	var NEWLINE = 0x0A;
	var decoder = typeof TextDecoder !== 'undefined' ? new TextDecoder('utf-8') : null;
	var encoder = typeof TextEncoder !== 'undefined' ? new TextEncoder() : null;
	var has_own = Object.prototype.hasOwnProperty;

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

	// The UTF-8 bytes of `text`, as a Uint8Array.
	function utf8_encode(text) {
		if (encoder !== null) {
			return encoder.encode(text);
		}
		var binary = unescape(encodeURIComponent(text));
		var bytes = new Uint8Array(binary.length);
		for (var i = 0; i < binary.length; i++) {
			bytes[i] = binary.charCodeAt(i);
		}
		return bytes;
	}

	function is_array_buffer(data) {
		return Object.prototype.toString.call(data) === '[object ArrayBuffer]';
	}

	// The bytes of an ArrayBuffer or a view on one (a Node Buffer too), else null.
	function bytes_of(data) {
		return is_array_buffer(data) ? new Uint8Array(data) :
			ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
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

	// A header is {"channel": label, "id": id-or-null}, on a control socket
	// with "facility" too.
	function is_header(header, with_control) {
		return header !== null && typeof header.channel === 'string' &&
			(header.id === null || typeof header.id === 'string') &&
			(!with_control || typeof header.facility === 'string');
	}

	// A frame without a newline, other than a message: the recovery report,
	// a presence frame (`kinds.presence`) or a reply (`kinds.control`); else null.
	function unwrap_bare(data, kinds) {
		var body = parse_object(data);
		if (kinds.control && body && has_own.call(body, 'reply') && typeof body.ok === 'boolean') {
			return {reply: body};  // a subscribe's reply may hold a recovery report too
		}
		if (body && body.recovery && typeof body.recovery === 'object') {
			return {report: body.recovery};
		}
		return kinds.presence && body && is_presence(body.presence, kinds.control) ? {presence: body.presence} : null;
	}

	// Split a frame from a client that opted in to recovery, presence or
	// control. Returns {header, payload} for a message, {report} for the
	// recovery report, {presence} for a presence frame, {reply} for a reply to
	// a request, or null for a frame without a header (e.g. the heartbeat), to
	// be taken as it is.
	function unwrap(data, kinds) {
		var header, at;
		if (typeof data === 'string') {
			at = data.indexOf('\n');
			if (at < 0) {
				return unwrap_bare(data, kinds);
			}
			header = parse_object(data.slice(0, at));
			return is_header(header, kinds.control) ? {header: header, payload: data.slice(at + 1)} : null;
		}
		var bytes = bytes_of(data);
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
		if (!is_header(header, kinds.control)) {
			return null;
		}
		// the payload in the type the socket gave: an ArrayBuffer, or a view (a Buffer stays one)
		return {header: header, payload: is_array_buffer(data) ? data.slice(at + 1) : data.subarray(at + 1)};
	}

	// A presence frame's body: {channel, users, anonymous} (a snapshot) or
	// {channel, event: 'join'|'leave', user}, on a control socket with
	// "facility" too.
	function is_presence(body, with_control) {
		return body !== null && typeof body === 'object' && typeof body.channel === 'string' &&
			(!with_control || typeof body.facility === 'string') &&
			(typeof body.users === 'object' && body.users !== null ||
				typeof body.user === 'string' && (body.event === 'join' || body.event === 'leave'));
	}

	// The user names of a snapshot's `users` ({user name: sockets}), as a set.
	function user_set(users) {
		var set = Object.create(null);
		for (var user in users) {
			if (has_own.call(users, user)) {
				set[user] = true;
			}
		}
		return set;
	}

	// Apply a join or leave event to `users` (a set); true when it changed who
	// is there. Events are set operations: a join or leave the snapshot
	// already showed changes nothing.
	function apply_event(users, body) {
		var known = has_own.call(users, body.user);
		if (body.event === 'join' && !known) {
			users[body.user] = true;
			return true;
		}
		if (body.event === 'leave' && known) {
			delete users[body.user];
			return true;
		}
		return false;
	}

	// The sorted keys of `set` (an object used as a set).
	function sorted_keys(set) {
		var keys = [];
		for (var key in set) {
			if (has_own.call(set, key)) {
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

	// The facility a URI names: its path after the last '/' ('' for '.../ws/').
	function facility_of(uri) {
		var path = uri.split('#')[0].split('?')[0];
		var name = path.slice(path.lastIndexOf('/') + 1);
		try {
			return decodeURIComponent(name);
		} catch (err) {
			return name;
		}
	}

	// The audiences a URI's subscribe-* parameters name.
	function audiences_of(uri) {
		var query = uri.split('#')[0].split('?')[1] || '';
		var names = query.split('&').map(function (param) {
			return param.split('=')[0];
		});
		return AUDIENCES.filter(function (audience) {
			return names.indexOf('subscribe-' + audience) >= 0;
		});
	}

	// The audience of a channel label: 'group' for 'group:<name>'.
	function audience_of(label) {
		var at = label.indexOf(':');
		return at < 0 ? label : label.slice(0, at);
	}

	// An Error for a request that failed: `code` is the server's or the client's.
	function request_error(code, reason, facility, reply) {
		var err = new Error('WS4Redis: ' + reason + ' (' + code + ')');
		err.code = code;
		err.reason = reason;
		err.facility = facility;
		err.reply = reply || null;
		return err;
	}

	// The frame of a publish: the header, a newline and the payload, in a text
	// frame for a string and a binary one for binary data; null for other data.
	function publish_frame(header, data) {
		var head = JSON.stringify(header) + '\n';
		if (typeof data === 'string') {
			return head + data;
		}
		if (typeof Blob !== 'undefined' && data instanceof Blob) {
			return new Blob([head, data]);
		}
		var bytes = bytes_of(data);
		if (bytes === null) {
			return null;
		}
		var head_bytes = utf8_encode(head);
		var frame = new Uint8Array(head_bytes.length + bytes.length);
		frame.set(head_bytes);
		frame.set(bytes, head_bytes.length);
		return frame.buffer;
	}

	// The last history id received per facility and channel label (with recover).
	function Positions() {
		this.facilities = Object.create(null);
	}

	Positions.prototype.remember = function (facility, label, id) {
		var known = this.facilities[facility] = this.facilities[facility] || {};
		known[label] = id;
	};

	// {label: id} of `facility`, those of `audiences` only when given; null when none is known.
	Positions.prototype.of = function (facility, audiences) {
		var known = this.facilities[facility], found = null;
		for (var label in known) {
			if (has_own.call(known, label) && (!audiences || audiences.indexOf(audience_of(label)) >= 0)) {
				found = found || {};
				found[label] = known[label];
			}
		}
		return found;
	};

	// Forget the ids of `audiences` of `facility` (all of them without audiences).
	Positions.prototype.forget = function (facility, audiences) {
		var known = this.facilities[facility];
		for (var label in known) {
			if (has_own.call(known, label) && (!audiences || audiences.indexOf(audience_of(label)) >= 0)) {
				delete known[label];
			}
		}
	};

	// Take a recovery report {label: {id, recovered}}: the ids are where the
	// client now stands; returns the labels whose gap was lost.
	Positions.prototype.apply_report = function (facility, report) {
		var lost = [];
		for (var label in report) {
			if (has_own.call(report, label) && report[label]) {
				this.remember(facility, label, report[label].id === undefined ? null : report[label].id);
				if (report[label].recovered === false) {
					lost.push(label);
				}
			}
		}
		return lost;
	};

	/*
	 * The control protocol's side of a client: what is subscribed, the requests
	 * waiting for a socket or a reply, and the routing of messages. `client`
	 * gives it callback(name, ...), send(frame), abandon(reason), `positions`,
	 * `recover` and `uri_facility`.
	 */
	function Control(client) {
		this.client = client;
		this.open = false;             // a socket is open: requests go out at once
		this.next_ref = 1;
		// facility -> {audiences: {audience: callback}, presence: {audience: what subscribe() asked}, confirmed}
		this.subscriptions = Object.create(null);
		this.present = Object.create(null);        // facility -> {label: {users: set, current}}, see on_presence
		this.renewing = Object.create(null);       // facility -> [subscribe() promises the next renewal settles]
		this.in_flight = Object.create(null);      // ref -> a request sent on this socket
		this.outbox = [];                          // publishes waiting for a socket
		this.uri_dropped = null;                   // audiences of the URI's facility unsubscribed, or null
		this.dropped = Object.create(null);        // facility -> true: unsubscribed, its late messages go nowhere
		this.closed = false;                       // close() was called: every request is refused
	}

	// A rejected promise when the request cannot be made: arguments or close().
	Control.prototype.refuse_early = function (facility, problem) {
		return this.closed ? Promise.reject(request_error('closed', 'the client was closed', facility)) :
			problem ? Promise.reject(request_error('bad-request', problem, facility)) : null;
	};

	Control.prototype.request = function (op, fields, settle) {
		var ref = this.next_ref++;
		var header = {op: op, ref: ref};
		for (var key in fields) {
			if (has_own.call(fields, key) && key !== 'data' && fields[key] !== undefined) {
				header[key] = fields[key];
			}
		}
		var frame = op === 'publish' ? publish_frame(header, fields.data) : JSON.stringify(header);
		settle.op = op;
		settle.facility = fields.facility;
		settle.audiences = fields.audiences;
		this.in_flight[ref] = settle;
		this.client.send(frame);
	};

	Control.prototype.subscribe = function (facility, audiences, callback, options) {
		var self = this;
		var problem = check_facility(facility) || check_audiences(audiences, false);
		if (!problem && callback !== undefined && callback !== null && typeof callback !== 'function') {
			problem = 'the callback must be a function';
		}
		var early = this.refuse_early(facility, problem || check_subscribe_options(options));
		if (early) {
			return early;
		}
		var sub = this.subscriptions[facility] = this.subscriptions[facility] ||
			{audiences: {}, presence: {}, confirmed: false};
		// a fresh object per call, so that a refusal can tell whether a later call replaced it
		var asked = presence_choice(options);
		var added = [], prior = {};
		audiences.forEach(function (audience) {
			if (has_own.call(sub.audiences, audience)) {
				prior[audience] = sub.presence[audience];
			} else {
				added.push(audience);
			}
			sub.audiences[audience] = callback || null;
			sub.presence[audience] = asked;
		});
		delete this.dropped[facility];
		this.undrop_uri(facility, audiences);
		return new Promise(function (resolve, reject) {
			var waiter = {resolve: resolve, reject: reject, added: added, asked: asked, prior: prior};
			if (self.open) {
				var fields = self.subscribe_fields(facility, audiences, asked.on);
				self.request('subscribe', fields, {waiters: [waiter]});
			} else {
				(self.renewing[facility] = self.renewing[facility] || []).push(waiter);
			}
		});
	};

	Control.prototype.subscribe_fields = function (facility, audiences, presence) {
		var fields = {facility: facility, audiences: audiences.slice()};
		if (this.client.recover) {
			fields.recover = this.client.positions.of(facility, audiences) || {};
		}
		if (presence) {
			fields.presence = true;
		}
		return fields;
	};

	// What subscribe() asked of an audience's presence, when it asked for it; else null.
	Control.prototype.presence_of = function (facility, audience) {
		var sub = this.subscriptions[facility];
		var asked = sub && sub.presence[audience];
		return asked && asked.on ? asked : null;
	};

	// A presence frame: a snapshot replaces what was known of its channel; a
	// join or leave changes it once the channel's snapshot came on this socket
	// (an event before it is in the snapshot, which the server reads later).
	Control.prototype.on_presence = function (body) {
		var facility = body.facility, label = body.channel;
		var asked = this.presence_of(facility, audience_of(label));
		if (!asked) {
			return;  // no longer asked for
		}
		var known = this.present[facility] = this.present[facility] || Object.create(null);
		if (body.users) {
			known[label] = {users: user_set(body.users), current: true};
			return call_if_function(asked.presence, label, body.users, body.anonymous || 0, facility);
		}
		var channel = known[label];
		if (channel && channel.current && apply_event(channel.users, body)) {
			return call_if_function(body.event === 'join' ? asked.joined : asked.left, body.user, label, facility);
		}
	};

	// The sorted names of the users on a facility's channel label, as last known.
	Control.prototype.present_on = function (facility, label) {
		var channel = this.present[facility] && this.present[facility][label];
		return channel ? sorted_keys(channel.users) : [];
	};

	// Forget who is on the channels of `audiences` of `facility` (all of them without audiences).
	Control.prototype.forget_present = function (facility, audiences) {
		var known = this.present[facility];
		for (var label in known) {
			if (!audiences || audiences.indexOf(audience_of(label)) >= 0) {
				delete known[label];
			}
		}
	};

	// A new socket: what is known of each channel stays, but is no longer
	// current until the channel's snapshot on this socket.
	Control.prototype.outdate_present = function () {
		for (var facility in this.present) {
			for (var label in this.present[facility]) {
				this.present[facility][label].current = false;
			}
		}
	};

	// After a subscribe's reply: forget the channels of its audiences that no
	// longer ask for presence or were not subscribed (e.g. a group the user left).
	Control.prototype.prune_present = function (facility, audiences, channels) {
		var known = this.present[facility];
		for (var label in known) {
			var audience = audience_of(label);
			if (audiences.indexOf(audience) >= 0 &&
					(!this.presence_of(facility, audience) || !Array.isArray(channels) || channels.indexOf(label) < 0)) {
				delete known[label];
			}
		}
	};

	// A refused subscribe() gives back what it replaced of the presence of the
	// audiences it did not add, unless a later call replaced it again.
	Control.prototype.restore_presence = function (facility, waiter) {
		var sub = this.subscriptions[facility];
		for (var audience in waiter.prior) {
			if (sub && sub.presence[audience] === waiter.asked) {
				sub.presence[audience] = waiter.prior[audience];
			}
		}
	};

	Control.prototype.unsubscribe = function (facility, audiences) {
		var problem = check_facility(facility) || (audiences === undefined ? null : check_audiences(audiences, true));
		var early = this.refuse_early(facility, problem);
		if (early) {
			return early;
		}
		this.drop(facility, audiences);
		if (facility === this.client.uri_facility) {
			this.drop_uri(audiences);
		}
		if (!this.open) {
			return Promise.resolve(null);
		}
		var self = this;
		return new Promise(function (resolve, reject) {
			var fields = {facility: facility, audiences: audiences && audiences.slice()};
			self.request('unsubscribe', fields, {waiters: [{resolve: resolve, reject: reject}]});
		});
	};

	// Forget `audiences` of `facility` (all without audiences) and their ids.
	Control.prototype.drop = function (facility, audiences) {
		var sub = this.subscriptions[facility];
		if (sub) {
			(audiences || Object.keys(sub.audiences)).forEach(function (audience) {
				delete sub.audiences[audience];
				delete sub.presence[audience];
			});
			if (Object.keys(sub.audiences).length === 0) {
				delete this.subscriptions[facility];
				this.cancel_renewal(facility);
			}
		}
		this.forget_present(facility, audiences);
		this.client.positions.forget(facility, audiences);
		this.dropped[facility] = true;
	};

	Control.prototype.cancel_renewal = function (facility) {
		var waiters = this.renewing[facility] || [];
		delete this.renewing[facility];
		waiters.forEach(function (waiter) {
			waiter.reject(request_error('cancelled', 'unsubscribed before the server confirmed', facility));
		});
	};

	// Remember which of the audiences the handshake subscribes were unsubscribed.
	Control.prototype.drop_uri = function (audiences) {
		var dropped = this.uri_dropped || [];
		this.client.uri_audiences.forEach(function (audience) {
			if (dropped.indexOf(audience) < 0 && (!audiences || audiences.indexOf(audience) >= 0)) {
				dropped.push(audience);
			}
		});
		this.uri_dropped = dropped.length ? dropped : null;
	};

	// A subscribe() of the URI's facility takes back what was unsubscribed of it.
	Control.prototype.undrop_uri = function (facility, audiences) {
		if (facility !== this.client.uri_facility || this.uri_dropped === null) {
			return;
		}
		var left = this.uri_dropped.filter(function (audience) {
			return audiences.indexOf(audience) < 0;
		});
		this.uri_dropped = left.length ? left : null;
	};

	Control.prototype.publish = function (facility, audience, data) {
		var self = this;
		var problem = check_facility(facility) || check_audiences([audience], false) ||
			(typeof data === 'string' || bytes_of(data) !== null ||
				typeof Blob !== 'undefined' && data instanceof Blob ? null :
				'publish() takes a string, an ArrayBuffer, a typed array or a Blob');
		var early = this.refuse_early(facility, problem);
		if (early) {
			return early;
		}
		return new Promise(function (resolve, reject) {
			var publication = {fields: {facility: facility, audience: audience, data: data},
				waiters: [{resolve: resolve, reject: reject}]};
			if (self.open) {
				self.request('publish', publication.fields, {waiters: publication.waiters});
			} else {
				self.outbox.push(publication);
			}
		});
	};

	// A socket opened: undo what the handshake subscribed and was unsubscribed,
	// renew every subscription, then send the publishes that waited.
	Control.prototype.on_open = function () {
		this.open = true;
		this.outdate_present();
		if (this.uri_dropped !== null) {
			var fields = {facility: this.client.uri_facility, audiences: this.uri_dropped.slice()};
			this.request('unsubscribe', fields, {waiters: []});
		}
		for (var facility in this.subscriptions) {
			this.renew(facility);
		}
		var outbox = this.outbox;
		this.outbox = [];
		for (var i = 0; i < outbox.length && this.open; i++) {
			this.request('publish', outbox[i].fields, {waiters: outbox[i].waiters});
		}
	};

	// Subscribe a facility's audiences again on a new socket, with presence when
	// any of them asked for it, for the subscribe()s waiting for the renewal.
	Control.prototype.renew = function (facility) {
		var waiters = this.renewing[facility] || [];
		delete this.renewing[facility];
		var audiences = Object.keys(this.subscriptions[facility].audiences);
		var presence = audiences.some(this.presence_of.bind(this, facility));
		var fields = this.subscribe_fields(facility, audiences, presence);
		this.request('subscribe', fields, {waiters: waiters, renewal: true});
	};

	// The socket is gone: subscribe()s wait for the next renewal, unsubscribe()s
	// are done (nothing stays subscribed), publishes in flight are lost.
	Control.prototype.on_close = function () {
		this.open = false;
		var in_flight = this.in_flight;
		this.in_flight = Object.create(null);
		for (var ref in in_flight) {
			var request = in_flight[ref];
			if (request.op === 'subscribe' && this.subscriptions[request.facility]) {
				var renewing = this.renewing[request.facility] = this.renewing[request.facility] || [];
				renewing.push.apply(renewing, request.waiters);
			} else if (request.op === 'subscribe') {
				settle_all(request.waiters, request_error('cancelled',
					'unsubscribed before the server confirmed', request.facility));
			} else if (request.op === 'unsubscribe') {
				settle_all(request.waiters, null, null);
			} else {
				settle_all(request.waiters, request_error('disconnected',
					'the connection closed before the server replied; the message may have been published',
					request.facility));
			}
		}
	};

	// close(): every promise still unsettled is rejected.
	Control.prototype.close = function () {
		var closed = function (facility) {
			return request_error('closed', 'the client was closed', facility);
		};
		var ref, facility;
		this.open = false;
		this.closed = true;
		for (ref in this.in_flight) {
			settle_all(this.in_flight[ref].waiters, closed(this.in_flight[ref].facility));
		}
		this.in_flight = Object.create(null);
		for (facility in this.renewing) {
			settle_all(this.renewing[facility], closed(facility));
		}
		this.renewing = Object.create(null);
		this.outbox.forEach(function (publication) {
			settle_all(publication.waiters, closed(publication.fields.facility));
		});
		this.outbox = [];
	};

	Control.prototype.on_reply = function (reply) {
		var request = this.in_flight[reply.reply];
		if (!request) {
			console.warn('WS4Redis: a reply to no request of this client: ' + JSON.stringify(reply));
			return;
		}
		delete this.in_flight[reply.reply];
		if (reply.ok) {
			if (request.op === 'subscribe') {
				this.on_subscribed(request, reply);
			}
			settle_all(request.waiters, null, reply);
		} else {
			this.on_refused(request, reply);
		}
	};

	Control.prototype.on_subscribed = function (request, reply) {
		var facility = request.facility;
		var sub = this.subscriptions[facility];
		if (!sub) {
			return;  // unsubscribed meanwhile
		}
		sub.confirmed = true;
		this.prune_present(facility, request.audiences, reply.channels);
		if (reply.recovery && typeof reply.recovery === 'object') {
			var lost = this.client.positions.apply_report(facility, reply.recovery);
			if (lost.length) {
				this.client.callback('not_recovered', lost, facility);
			}
		}
	};

	Control.prototype.on_refused = function (request, reply) {
		var facility = request.facility;
		var code = typeof reply.error === 'string' ? reply.error : 'bad-request';
		var error = request_error(code, String(reply.reason || code), facility, reply);
		var sub = this.subscriptions[facility];
		if (request.op === 'subscribe' && request.renewal && code === 'unavailable' && sub) {
			// the server lost Redis: keep everything and reconnect to try again
			this.on_close();
			var renewing = this.renewing[facility] = this.renewing[facility] || [];
			renewing.push.apply(renewing, request.waiters);
			this.client.abandon(error.reason, 1011);
			return;
		}
		if (request.op === 'subscribe' && request.renewal && sub) {
			var confirmed = sub.confirmed;
			this.drop(facility);
			if (confirmed) {
				this.client.callback('refused', error);
			}
		} else if (request.op === 'subscribe' && sub) {
			var self = this;
			request.waiters.forEach(function (waiter) {
				self.drop(facility, waiter.added.filter(function (audience) {
					return has_own.call(sub.audiences, audience);
				}));
				self.restore_presence(facility, waiter);
			});
		}
		settle_all(request.waiters, error);
	};

	// A message of a control socket: to the callback of its facility and
	// audience, else to receive_message, unless it was unsubscribed.
	Control.prototype.on_message = function (header, payload) {
		var meta = {facility: header.facility, channel: header.channel, id: header.id};
		var audience = audience_of(header.channel);
		var sub = this.subscriptions[header.facility];
		var subscribed = sub && has_own.call(sub.audiences, audience);
		if (!subscribed && (this.dropped[header.facility] || header.facility === this.client.uri_facility &&
				this.uri_dropped && this.uri_dropped.indexOf(audience) >= 0)) {
			return;  // sent before the server had the unsubscribe
		}
		if (this.client.recover && header.id !== null) {
			this.client.positions.remember(header.facility, header.channel, header.id);
		}
		return subscribed && sub.audiences[audience] ? sub.audiences[audience](payload, meta) :
			this.client.callback('receive_message', payload, meta);
	};

	// Resolve every waiter with `value`, or reject them all with `error`.
	function settle_all(waiters, error, value) {
		waiters.forEach(function (waiter) {
			if (error) {
				waiter.reject(error);
			} else {
				waiter.resolve(value);
			}
		});
	}

	function check_facility(facility) {
		return typeof facility === 'string' && facility ? null : 'the facility must be a non-empty string';
	}

	// subscribe()'s options: {presence: true or a function, joined, left}, all optional.
	function check_subscribe_options(options) {
		if (options === undefined || options === null) {
			return null;
		}
		if (typeof options !== 'object') {
			return 'the options must be an object';
		}
		var presence = options.presence;
		if (presence !== undefined && typeof presence !== 'boolean' && typeof presence !== 'function') {
			return 'presence must be true, false or a function';
		}
		var problem = null;
		['joined', 'left'].forEach(function (name) {
			var value = options[name];
			if (value !== undefined && value !== null && typeof value !== 'function') {
				problem = problem || name + ' must be a function';
			} else if (value && !presence) {
				problem = problem || name + ' needs presence';
			}
		});
		return problem;
	}

	// What subscribe() asks of its audiences' presence: `on`, and the callbacks.
	function presence_choice(options) {
		var on = !!(options && options.presence);
		return {
			on: on,
			presence: on ? options.presence : null,
			joined: on ? options.joined : null,
			left: on ? options.left : null
		};
	}

	function call_if_function(fn) {
		if (typeof fn === 'function') {
			return fn.apply(null, Array.prototype.slice.call(arguments, 1));
		}
	}

	function check_audiences(audiences, may_be_empty) {
		var ok = Array.isArray(audiences) && (may_be_empty || audiences.length > 0) &&
			audiences.every(function (audience) {
				return AUDIENCES.indexOf(audience) >= 0;
			});
		return ok ? null : 'audiences must be an array of ' + AUDIENCES.join(', ') + ' (at least one)';
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
			if (has_own.call(options, key) && options[key] !== undefined) {
				opts[key] = options[key];
			}
		}
		var WebSocketImpl = opts.WebSocket ||
			(typeof WebSocket !== 'undefined' ? WebSocket : null);
		if (typeof WebSocketImpl !== 'function') {
			throw new Error('WS4Redis: no WebSocket implementation available');
		}
		if (opts.control && opts.presence) {
			throw new Error('WS4Redis: presence cannot be combined with control in the options (the server ' +
				'refuses it in the URI); ask for it per subscription: subscribe(facility, audiences, ' +
				'callback, {presence: true})');
		}

		var ws = null;               // the current socket, null while there is none
		var attempts = 0;            // failed attempts since the last successful open
		var reconnect_timer = null;
		var heartbeat_interval = null;
		var missed_heartbeats = 0;
		var closed_by_user = false;
		var positions = new Positions();    // with recover: the last ids
		var uri_facility = facility_of(opts.uri);
		var present = Object.create(null);  // with presence: {label: {user name: true}}
		var fresh = false;           // with presence: no snapshot yet on this connection
		// a control socket gets the presence frames its subscribe()s asked for
		var framed = {presence: !!opts.presence || !!opts.control, control: !!opts.control};
		var control = opts.control ? new Control({
			callback: callback,
			send: function (frame) {
				ws.send(frame);
			},
			abandon: abandon,
			positions: positions,
			recover: !!opts.recover,
			uri_facility: uri_facility,
			uri_audiences: audiences_of(opts.uri)
		}) : null;

		function callback(name) {
			if (typeof opts[name] === 'function') {
				return opts[name].apply(null, Array.prototype.slice.call(arguments, 1));
			}
		}

		function connection_uri() {
			var uri = opts.uri;
			if (opts.recover && !(control && uri_facility === '')) {
				var known = positions.of(uri_facility);
				uri = with_parameter(uri, known === null ? 'recover' :
					'recover=' + encodeURIComponent(JSON.stringify(known)));
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
				sock = control ? new WebSocketImpl(connection_uri(), [CONTROL_PROTOCOL]) :
					new WebSocketImpl(connection_uri());
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
			if (control && ws.protocol !== CONTROL_PROTOCOL) {
				return abandon('the server did not select the ' + CONTROL_PROTOCOL + ' subprotocol', 1002);
			}
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
			if (control) {
				control.on_open();
			}
			callback('connected');
		}

		function on_message(evt) {
			var data = evt.data;
			var frame = opts.recover || opts.presence || control ? unwrap(data, framed) : null;
			if (frame !== null && frame.reply) {
				return control.on_reply(frame.reply);
			}
			if (frame !== null && frame.report) {
				return on_report(frame.report);
			}
			if (frame !== null && frame.presence) {
				return control ? control.on_presence(frame.presence) : on_presence(frame.presence);
			}
			if (frame !== null && control) {
				return control.on_message(frame.header, frame.payload);
			}
			if (frame !== null) {
				if (opts.recover && frame.header.id !== null) {
					positions.remember(uri_facility, frame.header.channel, frame.header.id);
				}
				data = frame.payload;
			}
			if (opts.heartbeat_msg && data === opts.heartbeat_msg) {
				missed_heartbeats = 0;
			} else {
				return callback('receive_message', data);
			}
		}

		// The handshake's report, on the URI's own channels.
		function on_report(report) {
			var lost = positions.apply_report(uri_facility, report);
			if (lost.length && control) {
				callback('not_recovered', lost, uri_facility);
			} else if (lost.length) {
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
				present[label] = user_set(body.users);
				return callback('presence', label, body.users, body.anonymous || 0);
			}
			var users = present[label] = present[label] || Object.create(null);
			if (apply_event(users, body)) {
				callback(body.event === 'join' ? 'joined' : 'left', body.user, label);
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
			abandon('missed heartbeats', 1006);
		}

		// Close the socket and leave it (a dead peer may never finish the
		// closing handshake): its late events are ignored, and the client
		// goes on as after an unexpected close with `code` and `reason`.
		function abandon(reason, code) {
			var sock = ws;
			ws = null;
			try {
				sock.close();
			} catch (err) {
				// nothing more can be done with this socket
			}
			disconnect({type: 'close', code: code, wasClean: false, reason: reason});
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
			if (control) {
				control.on_close();
			}
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

		function control_only(name) {
			if (!control) {
				throw new Error('WS4Redis: ' + name + '() needs the option control: true');
			}
			return control;
		}

		this.send_message = function (message) {
			if (!ws) {
				throw new Error('WS4Redis: not connected');
			}
			ws.send(message);
		};

		this.subscribe = function (facility, audiences, on_message, options) {
			return control_only('subscribe').subscribe(facility, audiences, on_message, options);
		};

		this.unsubscribe = function (facility, audiences) {
			return control_only('unsubscribe').unsubscribe(facility, audiences);
		};

		this.publish = function (facility, audience, data) {
			return control_only('publish').publish(facility, audience, data);
		};

		this.close = function () {
			closed_by_user = true;
			if (reconnect_timer !== null) {
				clearTimeout(reconnect_timer);
				reconnect_timer = null;
			}
			stop_heartbeat();
			if (control) {
				control.close();
			}
			if (ws && (ws.readyState === CONNECTING || ws.readyState === OPEN)) {
				ws.close();
			}
		};

		// present(channel) without control, present(facility, channel) with it.
		this.present = function (first, second) {
			if (control) {
				return control.present_on(first, second === undefined ? 'broadcast' : second);
			}
			var users = present[first === undefined ? 'broadcast' : first];
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
