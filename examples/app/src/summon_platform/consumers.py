"""A websocket echo through the instance's Channels layer (its own Redis).

Each text message comes back as JSON with the version and pod of the Daphne that holds the
connection. The reply travels through the layer, to this connection's own channel, so a reply
shows that Daphne and Redis both work. A message that starts with "worker:" goes to the channel
worker instead (channel "default"), which answers the connection through the layer too.
"""

import json

from channels.consumer import AsyncConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings


def _me():
    return {"version": settings.APP_VERSION, "pod": settings.POD_NAME}


class EchoConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()
        await self.send(text_data=json.dumps({"hello": True, **_me()}))

    async def receive(self, text_data=None, bytes_data=None):
        if self.channel_layer is None:
            await self.send(text_data=json.dumps({"echo": text_data, "error": "no channel layer", **_me()}))
            return
        if text_data and text_data.startswith("worker:"):
            await self.channel_layer.send(
                "default", {"type": "echo.work", "text": text_data, "reply_to": self.channel_name}
            )
        else:
            await self.channel_layer.send(self.channel_name, {"type": "echo.reply", "text": text_data})

    async def echo_reply(self, event):
        await self.send(text_data=json.dumps({"echo": event["text"], "worker": event.get("worker"), **_me()}))


class EchoWorker(AsyncConsumer):
    """The channel worker's consumer: `python manage.py runworker default`."""

    async def echo_work(self, event):
        await self.channel_layer.send(
            event["reply_to"], {"type": "echo.reply", "text": event["text"], "worker": _me()}
        )
