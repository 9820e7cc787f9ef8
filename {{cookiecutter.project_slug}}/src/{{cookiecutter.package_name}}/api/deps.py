"""Dependencies shared by the routes."""

from typing import Annotated, cast

from fastapi import Depends, Path, Request

from ..services.cluster import Connections
from ..services.streams import CONNECTION_ID_PATTERN, StreamService


def get_streams(request: Request) -> StreamService:
    return cast(StreamService, request.app.state.streams)


def get_connections(request: Request) -> Connections:
    return cast(Connections, request.app.state.connections)


Streams = Annotated[StreamService, Depends(get_streams)]
"""This process's connections."""
AllConnections = Annotated[Connections, Depends(get_connections)]
"""Every connection: this process's, and in cluster mode every replica's."""

ConnectionId = Annotated[
    str,
    Path(
        pattern=CONNECTION_ID_PATTERN,
        description="The connection's id: 1-64 letters, digits, '-' or '_'. Whoever knows it "
        "can reach the connection, so make it unguessable.",
    ),
]
