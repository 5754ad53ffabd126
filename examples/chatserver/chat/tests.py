"""The chat example's tests, written with django_bridge.testing: views publish, real sockets receive.

``python examples/chatserver/manage.py test`` runs them; no Redis is needed: the live server starts
its own and never uses the one the settings name. Views are called with Django's test client, in
the test's thread; the websockets go to the live server over real sockets, with the session
cookie of a real login.
"""

import json

from django.contrib.auth import get_user_model
from django_bridge.testing import WebsocketTestCase


class ChatTests(WebsocketTestCase):
    fixtures = ["chat"]  # admin, john and mary; john and mary in "chatters", admin in "staff"

    def setUp(self):
        super().setUp()
        users = get_user_model().objects
        self.john, self.mary, self.admin = (users.get(username=name) for name in ("john", "mary", "admin"))

    def post(self, path, user, /, **fields):
        """POST ``fields`` to ``path`` as ``user``, as the chat pages do; return the status and the JSON."""
        self.client.force_login(user)
        response = self.client.post(path, fields)
        return response.status_code, response.json()

    def test_opening_the_lobby_greets_everybody_in_it(self):
        with self.ws_client.connect("lobby", "subscribe-broadcast") as visitor:
            self.client.get("/chat/")
            self.assertEqual(visitor.receive_json()["text"], "Hello everybody")

    def test_the_lobby_names_the_logged_in_sender_whatever_the_form_says(self):
        with self.ws_client.connect("lobby", "subscribe-broadcast", user=self.mary) as marys:
            sent = self.post("/chat/", self.john, message="Hi all", **{"from": "admin"})
            self.assertEqual(sent, (200, {"sent": True}))
            message = marys.receive_json()
        self.assertEqual((message["from"], message["text"]), ("john", "Hi all"))

    def test_a_visitor_may_not_write_to_the_lobby(self):
        with self.ws_client.connect("lobby", "subscribe-broadcast") as listener:
            response = self.client.post("/chat/", {"message": "let me in"})
            self.assertEqual((response.status_code, response.json()), (403, {"error": "Log in to write to the lobby."}))
            listener.assert_no_message()

    def test_no_socket_publishes_whatever_it_asks_for(self):
        # chat.channels.allowed_channels keeps only subscribe-*: a forged sender reaches nobody.
        speaker = self.ws_client.connect("lobby", "subscribe-broadcast", "publish-broadcast", "echo", user=self.john)
        listener = self.ws_client.connect("lobby", "subscribe-broadcast", user=self.mary)
        speaker.send(json.dumps({"id": "1", "from": "admin", "text": "Log in again at evil.example"}))
        listener.assert_no_message()
        speaker.assert_no_message()  # with echo, a published message would come back

    def test_a_direct_message_reaches_its_recipient_and_its_sender_and_nobody_else(self):
        johns = self.ws_client.connect("direct", "subscribe-user", user=self.john)
        marys = self.ws_client.connect("direct", "subscribe-user", user=self.mary)
        admins = self.ws_client.connect("direct", "subscribe-user", user=self.admin)
        self.assertEqual(self.post("/chat/user/", self.john, user="mary", message="Psst"), (200, {"sent": True}))
        for socket in (marys, johns):
            message = socket.receive_json()
            self.assertEqual((message["from"], message["to"], message["text"]), ("john", "mary", "Psst"))
        admins.assert_no_message()

    def test_a_group_message_reaches_the_members_of_the_group_only(self):
        johns = self.ws_client.connect("groups", "subscribe-group", user=self.john)
        marys = self.ws_client.connect("groups", "subscribe-group", user=self.mary)
        admins = self.ws_client.connect("groups", "subscribe-group", user=self.admin)
        sent = self.post("/chat/group/", self.mary, group="chatters", message="Hello chatters")
        self.assertEqual(sent, (200, {"sent": True}))
        for socket in (johns, marys):
            self.assertEqual(socket.receive_json()["text"], "Hello chatters")
        admins.assert_no_message()
        refused = self.post("/chat/group/", self.john, group="staff", message="Let me in")
        self.assertEqual(refused, (403, {"error": "You are not a member of 'staff'."}))

    def test_the_direct_message_page_marks_online_who_is_in_the_lobby(self):
        watcher = self.ws_client.connect("lobby", "subscribe-broadcast", "presence", user=self.john)
        self.ws_client.connect("lobby", "subscribe-broadcast", user=self.mary)
        # Mary's join is announced once her presence is written: the page reads it from then on.
        self.assertIn({"channel": "broadcast", "event": "join", "user": "mary"}, presence_until_mary_joins(watcher))
        self.client.force_login(self.john)
        recipients = self.client.get("/chat/user/").context["recipients"]
        self.assertEqual(recipients, [{"username": "mary", "online": True}, {"username": "admin", "online": False}])

    def test_logging_out_closes_the_sockets_of_the_session(self):
        self.client.force_login(self.john)
        socket = self.ws_client.connect("lobby", "subscribe-broadcast", cookies=self.client.cookies)
        self.client.post("/accounts/logout/")
        self.assertEqual(socket.wait_closed(), (4401, "signed out"))


def presence_until_mary_joins(socket):
    """Read a presence socket's events (frames without a newline) until mary's join; return them all."""
    events = []
    while not events or events[-1].get("user") != "mary":
        frame = socket.receive()
        if "\n" not in frame:  # messages come behind a header line; events do not
            events.append(json.loads(frame)["presence"])
    return events
