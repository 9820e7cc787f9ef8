"""The websocket door: fastrtc's ``/websocket/offer``, with every message checked first.

fastrtc takes any id in a ``start`` message, several ``start`` messages on one socket
(freeing only the last id when it closes), and fails on messages it cannot read. Here a
``start`` goes through the layer's admission, a socket carries one connection, and a
message fastrtc cannot read closes the socket with a reason.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from .errors import OfferRefusedError

WEBSOCKET_PATH = "/websocket/offer"
"""fastrtc's websocket door: audio as JSON messages (``start``, ``media``, ``stop``, ``ping``)."""
POLICY_VIOLATION = 1008
INVALID_DATA = 1007
UNSUPPORTED_DATA = 1003
MAX_REASON = 120
"""Characters of a close reason (the protocol allows 123 bytes)."""


class _Start(BaseModel):
    event: Literal["start"]
    websocket_id: str


class _Payload(BaseModel):
    payload: str

    @field_validator("payload")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"the payload is not base64: {exc}") from None
        return value


class _Media(BaseModel):
    event: Literal["media"]
    media: _Payload


class _Control(BaseModel):
    event: Literal["stop", "ping"]


_MESSAGE: TypeAdapter[_Start | _Media | _Control] = TypeAdapter(
    Annotated[_Start | _Media | _Control, Field(discriminator="event")]
)
"""The messages fastrtc's door reads (other fields are ignored, as fastrtc does)."""


class WebSocketDoor:
    """An ASGI app: fastrtc's ``websocket_offer`` behind ``admit`` (which raises a refusal)."""

    def __init__(
        self,
        admit: Callable[[str], Awaitable[None]],
        websocket_offer: Callable[[WebSocket], Awaitable[None]],
    ) -> None:
        self._admit = admit
        self._websocket_offer = websocket_offer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def refuse(code: int, reason: str, meta: dict[str, Any] | None = None) -> Message:
            if meta is not None:  # fastrtc's own refusal message, then the close
                body = json.dumps({"status": "failed", "meta": meta})
                await send({"type": "websocket.send", "text": body})
            await send({"type": "websocket.close", "code": code, "reason": reason[:MAX_REASON]})
            return {"type": "websocket.disconnect", "code": code}

        async def checked() -> Message:
            nonlocal started
            message = await receive()
            if message["type"] != "websocket.receive":
                return message
            text = message.get("text")
            if text is None:
                return await refuse(UNSUPPORTED_DATA, "messages are JSON text")
            try:
                parsed = _MESSAGE.validate_json(text)
            except ValidationError as exc:
                problem = exc.errors()[0]
                where = ".".join(map(str, problem["loc"]))
                return await refuse(INVALID_DATA, f"bad message: {where}: {problem['msg']}")
            if isinstance(parsed, _Start):
                if started:
                    return await refuse(POLICY_VIOLATION, "one connection per socket")
                try:
                    await self._admit(parsed.websocket_id)
                except OfferRefusedError as refusal:
                    return await refuse(POLICY_VIOLATION, refusal.code, refusal.meta())
                started = True
            elif isinstance(parsed, _Media) and not started:
                return await refuse(POLICY_VIOLATION, "'start' must come before 'media'")
            return message

        await self._websocket_offer(WebSocket(scope, checked, send))
