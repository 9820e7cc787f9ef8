"""The Gradio UI, mounted on the app."""

from __future__ import annotations

from typing import cast

import gradio as gr
from fastapi import FastAPI
from fastrtc import Stream

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
    """Mount the stream's Gradio UI on ``app`` at ``path``."""
    stream.ui.head = f"{stream.ui.head or ''}\n{RELEASE_PEERS_ON_PAGEHIDE}\n{HIDE_FOOTER}"
    return cast(FastAPI, gr.mount_gradio_app(app, stream.ui, path=path))
