"""Dependencies shared by the routes."""

from typing import Annotated, cast

from fastapi import Depends, Path, Request

from ..ice import IceConfigurations
from ..media import AppDirectory, AppStreams
from ..services.streams import CONNECTION_ID_PATTERN


def get_streams(request: Request) -> AppStreams:
    return cast(AppStreams, request.app.state.streams)


def get_directory(request: Request) -> AppDirectory:
    return cast(AppDirectory, request.app.state.directory)


def get_ice(request: Request) -> IceConfigurations:
    return cast(IceConfigurations, request.app.state.ice)


StreamsDep = Annotated[AppStreams, Depends(get_streams)]
"""This process's connections."""
DirectoryDep = Annotated[AppDirectory, Depends(get_directory)]
"""Every connection: this process's and, in cluster mode, every replica's."""
IceDep = Annotated[IceConfigurations, Depends(get_ice)]
"""Mints each new peer's ICE configuration."""

ConnectionId = Annotated[
    str,
    Path(
        pattern=CONNECTION_ID_PATTERN,
        description="The connection's id: 1-64 letters, digits, '-' or '_'. Whoever knows it "
        "can reach the connection, so make it unguessable.",
    ),
]
