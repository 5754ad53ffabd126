"""RedisWebSocketHandler: authorises a handshake, then relays between one websocket and the broker."""

from __future__ import annotations

import base64
import binascii
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableSet, Sequence
from concurrent.futures import Executor
from types import MappingProxyType
from typing import Any

from tornado.httputil import HTTPHeaders
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.web import Finish
from tornado.websocket import WebSocketHandler

from .broker import Broker, Delivery
from .channels import Principal, Subscription, parse_subscription, validate_facility
from .compat.tornado import (
    direct_socket,
    empty_headers,
    forget_request_on_connection,
    reason_phrase,
    replace_response_headers,
    stream_of,
    websocket_params,
    write_rest,
)
from .control import SUBPROTOCOL as CONTROL_SUBPROTOCOL
from .control import offers_control
from .control_session import ControlSession
from .deflate import Agreement, negotiate
from .exceptions import BrokerUnavailable, InvalidFacility, InvalidRecovery, PermissionDenied
from .frames import PING_FRAME, CloseCode, encode_frame
from .history import RECOVER_PARAMETER, channel_label, message_frame, order, parse_positions
from .keepalive import ping_action
from .logs import log_event
from .messages import RedisMessage, is_heartbeat
from .origins import handshake_origin_problem, is_own_origin, normalise_origin
from .presence import PRESENCE_PARAMETER, Presence, PresenceEvent, snapshot_frame
from .protocol import StrictProtocol
from .ratelimit import TokenBucket
from .recovery import Recovery
from .subscriber import Handshake, RedisSubscriber
from .writes import FrameWriter, WriteBatch

__all__ = ["AllowedChannels", "AllowedFacility", "ProcessRequest", "RedisWebSocketHandler"]

logger = logging.getLogger(__name__)

ProcessRequest = Callable[[Any], "Principal | Awaitable[Principal | None] | None"]
"""Hook: take the Tornado request of a handshake, return who connects (None: anonymous).

Raise :class:`PermissionDenied` to refuse with 403. A plain function runs in a thread pool, a
coroutine function on the IOLoop.
"""

AllowedChannels = Callable[[Any, list[str]], "Iterable[str] | Awaitable[Iterable[str] | None] | None"]
"""Hook: take the request and the asked-for parameters (``subscribe-user`` ...), return the allowed ones.

Returning None keeps them all; raising :class:`PermissionDenied` refuses with 403.
"""

AllowedFacility = Callable[[Any, str], "bool | Awaitable[bool]"]
"""Hook: take the request and a facility, return True if the socket may use that facility.

Asked at the handshake for the URL's facility, and for every subscribe and publish of a control
socket (see :mod:`ws4redis_tornado.control`). Anything but True refuses: with 403 at the
handshake, with a ``forbidden`` reply on a control socket. Raising :class:`PermissionDenied`
refuses with its message.
"""

_NO_HEADERS = HTTPHeaders()
# Read-only, so that one empty mapping can stand in for every open socket's handshake leftovers.
_NOTHING: MappingProxyType[str, Any] = MappingProxyType({})
_NOTHING_ASKED = Subscription()


# Numbers the handshakes of this process: the ``socket`` field ties one socket's events together.
_SOCKET_NUMBERS = itertools.count(1)

NOT_A_WEBSOCKET = "this URL serves websockets; send a GET with Upgrade: websocket"
# Copies of its own messages a socket without echo waits for, at most.
_MAX_OWN_ECHOES = 64


class RedisWebSocketHandler(WebSocketHandler):
    """Serves ``<websocket_url><facility>?subscribe-broadcast&publish-user&echo ...``.

    Route it as ``(config.websocket_url + "(.*)", RedisWebSocketHandler, {"broker": broker, ...})``.
    """

    # Slots keep this class's per-socket state out of the instance __dict__, which then holds
    # only Tornado's own attributes and stays a small key-sharing dict: at tens of thousands of
    # sockets each instance attribute counts.
    __slots__ = (
        "_broker_lost",
        "_bucket",
        "_control",
        "_deflate_wbits",
        "_facility",
        "_gone",
        "_held",
        "_labels",
        "_last_ping",
        "_opened_at",
        "_own_echoes",
        "_peer",
        "_pending",
        "_persisted",
        "_pong_pending",
        "_presence_channels",
        "_presence_snapshot",
        "_present",
        "_queue",
        "_recovery",
        "_subscription",
        "_thresholds",
        "_wants_presence",
        "allowed_channels",
        "allowed_facility",
        "broker",
        "config",
        "executor",
        "frame_writer",
        "process_request",
        "sent_close_code",
        "session_key",
        "socket_number",
        "sockets",
        "subscriber",
        "subscriber_class",
        "user_name",
    )

    def initialize(
        self,
        *,
        broker: Broker,
        process_request: ProcessRequest | None = None,
        allowed_channels: AllowedChannels | None = None,
        allowed_facility: AllowedFacility | None = None,
        subscriber_class: type[RedisSubscriber] = RedisSubscriber,
        sockets: MutableSet[RedisWebSocketHandler] | None = None,
        executor: Executor | None = None,
        frame_writer: FrameWriter | None = None,
    ) -> None:
        self.broker = broker
        self.config = broker.config
        self.process_request = process_request
        self.allowed_channels = allowed_channels
        self.allowed_facility = allowed_facility
        self.subscriber_class = subscriber_class
        self.sockets = sockets if sockets is not None else set()
        self.executor = executor
        self.frame_writer = frame_writer if frame_writer is not None else FrameWriter()
        self.subscriber: RedisSubscriber | None = None
        self._subscription = _NOTHING_ASKED
        # (channel, payload) of each message this socket published to a channel it also
        # receives, when echo is off: the one copy Redis sends back is dropped, no other.
        self._own_echoes: list[tuple[bytes, bytes]] | None = None
        # Set when the client hung up during the handshake.
        self._gone = False
        # Live messages waiting while open() sends the persisted ones first.
        self._queue: list[Delivery] | None = None
        self._persisted: list[tuple[bytes, RedisMessage]] | None = None
        # Frames waiting for the frame writer: one frame, or a list of them.
        self._pending: bytes | list[bytes] | None = None
        self._bucket: TokenBucket | None = None
        # The window this server compresses with, if the socket agreed to permessage-deflate; else 0.
        self._deflate_wbits = 0
        self._facility = ""
        self._peer = ""
        self._opened_at: float | None = None
        self._last_ping = 0.0
        self._pong_pending = False
        # For a client that asked for ids (see recovery.py): its recovery until the socket opens,
        # then each channel's label and the id up to which the opening covered live messages.
        self._recovery: Recovery | None = None
        self._labels: dict[bytes, str] | None = None
        self._thresholds: dict[bytes, tuple[int, int]] | None = None
        self._broker_lost = False
        # Whether the client offered the control protocol; once authorised, its ControlSession.
        self._control: ControlSession | bool = False
        # Its live messages of channels still being subscribed, until the subscribe is answered.
        self._held: dict[bytes, list[Delivery]] | None = None
        # Presence: whether the client asked for it, who was here when it subscribed, and whether
        # this socket is counted (see presence.py).
        self._wants_presence = False
        self._presence_snapshot: list[Presence] | None = None
        self._present = False
        # On a control socket: the channels whose join and leave events it asked for.
        self._presence_channels: set[bytes] | None = None
        # Who the socket connected as: the control channel closes it by these (see revocation.py).
        self.user_name: str | None = None
        self.session_key: str | None = None
        # The code of the close frame this server sent (set by StrictProtocol), if it sent one.
        self.sent_close_code: int | None = None
        # Named ``socket`` in this socket's log events, from its handshake to its close.
        self.socket_number = next(_SOCKET_NUMBERS)

    # -- settings Tornado asks the handler for --------------------------------------------------

    @property
    def ping_interval(self) -> float | None:
        # Tornado's per-socket ping task stays off: the process's Pinger pings every socket.
        return None

    @property
    def max_message_size(self) -> int:
        return self.config.max_message_size

    def get_websocket_protocol(self) -> StrictProtocol | None:
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None
        agreement = self._agree_compression()
        params = websocket_params(
            max_message_size=self.max_message_size, compression_options=None if agreement is None else {}
        )
        return StrictProtocol(self, False, params, deflate=agreement)

    def _agree_compression(self) -> Agreement | None:
        """This server's terms for permessage-deflate, if the client offered it (see deflate.py)."""
        if not self.config.compression or self.frame_writer.compressor is None:
            return None
        agreement = negotiate(self.request.headers.get("Sec-WebSocket-Extensions"))
        if agreement is not None:
            self._deflate_wbits = agreement.server_wbits
        return agreement

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Select the control protocol if offered, else the first offered subprotocol that
        ``config.subprotocols`` lists; otherwise none."""
        if self._control:
            return CONTROL_SUBPROTOCOL
        spoken = self.config.subprotocols
        return next((name for name in subprotocols if name in spoken), None)

    # -- the handshake ----------------------------------------------------------------------------

    async def prepare(self) -> None:
        if self.request.method != "GET":
            self.set_header("Allow", "GET")
            return self._refuse(405, NOT_A_WEBSOCKET)
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            return self._refuse(400, NOT_A_WEBSOCKET)
        if not _is_websocket_key(self.request.headers.get("Sec-WebSocket-Key", "")):
            return self._refuse(400, "Sec-WebSocket-Key must be 16 random bytes in base64")
        facility = self.path_args[0] if self.path_args else ""
        control = offers_control(self.request.headers.get("Sec-WebSocket-Protocol"))
        self._control = control
        try:
            # A control socket may start with no subscription: /ws/ with an empty facility.
            if facility or not control:
                validate_facility(facility)
        except InvalidFacility as exc:
            return self._refuse(400, str(exc))
        recover = self.request.query_arguments.get(RECOVER_PARAMETER)
        if recover is not None:
            try:
                positions = parse_positions(recover[-1].decode("utf-8", "replace"))
            except InvalidRecovery as exc:
                return self._refuse(400, str(exc))
            self._recovery = Recovery(self.broker, positions, facility=facility if control else None)
        if PRESENCE_PARAMETER in self.request.query_arguments:
            if control:
                return self._refuse(400, "on a control socket, ask for presence in a subscribe request")
            if not self.broker.presence.tracks(facility):
                return self._refuse(400, f"presence is not kept for the facility {facility!r}")
            self._wants_presence = True
        if not self.broker.connected:
            return self._refuse(503, "redis is unavailable; try again later")
        origin_problem = self._origin_problem()
        if origin_problem is not None:
            return self._refuse(403, origin_problem)
        revocations_seen = self.broker.revocations.generation
        try:
            principal, subscription = await self.authorise(parse_subscription(self.request.query))
            hook_request = principal.request if principal.request is not None else self.request
            if facility and not await self.facility_allowed(hook_request, facility):
                raise PermissionDenied(f"not allowed on the facility {facility!r}")
        except PermissionDenied as exc:
            return self._refuse(403, str(exc) or "forbidden")
        if self._hung_up():
            raise Finish()
        if control:
            self._control = ControlSession(self, principal)
        if not facility:
            subscription = Subscription(echo=subscription.echo)
        self._subscription = subscription
        self._facility = facility
        self.user_name, self.session_key = principal.user, principal.session
        try:
            await self.subscribe(Handshake(facility=facility, principal=principal))
        except BrokerUnavailable:
            self.release()
            return self._refuse(503, "redis is unavailable; try again later")
        if self._hung_up():
            # Its close may already have run: leave what was subscribed since.
            self.release()
            raise Finish()
        self._refuse_if_revoked(revocations_seen)

    def on_connection_close(self) -> None:
        self._gone = True
        super().on_connection_close()

    def _hung_up(self) -> bool:
        # A client that hangs up along with its request is never reported by on_connection_close().
        stream = stream_of(self.request)
        return self._gone or stream is None or stream.closed()

    def _refuse_if_revoked(self, since: int) -> None:
        """Refuse the handshake if its session was signed out, or its user's rights changed, meanwhile.

        The last check before open(): nothing yields to the IOLoop between the two, so a command
        arriving later finds the socket among the open ones.
        """
        reason = self.broker.revocations.refusal(user=self.user_name, session=self.session_key, since=since)
        if reason is not None:
            self.release()
            self._refuse(403, reason)

    async def subscribe(self, handshake: Handshake) -> None:
        """Subscribe and fetch the persisted messages, before the handshake is answered.

        So once a client sees its socket open, it receives everything published from then on.
        What arrives meanwhile is queued and sent, after the persisted messages, by open().
        """
        self._queue = []
        self.subscriber = self.subscriber_class(self.broker, self)
        self.subscriber.recovery = self._recovery
        await self.subscriber.set_pubsub_channels(handshake, self._subscription.parameters)
        await self.subscriber.send_persisted_messages(self)
        if self._wants_presence:
            # After subscribing: a join or leave from now on arrives as an event.
            self._presence_snapshot = await self.broker.read_presence(self.subscriber.subscribe_channels)

    def _origin_problem(self) -> str | None:
        # Tornado checks too, but only after prepare() and differently across its versions:
        # refuse here, before any work is done, by the project's own policy.
        headers = self.request.headers
        return handshake_origin_problem(
            origin=headers.get("Origin"),
            fetch_site=headers.get("Sec-Fetch-Site"),
            origin_allowed=self.check_origin,
        )

    def check_origin(self, origin: str) -> bool:
        """Allow a page whose origin is the server's own (scheme, host and port); override to allow others.

        The scheme is the one the request came with (with ``xheaders``, the one a proxy names in
        ``X-Forwarded-Proto``). A handshake without ``Origin`` is not a browser's and is not
        checked; see :mod:`ws4redis_tornado.origins`.
        """
        normalised = normalise_origin(origin)
        return normalised is not None and self.is_own_origin(normalised)

    def is_own_origin(self, normalised_origin: str) -> bool:
        """Tell whether a normalised origin is this request's own (scheme, host and port)."""
        return is_own_origin(
            normalised_origin,
            scheme=self.request.protocol,
            host=self.request.headers.get("Host", ""),
            fetch_site=self.request.headers.get("Sec-Fetch-Site"),
        )

    async def authorise(self, asked: Subscription) -> tuple[Principal, Subscription]:
        """Run the ``process_request`` and ``allowed_channels`` hooks; raise PermissionDenied."""
        principal: Principal | None = None
        if self.process_request is not None:
            principal = await self.call_hook(self.process_request, self.request)
        if principal is None:
            principal = Principal(request=self.request)
        if self.allowed_channels is None:
            return principal, asked
        request = principal.request if principal.request is not None else self.request
        allowed = await self.call_hook(self.allowed_channels, request, asked.parameters)
        return principal, asked if allowed is None else asked.restricted_to(allowed)

    async def call_hook(self, hook: Callable[..., Any], *args: Any) -> Any:
        """Run a hook: a coroutine function on the IOLoop, a plain function in the thread pool."""
        # Hooks may read a session store or a database: never on the IOLoop.
        if inspect.iscoroutinefunction(hook):
            return await hook(*args)
        result = await IOLoop.current().run_in_executor(self.executor, hook, *args)
        return await result if inspect.isawaitable(result) else result

    async def facility_allowed(self, request: Any, facility: str) -> bool:
        """Ask the ``allowed_facility`` hook whether ``request`` may use ``facility``; True without a hook."""
        if self.allowed_facility is None:
            return True
        return await self.call_hook(self.allowed_facility, request, facility) is True

    def _refuse(self, status: int, text: str) -> None:
        log_event(
            "deny",
            peer=self.request.remote_ip,
            status=status,
            reason=text,
            path=self.request.path,
            socket=self.socket_number,
        )
        self.set_status(status, reason=_reason_phrase(text))
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text + "\n")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Covers what Tornado refuses itself, e.g. an unknown method or a bad Origin.
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {reason_phrase(self)}: {NOT_A_WEBSOCKET}\n")

    # -- the open socket --------------------------------------------------------------------------

    def open(self, *args: str, **kwargs: str) -> None:
        assert self.ws_connection is not None
        self.ws_connection.stream.max_write_buffer_size = self.config.max_buffered_bytes
        # Frames are already batched per loop turn (writes.py): Nagle's algorithm would only hold a
        # small frame back until the client acknowledges the previous one.
        self.set_nodelay(True)
        if getattr(self.application, "closing", False):
            self.close(CloseCode.GOING_AWAY, "server shutting down")
            return
        if self._recovery is not None or self._wants_presence or self._control:
            self._open_with_labels()
        else:
            persisted, self._persisted = self._persisted or [], None
            for _, message in persisted:
                self.send(message)
            queued, self._queue = self._queue or [], None
            # A message published and persisted while subscribing went out with the persisted ones.
            already_sent = {(channel, bytes(message)) for channel, message in persisted}
            for delivery in queued:
                if (delivery.channel, bytes(delivery.message)) not in already_sent:
                    self.send_frame(delivery.frame)
        self.sockets.add(self)
        control = self._control
        if isinstance(control, ControlSession) and self.subscriber is not None:
            control.adopt(self._facility, self._subscription.subscribe, self.subscriber.subscribe_channels)
            if self.broker.presence.tracks(self._facility):
                control.count_present(self.subscriber.subscribe_channels)
        elif self.subscriber is not None and self.broker.presence.tracks(self._facility):
            self.broker.presence.add(self.subscriber.subscribe_channels, self.user_name)
            self._present = True
        self._opened_at = IOLoop.current().time()
        self._peer = self.request.remote_ip or ""
        channels = len(self.subscriber.subscribe_channels) if self.subscriber else 0
        log_event("connect", peer=self._peer, facility=self._facility, channels=channels, socket=self.socket_number)
        if not control:
            # A control socket's hooks read the request again for every subscribe and publish.
            self._forget_handshake()

    def _open_with_labels(self) -> None:
        """Open a socket that asked for ids or presence: what the recovery read and its report, who is
        here, then what arrived live meanwhile, each message behind its channel's label."""
        recovery, self._recovery = self._recovery, None
        channels = self.subscriber.subscribe_channels if self.subscriber else []
        if recovery is not None:
            for frame in recovery.frames():
                self.send_frame(frame)
            self._labels = recovery.labels()
            self._thresholds = recovery.thresholds()
            # A persisted message without an id went out with the opening: its live copy, if it
            # was published (by a publisher without history) while subscribing, does not go out again.
            copies = recovery.persisted_without_id()
        else:
            prefix = self.config.prefix
            self._labels = {channel.encode(): channel_label(channel, prefix=prefix) for channel in channels}
            facility = self._facility if self._control else None
            copies = set()
            persisted, self._persisted = self._persisted or [], None
            for channel, message in persisted:
                self.send_frame(message_frame(self._labels[channel], None, message.payload, facility))
                copies.add((channel, message.payload))
        snapshot, self._presence_snapshot = self._presence_snapshot, None
        for channel, presence in zip(channels, snapshot or (), strict=False):
            self.send_frame(snapshot_frame(self._labels[channel.encode()], presence))
        queued, self._queue = self._queue or [], None
        for delivery in queued:
            if isinstance(delivery, PresenceEvent):
                self.on_presence_event(delivery)
            elif delivery.id is None and (delivery.channel, delivery.payload) in copies:
                copies.discard((delivery.channel, delivery.payload))
            else:
                self._send_with_id(delivery)
        if self._broker_lost:
            self.on_broker_lost()

    def _forget_handshake(self) -> None:
        # Nothing reads the handshake's headers, arguments and URL parts once the socket is open,
        # nor the template namespace (nothing renders on a websocket): shared empty stand-ins save
        # about 3 KiB per socket (see "Memory per idle socket" in bench/README.md). The headers
        # are emptied in place too, because Tornado's get() keeps them until the socket closes.
        request = self.request
        empty_headers(request.headers)
        request.headers = _NO_HEADERS
        request.arguments = request.query_arguments = request.body_arguments = _NOTHING  # type: ignore[assignment]
        request.files = _NOTHING  # type: ignore[assignment]
        forget_request_on_connection(request)
        replace_response_headers(self, _NO_HEADERS)
        self.path_args = ()  # type: ignore[assignment]
        self.path_kwargs = _NOTHING  # type: ignore[assignment]
        self.ui = _NOTHING  # type: ignore[assignment]

    async def on_message(self, message: str | bytes) -> None:
        if not self.frame_allowed():
            return
        if isinstance(message, str) and is_heartbeat(message, self.config.heartbeat):
            return
        if isinstance(self._control, ControlSession):
            await self._control.handle(message)
            return
        subscriber = self.subscriber
        if subscriber is None or not subscriber.publish_channels:
            return
        redis_message = RedisMessage(message, binary=isinstance(message, bytes))
        payload = redis_message.payload
        sending = subscriber.publish_message(redis_message, expire=self._expire_for(payload))
        try:
            await self._publish(subscriber.publish_channels, payload, sending)
        except BrokerUnavailable as exc:
            logger.warning("closing %s: %s", self._peer, exc)
            self.close(CloseCode.TRY_AGAIN_LATER, "redis is unavailable; message not published")

    def _expire_for(self, payload: bytes) -> int | None:
        # What clients send is capped in Redis separately from what they may send at all.
        return 0 if len(payload) > self.config.max_persisted_size else None

    async def publish_to(self, channels: list[str], message: str | bytes) -> None:
        """Publish what a control socket sent to ``channels``, as ``publish-*`` would; raise BrokerUnavailable."""
        payload = RedisMessage(message, binary=isinstance(message, bytes)).payload
        expire = self._expire_for(payload)
        sending = self.broker.publish(channels, payload, expire=self.config.expire if expire is None else expire)
        await self._publish(channels, payload, sending)

    async def _publish(self, channels: list[str], payload: bytes, sending: Awaitable[object]) -> None:
        """Await ``sending``, the publish of ``payload`` to ``channels``, expecting the socket's own copy
        back first when it has no echo; raise BrokerUnavailable."""
        echoes = [] if self._subscription.echo else self._expect_own_echoes(channels, payload)
        try:
            await sending
        except BrokerUnavailable:
            self._forget_own_echoes(echoes)
            raise
        self.broker.metrics.client_publishes += 1

    def _expect_own_echoes(self, channels: list[str], payload: bytes) -> list[tuple[bytes, bytes]]:
        # Registered before publishing: Redis may deliver the copy before it answers PUBLISH.
        receives = self.subscriber.subscribe_channels if self.subscriber is not None else ()
        echoes = [(channel.encode(), payload) for channel in channels if channel in receives]
        if echoes:
            own = self._own_echoes
            if own is None:
                own = self._own_echoes = []
            own.extend(echoes)
            # A copy that never comes back (Redis restarted meanwhile) must not pile up.
            del own[:-_MAX_OWN_ECHOES]
        return echoes

    def _forget_own_echoes(self, echoes: list[tuple[bytes, bytes]]) -> None:
        own = self._own_echoes
        for echo in echoes:
            if own and echo in own:
                own.remove(echo)

    def _is_own_echo(self, delivery: Delivery) -> bool:
        own = self._own_echoes
        key = (delivery.channel, delivery.payload)
        if own is None or key not in own:
            return False
        own.remove(key)
        return True

    def keep_alive(self, now: float, interval: float, timeout: float) -> None:
        """Ping, or close a peer that left the last ping unanswered (called by the Pinger)."""
        action = ping_action(
            now=now,
            last_ping=self._last_ping or self._opened_at or now,
            pong_pending=self._pong_pending,
            interval=interval,
            timeout=timeout,
        )
        if action == "ping":
            self._last_ping = now
            self._pong_pending = True
            self.send_frame(PING_FRAME)
        elif action == "close":
            log_event("ping_timeout", peer=self._peer, facility=self._facility, socket=self.socket_number)
            self.close(reason="ping timed out")

    def on_pong(self, data: bytes) -> None:
        self._pong_pending = False

    def control_frame_allowed(self, *, pong: bool) -> bool:
        """Count a ping or pong against the rate limit, as :meth:`frame_allowed` does.

        A pong answering the server's own ping is free.
        """
        if pong and self._pong_pending:
            return True
        return self.frame_allowed()

    def frame_allowed(self) -> bool:
        """Take one token for a frame the client sent; past ``publish_rate``, close with 1008.

        Every message and every ping counts, published or not: a flood costs the server CPU
        whatever the frames say.
        """
        if not self.config.publish_rate:
            return True
        now = IOLoop.current().time()
        if self._bucket is None:
            # Created on the first frame: most sockets never send one and never pay for it.
            self._bucket = TokenBucket(self.config.publish_rate, self.config.publish_burst, now=now)
        if self._bucket.take(now=now):
            return True
        if not self.ws_connection or self.ws_connection.is_closing():
            return False
        rate = self.config.publish_rate
        log_event(
            "rate_limited",
            logging.WARNING,
            message=f"closing {self._peer}: sending faster than {rate} frames/s",
            peer=self._peer,
            rate=rate,
            socket=self.socket_number,
        )
        self.broker.metrics.rate_limit_closes += 1
        self.close(CloseCode.POLICY_VIOLATION, "sending too fast")
        return False

    def on_close(self) -> None:
        self.release()
        if self._opened_at is not None:
            # What we sent: our own code if we closed first, else the peer's, echoed. Tornado's
            # close_code is only what the peer sent, None if it never answered our close.
            code = self.sent_close_code if self.sent_close_code is not None else self.close_code
            # 1006: the connection ended without a close frame.
            self.broker.metrics.closes[1006 if code is None else code] += 1
            log_event(
                "close",
                peer=self._peer,
                facility=self._facility,
                code=code,
                seconds=round(IOLoop.current().time() - self._opened_at, 3),
                socket=self.socket_number,
            )

    def on_finish(self) -> None:
        # Called with 101 when the upgrade succeeds, and with an error status when it does not.
        status = self.get_status()
        self.broker.metrics.handshakes[status] += 1
        if status != 101:
            self.release()

    def release(self) -> None:
        """Leave every channel and the set of open sockets; safe to call more than once."""
        self._queue = None
        self._held = None
        self.sockets.discard(self)
        if isinstance(self._control, ControlSession):
            self._control.release()
        if self.subscriber is not None:
            if self._present:
                self._present = False
                self.broker.presence.remove(self.subscriber.subscribe_channels, self.user_name)
            self.subscriber.release()

    # -- sending ----------------------------------------------------------------------------------

    def on_broker_message(self, delivery: Delivery) -> None:
        """Take one message from the broker (a :class:`Listener` method)."""
        if self._own_echoes and self._is_own_echo(delivery):
            return
        if self._queue is not None:
            self._queue.append(delivery)
            return
        if self._labels is not None:
            self._send_with_id(delivery)
            return
        self.send_frame(delivery.frame)

    def _send_with_id(self, delivery: Delivery) -> None:
        channel = delivery.channel
        held = self._held
        if held and channel in held:
            held[channel].append(delivery)
            return
        if delivery.id is not None:
            thresholds = self._thresholds
            if thresholds:
                threshold = thresholds.get(channel)
                if threshold is not None:
                    if order(delivery.id) <= threshold:
                        return  # the opening sent it already
                    # Ids grow: every later message on this channel is new to the client.
                    del thresholds[channel]
        assert self._labels is not None
        label = self._labels.get(channel)
        if label is not None:
            self.send_frame(delivery.tagged_envelope(label) if self._control else delivery.envelope(label))

    @property
    def facility(self) -> str:
        """The facility of the socket's URL ('' for a control socket opened without one)."""
        return self._facility

    # -- a control socket's subscriptions (see control_session.py) ------------------------------

    def is_open(self) -> bool:
        """Whether the socket is open: opened, and not closed since."""
        return self in self.sockets

    def hold(self, channels: list[str]) -> None:
        """Keep the live messages of ``channels`` back until :meth:`open_channels` sends them."""
        if self._held is None:
            self._held = {}
        for channel in channels:
            self._held[channel.encode()] = []

    def release_held(self, channels: list[str]) -> None:
        """Drop what :meth:`hold` kept for channels that were not subscribed after all."""
        held = self._held
        if held is not None:
            for channel in channels:
                held.pop(channel.encode(), None)

    def open_channels(
        self, channels: list[str], recovery: Recovery, reply: bytes, snapshots: Sequence[bytes] = ()
    ) -> None:
        """Start delivering newly subscribed ``channels``: what ``recovery`` read, who is there
        (``snapshots``), the reply, then what arrived meanwhile and the read did not cover."""
        for frame in recovery.frames(report=False):
            self.send_frame(frame)
        for frame in snapshots:
            self.send_frame(frame)
        self.send_frame(reply)
        if not channels:
            return
        assert self.subscriber is not None and self._labels is not None
        self.subscriber.subscribe_channels.extend(channels)
        self._labels.update(recovery.labels())
        thresholds = recovery.thresholds()
        if thresholds:
            if self._thresholds is None:
                self._thresholds = {}
            self._thresholds.update(thresholds)
        copies = recovery.persisted_without_id()
        held = self._held or {}
        for channel in channels:
            for delivery in held.pop(channel.encode(), ()):
                if isinstance(delivery, PresenceEvent):
                    self.on_presence_event(delivery)
                elif delivery.id is None and (delivery.channel, delivery.payload) in copies:
                    copies.discard((delivery.channel, delivery.payload))
                else:
                    self._send_with_id(delivery)

    def forget_presence(self, channels: Iterable[str]) -> None:
        """Stop sending the join and leave events of ``channels``."""
        if self._presence_channels:
            self._presence_channels.difference_update(channel.encode() for channel in channels)

    def follow_presence(self, channels: Iterable[str]) -> None:
        """Send the join and leave events of ``channels`` (a control socket's subscribe asked for them)."""
        if self._presence_channels is None:
            self._presence_channels = set()
        self._presence_channels.update(channel.encode() for channel in channels)

    def close_channels(self, channels: list[str]) -> None:
        """Stop delivering ``channels`` (an unsubscribe): nothing of them is sent from now on."""
        if not channels or self.subscriber is None:
            return
        self.broker.unsubscribe(self, channels)
        subscribed = self.subscriber.subscribe_channels
        for channel in channels:
            key = channel.encode()
            if channel in subscribed:
                subscribed.remove(channel)
            if self._labels is not None:
                self._labels.pop(key, None)
            if self._thresholds:
                self._thresholds.pop(key, None)
            if self._presence_channels:
                self._presence_channels.discard(key)

    def on_presence_event(self, event: PresenceEvent) -> None:
        """Take a join or leave from the broker; only a socket that asked for presence sends it on."""
        if self._presence_channels is not None and event.channel in self._presence_channels:
            held = self._held
            if held and event.channel in held:
                held[event.channel].append(event)  # type: ignore[arg-type]
                return
            label = self._labels.get(event.channel) if self._labels else None
            if label is not None:
                self.send_frame(event.tagged_frame(label))
            return
        if not self._wants_presence:
            return
        if self._queue is not None:
            self._queue.append(event)  # type: ignore[arg-type]
            return
        label = self._labels.get(event.channel) if self._labels else None
        if label is not None:
            self.send_frame(event.frame(label))

    def on_broker_lost(self) -> None:
        """Close a socket that asked for ids, so that its client reconnects and recovers what Redis' absence cost it.

        A socket still in its handshake is closed as soon as it opens. Other sockets stay open, as they always did.
        """
        if self._labels is None and self._recovery is None and not self._wants_presence:
            return
        connection = self.ws_connection
        if connection is None or self._labels is None:
            self._broker_lost = True
            return
        if not connection.is_closing():
            self.close(CloseCode.SERVICE_RESTART, "lost the connection to redis; reconnect to recover")

    def send_persisted(self, channel: str, message: RedisMessage) -> None:
        """Take a persisted message during the handshake; open() sends it first (see RedisSubscriber)."""
        if self._persisted is None:
            self._persisted = []
        self._persisted.append((channel.encode(), message))

    def send(self, message: RedisMessage) -> None:
        """Send one message as a text or binary frame, per ``message.binary``."""
        self.send_frame(encode_frame(message, binary=message.binary))

    def send_frame(self, frame: bytes) -> None:
        """Queue a complete websocket frame; the frame writer sends the queue soon, in one write.

        A socket that agreed to permessage-deflate gets the frame compressed when it is flushed,
        once for all such sockets (see :mod:`ws4redis_tornado.deflate`). A socket with more than
        ``max_buffered_bytes`` queued is closed with 1008.
        """
        pending = self._pending
        if pending is None:
            if self.ws_connection is None:
                return
            # A lone frame is kept as is: no list to allocate (and for the GC to track) per
            # socket per message in the common case.
            self._pending = frame
            self.frame_writer.schedule(self)
        elif isinstance(pending, list):
            pending.append(frame)
        else:
            self._pending = [pending, frame]

    def take_frames(self, batch: WriteBatch) -> int:
        """Hand the queued frames to the frame writer's ``batch`` (see writes.py); return their bytes.

        When the stream cannot take a direct ``send()`` (it has data queued, or is TLS), they are
        written through it at once instead.
        """
        pending, self._pending = self._pending, None
        connection = self.ws_connection
        if pending is None or connection is None or connection.is_closing():
            return 0
        wbits = self._deflate_wbits
        if wbits:
            compress = self.frame_writer.compressor.compress  # type: ignore[union-attr]
            if isinstance(pending, list):
                pending = [compress(frame, wbits) for frame in pending]
            else:
                pending = compress(pending, wbits)
        data = b"".join(pending) if isinstance(pending, list) else pending
        sock = direct_socket(connection.stream)
        if sock is None:
            self.write_rest(data, 0)
        else:
            batch.owners.append(self)
            batch.sockets.append(sock)
            batch.datas.append(data)
        return len(data)

    def write_rest(self, data: bytes, sent: int) -> None:
        """Write what a direct ``send()`` left of ``data`` through the stream, bounded by
        ``max_buffered_bytes``."""
        connection = self.ws_connection
        if connection is None:
            return
        try:
            if not write_rest(connection.stream, data, sent):
                self._close_slow_consumer()
        except StreamClosedError:
            pass

    def _close_slow_consumer(self) -> None:
        assert self.ws_connection is not None
        queued = self.config.max_buffered_bytes
        log_event(
            "slow_consumer",
            logging.WARNING,
            message=f"closing {self._peer}: it stopped reading and has more than {queued} bytes queued",
            peer=self._peer,
            queued=queued,
            socket=self.socket_number,
        )
        # Let the close frame through the full buffer; Tornado aborts if the peer never answers.
        self.ws_connection.stream.max_write_buffer_size = None
        self.broker.metrics.slow_consumer_closes += 1
        self.close(CloseCode.POLICY_VIOLATION, "too much data queued: the client is not reading")


def _is_websocket_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def _reason_phrase(text: str) -> str | None:
    """Use ``text`` as the HTTP reason phrase when it is short printable ASCII without ``<``.

    Tornado turns a phrase with ``<`` into "Unknown"; the standard phrase says more.
    """
    if len(text) <= 120 and text.isascii() and text.isprintable() and "<" not in text:
        return text
    return None
