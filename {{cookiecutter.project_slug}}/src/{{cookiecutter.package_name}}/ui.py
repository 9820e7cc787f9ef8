"""The Gradio UI: the app's page for its stream (``build_ui``), mounted on the app."""

from __future__ import annotations

import contextlib
import html
import io
import re
from typing import cast

import gradio as gr
from fastapi import FastAPI
from fastrtc import Stream, WebRTC
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


# Gradio's footer goes: its "Use via API" documents Gradio's queue, not this app's API, which
# the page's header links (/docs).
HIDE_FOOTER = "<style>footer { display: none !important; }</style>"


DESCRIPTION = {{ cookiecutter.description | tojson }}
"""What the page says the app does, under its title."""
DOCS_PATH = "/docs"
"""Where the app's API is documented (FastAPI's page)."""
# One page at any width: the stream and its start control first, then the controls and the
# figures beside it (below it on a phone), nothing hidden in a sidebar or an accordion.
PAGE_CSS = """
.app-header { text-align: center; }
.app-header h1 { margin: 0 0 var(--size-1); font-size: var(--text-xxl); }
.app-header p { margin: 0; }
.app-stream .wrap, .app-stream video { max-height: 45vh; }
"""


def build_ui(stream: Stream, title: str) -> gr.Blocks:
    """Build this app's page for ``stream`` and make it the stream's UI (``stream.ui``).

    The page shows the stream, its controls and its figures at once, under a header that links
    the API docs. Its events are those fastrtc's own page sets up: the controls are sent to the
    handler, the outputs shown, with the stream's concurrency and time limits. Build it before
    the layer, which hooks into the page's component.
    """
    controls = list(stream.additional_input_components or [])
    figures = list(stream.additional_output_components or [])
    receive_only = stream.mode == "receive"
    page = gr.Blocks(title=title, css=PAGE_CSS)
    with page:
        gr.HTML(_header(title), elem_classes=["app-header"])
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                component = WebRTC(
                    label="Stream",
                    rtc_configuration=stream.rtc_configuration,
                    track_constraints=stream.track_constraints,
                    mode=stream.mode,
                    modality=stream.modality,
                    full_screen=False,
                    elem_classes=["app-stream"],
                )
                start = gr.Button("Start Stream", variant="primary") if receive_only else None
            with gr.Column(scale=2, min_width=280):
                for control in controls:
                    control.render()  # type: ignore[no-untyped-call]
                with gr.Row():  # the numbers side by side, anything larger below them
                    for figure in figures:
                        if isinstance(figure, gr.Number):
                            figure.render()  # type: ignore[no-untyped-call]
                for figure in figures:
                    if not isinstance(figure, gr.Number):
                        figure.render()  # type: ignore[no-untyped-call]
        component.stream(
            fn=stream.event_handler,
            # a page that only receives has no media of its own to send with the controls
            inputs=controls if receive_only else [component, *controls],
            outputs=[component],
            trigger=start.click if start is not None else None,
            time_limit=stream.time_limit,
            concurrency_limit=stream.concurrency_limit,
        )
        if figures and stream.additional_outputs_handler is not None:
            component.on_additional_outputs(
                stream.additional_outputs_handler,
                inputs=figures,
                outputs=figures,
                concurrency_limit=stream.concurrency_limit_gradio,
            )
    stream.ui = page
    stream.webrtc_component = component
    return page


def _header(title: str) -> str:
    return (
        f"<h1>{html.escape(title)}</h1><p>{html.escape(DESCRIPTION)} "
        f'<a href="{DOCS_PATH}">API docs</a></p>'
    )


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
