"""The Gradio UI, mounted on the app."""

from __future__ import annotations

import contextlib
import io
import re
from typing import cast

import gradio as gr
from fastapi import FastAPI
from fastrtc import Stream
from gradio.route_utils import CustomCORSMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from .api.errors import NotFoundError, error_response

# When the page goes away, close its peer connections: the server then frees them at once
# instead of after its peer timeout (a browser that just vanishes still takes that long).
RELEASE_PEERS_ON_PAGEHIDE = """<script>
(() => {
  const Native = window.RTCPeerConnection;
  const open = new Set();
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); open.add(this); }
  };
  window.addEventListener("pagehide", () => { for (const pc of open) pc.close(); });
})();
</script>"""


# Gradio's footer ("Use via API" documents Gradio's queue, not this app's API at /docs) sits
# over the Record button of fastrtc's full-screen video layout and takes its clicks.
HIDE_FOOTER = "<style>footer { display: none !important; }</style>"


PAGE_ROUTES: dict[str, re.Pattern[str]] = {
    "GET": re.compile(
        r"/|/config|/theme\.css|/favicon\.ico|/manifest\.json|/robots\.txt"
        r"|/(assets|static)/.+|/pwa_icon(/\d+)?"
        r"|/gradio_api/(custom_component/.+|queue/(data|status)|heartbeat/.+|file=.+"
        r"|info/?|startup-events|app_id/?|theme\.css)"
    ),
    "POST": re.compile(r"/gradio_api/(component_server/?|queue/join|cancel|reset/?)"),
}
"""The Gradio routes the page uses (below the UI's path): the rest of Gradio's API (its own
REST and streaming routes, uploads, a proxy, dev tools) are doors this app does not offer."""
PAGE_ROUTES["HEAD"] = PAGE_ROUTES["GET"]


class PageRoutesOnly:
    """ASGI middleware of the UI: 404 for any Gradio route that the page does not use."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if scope["type"] == "websocket":  # the page opens none
            await send({"type": "websocket.close", "code": 1008})
            return
        routes = PAGE_ROUTES.get(scope.get("method", ""))
        if scope["type"] == "http" and (routes is None or not routes.fullmatch(path)):
            detail = "the UI offers no such route: the app's API is documented at /docs"
            await error_response(NotFoundError(None, detail))(scope, receive, send)
            return
        await self.app(scope, receive, send)


def mount_ui(app: FastAPI, stream: Stream, path: str) -> FastAPI:
    """Mount the stream's Gradio UI on ``app`` at ``path``, under the app's CORS policy."""
    stream.ui.head = f"{stream.ui.head or ''}\n{RELEASE_PEERS_ON_PAGEHIDE}\n{HIDE_FOOTER}"
    with contextlib.redirect_stdout(io.StringIO()):  # gradio prints "new <path>" (a stray print)
        mounted = cast(FastAPI, gr.mount_gradio_app(app, stream.ui, path=path))
    under_app_policies(mounted, path)
    return mounted


def under_app_policies(app: FastAPI, path: str) -> None:
    """Hold the UI mounted at ``path`` to the app's policies, not Gradio's own:

    - Gradio's CORS middleware answers any origin with credentials on any host but localhost,
      and any localhost origin on localhost, whatever ``APP_CORS_ORIGINS`` says: it goes, and
      the app's own CORS holds on the UI too;
    - Gradio runs its app in debug mode, which answers an error with its traceback: it does not;
    - Gradio's routes that the page does not use answer 404 (``PAGE_ROUTES``).
    """
    ui = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == path)
    assert isinstance(ui, Starlette)  # its middleware is built on its first request
    ui.user_middleware = [m for m in ui.user_middleware if not _is_gradio_cors(m.cls)]
    ui.user_middleware.insert(0, Middleware(PageRoutesOnly))
    ui.debug = False


def _is_gradio_cors(middleware: object) -> bool:
    return isinstance(middleware, type) and issubclass(middleware, CustomCORSMiddleware)
