"""``Replicas``: this replica in the cluster, as the stream layer and the ``Directory`` see it.

It is the three ports of ``streams.interface``: ``Claims`` (admission takes ids cluster-wide
and forwards trickled candidates), ``Listener`` (the layer tells it of connections and their
outputs, which it publishes) and ``OtherReplicas`` (the ``Directory`` reads and reaches the
other replicas' connections through it). The work is done by ``claims``, ``serving``, ``view``
and ``requests``; this class joins and leaves the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Generic

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from ..streams.errors import UnknownConnectionError
from ..streams.interface import ConnectionInfo, InputT, Operation, OutputT
from ..streams.service import StreamService
from . import requests
from .claims import IdClaims
from .errors import ClusterUnavailableError
from .serving import Background, Serving
from .view import View
from .wire import REPLICAS, conns_key

SOCKET_TIMEOUT = 2.0
"""Seconds after which a Redis command (or connection attempt) that gets no answer fails."""
RETRY = Retry(ExponentialWithJitterBackoff(cap=0.25, base=0.02), retries=2)
"""redis-py's retry of a command whose connection failed: quick, so that an unreachable Redis
answers 503 at once."""
STOP_TIMEOUT = 2.0
"""Seconds leaving the cluster may wait for this replica's Redis work to end."""


class Replicas(Generic[InputT, OutputT]):
    """This replica's side of the cluster: what it publishes, and what it asks the others."""

    def __init__(
        self, streams: StreamService[InputT, OutputT], url: str, *, replica: str, ttl: float
    ) -> None:
        self.streams = streams
        self.replica = replica
        self.output_model: type[OutputT] = streams.output_model
        self.redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            encoding_errors="replace",  # bytes that are not UTF-8 fail validation, not decoding
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            retry=RETRY,
        )
        self.background = Background()
        self.claims = IdClaims(self.redis, replica, ttl, self.background.spawn)
        self.serving = Serving(
            self.redis, streams, self.claims, self.background, socket_timeout=SOCKET_TIMEOUT
        )
        self.view = View(self.redis, replica)
        self._loops: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the cluster: publish this replica's connections and serve others' requests."""
        self.streams.claims = self
        self.streams.listener = self
        self._loops = [
            asyncio.create_task(self.serving.publish_forever()),
            asyncio.create_task(self.serving.serve_forever()),
        ]

    async def stop(self) -> None:
        """Leave the cluster at once (a graceful shutdown), after the connections closed."""
        # redis-py may swallow a cancellation that lands in a command, so the loops also end
        # on ``stopping``, and they are waited for a bounded time only.
        self.serving.stopping = True
        self.serving.changed.set()
        pending = self.background.pending
        if pending:  # what the closed connections still had to say (ends, releases)
            await asyncio.wait(pending, timeout=STOP_TIMEOUT)
        for task in self._loops:
            task.cancel()
        if self._loops:
            await asyncio.wait(self._loops, timeout=STOP_TIMEOUT)
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline() as pipe:
                pipe.delete(conns_key(self.replica))
                pipe.srem(REPLICAS, self.replica)
                await self.claims.release_all(pipe)
                await pipe.execute()
        await self.redis.aclose()

    # -- Listener: what the local layer tells --------------------------------------------------

    def changed(self) -> None:
        self.serving.changed.set()

    def output(self, connection_id: str, output: OutputT) -> None:
        self.background.spawn(self.serving.append(connection_id, output))

    def closed(self, connection_id: str) -> None:
        self.background.spawn(self.serving.append(connection_id, None))
        self.release(connection_id)

    # -- Claims: what the local layer asks -----------------------------------------------------

    async def claim(self, connection_id: str) -> bool:
        """Take the id for this replica, cluster-wide; False if another replica holds it."""
        return await self.claims.claim(connection_id)

    def release(self, connection_id: str) -> None:
        """Give back the id's claim, if this replica still holds it."""
        self.claims.release(connection_id)

    async def forward_candidate(self, body: dict[str, Any]) -> dict[str, Any]:
        """Hand a trickled ICE candidate to the replica that holds its connection; fastrtc's
        refusal if none does."""
        connection_id = str(body.get("webrtc_id"))
        owner = await self.owner_of(connection_id)
        if owner is None:
            unknown = UnknownConnectionError(connection_id)
            return {"status": "failed", "meta": {"error": unknown.code, "detail": unknown.detail}}
        answer = await self.request(owner, Operation.CANDIDATE, connection_id, body)
        if not isinstance(answer, dict):
            raise ClusterUnavailableError.because(f"replica {owner}: bad answer")
        return answer

    # -- OtherReplicas: the cluster view ----------------------------------------------------

    async def owner_of(self, connection_id: str) -> str | None:
        """The other replica that holds the connection, if one does."""
        return await self.view.owner_of(connection_id)

    async def get(self, owner: str, connection_id: str) -> ConnectionInfo:
        """One connection of ``owner``, read by its id alone."""
        return await self.view.get(owner, connection_id)

    async def list_connections(self) -> list[ConnectionInfo]:
        """Every replica's connections, this one's as they are now."""
        here = [
            c.model_copy(update={"replica": self.replica}) for c in self.streams.list_connections()
        ]
        return here + await self.view.others()

    async def request(
        self, owner: str, operation: Operation, connection_id: str, argument: Any = None
    ) -> Any:
        """Have ``owner`` run ``operation`` on its connection; its error is raised here."""
        return await requests.request(self.redis, owner, operation, connection_id, argument)

    async def latest_output(self, connection_id: str) -> OutputT | None:
        """The connection's last output, or None."""
        return await requests.latest_output(self.redis, self.output_model, connection_id)

    def outputs(self, connection_id: str, owner: str) -> AsyncIterator[OutputT]:
        """Every output from now on, until the connection closes."""
        return requests.outputs(self.redis, self.output_model, connection_id, owner)
