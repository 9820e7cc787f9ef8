"""One JSON error shape for the whole API: ``{"error": <code>, "detail": <text>, ...}``.

Every error is an ``AppError`` of the registry in ``services/streams/errors.py``: its class
names its code and status once, and the answers and the OpenAPI responses are read from it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ..services.streams import AppError


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


class UnauthorizedError(AppError):
    code = "unauthorized"
    status = 401
    summary = "this route needs 'Authorization: Bearer <APP_ADMIN_TOKEN>'"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class NoOutputYetError(AppError):
    code = "no_output_yet"
    status = 404
    summary = "the connection has emitted no output yet"


class NotFoundError(AppError):
    code = "not_found"
    status = 404
    summary = "no such route"


class UnknownComponentError(AppError):
    code = "unknown_component"
    status = 404


class UnknownFunctionError(AppError):
    code = "unknown_function"
    status = 404


class MethodNotAllowedError(AppError):
    code = "method_not_allowed"
    status = 405


class PayloadTooLargeError(AppError):
    code = "payload_too_large"
    status = 413

    summary = "the body is over this route's limit"

    def __init__(
        self, connection_id: str | None = None, detail: str | None = None, *, limit: int = 0
    ) -> None:
        super().__init__(
            connection_id, detail or f"the body is over this route's limit of {limit} bytes"
        )
        self.limit = limit

    def extra(self) -> dict[str, Any]:
        return {"limit": self.limit} if self.limit else {}


class InvalidRequestError(AppError):
    """What failed to validate: each problem's ``loc``, ``msg`` and ``type`` (never the input,
    which may be large)."""

    code = "invalid_request"
    status = 422

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        where = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems)
        super().__init__(None, where)
        self.problems = problems

    def extra(self) -> dict[str, Any]:
        return {"errors": self.problems}


class HttpError(AppError):
    """Any other of starlette's HTTP errors (its status is the one starlette gives)."""

    code = "http_error"


HTTP_ERRORS: dict[int, type[AppError]] = {
    400: AppError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    413: PayloadTooLargeError,
}
"""Starlette's own HTTP errors, as the registry's."""
UNPARSABLE_BODY: dict[type[BaseException], str] = {
    UnicodeDecodeError: "not UTF-8",
    RecursionError: "JSON nested too deep",
}
"""Why FastAPI could not parse a JSON body it answers 400 for (a syntax error is already 422)."""
ALWAYS: tuple[type[AppError], ...] = (PayloadTooLargeError, InvalidRequestError)
"""Errors every route may answer: each bounds its body (``limits.py``) and validates its input."""


def error_response(error: AppError) -> JSONResponse:
    """The error's answer: its status, its body, and its headers if it has any."""
    body = ErrorBody(
        error=error.code, detail=error.detail, connection_id=error.connection_id, **error.extra()
    )
    headers = getattr(error, "headers", None)
    return JSONResponse(
        jsonable_encoder(body, exclude_none=True), status_code=error.status, headers=headers
    )


def responses(*errors: type[AppError], events: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entry for the errors a route may answer (and ``ALWAYS``).

    Errors are JSON even on a route whose success is an event stream (``events=True``).
    """
    json_error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    entry: dict[str, Any] = {"content": json_error} if events else {"model": ErrorBody}
    return {status: entry for status in sorted({error.status for error in (*errors, *ALWAYS)})}


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return error_response(InvalidRequestError(problems))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI raises this from the parser's error: a body that is not JSON, as a syntax
        # error is, so it gets the same answer.
        reason = UNPARSABLE_BODY.get(type(exc.__cause__), "cannot be parsed")
        problem = {"loc": ["body"], "msg": reason, "type": "json_invalid"}
        return error_response(InvalidRequestError([problem]))
    error = HTTP_ERRORS.get(exc.status_code, HttpError)(None, str(exc.detail))
    response = error_response(error)
    response.status_code = exc.status_code
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
