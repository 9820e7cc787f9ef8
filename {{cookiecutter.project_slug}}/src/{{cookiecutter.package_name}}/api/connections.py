"""``/connections``: every live connection, made through the API or the Gradio UI alike."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, status
from fastapi.sse import EventSourceResponse

from ..handlers.io import Input, Stats
from ..services.streams import (
    AppError,
    ConnectionInfo,
    ConnectionNotReadyError,
    ResponseNotSupportedError,
    Source,
    UnknownConnectionError,
)
from .auth import Admin
from .deps import DIRECTORY_ERRORS, ConnectionId, DirectoryDep
from .docs import EXAMPLE_CONNECTION_ID, answer_examples
from .errors import NoOutputYetError, UnauthorizedError, responses

router = APIRouter(prefix="/connections", tags=["connections"])

MAX_PAGE = 1000
"""Most connections in one page of the listing."""
Offset = Annotated[int, Query(ge=0, description="Connections to pass over, in offer order.")]
Limit = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_PAGE,
        description="Most connections in the answer: a page, whose cost does not grow with the "
        "number of connections. Unset: every connection.",
    ),
]

FOUND: tuple[type[AppError], ...] = (UnknownConnectionError, *DIRECTORY_ERRORS)
"""What every route on one connection may answer: the id is no live connection (or, in
cluster mode, the replica that holds it cannot be reached)."""

EXAMPLE_CONNECTION = ConnectionInfo(id=EXAMPLE_CONNECTION_ID, source=Source.API, state="connected")
EXAMPLE_INPUT = Input(gain=0.5)
EXAMPLE_OUTPUT = Stats(frames=250, level_dbfs=-18.5, gain=0.5)
NewInput = Annotated[
    Input, Body(openapi_examples={"input": {"value": EXAMPLE_INPUT.model_dump(exclude_unset=True)}})
]
"""A connection's new input, as a request's body."""


@router.get(
    "",
    response_model=list[ConnectionInfo],
    response_model_exclude_none=True,
    dependencies=[Admin],
    responses={
        **answer_examples(connections=[EXAMPLE_CONNECTION]),
        **responses(UnauthorizedError, *DIRECTORY_ERRORS),
    },
)
async def list_connections(
    directory: DirectoryDep, offset: Offset = 0, limit: Limit = None
) -> list[ConnectionInfo]:
    """Every connection, whichever way it was made (`source`: api, ui or websocket) and, in
    cluster mode, on whichever replica (`replica`); with `limit`, one page of them. Needs the
    admin token, when the app has one."""
    return await directory.list_connections(offset, limit)


@router.get(
    "/{connection_id}",
    response_model=ConnectionInfo,
    response_model_exclude_none=True,
    responses={**answer_examples(connection=EXAMPLE_CONNECTION), **responses(*FOUND)},
)
async def get_connection(connection_id: ConnectionId, directory: DirectoryDep) -> ConnectionInfo:
    """One connection: its door (`source`) and its peer's state."""
    return await directory.get(connection_id)


@router.delete(
    "/{connection_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Admin],
    responses=responses(UnauthorizedError, *FOUND),
)
async def close_connection(connection_id: ConnectionId, directory: DirectoryDep) -> None:
    """Close the connection's peer; it leaves the listing before this returns. Needs the admin
    token, when the app has one."""
    await directory.close(connection_id)


@router.post(
    "/{connection_id}/input",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(*FOUND, ConnectionNotReadyError),
)
async def set_input(connection_id: ConnectionId, body: NewInput, directory: DirectoryDep) -> None:
    """Change the connection's input, as the UI's controls do. 409 until its media has started."""
    await directory.set_input(connection_id, body)


@router.post(
    "/{connection_id}/response",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(*FOUND, ResponseNotSupportedError),
)
async def trigger_response(connection_id: ConnectionId, directory: DirectoryDep) -> None:
    """Ask the handler to respond now; 409 if it cannot (only a pause-detecting handler can)."""
    await directory.trigger_response(connection_id)


@router.get(
    "/{connection_id}/outputs/latest",
    response_model=Stats,
    responses={**answer_examples(output=EXAMPLE_OUTPUT), **responses(*FOUND, NoOutputYetError)},
)
async def get_latest_output(connection_id: ConnectionId, directory: DirectoryDep) -> Stats:
    """The connection's last output; 404 `no_output_yet` before its first."""
    output = await directory.latest_output(connection_id)
    if output is None:
        raise NoOutputYetError(connection_id)
    return output


async def subscription(
    connection_id: ConnectionId, directory: DirectoryDep
) -> AsyncIterator[Stats]:
    # A dependency, so that an unknown id answers 404 before the event stream starts.
    return await directory.subscribe(connection_id)


@router.get(
    "/{connection_id}/outputs",
    response_class=EventSourceResponse,
    responses=responses(*FOUND, events=True),
)
async def stream_outputs(
    outputs: Annotated[AsyncIterator[Stats], Depends(subscription)],
) -> AsyncIterable[Stats]:
    """Server-sent events: each output the connection emits, until it closes."""
    async for output in outputs:
        yield output
