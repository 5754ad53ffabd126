"""ControlSession: one control socket's subscriptions, authorised and answered request by request.

The wire format is in :mod:`ws4redis_tornado.control`. Each subscribe and publish runs the same
hooks as a handshake (the facility hook, then ``allowed_channels``), in the thread pool for plain
functions. A subscribe is answered only once Redis confirmed it and the new channels' persisted (or
recovered) messages went out, so a message published after the client saw ``ok`` reaches it; a
refused request leaves the socket with what it had. Tornado reads a socket's next frame only once
the previous one was handled, so one socket's requests never overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .channels import Audience, Principal, channel_keys
from .control import (
    BAD_REQUEST,
    FORBIDDEN,
    TOO_MANY_SUBSCRIPTIONS,
    UNAVAILABLE,
    ControlRequest,
    error_frame,
    ok_frame,
    parse_request,
)
from .exceptions import BrokerUnavailable, InvalidRequest, PermissionDenied
from .history import channel_label
from .presence import snapshot_frame
from .recovery import Recovery

if TYPE_CHECKING:
    from .handler import RedisWebSocketHandler

__all__ = ["ControlSession"]

_UNAVAILABLE = "redis is unavailable; try again later"


class ControlSession:
    """The subscriptions of one socket that speaks the control protocol, by ``(facility, audience)``."""

    __slots__ = ("_handler", "_principal", "present", "subscriptions")

    def __init__(self, handler: RedisWebSocketHandler, principal: Principal) -> None:
        self._handler = handler
        self._principal = principal
        # (facility, audience) -> the Redis keys it subscribed (a group audience: one per group).
        self.subscriptions: dict[tuple[str, Audience], tuple[str, ...]] = {}
        # The channels of facilities that keep presence, on which this socket is counted.
        self.present: list[str] = []

    @property
    def channel_count(self) -> int:
        return sum(len(channels) for channels in self.subscriptions.values())

    def adopt(self, facility: str, audiences: Iterable[Audience], subscribed: Sequence[str]) -> None:
        """Record what the handshake's URL subscribed, so that the client can unsubscribe it too."""
        for audience in audiences:
            channels = tuple(channel for channel in self._keys(facility, (audience,)) if channel in subscribed)
            if channels:
                self.subscriptions[(facility, audience)] = channels

    def count_present(self, channels: Sequence[str]) -> None:
        """Count this socket as present on ``channels`` (of a facility that keeps presence)."""
        if channels:
            self._handler.broker.presence.add(channels, self._principal.user)
            self.present.extend(channels)

    def _uncount(self, channels: Sequence[str]) -> None:
        gone = [channel for channel in channels if channel in self.present]
        if gone:
            self._handler.broker.presence.remove(gone, self._principal.user)
            for channel in gone:
                self.present.remove(channel)

    def release(self) -> None:
        """The socket closed: it is no longer present anywhere."""
        self._uncount(list(self.present))

    async def handle(self, frame: str | bytes) -> None:
        """Answer one request; a refused one gets an error reply and changes nothing."""
        try:
            request = parse_request(frame)
            if request.op == "subscribe":
                await self._subscribe(request)
            elif request.op == "unsubscribe":
                self._unsubscribe(request)
            else:
                await self._publish(request)
        except InvalidRequest as exc:
            self._handler.send_frame(error_frame(exc.ref, exc.code, exc.reason))

    async def _subscribe(self, request: ControlRequest) -> None:
        handler = self._handler
        facility = request.facility
        granted = await self._authorise(request, "subscribe-")
        new = {
            audience: tuple(self._keys(facility, (audience,)))
            for audience in granted
            if (facility, audience) not in self.subscriptions
        }
        channels = [channel for keys in new.values() for channel in keys]
        limit = handler.config.max_subscriptions
        if self.channel_count + len(channels) > limit:
            raise InvalidRequest(
                TOO_MANY_SUBSCRIPTIONS, f"a socket may hold {limit} channels; unsubscribe some first", request.ref
            )
        tracker = handler.broker.presence
        if request.presence and not tracker.tracks(facility):
            raise InvalidRequest(BAD_REQUEST, f"presence is not kept for the facility {facility!r}", request.ref)
        recovery = Recovery(handler.broker, request.positions or {}, facility=facility)
        if request.presence:
            handler.follow_presence(self._keys(facility, granted))
        if channels:
            handler.hold(channels)
            try:
                await recovery.before_subscribe(channels)
                await handler.broker.subscribe(handler, channels)
                await recovery.after_subscribe()
            except BrokerUnavailable:
                handler.broker.unsubscribe(handler, channels)
                handler.release_held(channels)
                handler.forget_presence(channels)
                raise InvalidRequest(UNAVAILABLE, _UNAVAILABLE, request.ref) from None
            if not handler.is_open():
                # Closed meanwhile: its release() did not know these channels yet.
                handler.broker.unsubscribe(handler, channels)
                return
            for audience, keys in new.items():
                if keys:
                    self.subscriptions[(facility, audience)] = keys
        held = [audience for audience in granted if (facility, audience) in self.subscriptions]
        if not held:
            names = ", ".join(audience.value for audience in granted)
            raise InvalidRequest(FORBIDDEN, f"this socket has no {names} channel to subscribe to", request.ref)
        prefix = handler.config.prefix
        reply: dict[str, object] = {
            "audiences": [audience.value for audience in held],
            "channels": [
                channel_label(channel, prefix=prefix)
                for audience in held
                for channel in self.subscriptions[(facility, audience)]
            ],
        }
        if request.positions is not None:
            reply["recovery"] = recovery.report()
        try:
            snapshots = await self._snapshots(facility, held) if request.presence else []
        except BrokerUnavailable:
            for audience in new:
                self.subscriptions.pop((facility, audience), None)
            handler.release_held(channels)
            handler.close_channels(channels)
            raise InvalidRequest(UNAVAILABLE, _UNAVAILABLE, request.ref) from None
        if not handler.is_open():
            return
        if tracker.tracks(facility):
            # After reading who is there: the socket's own arrival comes as an event.
            self.count_present(channels)
        handler.open_channels(channels, recovery, ok_frame(request.ref, **reply), snapshots)

    async def _snapshots(self, facility: str, audiences: Sequence[Audience]) -> list[bytes]:
        """Who is on each channel of ``audiences``, one frame per channel."""
        channels = [key for audience in audiences for key in self.subscriptions[(facility, audience)]]
        prefix = self._handler.config.prefix
        presences = await self._handler.broker.read_presence(channels)
        return [
            snapshot_frame(channel_label(channel, prefix=prefix), presence, facility)
            for channel, presence in zip(channels, presences, strict=True)
        ]

    def _unsubscribe(self, request: ControlRequest) -> None:
        handler = self._handler
        gone: list[str] = []
        left: list[str] = []
        for audience in request.audiences or tuple(Audience):
            channels = self.subscriptions.pop((request.facility, audience), ())
            if channels:
                gone.extend(channels)
                left.append(audience.value)
        self._uncount(gone)
        handler.close_channels(gone)
        handler.send_frame(ok_frame(request.ref, audiences=left))

    async def _publish(self, request: ControlRequest) -> None:
        handler = self._handler
        granted = await self._authorise(request, "publish-")
        channels = self._keys(request.facility, granted)
        if not channels:
            audience = granted[0].value
            raise InvalidRequest(FORBIDDEN, f"this socket has no {audience} channel to publish to", request.ref)
        try:
            await handler.publish_to(channels, request.payload)
        except BrokerUnavailable:
            raise InvalidRequest(UNAVAILABLE, _UNAVAILABLE + "; message not published", request.ref) from None
        handler.send_frame(ok_frame(request.ref))

    async def _authorise(self, request: ControlRequest, prefix: str) -> tuple[Audience, ...]:
        """The audiences of ``request`` the hooks allow; raise ``forbidden`` if none."""
        handler = self._handler
        hook_request = self._principal.request if self._principal.request is not None else handler.request
        facility = request.facility
        try:
            if not await handler.facility_allowed(hook_request, facility):
                raise PermissionDenied(f"not allowed on the facility {facility!r}")
            if handler.allowed_channels is None:
                return request.audiences
            asked = [prefix + audience.value for audience in request.audiences]
            allowed = await handler.call_hook(handler.allowed_channels, hook_request, asked)
        except PermissionDenied as exc:
            raise InvalidRequest(FORBIDDEN, str(exc) or "forbidden", request.ref) from None
        if allowed is None:
            return request.audiences
        kept = {name.lower() for name in allowed}
        granted = tuple(audience for audience in request.audiences if prefix + audience.value in kept)
        if not granted:
            names = ", ".join(asked)
            raise InvalidRequest(FORBIDDEN, f"not allowed: {names} on the facility {facility!r}", request.ref)
        return granted

    def _keys(self, facility: str, audiences: Iterable[Audience]) -> list[str]:
        return channel_keys(audiences, facility, self._principal, prefix=self._handler.config.prefix)
