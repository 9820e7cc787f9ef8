"""``POST /webrtc/offer``, validated: fastrtc's own route answers every refusal with HTTP 200
and a bad SDP with 500. This one answers with the API's error shape (400, 409, 413, 422, 429).
``mount`` adds it in place of fastrtc's, with fastrtc's other routes; the Gradio UI keeps
its own offer path and fastrtc's reply shape, which fastrtc's frontend reads.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, FastAPI, Response
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
from ..services.streams.errors import ConnectionClosedError, InvalidOfferError
from .deps import DIRECTORY_ERRORS, DirectoryDep, IceDep, StreamsDep
from .docs import EXAMPLE_CONNECTION_ID, answer_examples
from .errors import responses

OFFER_PATH = "/webrtc/offer"
CONFIGURATION_PATH = "/webrtc/configuration"
MAX_OFFER_BYTES = MAX_SDP_BYTES
"""``limits.py`` bounds an offer's whole body (API or UI) to what its SDP may be: the envelope
around the SDP is a few dozen bytes."""

router = APIRouter(tags=["webrtc"])

WebRTCId = Annotated[str, Field(pattern=CONNECTION_ID_PATTERN)]


class Offer(BaseModel):
    """A WebRTC peer's SDP offer, for a new connection with the id `webrtc_id`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    type: Literal["offer"]
    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)
    """The offer's SDP, as the peer's `createOffer()` made it."""
    webrtc_id: WebRTCId
    """The new connection's id: 1-64 letters, digits, `-` or `_`, unguessable."""


class IceCandidate(BaseModel):
    """An ICE candidate that a peer found after its offer (trickle ICE)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    type: Literal["ice-candidate"]
    candidate: dict[str, Any]
    """The `RTCIceCandidate` as its `toJSON()` gives it: `candidate`, `sdpMid`, `sdpMLineIndex`."""
    webrtc_id: WebRTCId
    """The connection it belongs to."""


class Answer(BaseModel):
    """The server's SDP answer to an offer, or `{"status": "success"}` for a candidate."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    type: str | None = None
    """`answer`."""
    sdp: str | None = None
    """The answer's SDP, for the peer's `setRemoteDescription()`."""
    status: str | None = None
    """`success` once a candidate is added."""


EXAMPLE_SDP = (
    "v=0\r\no=- 4005267734 4005267734 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m={{ cookiecutter.__modality.split('-')[0] }} 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
    "a=ice-ufrag:Jv7o\r\na=ice-pwd:srJoIk96BRwhOInJE2vrHd\r\na=setup:actpass\r\n"
)
"""An SDP offer, abridged: a real one comes from the peer's `createOffer()`."""
EXAMPLE_OFFER = Offer(type="offer", sdp=EXAMPLE_SDP, webrtc_id=EXAMPLE_CONNECTION_ID)
EXAMPLE_CANDIDATE = IceCandidate(
    type="ice-candidate",
    candidate={
        "candidate": "candidate:1 1 udp 2122260223 192.168.1.20 54321 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    },
    webrtc_id=EXAMPLE_CONNECTION_ID,
)
EXAMPLE_ANSWER = Answer(type="answer", sdp=EXAMPLE_SDP.replace("actpass", "active"))
EXAMPLE_CANDIDATE_ADDED = Answer(status="success")


@router.post(
    OFFER_PATH,
    response_model=Answer,
    response_model_exclude_none=True,
    responses={
        **answer_examples(answer=EXAMPLE_ANSWER, candidate_added=EXAMPLE_CANDIDATE_ADDED),
        **responses(
            OfferRefusedError,
            InvalidOfferError,
            ConnectionClosedError,
            ConnectionExistsError,
            LimitReachedError,
            UnknownConnectionError,
            *DIRECTORY_ERRORS,
        ),
    },
)
async def create_offer(
    body: Annotated[
        Offer | IceCandidate,
        Body(
            discriminator="type",
            openapi_examples={
                "offer": {"value": EXAMPLE_OFFER.model_dump()},
                "ice-candidate": {"value": EXAMPLE_CANDIDATE.model_dump()},
            },
        ),
    ],
    streams: StreamsDep,
    directory: DirectoryDep,
) -> dict[str, Any]:
    """Offer a new connection (the SDP answer comes back), or add a trickled ICE candidate to
    one (on whichever replica holds it, in cluster mode).

    An unknown candidate's id answers 404 `unknown_connection`."""
    if isinstance(body, IceCandidate):
        return await directory.add_candidate(body.webrtc_id, body.model_dump())
    return await streams.offer(body.model_dump())


@router.get(
    CONFIGURATION_PATH, response_model_exclude_none=True, responses=responses(validates=False)
)
async def get_configuration(ice: IceDep, response: Response) -> IceConfiguration:
    """The `RTCConfiguration` for one new connection: ask before each offer. With TURN set
    up, it holds a credential of the caller's own, valid for `APP_TURN_TTL` seconds; anyone
    who may offer may ask."""
    response.headers["Cache-Control"] = "no-store"
    return ice.for_peer("api")


def mount(app: FastAPI, streams: AppStreams) -> None:
    """The doors of ``stream.mount`` this app keeps: this offer route in place of fastrtc's, and
    the websocket door through the layer's admission (the telephone doors are not mounted)."""
    app.include_router(router)
    streams.mount_websocket(app)
