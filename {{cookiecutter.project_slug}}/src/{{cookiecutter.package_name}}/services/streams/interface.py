"""The layer's public interface: connection ids, sources and listings, and the ports that cluster
mode implements."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

CONNECTION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""What a connection id may be: 1-64 letters, digits, '-' or '_' (the Gradio UI's ids are
base-36 strings; the app's own client makes 22-character random ones)."""
CONNECTION_ID = re.compile(CONNECTION_ID_PATTERN)
SHOWN_ID = 80
"""Characters of a refused id that a message shows."""

ConnectionState = Literal["new", "connecting", "connected", "closed", "failed"]

InputT = TypeVar("InputT", bound=BaseModel)
"""The project's input model: what a client may set on a connection."""
OutputT = TypeVar("OutputT", bound=BaseModel)
"""The project's output model: what a connection's handler reports."""
OutputT_contra = TypeVar("OutputT_contra", bound=BaseModel, contravariant=True)
OutputT_co = TypeVar("OutputT_co", bound=BaseModel, covariant=True)


class Source(StrEnum):
    """The door a connection came through."""

    API = "api"
    """``POST /webrtc/offer`` on the app."""
    UI = "ui"
    """The Gradio UI (``<ui>/gradio_api/component_server/``)."""
    WEBSOCKET = "websocket"
    """``/websocket/offer`` on the app."""


class ConnectionInfo(BaseModel):
    """A connection as the rest of the app sees it."""

    model_config = ConfigDict(frozen=True)

    id: str
    source: Source
    state: ConnectionState
    replica: str | None = None
    """The replica that holds it, in cluster mode."""


class Operation(StrEnum):
    """What one replica may ask of another's connection."""

    INPUT = "input"
    RESPONSE = "response"
    CLOSE = "close"
    CANDIDATE = "candidate"


class Claims(Protocol):
    """Cluster-wide ids: the port through which admission reaches the other replicas."""

    async def claim(self, connection_id: str) -> bool:
        """Take the id for this replica; False if another replica holds it."""

    def release(self, connection_id: str) -> None:
        """Give back an id claimed for an offer that was then refused or failed."""

    async def forward_candidate(self, body: dict[str, Any]) -> dict[str, Any]:
        """Hand a trickled ICE candidate to the replica whose connection it is."""


class Listener(Protocol[OutputT_contra]):
    """What follows this process's connections (cluster mode publishes them)."""

    def changed(self) -> None:
        """A connection opened or closed."""

    def output(self, connection_id: str, output: OutputT_contra) -> None:
        """A connection emitted ``output``."""

    def closed(self, connection_id: str) -> None:
        """A connection closed."""


class OtherReplicas(Protocol[OutputT_co]):
    """The connections other replicas hold: the port the ``Directory`` reads them through."""

    async def owner_of(self, connection_id: str) -> str | None:
        """The other replica that holds the id, or None (here, or nowhere)."""

    async def get(self, owner: str, connection_id: str) -> ConnectionInfo:
        """One connection of ``owner``, read by its id alone."""

    async def list_connections(self) -> list[ConnectionInfo]:
        """Every replica's connections, this one's included."""

    async def request(
        self, owner: str, operation: Operation, connection_id: str, argument: Any = None
    ) -> Any:
        """Have ``owner`` run ``operation`` on its connection; its error is raised here."""

    async def latest_output(self, connection_id: str) -> OutputT_co | None:
        """The connection's last output, or None."""

    def outputs(self, connection_id: str, owner: str) -> AsyncIterator[OutputT_co]:
        """Every output from now on, until the connection closes."""
