"""A ``WS4REDIS_SUBSCRIBER`` that delivers every buffered message, not just the first.

Stock ws4redis parses exactly one Redis reply each time the Redis socket selects readable.
When two messages arrive together, redis-py reads both from the socket and the second sits
in its parser buffer; the socket is then no longer readable, so that message waits until the
next one arrives (or forever, for the last). This subclass drains the buffer: all messages
but the last are sent here on the websocket, the last is returned for ws4redis to send,
which keeps their order. ws4redis hands us the websocket in ``send_persisted_messages``.
"""

from ws4redis.redis_store import RedisMessage
from ws4redis.subscriber import RedisSubscriber


class DrainingSubscriber(RedisSubscriber):
    _websocket = None

    def send_persisted_messages(self, websocket):
        self._websocket = websocket
        return super().send_persisted_messages(websocket)

    def parse_response(self):
        response = self._subscription.parse_response()
        connection = self._subscription.connection
        while connection is not None and connection.can_read(timeout=0):
            message = RedisMessage(response)
            if message and self._websocket is not None:
                self._websocket.send(message)
            response = self._subscription.parse_response()
        return response
