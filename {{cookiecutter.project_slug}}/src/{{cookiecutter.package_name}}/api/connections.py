"""``/connections``: every live connection, made through the API or the Gradio UI alike."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.sse import EventSourceResponse
from fastrtc import AdditionalOutputs

from ..handlers.io import Input, Stats, stats_from
from ..services.streams import ConnectionInfo
from .auth import Admin
from .deps import AllConnections, ConnectionId
from .errors import ApiError, responses

router = APIRouter(prefix="/connections", tags=["connections"])


@router.get(
    "",
    response_model=list[ConnectionInfo],
    response_model_exclude_none=True,
    dependencies=[Admin],
    responses=responses(401, 503),
)
async def list_connections(connections: AllConnections) -> list[ConnectionInfo]:
    """Every connection, whichever way it was made (``source``: api, ui or websocket) and, in
    cluster mode, on whichever replica (``replica``)."""
    return await connections.list_connections()


@router.get(
    "/{connection_id}",
    response_model=ConnectionInfo,
    response_model_exclude_none=True,
    responses=responses(404, 503),
)
async def get_connection(
    connection_id: ConnectionId, connections: AllConnections
) -> ConnectionInfo:
    return await connections.get(connection_id)


@router.delete(
    "/{connection_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Admin],
    responses=responses(401, 404, 503),
)
async def close_connection(connection_id: ConnectionId, connections: AllConnections) -> None:
    """Close the connection's peer; it leaves the listing before this returns."""
    await connections.close(connection_id)


@router.post(
    "/{connection_id}/input",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(404, 409, 503),
)
async def set_input(connection_id: ConnectionId, body: Input, connections: AllConnections) -> None:
    """Change the connection's input, as the UI's controls do. 409 until its media has started."""
    await connections.set_input(connection_id, *body.model_dump().values())


@router.post(
    "/{connection_id}/response",
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(404, 409, 503),
)
async def trigger_response(connection_id: ConnectionId, connections: AllConnections) -> None:
    """Ask the handler to respond now; 409 if it cannot (only a pause-detecting handler can)."""
    await connections.trigger_response(connection_id)


@router.get("/{connection_id}/outputs/latest", response_model=Stats, responses=responses(404, 503))
async def latest_output(connection_id: ConnectionId, connections: AllConnections) -> Stats:
    """The connection's last output; 404 ``no_output_yet`` before its first."""
    outputs = await connections.latest_output(connection_id)
    if outputs is None:
        raise ApiError(
            404, "no_output_yet", "the connection has emitted no output yet", connection_id
        )
    return stats_from(outputs)


async def subscription(
    connection_id: ConnectionId, connections: AllConnections
) -> AsyncIterator[AdditionalOutputs]:
    # A dependency, so that an unknown id answers 404 before the event stream starts.
    return await connections.subscribe(connection_id)


@router.get(
    "/{connection_id}/outputs",
    response_class=EventSourceResponse,
    responses=responses(404, 503, events=True),
)
async def stream_outputs(
    outputs: Annotated[AsyncIterator[AdditionalOutputs], Depends(subscription)],
) -> AsyncIterable[Stats]:
    """Server-sent events: each output the connection emits, until it closes."""
    async for item in outputs:
        yield stats_from(item)
