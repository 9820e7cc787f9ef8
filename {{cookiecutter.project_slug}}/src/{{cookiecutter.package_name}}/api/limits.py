"""Every request body bounded, on every route{% if cookiecutter.include_ui %} (Gradio's included){% endif %}, before any route reads it.

``BoundBodies`` answers 413 ``payload_too_large`` at once for a declared ``Content-Length`` over
the route's limit, without reading the body, and as soon as a streamed (chunked) body passes
it. A body within its limit is read here, at most that many bytes, and handed on whole; a
route's ``check``{% if cookiecutter.include_ui %} (the UI's component calls){% endif %} sees it first. The limits are the table of
``body_limits``; websocket messages are bounded by uvicorn (``WEBSOCKET_MESSAGE_BYTES``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..media import AppStreams
from ..settings import Settings
from .errors import PayloadTooLargeError, error_response
from .offers import MAX_OFFER_BYTES, OFFER_PATH
{%- if cookiecutter.include_ui %}
from .ui_calls import ComponentCalls, json_object
{%- endif %}

KIB = 1024
MIB = 1024 * KIB

MAX_INPUT_BYTES = 16 * KIB
"""A connection's input is a few numbers (``{"gain": 0.5}``), or a short text."""
MAX_BODY_BYTES = 1 * MIB
"""Any other route{% if cookiecutter.include_ui %}, Gradio's too: the UI's events carry a few values, and it has no file
inputs to upload{% endif %}."""
WEBSOCKET_MESSAGE_BYTES = 64 * KIB
"""fastrtc's websocket messages are JSON: 20 ms of base64 mu-law audio is ~300 bytes, a
telephony ``start`` message ~1 KiB. uvicorn closes a websocket with a larger one (1009)."""

Check = Callable[[bytes], JSONResponse | None]
"""Sees a whole body within its limit: ``None`` lets it through, a response refuses it."""


@dataclass(frozen=True)
class BodyLimit:
    """Bodies of requests whose whole path matches ``path`` are at most ``max_bytes``, and
    ``check`` may refuse them before the route runs."""

    path: re.Pattern[str]
    max_bytes: int
    check: Check | None = None


def body_limits(settings: Settings, streams: AppStreams) -> list[BodyLimit]:
    """The routes whose bodies have their own limit; every other one has ``MAX_BODY_BYTES``."""
    return [
        BodyLimit(re.compile(re.escape(OFFER_PATH)), MAX_OFFER_BYTES),
        BodyLimit(re.compile(r"/connections/[^/]+/input"), MAX_INPUT_BYTES),
{%- if cookiecutter.include_ui %}
        BodyLimit(
            re.compile(re.escape(settings.ui_path) + r"/gradio_api/component_server/?"),
            MAX_OFFER_BYTES,
            ComponentCalls(streams.ui_component_id),
        ),
        BodyLimit(
            re.compile(re.escape(settings.ui_path) + r"/gradio_api/.+"),
            MAX_BODY_BYTES,
            json_object,
        ),
{%- endif %}
    ]


class BoundBodies:
    """ASGI middleware: each request's body within its route's limit, or 413."""

    def __init__(
        self, app: ASGIApp, limits: Sequence[BodyLimit], default: int = MAX_BODY_BYTES
    ) -> None:
        self.app = app
        self.limits = limits
        self.default = BodyLimit(re.compile(".*"), default)

    def limit_for(self, path: str) -> BodyLimit:
        return next((it for it in self.limits if it.path.fullmatch(path)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit.max_bytes:
            await _too_large(limit)(scope, receive, send)
            return
        body = bytearray()
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # nobody left to answer
            body += message.get("body", b"")
            if len(body) > limit.max_bytes:
                await _too_large(limit)(scope, receive, send)
                return
            more_body = message.get("more_body", False)
        refusal = limit.check(bytes(body)) if limit.check is not None else None
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replay(bytes(body), receive), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _too_large(limit: BodyLimit) -> JSONResponse:
    return error_response(PayloadTooLargeError(limit=limit.max_bytes))


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: the body read here, then the server's own (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
