"""The ASGI app: the stream's own routes, the connection API{% if cookiecutter.include_ui %}, and the Gradio UI{% endif %}."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from .api import connections, docs, errors, health, limits, metrics, offers
from .ice import IceConfigurations
from .media import AppDirectory, build_stream, build_streams
from .observability import configure_logging
{%- if cookiecutter.include_cluster %}
from .services.cluster import Replicas
{%- endif %}
from .settings import Settings, get_settings
{%- if cookiecutter.include_ui %}
from .ui import build_ui, mount_ui
{%- endif %}

logger = logging.getLogger(__name__)

CLIENT_PATH = "/client"
"""Where the plain browser client (``static/client/``, no Gradio) is served."""
CLIENT_FILES = Path(__file__).parent / "static" / "client"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    stream = build_stream(settings)
{%- if cookiecutter.include_ui %}
    build_ui(stream, settings.title)
{%- endif %}
    streams = build_streams(stream, settings)
{%- if cookiecutter.include_cluster %}
    replicas = None
    if settings.redis_url:  # cluster mode: see services/cluster/
        replicas = Replicas(
            streams, settings.redis_url, replica=settings.replica_id, ttl=settings.cluster_ttl
        )
{%- endif %}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
{%- if cookiecutter.include_cluster %}
        if replicas is not None:
            await replicas.start()
{%- endif %}
        yield
        # SIGTERM: uvicorn stops taking requests, then this closes every peer, API and UI.
        try:
            await asyncio.wait_for(streams.close_all(), settings.shutdown_timeout)
        except TimeoutError:
            logger.warning("shutdown: connections still open after %ss", settings.shutdown_timeout)
{%- if cookiecutter.include_cluster %}
        if replicas is not None:
            await replicas.stop()  # leave the cluster at once
{%- endif %}

    app = FastAPIOffline(  # /docs and /redoc, their assets served here: they work offline
        title=settings.title,
        lifespan=lifespan,
        generate_unique_id_function=docs.operation_id,
        static_url=docs.DOCS_ASSETS_PATH,
    )
    app.state.settings = settings
    app.state.streams = streams
    app.state.ice = IceConfigurations(settings)
    app.state.directory = AppDirectory(streams{% if cookiecutter.include_cluster %}, replicas{% endif %})
    errors.install(app)
    app.add_middleware(limits.BoundBodies, limits=limits.body_limits(settings, streams))
    if settings.cors_origins:  # closed by default: no cross-origin access at all
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    offers.mount(app, streams)  # the doors of stream.mount, each through the layer's admission
    app.include_router(connections.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.mount(CLIENT_PATH, StaticFiles(directory=CLIENT_FILES, html=True), name="client")
    app.description = docs.description(app{% if cookiecutter.include_ui %}, settings.ui_path{% endif %})

    home = {% if cookiecutter.include_ui %}f"{settings.ui_path}/"{% else %}"/docs"{% endif %}

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse(url=home)

{%- if cookiecutter.include_ui %}

    return mount_ui(app, stream, settings.ui_path)
{%- else %}

    return app
{%- endif %}
