"""``python -m {{ cookiecutter.package_name }}``: serve the app with the settings from the environment."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
from typing import TYPE_CHECKING

import uvicorn

from .settings import get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .media import AppStreams


class Server(uvicorn.Server):
    """uvicorn, closing every peer first on SIGTERM: open event streams end with their
    connections, so uvicorn's wait for open requests does not run into its timeout."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, timeout: float) -> None:
        super().__init__(config)
        self.streams: AppStreams = app.state.streams
        self.timeout = timeout

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.streams.close_all(), self.timeout)
        await super().shutdown(sockets)
        # uvicorn re-raises the signal once it has stopped; a handled SIGTERM exits 0 instead.
        self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]


def main() -> None:
    settings = get_settings()  # a bad value exits here, in a second, before the app is imported
    from .api.limits import WEBSOCKET_MESSAGE_BYTES
    from .app import create_app
    from .handlers.io import HandlerUnavailable

    try:
        app = create_app(settings)
    except HandlerUnavailable as exc:  # one line naming the setting, no traceback
        raise SystemExit(f"error: {exc}") from None
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's records go through the app's logging (observability.py)
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
        timeout_keep_alive=settings.keep_alive,
        ws_max_size=WEBSOCKET_MESSAGE_BYTES,
    )
    Server(config, app, settings.shutdown_timeout).run()


if __name__ == "__main__":
    main()
