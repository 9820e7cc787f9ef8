"""The Gradio UI, mounted on the app."""

from __future__ import annotations

from typing import cast

import gradio as gr
from fastapi import FastAPI
from fastrtc import Stream
from gradio.route_utils import CustomCORSMiddleware
from starlette.applications import Starlette
from starlette.routing import Mount

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


def mount_ui(app: FastAPI, stream: Stream, path: str) -> FastAPI:
    """Mount the stream's Gradio UI on ``app`` at ``path``, under the app's CORS policy."""
    stream.ui.head = f"{stream.ui.head or ''}\n{RELEASE_PEERS_ON_PAGEHIDE}\n{HIDE_FOOTER}"
    mounted = cast(FastAPI, gr.mount_gradio_app(app, stream.ui, path=path))
    under_app_policies(mounted, path)
    return mounted


def under_app_policies(app: FastAPI, path: str) -> None:
    """Hold the UI mounted at ``path`` to the app's policies, not Gradio's own:

    - Gradio's CORS middleware answers any origin with credentials on any host but localhost,
      and any localhost origin on localhost, whatever ``APP_CORS_ORIGINS`` says: it goes, and
      the app's own CORS holds on the UI too;
    - Gradio runs its app in debug mode, which answers an error with its traceback: it does not.
    """
    ui = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == path)
    assert isinstance(ui, Starlette)  # its middleware is built on its first request
    ui.user_middleware = [m for m in ui.user_middleware if not _is_gradio_cors(m.cls)]
    ui.debug = False


def _is_gradio_cors(middleware: object) -> bool:
    return isinstance(middleware, type) and issubclass(middleware, CustomCORSMiddleware)
