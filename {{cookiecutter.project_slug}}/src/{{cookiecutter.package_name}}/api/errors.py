"""One JSON error shape for the whole API: ``{"error": <code>, "detail": <text>, ...}``.

Every error is an ``AppError`` of the one registry (``services/streams/errors.py``): the API's
own join it here, with their codes and statuses; answers and OpenAPI responses are read from it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar, Self

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from ..services.streams.errors import AppError, Spec, register
from .docs import EXAMPLE_CONNECTION_ID


class ErrorBody(BaseModel):
    """The body of every error the API answers."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    error: str
    """A stable, machine-readable code, e.g. `unknown_connection`."""
    detail: str
    """What went wrong, for people."""
    connection_id: str | None = None
    """The connection the error is about, if any."""
    limit: int | None = None
    """For `concurrency_limit_reached`: the limit; for `payload_too_large`: the most bytes."""
    errors: list[dict[str, Any]] | None = None
    """For `invalid_request`: what failed to validate (each problem's `loc`, `msg`, `type`)."""


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
    """The request's body is over its route's limit."""

    def __init__(
        self, connection_id: str | None = None, detail: str | None = None, *, limit: int = 0
    ) -> None:
        super().__init__(
            connection_id, detail or f"the body is over this route's limit of {limit} bytes"
        )
        self.limit = limit

    def extra(self) -> dict[str, Any]:
        return {"limit": self.limit} if self.limit else {}

    @classmethod
    def example(cls, connection_id: str) -> Self:
        return cls(detail=cls.summary)  # each route has its own limit


class InvalidRequestError(AppError):
    """The request does not validate: its `errors` say where and why (never with the input,
    which may be large)."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        where = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems)
        super().__init__(None, where)
        self.problems = problems

    def extra(self) -> dict[str, Any]:
        return {"errors": self.problems}

    @classmethod
    def example(cls, connection_id: str) -> Self:
        return cls([{"loc": ["body", "webrtc_id"], "msg": "Field required", "type": "missing"}])


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
"""Errors every route may answer: each bounds its body (``limits.py``) and validates its input
(if it takes any)."""


def error_body(error: AppError) -> dict[str, Any]:
    """The error's JSON body."""
    body = ErrorBody(
        error=error.code, detail=error.detail, connection_id=error.connection_id, **error.extra()
    )
    return dict(jsonable_encoder(body, exclude_none=True))


def error_response(error: AppError) -> JSONResponse:
    """The error's answer: its status, its body, and its headers if it has any."""
    headers = error.headers or None
    return JSONResponse(error_body(error), status_code=error.status, headers=headers)


def responses(
    *errors: type[AppError], events: bool = False, validates: bool = True
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the errors a route may answer, ``ALWAYS``'s included (but
    ``invalid_request`` for a route that takes no input: ``validates=False``).

    Each status lists its codes, with the body of each as an example. Errors are JSON even on
    a route whose success is an event stream (``events=True``).
    """
    answered = [*errors, *(e for e in ALWAYS if validates or e is not InvalidRequestError)]
    by_status: dict[int, list[type[AppError]]] = {}
    for error in dict.fromkeys(answered):
        by_status.setdefault(error.status, []).append(error)
    return {status: _documented(by_status[status], events) for status in sorted(by_status)}


def _documented(errors: list[type[AppError]], events: bool) -> dict[str, Any]:
    """One status's OpenAPI response: its codes, the error body, an example of each code."""
    examples = {
        error.code: {
            "summary": " ".join((error.__doc__ or error.code).split()),
            "value": error_body(error.example(EXAMPLE_CONNECTION_ID)),
        }
        for error in errors
    }
    codes = ", ".join(f"`{error.code}`" for error in errors)
    content: dict[str, Any] = {"examples": examples}
    entry: dict[str, Any] = {
        "description": f"{HTTPStatus(errors[0].status).phrase}: {codes}",
        "content": {"application/json": content},
    }
    if events:  # FastAPI would give the model the route's own media type
        content["schema"] = {"$ref": "#/components/schemas/ErrorBody"}
    else:
        entry["model"] = ErrorBody
    return entry


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
