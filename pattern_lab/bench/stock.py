"""The baseline: a stock Channels consumer that forwards a channels-redis
group to its socket, as most tutorials write it.  Routed only when the
benchmark starts the server (PATTERN_LAB_BENCH=1)."""

from channels.generic.websocket import AsyncWebsocketConsumer


class StockForwarder(AsyncWebsocketConsumer):
    async def connect(self):
        self.group = "bench-" + self.scope["url_route"]["kwargs"]["group"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def frame(self, event):
        await self.send(text_data=event["text"])
