"""Signal receivers of django_bridge, connected in ``DjangoBridgeConfig.ready()``.

Besides storing the groups in the session at login (as ws4redis did), they close the open
websockets whose rights changed, in every server process (see :mod:`ws4redis_tornado.revocation`):
a logout closes that session's sockets; a change of a user's groups, a deactivation or a deletion
closes that user's sockets, which then reconnect and get the rights of the moment. Each command is
published once the change is committed, so that the new handshake finds it in the database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from ws4redis_tornado.exceptions import BrokerUnavailable

from .conf import MEMBEROF_SESSION_KEY
from .publisher import close_websockets

__all__ = [
    "close_deactivated_user_sockets",
    "close_deleted_user_sockets",
    "close_group_members_sockets",
    "close_members_sockets",
    "close_session_sockets",
    "store_groups_in_session",
]

logger = logging.getLogger(__name__)


def store_groups_in_session(sender: Any, user: Any, request: Any, **kwargs: Any) -> None:
    """Store the names of the user's groups in the session when they log in (``user_logged_in``).

    Only for ws4redis processes that share the sessions: django_bridge reads the groups from the
    database at each handshake, never from here.
    """
    session = getattr(request, "session", None)
    if session is None or not hasattr(user, "groups"):
        return
    session[MEMBEROF_SESSION_KEY] = list(user.groups.values_list("name", flat=True))


def close_session_sockets(sender: Any, request: Any, user: Any = None, **kwargs: Any) -> None:
    """Close the websockets of the session that logs out (``user_logged_out``); not the user's others."""
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        _close_on_commit(sessions=[key])


def close_members_sockets(
    sender: Any, instance: Any, action: str, reverse: bool, model: Any, pk_set: Any, using: str, **kwargs: Any
) -> None:
    """Close the websockets of the users whose groups changed (``m2m_changed`` of ``User.groups``).

    ``user.groups.add/remove/set/clear()`` name one user; ``group.user_set.add/remove()`` the users
    in ``pk_set``; ``group.user_set.clear()`` every member, found before they are removed.
    """
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if not reverse:
        if action == "pre_clear" or pk_set:
            _close_on_commit(users=[instance.get_username()], using=using)
        return
    members = model._default_manager.using(using)
    members = members.filter(groups=instance) if action == "pre_clear" else members.filter(pk__in=pk_set or ())
    _close_on_commit(users=members.values_list(model.USERNAME_FIELD, flat=True), using=using)


def close_deactivated_user_sockets(sender: Any, instance: Any, created: bool, using: str, **kwargs: Any) -> None:
    """Close the websockets of a user saved with ``is_active=False`` (``post_save``)."""
    if not created and getattr(instance, "is_active", True) is False:
        _close_on_commit(users=[instance.get_username()], using=using)


def close_deleted_user_sockets(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    """Close the websockets of a deleted user (``post_delete``)."""
    _close_on_commit(users=[instance.get_username()], using=using)


def close_group_members_sockets(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    """Close the websockets of a group's members before the group is deleted (``pre_delete``).

    Deleting a group removes its memberships without ``m2m_changed``.
    """
    user_model = get_user_model()
    members = user_model._default_manager.using(using).filter(groups=instance)
    _close_on_commit(users=members.values_list(user_model.USERNAME_FIELD, flat=True), using=using)


def _close_on_commit(*, users: Iterable[Any] = (), sessions: Iterable[str] = (), using: str | None = None) -> None:
    users = [str(user) for user in users]
    sessions = list(sessions)
    if users or sessions:
        transaction.on_commit(partial(_close, users=users, sessions=sessions), using=using)


def _close(*, users: list[str], sessions: list[str]) -> None:
    try:
        close_websockets(users=users, sessions=sessions)
    except BrokerUnavailable as exc:
        # The logout or the change stands; the sockets stay open until they reconnect.
        logger.error("cannot close the websockets of %d users and %d sessions: %s", len(users), len(sessions), exc)
