"""ASGI entry point: HTTP goes to Django's WSGI handler (in a thread pool), WebSockets to Channels,
and the lifespan opens and closes what the process holds for its life (the secret read's pool).

Why not Django's ASGI handler for HTTP: every view and middleware here is synchronous, and under
the ASGI handler each of the (async-capable) middlewares is run through its own ``sync_to_async``
hop, about 30 thread hand-offs per request, three times the cost of running the whole request
once in a worker thread (a2wsgi; docs/measurements.md). Nothing async is lost:
WebSockets (the live dashboard) are Channels consumers on the event loop either way.

Subsystems add their WebSocket routes to ``websocket_urlpatterns``.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "foundation_site.settings")

# Django must be set up before anything imports models, hence the order below.
django_wsgi_app = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from foundation_core import notices  # noqa: E402
from foundation_site.routing import websocket_urlpatterns  # noqa: E402
from secrets_app import reading  # noqa: E402
from secrets_app.asgi import SecretsReadRoute  # noqa: E402


class Lifespan:
    """The ASGI lifespan: what opens with the server process, in order, and closes with it in
    reverse. A start that fails is reported to the server, which then does not serve."""

    def __init__(self, *parts: tuple[Any, Any | None]) -> None:
        self.parts = parts

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for start, _ in self.parts:
                        await start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for _, stop in reversed(self.parts):
                    if stop is not None:
                        await stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _start_notices() -> None:
    notices.start()  # a daemon thread: it ends with the process


application = ProtocolTypeRouter(
    {
        "http": SecretsReadRoute(
            WSGIMiddleware(django_wsgi_app, workers=settings.HTTP_WORKER_THREADS)  # type: ignore[arg-type]
        ),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
        "lifespan": Lifespan((_start_notices, None), (reading.start, reading.stop)),
    }
)
