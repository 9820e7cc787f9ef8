"""Several replicas of the app acting as one, on Redis.

Each replica holds the peer connections it accepted (aiortc keeps them in its process). With
``APP_REDIS_URL`` set, ``Replicas`` publishes them to Redis and serves the others' requests, and
``Connections`` answers every route from any replica:

- the listing: each replica writes its connections to ``fastrtc:conns:<replica>`` at once when
  one opens or closes, and every ``ttl / 3`` seconds; the key expires after ``ttl`` seconds, so
  a replica that dies (SIGKILL) drops out of the listing within ``ttl``;
- input, responses, close and trickled ICE candidates: a request published on the owner's
  channel ``fastrtc:cmd:<replica>``, answered on a list the requester waits on;
- outputs: the owner appends each to the Redis stream ``fastrtc:outputs:<id>``, which any
  replica's event stream reads, and ends it when the connection closes.

Without Redis (``APP_REDIS_URL`` unset) ``Connections`` is the local ``StreamService`` alone.
When Redis cannot be reached, what needs the cluster view raises ``ClusterUnavailableError``
(503) while each replica goes on serving its own connections, and taking new ones; it catches
up when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import redis.asyncio as redis
from fastapi.responses import JSONResponse
from fastrtc import AdditionalOutputs
from pydantic import BaseModel
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from .streams import (
    ConnectionInfo,
    ConnectionNotReadyError,
    ResponseNotSupportedError,
    StreamError,
    StreamService,
    UnknownConnectionError,
)

logger = logging.getLogger(__name__)

PREFIX = "fastrtc"
REPLICAS = f"{PREFIX}:replicas"
REQUEST_TIMEOUT = 5.0
"""Seconds a replica waits for another to answer a request."""
OUTPUTS_KEPT = 64
"""Outputs each connection's Redis stream keeps (older ones are trimmed)."""


class ClusterUnavailableError(StreamError):
    """Redis cannot be reached, so what other replicas hold cannot be either."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"the cluster is unavailable: {cause}")


_ERRORS: dict[str, Callable[[str, str], StreamError]] = {
    "unknown_connection": lambda cid, _: UnknownConnectionError(cid),
    "connection_not_ready": lambda cid, _: ConnectionNotReadyError(cid),
    "response_not_supported": lambda cid, reason: ResponseNotSupportedError(cid, reason),
}
_CODES: dict[type[StreamError], str] = {
    UnknownConnectionError: "unknown_connection",
    ConnectionNotReadyError: "connection_not_ready",
    ResponseNotSupportedError: "response_not_supported",
}


Entries = list[tuple[str, list[tuple[str, dict[str, str]]]]]
"""What XREAD answers: per stream, its new entries (id, fields)."""


def conns_key(replica: str) -> str:
    return f"{PREFIX}:conns:{replica}"


def outputs_key(connection_id: str) -> str:
    return f"{PREFIX}:outputs:{connection_id}"


def commands_channel(replica: str) -> str:
    return f"{PREFIX}:cmd:{replica}"


class Replicas:
    """This replica's side of the cluster: what it publishes, and what it asks the others."""

    def __init__(
        self,
        streams: StreamService,
        url: str,
        *,
        replica: str,
        ttl: float,
        output_model: type[BaseModel],
    ) -> None:
        self.streams = streams
        self.replica = replica
        self.ttl = ttl
        self.output_model = output_model
        self.redis = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
        )
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the cluster: publish this replica's connections and serve others' requests."""
        self.streams.remote = self
        self.streams.listener = self
        self._tasks = [
            asyncio.create_task(self._publish_forever()),
            asyncio.create_task(self._serve_forever()),
        ]

    async def stop(self) -> None:
        """Leave the cluster at once (a graceful shutdown), after the connections closed."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline() as pipe:
                pipe.delete(conns_key(self.replica))
                pipe.srem(REPLICAS, self.replica)
                await pipe.execute()
        await self.redis.aclose()

    # -- what the local layer tells (Listener) ----------------------------------------------

    def changed(self) -> None:
        self._changed.set()

    def output(self, connection_id: str, outputs: AdditionalOutputs) -> None:
        self._spawn(self._append(connection_id, self._encode(outputs)))

    def closed(self, connection_id: str) -> None:
        self._spawn(self._append(connection_id, None))

    # -- what the local layer asks (Remote) -------------------------------------------------

    async def is_taken(self, connection_id: str) -> bool:
        try:
            return await self.owner_of(connection_id) is not None
        except ClusterUnavailableError as exc:
            # New connections are still taken: the ids clients make are random (128 bits).
            logger.warning("cluster: cannot check %r is free: %s", connection_id, exc)
            return False

    async def forward_candidate(self, body: dict[str, Any]) -> Any:
        connection_id = str(body.get("webrtc_id"))
        owner = await self.owner_of(connection_id)
        if owner is None:
            return JSONResponse({"status": "failed", "meta": {"error": "unknown_connection"}})
        return JSONResponse(await self.request(owner, "candidate", connection_id, body))

    # -- the cluster view -------------------------------------------------------------------

    async def list_connections(self) -> list[ConnectionInfo]:
        """Every replica's connections, this one's as they are now."""
        found = [
            c.model_copy(update={"replica": self.replica}) for c in self.streams.list_connections()
        ]
        try:
            for replica in await self._others():
                listed = await self.redis.hgetall(conns_key(replica))
                if not listed:  # expired: the replica died or left
                    await self.redis.srem(REPLICAS, replica)
                found += [ConnectionInfo.model_validate_json(v) for v in listed.values()]
        except (RedisError, OSError) as exc:
            raise ClusterUnavailableError(exc) from exc
        return found

    async def owner_of(self, connection_id: str) -> str | None:
        """The other replica that holds the connection, if one does."""
        try:
            for replica in await self._others():
                if await self.redis.hexists(conns_key(replica), connection_id):
                    return replica
        except (RedisError, OSError) as exc:
            raise ClusterUnavailableError(exc) from exc
        return None

    async def request(self, replica: str, op: str, connection_id: str, arg: Any = None) -> Any:
        """Have ``replica`` run ``op`` on its connection; its result, or its error raised here."""
        reply_key = f"{PREFIX}:reply:{secrets.token_hex(12)}"
        message = {"op": op, "id": connection_id, "arg": arg, "reply": reply_key}
        try:
            if not await self.redis.publish(commands_channel(replica), json.dumps(message)):
                raise UnknownConnectionError(connection_id)  # nobody listens: it is gone
            answer = await self.redis.blpop([reply_key], timeout=REQUEST_TIMEOUT)
        except (RedisError, OSError) as exc:
            raise ClusterUnavailableError(exc) from exc
        if answer is None:
            raise ClusterUnavailableError(TimeoutError(f"replica {replica} did not answer"))
        result = json.loads(answer[1])
        if "error" in result:
            raise _ERRORS.get(result["error"], _ERRORS["unknown_connection"])(
                connection_id, result.get("detail", "")
            )
        return result.get("value")

    async def outputs(self, connection_id: str, owner: str) -> AsyncIterator[AdditionalOutputs]:
        """Every output the owner's connection emits from now on, until it closes."""
        key, last = outputs_key(connection_id), "$"
        try:
            while True:
                read = cast(Entries, await self.redis.xread({key: last}, block=1000, count=16))
                if not read:
                    if not await self.redis.hexists(conns_key(owner), connection_id):
                        return
                    continue
                for entry_id, fields in read[0][1]:
                    last = entry_id
                    if "end" in fields:
                        return
                    yield self._decode(fields["data"])
        except (RedisError, OSError) as exc:
            raise ClusterUnavailableError(exc) from exc

    async def latest_output(self, connection_id: str) -> AdditionalOutputs | None:
        try:
            entries = await self.redis.xrevrange(outputs_key(connection_id), count=1)
        except (RedisError, OSError) as exc:
            raise ClusterUnavailableError(exc) from exc
        for _, fields in cast(list[tuple[str, dict[str, str]]], entries):
            if "data" in fields:
                return self._decode(fields["data"])
        return None

    # -- internals --------------------------------------------------------------------------

    async def _others(self) -> list[str]:
        """The other replicas that joined (some may have died since)."""
        members = cast(set[str], await self.redis.smembers(REPLICAS))
        return sorted(m for m in members if m != self.replica)

    def _encode(self, outputs: AdditionalOutputs) -> str:
        (value,) = outputs.args
        return self.output_model.model_validate(value).model_dump_json()

    def _decode(self, data: str) -> AdditionalOutputs:
        return AdditionalOutputs(self.output_model.model_validate_json(data))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def _append(self, connection_id: str, data: str | None) -> None:
        key = outputs_key(connection_id)
        fields: dict[FieldT, EncodableT] = {"end": "1"} if data is None else {"data": data}
        with contextlib.suppress(RedisError, OSError):  # outputs are best effort
            async with self.redis.pipeline() as pipe:
                pipe.xadd(key, fields, maxlen=OUTPUTS_KEPT, approximate=True)
                pipe.pexpire(key, int(self.ttl * 1000) if data is None else 3_600_000)
                await pipe.execute()

    async def _publish(self) -> None:
        key = conns_key(self.replica)
        listed: dict[FieldT, EncodableT] = {
            c.id: c.model_copy(update={"replica": self.replica}).model_dump_json()
            for c in self.streams.list_connections()
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if listed:
                pipe.hset(key, mapping=listed)
                pipe.pexpire(key, int(self.ttl * 1000))
            pipe.sadd(REPLICAS, self.replica)
            await pipe.execute()

    async def _publish_forever(self) -> None:
        """Publish the listing when it changes, and every ttl/3 s so that it does not expire."""
        while True:
            try:
                await self._publish()
            except (RedisError, OSError) as exc:
                logger.warning("cluster: cannot publish connections: %s", exc)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.ttl / 3)

    async def _serve_forever(self) -> None:
        """Run what other replicas ask of this replica's connections."""
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(commands_channel(self.replica))
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._spawn(self._serve(json.loads(message["data"])))
            except (RedisError, OSError) as exc:
                logger.warning("cluster: cannot take requests: %s", exc)
                await asyncio.sleep(1)

    async def _serve(self, message: dict[str, Any]) -> None:
        connection_id, op, arg = message["id"], message["op"], message["arg"]
        try:
            value: Any = None
            if op == "input":
                self.streams.set_input(connection_id, *arg)
            elif op == "response":
                await self.streams.trigger_response(connection_id)
            elif op == "close":
                await self.streams.close(connection_id)
            elif op == "candidate":
                value = await self.streams.add_candidate(arg)
            result: dict[str, Any] = {"value": value}
        except StreamError as exc:
            result = {"error": _CODES.get(type(exc), "unknown_connection"), "detail": str(exc)}
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline() as pipe:
                pipe.rpush(message["reply"], json.dumps(result))
                pipe.expire(message["reply"], 30)
                await pipe.execute()


class Connections:
    """Every connection of the app, on this replica or, in cluster mode, on any other.

    What the routes use: a connection on this replica is served here, any other through
    ``replicas``. Without ``replicas`` it is this replica's ``StreamService`` alone.
    """

    def __init__(self, streams: StreamService, replicas: Replicas | None = None) -> None:
        self.streams = streams
        self.replicas = replicas

    async def list_connections(self) -> list[ConnectionInfo]:
        if self.replicas is None:
            return self.streams.list_connections()
        return await self.replicas.list_connections()

    async def get(self, connection_id: str) -> ConnectionInfo:
        if connection_id in self.streams or self.replicas is None:
            return self.streams.get(connection_id)
        for info in await self.replicas.list_connections():
            if info.id == connection_id:
                return info
        raise UnknownConnectionError(connection_id)

    async def set_input(self, connection_id: str, *inputs: Any) -> None:
        owner = await self._owner(connection_id)
        if owner is None:
            self.streams.set_input(connection_id, *inputs)
        else:
            await self._request(owner, "input", connection_id, list(inputs))

    async def trigger_response(self, connection_id: str) -> None:
        owner = await self._owner(connection_id)
        if owner is None:
            await self.streams.trigger_response(connection_id)
        else:
            await self._request(owner, "response", connection_id)

    async def close(self, connection_id: str) -> None:
        owner = await self._owner(connection_id)
        if owner is None:
            await self.streams.close(connection_id)
        else:
            await self._request(owner, "close", connection_id)

    async def latest_output(self, connection_id: str) -> AdditionalOutputs | None:
        owner = await self._owner(connection_id)
        if owner is None or self.replicas is None:
            return self.streams.latest_output(connection_id)
        return await self.replicas.latest_output(connection_id)

    async def subscribe(self, connection_id: str) -> AsyncIterator[AdditionalOutputs]:
        """Every output from now on, until the connection closes; unknown ids fail now."""
        owner = await self._owner(connection_id)
        if owner is None or self.replicas is None:
            return self.streams.subscribe(connection_id)
        return self.replicas.outputs(connection_id, owner)

    async def _owner(self, connection_id: str) -> str | None:
        """The other replica that holds the connection; None if it is local (or unknown)."""
        if connection_id in self.streams or self.replicas is None:
            return None
        owner = await self.replicas.owner_of(connection_id)
        if owner is None:
            raise UnknownConnectionError(connection_id)
        return owner

    async def _request(self, owner: str, op: str, connection_id: str, arg: Any = None) -> None:
        assert self.replicas is not None
        await self.replicas.request(owner, op, connection_id, arg)
