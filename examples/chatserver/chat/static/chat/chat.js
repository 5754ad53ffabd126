/*
 * The chat pages' script: one WS4Redis client, the message list and the composer.
 *
 *   Chat.start({uri, heartbeat_msg, heartbeat_interval_ms, reconnect_max_ms, presence, me,
 *               rooms, room_prefix, direct})
 *
 * With `presence` the client follows who is connected to the page's channel, and the list
 * #present shows them, live: the server's snapshot when the socket opens, then each join and
 * leave (see ws4redis.js).
 *
 * With `rooms` (the rooms page) the client speaks the control protocol: its one socket holds the
 * user's direct messages (the facility `direct`) and the room shown (`room_prefix` + its name).
 * A click on a room's button (#rooms [data-room]) unsubscribes the room before and subscribes the
 * new one, on the same socket; #rooms's data-subscribed names the room once the server confirmed.
 *
 * The websocket only receives. Sending POSTs the composer form (with its CSRF token), and the
 * view publishes the message with the logged-in user as its sender. Messages are JSON objects
 * {id, text, from?, to?}; each id is shown once, since a page that reconnects receives the
 * channel's last message again.
 */
(function () {
	'use strict';

	var STATES = {
		connecting: 'Connecting…',
		connected: 'Live',
		disconnected: 'Reconnecting…'
	};

	function start(options) {
		var list = document.getElementById('messages');
		var status = document.getElementById('status');
		var form = document.getElementById('composer');
		var input = document.getElementById('text');
		var seen = Object.create(null);
		var was_connected = false;
		var lost = false;

		document.getElementById('uri').textContent = options.uri;

		function set_status(state) {
			status.dataset.state = state;
			status.textContent = STATES[state];
		}

		function add(item) {
			var near_bottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
			list.appendChild(item);
			if (near_bottom) {
				list.scrollTop = list.scrollHeight;
			}
		}

		function notice(text, kind) {
			var last = list.lastElementChild;
			if (!kind && last && last.className === 'notice' && last.dataset.text === text) {
				// The same notice again (everybody opening the lobby says hello): count it.
				last.dataset.count = Number(last.dataset.count) + 1;
				last.textContent = text + ' ×' + last.dataset.count;
				return;
			}
			var item = document.createElement('li');
			item.className = 'notice' + (kind ? ' ' + kind : '');
			item.dataset.text = text;
			item.dataset.count = 1;
			item.textContent = text;
			add(item);
		}

		function time_now() {
			return new Date().toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
		}

		function show(data) {
			var msg;
			try {
				msg = JSON.parse(data);
			} catch (err) {
				msg = null;
			}
			if (!msg || typeof msg !== 'object' || typeof msg.text !== 'string') {
				msg = {text: String(data)};  // published by someone else, e.g. redis-cli
			}
			if (msg.id) {
				if (seen[msg.id]) {
					return;
				}
				seen[msg.id] = true;
			}
			if (!msg.from) {
				notice(msg.text);
				return;
			}
			var item = document.createElement('li');
			item.className = 'message' + (msg.from === options.me ? ' mine' : '');
			var meta = document.createElement('div');
			meta.className = 'meta';
			var author = document.createElement('span');
			author.className = 'author';
			author.textContent = msg.from;
			meta.appendChild(author);
			if (msg.to) {
				var to = document.createElement('span');
				to.className = 'to';
				to.textContent = '→ ' + msg.to;
				meta.appendChild(to);
			}
			var when = document.createElement('time');
			when.textContent = time_now();
			meta.appendChild(when);
			var text = document.createElement('div');
			text.className = 'text';
			text.textContent = msg.text;
			item.appendChild(meta);
			item.appendChild(text);
			add(item);
		}

		var people = document.getElementById('present');
		var nobody = document.getElementById('present-none');

		// Who is in the room, from what the client keeps: the last snapshot and the events since.
		function show_present() {
			var names = client.present();
			people.textContent = '';
			names.forEach(function (name) {
				var item = document.createElement('li');
				item.dataset.user = name;
				item.className = name === options.me ? 'me' : '';
				item.textContent = name === options.me ? name + ' (you)' : name;
				people.appendChild(item);
			});
			nobody.hidden = names.length > 0;
		}

		var client = WS4Redis({
			uri: options.uri,
			control: !!options.rooms,
			heartbeat_msg: options.heartbeat_msg,
			heartbeat_interval_ms: options.heartbeat_interval_ms,
			reconnect_max_ms: options.reconnect_max_ms,
			presence: options.presence && show_present,
			joined: options.presence && show_present,
			left: options.presence && show_present,
			connecting: function () {
				set_status('connecting');
			},
			connected: function () {
				set_status('connected');
				if (lost) {
					notice('Reconnected.', 'good');
				}
				was_connected = true;
				lost = false;
			},
			receive_message: show,
			disconnected: function (evt) {
				set_status('disconnected');
				if (was_connected && !lost) {
					lost = true;
					notice('Connection lost (' + (evt.reason || 'code ' + evt.code) + '); reconnecting…', 'bad');
				}
			}
		});

		function parse(data) {
			try {
				return JSON.parse(data);
			} catch (err) {
				return {text: String(data)};
			}
		}

		// The rooms page: direct messages as notices, and the room shown, switched on one socket.
		function enter_rooms() {
			var room_list = document.getElementById('rooms');
			var buttons = Array.prototype.slice.call(room_list.querySelectorAll('[data-room]'));
			var current = null;

			client.subscribe(options.direct, ['user'], function (data) {
				var msg = parse(data);
				notice('Direct message from ' + (msg.from || 'somebody') + ' to ' + (msg.to || 'you') + ': ' + msg.text,
					'direct');
			});

			function enter(room) {
				if (room === current) {
					return;
				}
				var previous = current;
				current = room;
				buttons.forEach(function (button) {
					var active = button.dataset.room === room;
					button.classList.toggle('active', active);
					button.setAttribute('aria-pressed', active ? 'true' : 'false');
				});
				document.getElementById('room').value = room;
				document.getElementById('room-name').textContent = '#' + room;
				list.textContent = '';
				seen = Object.create(null);
				room_list.dataset.subscribed = '';
				if (previous !== null) {
					client.unsubscribe(options.room_prefix + previous);
				}
				client.subscribe(options.room_prefix + room, ['broadcast'], function (data, meta) {
					if (meta.facility === options.room_prefix + current) {
						show(data);
					}
				}).then(function () {
					if (room === current) {
						room_list.dataset.subscribed = room;
					}
				}, function (err) {
					notice('Cannot enter #' + room + ': ' + err.reason, 'bad');
				});
			}

			buttons.forEach(function (button) {
				button.addEventListener('click', function () {
					enter(button.dataset.room);
				});
			});
			enter(buttons[0].dataset.room);
		}

		if (options.rooms) {
			enter_rooms();
		}

		function send() {
			return fetch(form.action, {
				method: 'POST',
				body: new FormData(form),
				headers: {'Accept': 'application/json'},
				credentials: 'same-origin'
			}).then(function (response) {
				return response.json().catch(function () {
					return {error: 'The server answered ' + response.status + '; log in again?'};
				});
			}).then(function (answer) {
				if (answer.error) {
					throw new Error(answer.error);
				}
			});
		}

		if (form) {
			form.addEventListener('submit', function (evt) {
				evt.preventDefault();
				if (!input.value.trim()) {
					return;
				}
				send().then(function () {
					input.value = '';
					input.focus();
				}, function (err) {
					notice('Not sent: ' + err.message, 'bad');
				});
			});
		}

		return client;
	}

	window.Chat = {start: start};
}());
