"""The relay consumer: the Channels way to do ws4redis' subscribe-broadcast.

Each socket joins the group named after its facility; the publisher ``group_send``s to it
and every member forwards the text unchanged.
"""

from channels.generic.websocket import AsyncWebsocketConsumer


class RelayConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.group = self.scope["url_route"]["kwargs"]["facility"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def relay_message(self, event):
        await self.send(text_data=event["text"])
