"""Signal receivers of django_bridge, connected in ``DjangoBridgeConfig.ready()``."""

from __future__ import annotations

from typing import Any

from .conf import MEMBEROF_SESSION_KEY

__all__ = ["store_groups_in_session"]


def store_groups_in_session(sender: Any, user: Any, request: Any, **kwargs: Any) -> None:
    """Store the names of the user's groups in the session when they log in (``user_logged_in``).

    Websocket handshakes read the groups from there instead of querying them each time, as in
    ws4redis; a change of membership shows on the next login.
    """
    session = getattr(request, "session", None)
    if session is None or not hasattr(user, "groups"):
        return
    session[MEMBEROF_SESSION_KEY] = list(user.groups.values_list("name", flat=True))
