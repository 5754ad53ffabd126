"""Exceptions raised by ws4redis-tornado.

The hierarchy::

    Ws4RedisError
    ├── ConfigurationError (also ValueError)   a setting has a wrong value
    ├── InvalidFacility (also ValueError)      a facility name cannot be used in a channel key
    ├── PermissionDenied                       a handshake was refused by a hook
    ├── CannotListen (also OSError)            the server cannot bind its address
    └── BrokerError
        ├── BrokerUnavailable (also ConnectionError)  Redis cannot be reached right now
        └── BrokerClosed (also RuntimeError)          the broker was used after aclose()
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BrokerClosed",
    "BrokerError",
    "BrokerUnavailable",
    "CannotListen",
    "ConfigurationError",
    "InvalidFacility",
    "InvalidRecovery",
    "PermissionDenied",
    "Ws4RedisError",
]


class Ws4RedisError(Exception):
    """Base class of every exception raised by this package."""


class ConfigurationError(Ws4RedisError, ValueError):
    """A configuration value is missing or wrong; the message names the setting.

    The attributes say the same in parts, so that a framework can name the field its own way
    (django_bridge says ``WS4REDIS_EXPIRE = -1 ...`` where the message says ``'expire'``).

    Attributes:
        field: the Config field that is wrong, or None when no one field is (an unknown name).
        value: its wrong value.
        problem: what is wrong, a phrase to follow ``<field> = <value>``, such as
            ``"is longer than ping_interval (10)"``.
        related: the other fields ``problem`` names, for a rule across fields.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        problem: str = "is not valid",
        related: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.problem = problem
        self.related = related


class InvalidFacility(Ws4RedisError, ValueError):
    """A facility name is empty or contains characters that would make channel keys ambiguous."""


class PermissionDenied(Ws4RedisError):
    """Raised by a ``process_request`` or ``allowed_channels`` hook to refuse a handshake.

    The message is sent to the client as the reason of the 403 answer, so keep it short and free of
    secrets.
    """


class CannotListen(Ws4RedisError, OSError):
    """The server cannot listen on the address it was given; the message names it."""


class BrokerError(Ws4RedisError):
    """Base class of the broker's errors."""


class BrokerUnavailable(BrokerError, ConnectionError):
    """Redis cannot be reached; the message names the address."""


class BrokerClosed(BrokerError, RuntimeError):
    """The broker was used after it was closed."""


class InvalidRecovery(Ws4RedisError, ValueError):
    """A handshake's ``recover`` parameter cannot be read (answered with 400)."""


class InvalidRequest(Ws4RedisError, ValueError):
    """A request on a control socket is refused; ``code`` names why, the message says it for people.

    Answered with an error reply; the socket stays open.
    """

    def __init__(self, code: str, reason: str, ref: object = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.ref = ref
