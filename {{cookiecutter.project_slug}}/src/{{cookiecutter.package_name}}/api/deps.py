"""Dependencies shared by the routes."""

from typing import Annotated, cast

from fastapi import Depends, Request

from ..services.streams import StreamService


def get_streams(request: Request) -> StreamService:
    return cast(StreamService, request.app.state.streams)


Streams = Annotated[StreamService, Depends(get_streams)]
