"""The app's one error registry: each error's code, HTTP status and message, declared once.

``register`` gives each error class its code, status and default message from a table, and
``ERRORS`` maps codes back to classes: the API's answers, its OpenAPI responses and cluster
mode's wire codes are all read from there.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple, Self


class Spec(NamedTuple):
    code: str
    status: int
    summary: str = "the request cannot be served"
    """The message when none is given; ``{id}`` is the connection's id."""


ERRORS: dict[str, type[AppError]] = {}
"""Every registered error class, by its code."""


class AppError(Exception):
    """An error with a stable code, an HTTP status and a message for people."""

    code: ClassVar[str] = "bad_request"
    status: ClassVar[int] = 400
    summary: ClassVar[str] = Spec.summary
    headers: ClassVar[dict[str, str]] = {}
    """Headers of the error's HTTP answer."""

    def __init__(self, connection_id: str | None = None, detail: str | None = None) -> None:
        super().__init__(detail or self.summary.format(id=repr(connection_id)))
        self.connection_id = connection_id
        self.detail = str(self)

    def extra(self) -> dict[str, Any]:
        """Fields the error's body carries beside its code and detail."""
        return {}

    @classmethod
    def example(cls, connection_id: str) -> Self:
        """One such error, as the API's docs show it (about ``connection_id``, if its message
        names one)."""
        return cls(connection_id if "{id}" in cls.summary else None)


def register(table: dict[type[AppError], Spec]) -> None:
    """Give each class of ``table`` its code, status and message; a code is taken once."""
    for cls, spec in table.items():
        if spec.code in ERRORS:
            raise TypeError(f"error code {spec.code!r} is taken by {ERRORS[spec.code]}")
        cls.code, cls.status, cls.summary = spec
        ERRORS[spec.code] = cls


class StreamError(AppError):
    """An error of the stream layer."""


class UnknownConnectionError(StreamError, LookupError):
    """No live connection has this id."""


class ConnectionNotReadyError(StreamError):
    """The connection's media has not started: it has no handler to reach yet."""


class ResponseNotSupportedError(StreamError):
    """The connection's handler cannot be asked to respond now."""


class OfferRefusedError(StreamError):
    """An offer the layer did not admit, through any door."""

    def meta(self) -> dict[str, Any]:
        """The refusal in fastrtc's terms, as its frontends read it (``status: failed``)."""
        return {"error": self.code, "detail": self.detail, **self.extra()}


class InvalidConnectionIdError(OfferRefusedError):
    """The offer's id is not a connection id."""


class InvalidOfferError(OfferRefusedError):
    """The offer is not one this app can answer."""


class ConnectionExistsError(OfferRefusedError):
    """A connection with the offer's id exists already, here or on another replica."""


class ConnectionClosedError(OfferRefusedError):
    """The connection closed while its offer was answered."""


EXAMPLE_LIMIT = 10
"""The concurrency limit in the docs' example of ``LimitReachedError`` (the default one)."""


class LimitReachedError(OfferRefusedError):
    """The app is at its concurrency limit."""

    def __init__(
        self, connection_id: str | None = None, detail: str | None = None, *, limit: int = 0
    ) -> None:
        super().__init__(connection_id, detail or f"the app is at its concurrency limit ({limit})")
        self.limit = limit

    def extra(self) -> dict[str, Any]:
        return {"limit": self.limit}

    @classmethod
    def example(cls, connection_id: str) -> Self:
        return cls(connection_id, limit=EXAMPLE_LIMIT)


register(
    {
        UnknownConnectionError: Spec("unknown_connection", 404, "unknown connection: {id}"),
        ConnectionNotReadyError: Spec(
            "connection_not_ready", 409, "connection {id} has no media track yet"
        ),
        ResponseNotSupportedError: Spec(
            "response_not_supported", 409, "connection {id} cannot respond"
        ),
        OfferRefusedError: Spec("offer_failed", 400, "the offer for {id} failed"),
        InvalidConnectionIdError: Spec("invalid_connection_id", 400, "invalid connection id"),
        InvalidOfferError: Spec("invalid_offer", 400, "the offer for {id} cannot be answered"),
        ConnectionExistsError: Spec(
            "connection_already_exists", 409, "a connection with id {id} exists already"
        ),
        ConnectionClosedError: Spec("connection_closed", 400, "connection {id} closed meanwhile"),
        LimitReachedError: Spec("concurrency_limit_reached", 429),
    }
)
