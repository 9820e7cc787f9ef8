"""The calls the UI makes on its WebRTC component (``<ui>/gradio_api/component_server/``),
checked before Gradio runs them: Gradio answers a call naming no component, or fastrtc's
function data it cannot use, with 500 and a traceback. A refused call gets the API's error
shape: 422 for a malformed one, 404 for a component or function the UI does not offer.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .errors import (
    InvalidRequestError,
    UnknownComponentError,
    UnknownFunctionError,
    error_response,
)
from .offers import IceCandidate, Offer, WebRTCId

MAX_NAME_CHARS = 64
"""Function names and session hashes are short: fastrtc's are ``quit_output_stream`` at most,
and the frontend's session hashes are a dozen characters (a uuid from Gradio's Python client)."""


class ComponentCall(BaseModel):
    """Gradio's envelope, as its frontend sends it."""

    model_config = ConfigDict(extra="forbid")

    component_id: int
    fn_name: str = Field(max_length=MAX_NAME_CHARS)
    session_hash: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    data: Any


class QuitOutputStream(BaseModel):
    webrtc_id: WebRTCId


WEBRTC_FUNCTIONS: dict[str, TypeAdapter[Any]] = {
    "offer": TypeAdapter(Annotated[Offer | IceCandidate, Field(discriminator="type")]),
    "turn": TypeAdapter(Any),  # the frontend sends [] and fastrtc ignores it
    "quit_output_stream": TypeAdapter(QuitOutputStream),
}
"""The WebRTC component's server functions that fastrtc's frontend calls, and their ``data``."""


class ComponentCalls:
    """A check for ``limits.BodyLimit``: ``None`` for a call to let through, else the refusal."""

    def __init__(self, component_id: int) -> None:
        self.component_id = component_id

    def __call__(self, body: bytes) -> JSONResponse | None:
        try:
            call = ComponentCall.model_validate_json(body)
        except ValidationError as exc:
            return _invalid(exc)
        if call.component_id != self.component_id:
            detail = (
                f"no component {call.component_id} takes calls: the UI's WebRTC "
                f"component is {self.component_id}"
            )
            return error_response(UnknownComponentError(None, detail))
        data = WEBRTC_FUNCTIONS.get(call.fn_name)
        if data is None:
            detail = f"the WebRTC component's functions are {', '.join(WEBRTC_FUNCTIONS)}"
            return error_response(UnknownFunctionError(None, detail))
        try:
            data.validate_python(call.data)
        except ValidationError as exc:
            return _invalid(exc, "data")
        return None


JSON_OBJECT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


def json_object(body: bytes) -> JSONResponse | None:
    """A check for Gradio's other routes that the page posts to (its queue): their bodies are
    JSON objects, and Gradio answers others (bad UTF-8 without a content type) with 500."""
    if not body:
        return None
    try:
        JSON_OBJECT.validate_json(body)
    except ValidationError as exc:
        return _invalid(exc)
    return None


def _invalid(exc: ValidationError, *where: str) -> JSONResponse:
    problems = [
        {"loc": ["body", *where, *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors()
    ]
    return error_response(InvalidRequestError(problems))
