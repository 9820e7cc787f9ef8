"""The ASGI app: the stream's own routes, the connection API{% if cookiecutter.include_ui %}, and the Gradio UI{% endif %}."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from .api import connections, errors, health, webrtc
from .api.limits import MAX_BODY, BodySizeLimit
from .services.streams import StreamService
from .settings import Settings, get_settings
from .stream import build_stream
{%- if cookiecutter.include_ui %}
from .ui import mount_ui
{%- endif %}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level.upper())
    stream = build_stream(settings)
    streams = StreamService(stream, peer_timeout=settings.peer_timeout)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await streams.close_all()

    app = FastAPI(title=settings.title, lifespan=lifespan)
    app.state.settings = settings
    app.state.streams = streams
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY, prefixes=("/webrtc", "/connections"))
    app.include_router(webrtc.router)
    app.add_api_websocket_route("/websocket/offer", stream.websocket_offer)
    app.include_router(connections.router)
    app.include_router(health.router)

    home = {% if cookiecutter.include_ui %}f"{settings.ui_path}/"{% else %}"/docs"{% endif %}

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse(url=home)

{%- if cookiecutter.include_ui %}

    return mount_ui(app, stream, settings.ui_path)
{%- else %}

    return app
{%- endif %}
