"""Dependencies shared by the routes."""

from typing import Annotated, cast

from fastapi import Depends, Path, Request

from ..ice import IceConfigurations
from ..media import AppDirectory, AppStreams
{%- if cookiecutter.include_cluster %}
from ..services.cluster import ClusterUnavailableError
{%- endif %}
from ..services.streams import CONNECTION_ID_PATTERN, AppError


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
DIRECTORY_ERRORS: tuple[type[AppError], ...] = ({% if cookiecutter.include_cluster %}ClusterUnavailableError,{% endif %})
"""What a route may answer because it reaches connections through the directory{% if cookiecutter.include_cluster %}: 503 when
another replica is needed and Redis cannot be reached{% else %}: nothing, as
this project has no cluster mode{% endif %}."""
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
