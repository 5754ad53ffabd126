"""The chat pages. Each subscribes with ws4redis.js; the views publish with RedisPublisher.

Every message is a JSON object: ``id`` (pages show each id once, though a reconnecting page gets
the channel's last message again), ``text``, and ``from``/``to`` when a person sent it. Pages send
by POSTing a form (CSRF-protected), never over their websocket, so that ``from`` is always the
logged-in user the view sees, never what a browser claims.
"""

from __future__ import annotations

import json
import uuid

from django.contrib.auth import get_user_model
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import JsonResponse
from django.views.generic import TemplateView
from django_bridge.publisher import SELF, RedisPublisher

from chat.facilities import DIRECT, GROUPS, LOBBY, ROOM_PREFIX, ROOMS, room_facility

MAX_LENGTH = 2000


def message(text: str, **fields: str) -> str:
    return json.dumps({"id": uuid.uuid4().hex, "text": text, **fields})


class BroadcastChatView(TemplateView):
    """Everybody reads the lobby; logged-in users write to it: the page POSTs, the view publishes."""

    template_name = "chat/broadcast.html"
    extra_context = {"facility": LOBBY}

    def get(self, request, *args, **kwargs):
        # As in ws4redis' example: greet everybody in the lobby whenever someone opens it. The
        # message is also kept for WS4REDIS_EXPIRE seconds, so this very page gets it on connect.
        RedisPublisher(facility=LOBBY, broadcast=True).publish_message(message("Hello everybody"))
        return super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"error": "Log in to write to the lobby."}, status=403)
        text, error = read_text(request)
        if error:
            return JsonResponse({"error": error}, status=400)
        publisher = RedisPublisher(facility=LOBBY, broadcast=True)
        publisher.publish_message(message(text, **{"from": request.user.get_username()}))
        return JsonResponse({"sent": True})


class UserChatView(LoginRequiredMixin, TemplateView):
    """Direct messages: the page POSTs, the view publishes to the recipient and to the sender."""

    template_name = "chat/user.html"
    extra_context = {"facility": DIRECT}

    def get_context_data(self, **kwargs):
        # Online: in the lobby right now, on any page of any server process.
        online = RedisPublisher(facility=LOBBY, broadcast=True).presence().users
        users = get_user_model().objects.exclude(pk=self.request.user.pk).order_by("username")
        recipients = [{"username": user.get_username(), "online": user.get_username() in online} for user in users]
        recipients.sort(key=lambda recipient: not recipient["online"])
        return super().get_context_data(recipients=recipients, **kwargs)

    def post(self, request, *args, **kwargs):
        text, error = read_text(request)
        recipient = request.POST.get("user", "")
        if not get_user_model().objects.filter(username=recipient).exists():
            error = error or f"There is no user {recipient!r}."
        if error:
            return JsonResponse({"error": error}, status=400)
        # SELF is the user of `request`: the sender sees the message in their own list too.
        publisher = RedisPublisher(facility=DIRECT, users=[recipient, SELF], request=request)
        publisher.publish_message(message(text, **{"from": request.user.get_username(), "to": recipient}))
        return JsonResponse({"sent": True})


class GroupChatView(LoginRequiredMixin, TemplateView):
    """Group messages: the page POSTs, the view publishes to one of the sender's groups."""

    template_name = "chat/group.html"
    extra_context = {"facility": GROUPS}

    def get_context_data(self, **kwargs):
        groups = self.request.user.groups.order_by("name").values_list("name", flat=True)
        return super().get_context_data(groups=list(groups), **kwargs)

    def post(self, request, *args, **kwargs):
        text, error = read_text(request)
        group = request.POST.get("group", "")
        if not request.user.groups.filter(name=group).exists():
            return JsonResponse({"error": f"You are not a member of {group!r}."}, status=403)
        if error:
            return JsonResponse({"error": error}, status=400)
        publisher = RedisPublisher(facility=GROUPS, groups=[group])
        publisher.publish_message(message(text, **{"from": request.user.get_username(), "to": group}))
        return JsonResponse({"sent": True})


class RoomsChatView(LoginRequiredMixin, TemplateView):
    """Rooms on one websocket: the page subscribes the room it shows and its user's direct messages
    on a control socket, and switches rooms without reconnecting; the view publishes to a room."""

    template_name = "chat/rooms.html"
    extra_context = {"rooms": ROOMS, "room_prefix": ROOM_PREFIX, "direct": DIRECT}

    def post(self, request, *args, **kwargs):
        text, error = read_text(request)
        room = request.POST.get("room", "")
        if room not in ROOMS:
            error = f"There is no room {room!r}."
        if error:
            return JsonResponse({"error": error}, status=400)
        publisher = RedisPublisher(facility=room_facility(room), broadcast=True)
        publisher.publish_message(message(text, **{"from": request.user.get_username()}))
        return JsonResponse({"sent": True})


def read_text(request) -> tuple[str, str | None]:
    """Return the POSTed message and what is wrong with it, if anything."""
    text = request.POST.get("message", "").strip()
    if not text:
        return text, "Write a message first."
    if len(text) > MAX_LENGTH:
        return text, f"Messages are limited to {MAX_LENGTH} characters."
    return text, None
