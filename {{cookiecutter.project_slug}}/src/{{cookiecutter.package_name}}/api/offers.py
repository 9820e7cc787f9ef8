"""``POST /webrtc/offer``, validated: fastrtc's own route answers every refusal with HTTP 200
and a bad SDP with 500. This one answers with the API's error shape (400, 409, 413, 422, 429).
``mount`` adds it in place of fastrtc's, with fastrtc's other routes; the Gradio UI keeps
its own offer path and fastrtc's reply shape, which fastrtc's frontend reads.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Response
from pydantic import BaseModel, ConfigDict, Field

from ..ice import IceConfiguration
from ..media import AppStreams
from ..services.streams import (
    CONNECTION_ID_PATTERN,
    MAX_SDP_BYTES,
    ConnectionExistsError,
    LimitReachedError,
    OfferRefusedError,
    UnknownConnectionError,
)
from .deps import DirectoryDep, IceDep, StreamsDep
from .errors import responses

OFFER_PATH = "/webrtc/offer"
CONFIGURATION_PATH = "/webrtc/configuration"
MAX_OFFER_BYTES = MAX_SDP_BYTES
"""``limits.py`` bounds an offer's whole body (API or UI) to what its SDP may be: the envelope
around the SDP is a few dozen bytes."""

router = APIRouter(tags=["webrtc"])

WebRTCId = Annotated[str, Field(pattern=CONNECTION_ID_PATTERN)]


class Offer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["offer"]
    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)
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
    responses=responses(
        OfferRefusedError, UnknownConnectionError, ConnectionExistsError, LimitReachedError
    ),
)
async def offer(
    body: Annotated[Offer | IceCandidate, Field(discriminator="type")],
    streams: StreamsDep,
    directory: DirectoryDep,
) -> dict[str, Any]:
    """Offer a new connection (SDP answer back), or add a trickled ICE candidate to one (on
    whichever replica holds it, in cluster mode)."""
    if isinstance(body, IceCandidate):
        return await directory.add_candidate(body.webrtc_id, body.model_dump())
    return await streams.offer(body.model_dump())


@router.get(CONFIGURATION_PATH, response_model_exclude_none=True)
async def configuration(ice: IceDep, response: Response) -> IceConfiguration:
    """The ``RTCConfiguration`` for one new connection: ask before each offer. With TURN set
    up, it holds a credential of the caller's own, valid for ``APP_TURN_TTL`` seconds; anyone
    who may offer may ask."""
    response.headers["Cache-Control"] = "no-store"
    return ice.for_peer("api")


def mount(app: FastAPI, streams: AppStreams) -> None:
    """The doors of ``stream.mount`` this app keeps: this offer route in place of fastrtc's, and
    the websocket door through the layer's admission (the telephone doors are not mounted)."""
    app.include_router(router)
    streams.mount_websocket(app)
