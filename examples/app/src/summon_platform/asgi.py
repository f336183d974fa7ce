"""Daphne's and the channel worker's entry: summon_platform.asgi:application.

Daphne serves HTTP (Django) and the websocket at /ws/echo/; `manage.py runworker default` serves
the channel named "default" (Summon's spec.app.channelLayers, default ["default"]).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "summon_platform.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from summon_platform import consumers  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            URLRouter([path("ws/echo/", consumers.EchoConsumer.as_asgi())])
        ),
        "channel": ChannelNameRouter({"default": consumers.EchoWorker.as_asgi()}),
    }
)
