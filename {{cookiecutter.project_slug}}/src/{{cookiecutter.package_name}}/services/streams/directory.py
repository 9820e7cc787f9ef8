"""``Directory``: every connection of the app, on this process or on another replica.

What the ``/connections`` routes use. A connection this process holds is served by its
``StreamService``; in cluster mode any other goes to the replica that holds it, through the
``OtherReplicas`` port. Each operation is written once, for both cases, in ``_run``; what
it runs here is read from the ``SERVED`` table, for this process and other replicas alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, cast

from .errors import UnknownConnectionError
from .interface import ConnectionInfo, InputT, Operation, OtherReplicas, OutputT
from .service import StreamService

Served = Callable[[StreamService[Any, Any], str, Any], Awaitable[Any]]
"""An operation run on a connection of this process: the service, the id, the argument."""


async def _set_input(streams: StreamService[Any, Any], connection_id: str, value: Any) -> None:
    if not isinstance(value, streams.input_model):  # a replica's request carries JSON
        value = streams.input_model.model_validate(value)
    streams.set_input(connection_id, value)


async def _respond(streams: StreamService[Any, Any], connection_id: str, _: Any) -> None:
    await streams.trigger_response(connection_id)


async def _close(streams: StreamService[Any, Any], connection_id: str, _: Any) -> None:
    await streams.close(connection_id)


async def _add_candidate(
    streams: StreamService[Any, Any], connection_id: str, body: Any
) -> dict[str, Any]:
    return await streams.add_candidate(body)


SERVED: dict[Operation, Served] = {
    Operation.INPUT: _set_input,
    Operation.RESPONSE: _respond,
    Operation.CLOSE: _close,
    Operation.CANDIDATE: _add_candidate,
}
"""What each operation runs on a connection of this process."""


async def run_here(
    streams: StreamService[InputT, OutputT],
    operation: Operation,
    connection_id: str,
    argument: Any = None,
) -> Any:
    """Run ``operation`` on a connection of this process: what a replica serves for another."""
    return await SERVED[operation](streams, connection_id, argument)


class Directory(Generic[InputT, OutputT]):
    """Every connection of the app; without ``replicas``, this process's alone."""

    def __init__(
        self,
        streams: StreamService[InputT, OutputT],
        replicas: OtherReplicas[OutputT] | None = None,
    ) -> None:
        self.streams = streams
        self.replicas = replicas

    async def list_connections(
        self, offset: int = 0, limit: int | None = None
    ) -> list[ConnectionInfo]:
        """Every connection, or the page of ``limit`` from ``offset`` on (in cluster mode, cut
        from every replica's listing)."""
        if self.replicas is None:
            return self.streams.list_connections(offset, limit)
        listed = await self.replicas.list_connections()
        return listed[offset : None if limit is None else offset + limit]

    async def get(self, connection_id: str) -> ConnectionInfo:
        owner = await self._owner(connection_id)
        if owner is None or self.replicas is None:
            return self.streams.get(connection_id)
        return await self.replicas.get(owner, connection_id)

    async def set_input(self, connection_id: str, value: InputT) -> None:
        await self._run(Operation.INPUT, connection_id, value)

    async def add_candidate(self, connection_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Add a trickled ICE candidate to the connection; fastrtc's reply."""
        return cast(dict[str, Any], await self._run(Operation.CANDIDATE, connection_id, body))

    async def trigger_response(self, connection_id: str) -> None:
        await self._run(Operation.RESPONSE, connection_id)

    async def close(self, connection_id: str) -> None:
        await self._run(Operation.CLOSE, connection_id)

    async def latest_output(self, connection_id: str) -> OutputT | None:
        owner = await self._owner(connection_id)
        if owner is None or self.replicas is None:
            return self.streams.latest_output(connection_id)
        return await self.replicas.latest_output(connection_id)

    async def subscribe(self, connection_id: str) -> AsyncIterator[OutputT]:
        """Every output from now on, until the connection closes; an unknown id fails now."""
        owner = await self._owner(connection_id)
        if owner is None or self.replicas is None:
            return self.streams.subscribe(connection_id)
        return self.replicas.outputs(connection_id, owner)

    async def _owner(self, connection_id: str) -> str | None:
        """The other replica that holds the connection; None if it is here (or unknown)."""
        if connection_id in self.streams or self.replicas is None:
            return None
        owner = await self.replicas.owner_of(connection_id)
        if owner is None:
            raise UnknownConnectionError(connection_id)
        return owner

    async def _run(self, operation: Operation, connection_id: str, argument: Any = None) -> Any:
        owner = await self._owner(connection_id)
        if owner is None or self.replicas is None:
            return await run_here(self.streams, operation, connection_id, argument)
        if operation is Operation.INPUT:
            argument = argument.model_dump(mode="json")
        return await self.replicas.request(owner, operation, connection_id, argument)
