"""One JSON error shape for the whole API: ``{"error": <code>, "detail": <text>, ...}``.

Every error is an ``AppError`` of the one registry (``services/streams/errors.py``): the API's
own join it here, with their codes and statuses; answers and OpenAPI responses are read from it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ..services.streams.errors import AppError, Spec, register


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
    """The route needs the admin token."""

    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class NoOutputYetError(AppError):
    """The connection has emitted no output yet."""


class NotFoundError(AppError):
    """No route has this path."""


class UnknownComponentError(AppError):
    """A UI call names a component that takes no calls."""


class UnknownFunctionError(AppError):
    """A UI call names a function the component does not have."""


class MethodNotAllowedError(AppError):
    """The route takes other methods."""


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

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        where = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems)
        super().__init__(None, where)
        self.problems = problems

    def extra(self) -> dict[str, Any]:
        return {"errors": self.problems}


class HttpError(AppError):
    """Any other of starlette's HTTP errors (its status is the one starlette gives)."""


register(
    {
        UnauthorizedError: Spec(
            "unauthorized", 401, "this route needs 'Authorization: Bearer <APP_ADMIN_TOKEN>'"
        ),
        NoOutputYetError: Spec("no_output_yet", 404, "the connection has emitted no output yet"),
        NotFoundError: Spec("not_found", 404, "no such route"),
        UnknownComponentError: Spec("unknown_component", 404),
        UnknownFunctionError: Spec("unknown_function", 404),
        MethodNotAllowedError: Spec("method_not_allowed", 405),
        PayloadTooLargeError: Spec("payload_too_large", 413, "the body is over the route's limit"),
        InvalidRequestError: Spec("invalid_request", 422),
        HttpError: Spec("http_error", 400),
    }
)

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
    headers = error.headers or None
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
