"""One JSON error shape for the whole API: ``{"error": <code>, "detail": <text>, ...}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ..services.cluster import ClusterUnavailableError
from ..services.streams import (
    ConnectionNotReadyError,
    OfferRefusedError,
    ResponseNotSupportedError,
    StreamError,
    UnknownConnectionError,
)


class ErrorBody(BaseModel):
    error: str
    """A stable, machine-readable code, e.g. ``unknown_connection``."""
    detail: str
    """What went wrong, for people."""
    connection_id: str | None = None
    limit: int | None = None
    """For ``concurrency_limit_reached``: the limit; for ``payload_too_large``: the most bytes."""
    errors: list[dict[str, Any]] | None = None
    """For ``invalid_request``: pydantic's list of what failed to validate."""


class ApiError(Exception):
    """An error a route answers with directly."""

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        connection_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.headers = headers or {}
        self.body = ErrorBody(error=code, detail=detail, connection_id=connection_id)


def error_response(status_code: int, body: ErrorBody) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body, exclude_none=True), status_code=status_code)


def responses(*status_codes: int, events: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entry for the error statuses a route may answer (413 and 422
    included: every route bounds its body, see ``limits.py``, and validates its input).

    Errors are JSON even on a route whose success is an event stream (``events=True``).
    """
    json_error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    entry: dict[str, Any] = {"content": json_error} if events else {"model": ErrorBody}
    return {code: entry for code in sorted({*status_codes, 413, 422})}


def invalid_request(problems: list[dict[str, Any]]) -> JSONResponse:
    """422 ``invalid_request`` for what failed to validate: each problem's ``loc``, ``msg`` and
    ``type`` (never the input, which may be large)."""
    where = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems)
    return error_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        ErrorBody(error="invalid_request", detail=where, errors=problems),
    )


_STREAM_ERRORS: dict[type[StreamError], tuple[int, str]] = {
    UnknownConnectionError: (status.HTTP_404_NOT_FOUND, "unknown_connection"),
    ConnectionNotReadyError: (status.HTTP_409_CONFLICT, "connection_not_ready"),
    ResponseNotSupportedError: (status.HTTP_409_CONFLICT, "response_not_supported"),
    ClusterUnavailableError: (status.HTTP_503_SERVICE_UNAVAILABLE, "cluster_unavailable"),
}
_REFUSALS: dict[str, int] = {
    "concurrency_limit_reached": status.HTTP_429_TOO_MANY_REQUESTS,
    "connection_already_exists": status.HTTP_409_CONFLICT,
    "unknown_connection": status.HTTP_404_NOT_FOUND,
}


async def _stream_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StreamError)
    if isinstance(exc, OfferRefusedError):
        limit = exc.meta.get("limit")
        body = ErrorBody(
            error=exc.reason,
            detail=str(exc),
            connection_id=exc.connection_id,
            limit=limit if isinstance(limit, int) else None,
        )
        return error_response(_REFUSALS.get(exc.reason, status.HTTP_400_BAD_REQUEST), body)
    status_code, code = _STREAM_ERRORS.get(type(exc), (status.HTTP_400_BAD_REQUEST, "bad_request"))
    connection_id = getattr(exc, "connection_id", None)
    return error_response(
        status_code, ErrorBody(error=code, detail=str(exc), connection_id=connection_id)
    )


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    response = error_response(exc.status_code, exc.body)
    response.headers.update(exc.headers)
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return invalid_request(
        [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    )


_UNPARSABLE_BODY: dict[type[BaseException], str] = {
    UnicodeDecodeError: "not UTF-8",
    RecursionError: "JSON nested too deep",
}
"""Why FastAPI could not parse a JSON body it answers 400 for (a syntax error is already 422)."""


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.__cause__ is not None:
        # FastAPI raises this from the parser's error: a body that is not JSON, as a syntax
        # error is, so it gets the same answer.
        reason = _UNPARSABLE_BODY.get(type(exc.__cause__), "cannot be parsed")
        return invalid_request([{"loc": ["body"], "msg": reason, "type": "json_invalid"}])
    code = {
        400: "bad_request",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, ErrorBody(error=code, detail=str(exc.detail)))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StreamError, _stream_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
