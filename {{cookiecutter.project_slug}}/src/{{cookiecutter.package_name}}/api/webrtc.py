"""``POST /webrtc/offer``: connect a WebRTC peer through the API, with clear errors.

fastrtc's own route answers every failure with HTTP 200 and ``{"status": "failed"}`` (and a
500 or a leaked slot for a malformed SDP); this one validates the body and maps the
failures onto the app's error shape: 400 ``invalid_offer``, 409
``connection_already_exists``, 429 ``concurrency_limit_reached``, 404 ``unknown_connection``
for a candidate of an unknown connection, 422 ``invalid_request`` for a body of the wrong
shape.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from ..services.streams import CONNECTION_ID_PATTERN, OfferRefusedError
from .deps import Streams
from .errors import ApiError, responses

router = APIRouter(prefix="/webrtc", tags=["webrtc"])

MAX_SDP = 64_000
ConnectionIdField = Annotated[str, Field(pattern=CONNECTION_ID_PATTERN)]


class Offer(BaseModel):
    type: Literal["offer"]
    sdp: str = Field(min_length=1, max_length=MAX_SDP)
    webrtc_id: ConnectionIdField


class Candidate(BaseModel):
    candidate: str = Field(max_length=2_000)
    sdpMid: str | None = None
    sdpMLineIndex: int | None = None


class CandidateMessage(BaseModel):
    type: Literal["ice-candidate"]
    candidate: Candidate
    webrtc_id: ConnectionIdField


class Answer(BaseModel):
    type: Literal["answer"] = "answer"
    sdp: str


class Accepted(BaseModel):
    status: Literal["success"] = "success"


_STATUS = {
    "concurrency_limit_reached": status.HTTP_429_TOO_MANY_REQUESTS,
    "connection_already_exists": status.HTTP_409_CONFLICT,
}


@router.post("/offer", response_model=Answer | Accepted, responses=responses(400, 404, 409, 429))
async def offer(
    body: Annotated[Offer | CandidateMessage, Field(discriminator="type")], streams: Streams
) -> Answer | Accepted:
    """Send an SDP offer (get the answer back) or trickle an ICE candidate for it."""
    try:
        if isinstance(body, CandidateMessage):
            await streams.add_ice_candidate(body.webrtc_id, body.candidate.model_dump())
            return Accepted()
        return Answer(sdp=await streams.answer(body.webrtc_id, body.sdp))
    except OfferRefusedError as refused:
        code = _STATUS.get(refused.reason, status.HTTP_400_BAD_REQUEST)
        raise ApiError(code, refused.reason, str(refused), refused.connection_id) from refused
