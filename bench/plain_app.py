"""The plain fastrtc app of fastrtc issue #403, as the baseline of ``make bench``.

What the issue's reporter wrote, with the generated project's own ``Stream`` (same echo
handler, same inputs, outputs and limits): ``stream.mount(app)``, a ``/connections`` route that
lists the ids of both of fastrtc's objects, and the Gradio UI at ``/ui``. No layer: only the
difference between this and the generated app is measured.

Runs in a baked project's environment:

    python bench/plain_app.py --package my_fastrtc_app --port 8000
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

import gradio as gr
import uvicorn
from fastapi import FastAPI


def build(package: str, concurrency_limit: int = 64) -> tuple[FastAPI, Any]:
    """The plain app and its ``Stream``."""
    settings = importlib.import_module(f"{package}.settings")
    stream_module = importlib.import_module(f"{package}.media")
    stream = stream_module.build_stream(
        settings.Settings(_env_file=None, concurrency_limit=concurrency_limit, ice_servers=[])
    )
    app = FastAPI()
    stream.mount(app)

    @app.get("/connections")
    async def connections() -> list[str]:
        ids = list(stream.connections.keys())
        if stream.webrtc_component:
            ids.extend(stream.webrtc_component.connections.keys())
        return ids

    return gr.mount_gradio_app(app, stream.ui, path="/ui"), stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", required=True, help="the baked project's package")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency-limit", type=int, default=64)
    args = parser.parse_args()
    app, _ = build(args.package, args.concurrency_limit)
    uvicorn.run(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
