"""Dependencies shared by the routes."""

from typing import Annotated, cast

from fastapi import Depends, Path, Request

from ..services.streams import StreamService


def get_streams(request: Request) -> StreamService:
    return cast(StreamService, request.app.state.streams)


Streams = Annotated[StreamService, Depends(get_streams)]


CONNECTION_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
"""What a connection id may look like, checked before any lookup. It accepts the app's own
client's ids (``secrets.token_urlsafe``) and the Gradio UI's (~11 base36 characters)."""

ConnectionId = Annotated[
    str,
    Path(
        pattern=CONNECTION_ID_PATTERN,
        description="A connection's id. It is a capability: whoever knows it can use it.",
    ),
]
