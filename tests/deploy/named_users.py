"""A ``WS4REDIS_PROCESS_REQUEST`` for tests of the deployment example: ``?as=<name>`` connects as that user.

The example keeps no users, and presence is about users; this stands in for a login. Never in a
real deployment: anybody could claim any name. The stack's processes import it through
``STACK_PROCESS_REQUEST`` (see examples/deploy/project/settings.py).
"""

from __future__ import annotations

from django.http import HttpRequest


class NamedUser:
    """Just what django_bridge asks of a user: whether it is authenticated, and its name."""

    is_authenticated = True

    def __init__(self, name: str) -> None:
        self.name = name

    def get_username(self) -> str:
        return self.name


def from_query(request: HttpRequest) -> None:
    name = request.GET.get("as")
    if name:
        request.user = NamedUser(name)  # type: ignore[assignment]
