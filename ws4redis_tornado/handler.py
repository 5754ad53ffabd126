"""RedisWebSocketHandler: authorises a handshake, then relays between one websocket and the broker."""

from __future__ import annotations

import base64
import binascii
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableSet
from concurrent.futures import Executor
from typing import Any
from urllib.parse import urlsplit

from tornado.httputil import HTTPHeaders
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketHandler, _WebSocketParams

from .broker import Broker, Delivery
from .channels import Principal, Subscription, parse_subscription, validate_facility
from .exceptions import BrokerUnavailable, InvalidFacility, PermissionDenied
from .keepalive import PING_FRAME, ping_action
from .logs import log_event
from .messages import RedisMessage, encode_frame, is_heartbeat
from .protocol import CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER, StrictProtocol
from .ratelimit import TokenBucket
from .subscriber import Handshake, RedisSubscriber
from .writes import FrameWriter, write_now

__all__ = ["AllowedChannels", "ProcessRequest", "RedisWebSocketHandler"]

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

_NO_HEADERS = HTTPHeaders()
_NOTHING_ASKED = Subscription()


NOT_A_WEBSOCKET = "this URL serves websockets; send a GET with Upgrade: websocket"


class RedisWebSocketHandler(WebSocketHandler):
    """Serves ``<websocket_url><facility>?subscribe-broadcast&publish-user&echo ...``.

    Route it as ``(config.websocket_url + "(.*)", RedisWebSocketHandler, {"broker": broker, ...})``.
    """

    # Slots keep this class's per-socket state out of the instance __dict__, which then holds
    # only Tornado's own attributes and stays a small key-sharing dict: at tens of thousands of
    # sockets each instance attribute counts.
    __slots__ = (
        "_bucket",
        "_facility",
        "_last_ping",
        "_last_published",
        "_opened_at",
        "_peer",
        "_pending",
        "_persisted",
        "_pong_pending",
        "_queue",
        "_subscription",
        "allowed_channels",
        "broker",
        "config",
        "executor",
        "frame_writer",
        "process_request",
        "sent_close_code",
        "sockets",
        "subscriber",
        "subscriber_class",
    )

    def initialize(
        self,
        *,
        broker: Broker,
        process_request: ProcessRequest | None = None,
        allowed_channels: AllowedChannels | None = None,
        subscriber_class: type[RedisSubscriber] = RedisSubscriber,
        sockets: MutableSet[RedisWebSocketHandler] | None = None,
        executor: Executor | None = None,
        frame_writer: FrameWriter | None = None,
    ) -> None:
        self.broker = broker
        self.config = broker.config
        self.process_request = process_request
        self.allowed_channels = allowed_channels
        self.subscriber_class = subscriber_class
        self.sockets = sockets if sockets is not None else set()
        self.executor = executor
        self.frame_writer = frame_writer if frame_writer is not None else FrameWriter()
        self.subscriber: RedisSubscriber | None = None
        self._subscription = _NOTHING_ASKED
        # Payload of the last message this socket published, when echo is off.
        self._last_published: bytes | None = None
        # Live messages waiting while open() sends the persisted ones first.
        self._queue: list[Delivery] | None = None
        self._persisted: list[tuple[bytes, RedisMessage]] | None = None
        # Frames waiting for the frame writer: one frame, or a list of them.
        self._pending: bytes | list[bytes] | None = None
        self._bucket: TokenBucket | None = None
        self._facility = ""
        self._peer = ""
        self._opened_at: float | None = None
        self._last_ping = 0.0
        self._pong_pending = False
        # The code of the close frame this server sent (set by StrictProtocol), if it sent one.
        self.sent_close_code: int | None = None

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
        params = _WebSocketParams(
            ping_interval=None,
            max_message_size=self.max_message_size,
            compression_options=self.get_compression_options(),
        )
        return StrictProtocol(self, False, params)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """Select the first subprotocol the client offers; none offered, none selected."""
        return subprotocols[0] if subprotocols else None

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
        try:
            validate_facility(facility)
        except InvalidFacility as exc:
            return self._refuse(400, str(exc))
        if not self.broker.connected:
            return self._refuse(503, "redis is unavailable; try again later")
        if not self._origin_allowed():
            return self._refuse(403, "cross-origin websocket refused")
        try:
            principal, subscription = await self.authorise(parse_subscription(self.request.query))
        except PermissionDenied as exc:
            return self._refuse(403, str(exc) or "forbidden")
        self._subscription = subscription
        self._facility = facility
        try:
            await self.subscribe(Handshake(facility=facility, principal=principal))
        except BrokerUnavailable:
            self.release()
            return self._refuse(503, "redis is unavailable; try again later")

    async def subscribe(self, handshake: Handshake) -> None:
        """Subscribe and fetch the persisted messages, before the handshake is answered.

        So once a client sees its socket open, it receives everything published from then on.
        What arrives meanwhile is queued and sent, after the persisted messages, by open().
        """
        self._queue = []
        self.subscriber = self.subscriber_class(self.broker, self)
        await self.subscriber.set_pubsub_channels(handshake, self._subscription.parameters)
        await self.subscriber.send_persisted_messages(self)

    def _origin_allowed(self) -> bool:
        # Tornado checks too, but only after prepare(): refuse before any work is done.
        origin = self.request.headers.get("Origin")
        return origin is None or self.check_origin(origin)

    def check_origin(self, origin: str) -> bool:
        """Allow a same-origin handshake; override to allow others.

        Same origin means the browser says so (``Sec-Fetch-Site: same-origin``, which pages cannot
        forge), or the ``Origin``'s host and port equal the ``Host`` header. A handshake without
        ``Origin`` does not come from a browser and is not checked.
        """
        if self.request.headers.get("Sec-Fetch-Site") in ("same-origin", "none"):
            return True
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:
            return False
        return netloc.lower() == self.request.headers.get("Host", "").lower()

    async def authorise(self, asked: Subscription) -> tuple[Principal, Subscription]:
        """Run the ``process_request`` and ``allowed_channels`` hooks; raise PermissionDenied."""
        principal: Principal | None = None
        if self.process_request is not None:
            principal = await self._call_hook(self.process_request, self.request)
        if principal is None:
            principal = Principal(request=self.request)
        if self.allowed_channels is None:
            return principal, asked
        request = principal.request if principal.request is not None else self.request
        allowed = await self._call_hook(self.allowed_channels, request, asked.parameters)
        return principal, asked if allowed is None else asked.restricted_to(allowed)

    async def _call_hook(self, hook: Callable[..., Any], *args: Any) -> Any:
        # Hooks may read a session store or a database: never on the IOLoop.
        if inspect.iscoroutinefunction(hook):
            return await hook(*args)
        result = await IOLoop.current().run_in_executor(self.executor, hook, *args)
        return await result if inspect.isawaitable(result) else result

    def _refuse(self, status: int, text: str) -> None:
        log_event("deny", peer=self.request.remote_ip, status=status, reason=text, path=self.request.path)
        self.set_status(status, reason=_reason_phrase(text))
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text + "\n")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Covers what Tornado refuses itself, e.g. an unknown method or a bad Origin.
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {self._reason}: {NOT_A_WEBSOCKET}\n")

    # -- the open socket --------------------------------------------------------------------------

    def open(self, *args: str, **kwargs: str) -> None:
        assert self.ws_connection is not None
        self.ws_connection.stream.max_write_buffer_size = self.config.max_buffered_bytes
        if getattr(self.application, "closing", False):
            self.close(CLOSE_GOING_AWAY, "server shutting down")
            return
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
        self._opened_at = IOLoop.current().time()
        self._peer = self.request.remote_ip or ""
        channels = len(self.subscriber.subscribe_channels) if self.subscriber else 0
        log_event("connect", peer=self._peer, facility=self._facility, channels=channels)
        self._forget_handshake()

    def _forget_handshake(self) -> None:
        # Nothing reads the handshake's headers and arguments once the socket is open; dropping
        # them saves a few KiB per socket.
        request = self.request
        request.headers = _NO_HEADERS
        request.arguments = request.query_arguments = request.body_arguments = {}
        self._headers = _NO_HEADERS
        self.path_args = []

    async def on_message(self, message: str | bytes) -> None:
        if isinstance(message, str) and is_heartbeat(message, self.config.heartbeat):
            return
        subscriber = self.subscriber
        if subscriber is None or not subscriber.publish_channels:
            return
        if not self._may_publish():
            logger.warning("closing %s: publishing faster than %s messages/s", self._peer, self.config.publish_rate)
            self.close(CLOSE_POLICY_VIOLATION, "publishing too fast")
            return
        redis_message = RedisMessage(message, binary=isinstance(message, bytes))
        if not self._subscription.echo:
            self._last_published = redis_message.payload
        try:
            await subscriber.publish_message(redis_message)
        except BrokerUnavailable as exc:
            logger.warning("closing %s: %s", self._peer, exc)
            self.close(CLOSE_TRY_AGAIN_LATER, "redis is unavailable; message not published")

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
            log_event("ping_timeout", peer=self._peer, facility=self._facility)
            self.close(reason="ping timed out")

    def on_pong(self, data: bytes) -> None:
        self._pong_pending = False

    def _may_publish(self) -> bool:
        if not self.config.publish_rate:
            return True
        now = IOLoop.current().time()
        if self._bucket is None:
            # Created on the first publish: most sockets never publish and never pay for it.
            self._bucket = TokenBucket(self.config.publish_rate, self.config.publish_burst, now=now)
        return self._bucket.take(now=now)

    def on_close(self) -> None:
        self.release()
        if self._opened_at is not None:
            log_event(
                "close",
                peer=self._peer,
                facility=self._facility,
                # What we sent: our own code if we closed first, else the peer's, echoed. Tornado's
                # close_code is only what the peer sent, None if it never answered our close.
                code=self.sent_close_code if self.sent_close_code is not None else self.close_code,
                seconds=round(IOLoop.current().time() - self._opened_at, 3),
            )

    def on_finish(self) -> None:
        # Called with 101 when the upgrade succeeds, and with an error status when it does not.
        if self.get_status() != 101:
            self.release()

    def release(self) -> None:
        """Leave every channel and the set of open sockets; safe to call more than once."""
        self._queue = None
        self.sockets.discard(self)
        if self.subscriber is not None:
            self.subscriber.release()

    # -- sending ----------------------------------------------------------------------------------

    def on_broker_message(self, delivery: Delivery) -> None:
        """Take one message from the broker (a :class:`Listener` method)."""
        if delivery.payload == self._last_published:
            return
        if self._queue is not None:
            self._queue.append(delivery)
            return
        self.send_frame(delivery.frame)

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

        Frames are sent uncompressed, which permessage-deflate allows, so the same bytes serve
        every socket. A socket with more than ``max_buffered_bytes`` queued is closed with 1008.
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

    def flush_frames(self) -> None:
        """Write the queued frames (called by the :class:`FrameWriter`)."""
        pending, self._pending = self._pending, None
        connection = self.ws_connection
        if pending is None or connection is None or connection.is_closing():
            return
        data = b"".join(pending) if isinstance(pending, list) else pending
        try:
            if not write_now(connection.stream, data):
                self._close_slow_consumer()
        except StreamClosedError:
            pass

    def _close_slow_consumer(self) -> None:
        assert self.ws_connection is not None
        logger.warning(
            "closing %s: it stopped reading and has more than %d bytes queued",
            self._peer,
            self.config.max_buffered_bytes,
        )
        # Let the close frame through the full buffer; Tornado aborts if the peer never answers.
        self.ws_connection.stream.max_write_buffer_size = None
        self.close(CLOSE_POLICY_VIOLATION, "too much data queued: the client is not reading")


def _is_websocket_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def _reason_phrase(text: str) -> str | None:
    """Use ``text`` as the HTTP reason phrase when it is short printable ASCII."""
    if len(text) <= 120 and text.isascii() and text.isprintable():
        return text
    return None
