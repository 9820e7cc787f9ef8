"""The app's one error registry: each error names its code and HTTP status once.

The API's error answers, its OpenAPI responses and cluster mode's wire codes are all read
from ``ERRORS``; a subclass that sets ``code`` joins it.
"""

from __future__ import annotations

from typing import Any, ClassVar

ERRORS: dict[str, type[AppError]] = {}
"""Every error class by its code."""


class AppError(Exception):
    """An error with a stable code, an HTTP status and a message for people."""

    code: ClassVar[str] = "bad_request"
    status: ClassVar[int] = 400
    summary: ClassVar[str] = "the request cannot be served"
    """The message when none is given: ``{id}`` is the connection's id."""

    def __init__(self, connection_id: str | None = None, detail: str | None = None) -> None:
        super().__init__(detail or self.summary.format(id=repr(connection_id)))
        self.connection_id = connection_id
        self.detail = str(self)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            if cls.code in ERRORS:
                raise TypeError(f"error code {cls.code!r} is taken by {ERRORS[cls.code]}")
            ERRORS[cls.code] = cls

    def extra(self) -> dict[str, Any]:
        """Fields the error's body carries beside its code and detail."""
        return {}


class StreamError(AppError):
    """An error of the stream layer."""


class UnknownConnectionError(StreamError, LookupError):
    code = "unknown_connection"
    status = 404
    summary = "unknown connection: {id}"


class ConnectionNotReadyError(StreamError):
    code = "connection_not_ready"
    status = 409
    summary = "connection {id} has no media track yet"


class ResponseNotSupportedError(StreamError):
    code = "response_not_supported"
    status = 409
    summary = "connection {id} cannot respond"


class OfferRefusedError(StreamError):
    """An offer the layer did not admit, through any door."""

    code = "offer_failed"
    status = 400
    summary = "the offer for {id} failed"

    def meta(self) -> dict[str, Any]:
        """The refusal in fastrtc's terms, as its frontends read it (``status: failed``)."""
        return {"error": self.code, "detail": self.detail, **self.extra()}


class InvalidConnectionIdError(OfferRefusedError):
    code = "invalid_connection_id"
    summary = "invalid connection id: {id}"


class InvalidOfferError(OfferRefusedError):
    code = "invalid_offer"
    summary = "the offer for {id} is not one this app can answer"


class ConnectionExistsError(OfferRefusedError):
    code = "connection_already_exists"
    status = 409
    summary = "a connection with id {id} exists already"


class ConnectionClosedError(OfferRefusedError):
    code = "connection_closed"
    summary = "connection {id} closed while its offer was answered"


class LimitReachedError(OfferRefusedError):
    code = "concurrency_limit_reached"
    status = 429
    summary = "the app is at its concurrency limit"

    def __init__(
        self, connection_id: str | None = None, detail: str | None = None, *, limit: int = 0
    ) -> None:
        super().__init__(connection_id, detail or f"the app is at its concurrency limit ({limit})")
        self.limit = limit

    def extra(self) -> dict[str, Any]:
        return {"limit": self.limit}
