"""``POST /webrtc/offer``, validated: fastrtc's own route answers every refusal with HTTP 200
and a bad SDP with 500. This one answers with the API's error shape (400, 409, 413, 422, 429).
``mount`` adds it in place of fastrtc's, with fastrtc's other routes; the Gradio UI keeps
its own offer path and fastrtc's reply shape, which fastrtc's frontend reads.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..services.streams import CONNECTION_ID_PATTERN, StreamService
from .deps import Streams
from .errors import responses

OFFER_PATH = "/webrtc/offer"
MAX_OFFER_BYTES = 64 * 1024
"""An SDP offer of one audio track and a data channel is a few kilobytes."""

router = APIRouter(tags=["webrtc"])

WebRTCId = Annotated[str, Field(pattern=CONNECTION_ID_PATTERN)]


class Offer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["offer"]
    sdp: str = Field(min_length=1, max_length=MAX_OFFER_BYTES)
    webrtc_id: WebRTCId


class IceCandidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["ice-candidate"]
    candidate: dict[str, Any]
    webrtc_id: WebRTCId


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str | None = None
    sdp: str | None = None
    status: str | None = None


@router.post(
    OFFER_PATH,
    response_model=Answer,
    response_model_exclude_none=True,
    responses=responses(400, 404, 409, 413, 429),
)
async def offer(
    body: Annotated[Offer | IceCandidate, Field(discriminator="type")], streams: Streams
) -> dict[str, Any]:
    """Offer a new connection (SDP answer back), or add a trickled ICE candidate."""
    return await streams.offer(body.model_dump())


class LimitOfferSize:
    """Refuse an offer body over ``MAX_OFFER_BYTES`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != OFFER_PATH:
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_OFFER_BYTES:
            await self.app(scope, _refuse, send)
            return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_OFFER_BYTES:
                await _refuse()
            return message

        await self.app(scope, bounded, send)


async def _refuse() -> Message:
    # FastAPI lets an HTTPException from reading the body through to the error handlers.
    raise HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, f"an offer is at most {MAX_OFFER_BYTES} bytes"
    )


def mount(app: FastAPI, streams: StreamService) -> None:
    """The doors of ``stream.mount`` this app keeps: this offer route in place of fastrtc's, and
    the websocket door through the layer's admission (the telephone doors are not mounted)."""
    app.include_router(router)
    app.add_middleware(LimitOfferSize)
    streams.mount_websocket(app)
