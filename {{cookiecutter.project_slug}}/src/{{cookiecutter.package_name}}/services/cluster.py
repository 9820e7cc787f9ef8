"""Several replicas of the app acting as one, on Redis.

Each replica holds the peer connections it accepted (aiortc keeps them in its process). With
``APP_REDIS_URL`` set, ``Replicas`` publishes them to Redis and serves the others' requests, and
``Connections`` answers every route from any replica:

- ids: an offer's id is claimed for the replica that admits it (``fastrtc:id:<id>``, set only
  if free, atomically), so two replicas never take the same id; the claim says which replica
  holds the connection, and is refreshed while the connection lives, released when it closes;
- the listing: each replica writes its connections to ``fastrtc:conns:<replica>`` at once when
  one opens or closes, and every ``ttl / 3`` seconds; the key (and every claim) expires after
  ``ttl`` seconds, so a replica that dies (SIGKILL) drops out within ``ttl``;
- input, responses, close and trickled ICE candidates: a request published on the owner's
  channel ``fastrtc:cmd:<replica>``, answered on a list the requester waits on;
- outputs: the owner appends each to the Redis stream ``fastrtc:outputs:<id>``, which any
  replica's event stream reads, and ends it when the connection closes.

Nothing read from Redis is trusted: requests, answers, listing entries, claims and outputs are
validated, and what does not validate is logged and skipped. The loops that publish and serve
requests restart after any failure.

Without Redis (``APP_REDIS_URL`` unset) ``Connections`` is the local ``StreamService`` alone.
When Redis cannot be reached, what needs the cluster view raises ``ClusterUnavailableError``
(503) while each replica goes on serving its own connections, and taking new ones; it catches
up when Redis is back. A Redis that comes back empty (restarted) is filled again by each
replica's next publication: until all have had time to publish, the view is incomplete, and
what it cannot find is unavailable (503), not unknown (404).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, Literal, cast

import redis.asyncio as redis
from fastapi.responses import JSONResponse
from fastrtc import AdditionalOutputs
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from .streams import (
    CONNECTION_ID_PATTERN,
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
VIEW = f"{PREFIX}:view"
"""Set by the first replica to publish: missing, Redis has lost the cluster's state."""
SETTLING = f"{PREFIX}:view:settling"
"""Set, for as long as every replica needs to publish again, when Redis lost the state."""
SOCKET_TIMEOUT = 2.0
"""Seconds after which a Redis command (or connection attempt) that gets no answer fails."""
REQUEST_TIMEOUT = 1.5
"""Seconds a replica waits for another to answer a request (one blocking Redis command, so
below ``SOCKET_TIMEOUT``)."""
OUTPUTS_KEPT = 64
"""Outputs each connection's Redis stream keeps (older ones are trimmed)."""
STOP_TIMEOUT = 2.0
"""Seconds leaving the cluster may wait for this replica's Redis work to end."""
RETRY = Retry(ExponentialWithJitterBackoff(cap=0.25, base=0.02), retries=2)
"""redis-py's retry of a command whose connection failed: quick, so that an unreachable Redis
answers 503 at once."""
RESTART_BACKOFF = ExponentialWithJitterBackoff(cap=1.0, base=0.1)
"""Pause before a failed loop (publishing, serving requests) starts again."""
REPLICA_NAME = re.compile(r"^[\w.-]{1,64}$")
"""What a replica's name may be (``Settings.replica_id``)."""
SHOWN = 120
"""Characters of a rejected Redis value that the log shows."""


class ClusterUnavailableError(StreamError):
    """Redis cannot be reached, so what other replicas hold cannot be either."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"the cluster is unavailable: {cause}")


class IncompleteViewError(Exception):
    """Redis lost the cluster's state, and not every replica has published it again yet."""

    def __init__(self) -> None:
        super().__init__("the cluster view is being rebuilt after Redis lost it")


ErrorCode = Literal[
    "unknown_connection", "connection_not_ready", "response_not_supported", "failed"
]

_ERRORS: dict[ErrorCode, Callable[[str, str], StreamError]] = {
    "unknown_connection": lambda cid, _: UnknownConnectionError(cid),
    "connection_not_ready": lambda cid, _: ConnectionNotReadyError(cid),
    "response_not_supported": lambda cid, reason: ResponseNotSupportedError(cid, reason),
    "failed": lambda cid, detail: ClusterUnavailableError(RuntimeError(detail)),
}
_CODES: dict[type[StreamError], ErrorCode] = {
    UnknownConnectionError: "unknown_connection",
    ConnectionNotReadyError: "connection_not_ready",
    ResponseNotSupportedError: "response_not_supported",
}

ConnectionId = Annotated[str, Field(pattern=CONNECTION_ID_PATTERN)]
ReplyKey = Annotated[str, Field(pattern=f"^{PREFIX}:reply:" + "[0-9a-f]{24}$")]


# -- what replicas write to Redis, as validated when read back --------------------------------


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ConnectionId
    reply: ReplyKey
    """The list the requester waits on for the ``Reply``."""


class InputCommand(_Command):
    op: Literal["input"] = "input"
    arg: list[Any]


class ResponseCommand(_Command):
    op: Literal["response"] = "response"


class CloseCommand(_Command):
    op: Literal["close"] = "close"


class CandidateCommand(_Command):
    op: Literal["candidate"] = "candidate"
    arg: dict[str, Any]


Command = Annotated[
    InputCommand | ResponseCommand | CloseCommand | CandidateCommand, Field(discriminator="op")
]
"""A request on a replica's channel ``fastrtc:cmd:<replica>``."""
COMMAND: TypeAdapter[Command] = TypeAdapter(Command)


class Reply(BaseModel):
    """A replica's answer to a ``Command``: its value, or the error it raised."""

    model_config = ConfigDict(extra="forbid")

    value: Any = None
    error: ErrorCode | None = None
    detail: str = ""


class ListedConnection(ConnectionInfo):
    """An entry of a replica's listing ``fastrtc:conns:<replica>``."""

    id: ConnectionId


class OutputEntry(BaseModel):
    """An entry of a connection's outputs stream: one output (JSON), or its end."""

    data: str | None = None
    end: Literal["1"] | None = None


class Claim(BaseModel):
    """Who holds an id (``fastrtc:id:<id>``): a replica, and the claim's own token."""

    model_config = ConfigDict(frozen=True)

    replica: Annotated[str, Field(pattern=REPLICA_NAME.pattern)]
    token: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]

    @property
    def value(self) -> str:
        return f"{self.replica} {self.token}"

    @classmethod
    def parse(cls, value: str | bytes | None) -> Claim | None:
        """The claim stored as ``value``; None if there is none, or it is not one (logged)."""
        if not isinstance(value, str):  # none (or bytes: never, as responses are decoded)
            return None
        replica, _, token = value.partition(" ")
        try:
            return cls(replica=replica, token=token)
        except ValidationError:
            logger.warning("cluster: skipped a claim that is none: %r", value[:SHOWN])
            return None


# -- scripts: each runs atomically in Redis ----------------------------------------------------

CLAIM = """
local holder = redis.pcall('GET', KEYS[1])
if holder and not (type(holder) == 'string' and string.find(holder, ARGV[2], 1, true) == 1) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""
"""Claim KEYS[1] as ARGV[1] for ARGV[3] ms, unless something other than this replica's claim
(ARGV[2]: its name and a space) is there: another replica's claim, or garbage. This replica's
own claim is one left by a connection that has just ended."""

RELEASE = """
local released = 0
for i, key in ipairs(KEYS) do
  if redis.pcall('GET', key) == ARGV[i] then
    released = released + redis.call('DEL', key)
  end
end
return released
"""
"""Delete each claim KEYS[i] that is still ARGV[i]."""

REFRESH = """
local lost = {}
for i, key in ipairs(KEYS) do
  local holder = redis.pcall('GET', key)
  if not holder then
    redis.call('SET', key, ARGV[i + 2], 'PX', ARGV[1])
  elseif type(holder) == 'string' and string.sub(holder, 1, string.len(ARGV[2])) == ARGV[2] then
    redis.call('PEXPIRE', key, ARGV[1])
  else
    table.insert(lost, key)
  end
end
return lost
"""
"""Keep each claim KEYS[i] of this replica (ARGV[2]: its name and a space) for ARGV[1] ms more,
making it again as ARGV[i + 2] if Redis lost it; the keys another replica holds come back."""

MARK_VIEW = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], '1')
if ARGV[2] == '1' then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
end
return 1
"""
"""Mark the view (KEYS[1]); if it was lost (ARGV[2]: this replica had published), mark it as
settling (KEYS[2]) for ARGV[1] ms, while the other replicas publish theirs again."""


Entries = list[tuple[str, list[tuple[str, dict[str, str]]]]]
"""What XREAD answers: per stream, its new entries (id, fields)."""


def conns_key(replica: str) -> str:
    return f"{PREFIX}:conns:{replica}"


def outputs_key(connection_id: str) -> str:
    return f"{PREFIX}:outputs:{connection_id}"


def commands_channel(replica: str) -> str:
    return f"{PREFIX}:cmd:{replica}"


def claim_key(connection_id: str) -> str:
    return f"{PREFIX}:id:{connection_id}"


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
            url,
            decode_responses=True,
            encoding_errors="replace",  # bytes that are not UTF-8 fail validation, not decoding
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            retry=RETRY,
        )
        self._claim = self.redis.register_script(CLAIM)
        self._release = self.redis.register_script(RELEASE)
        self._refresh = self.redis.register_script(REFRESH)
        self._mark_view = self.redis.register_script(MARK_VIEW)
        self._claims: dict[str, Claim] = {}
        """This replica's claims: of its connections, and of the offers it is admitting."""
        self._published = False
        self._stopping = False
        self._changed = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def settle_time(self) -> float:
        """Seconds within which every live replica publishes again once Redis is back: its
        publication period, and one attempt that was waiting for Redis meanwhile."""
        return self.ttl / 3 + SOCKET_TIMEOUT

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the cluster: publish this replica's connections and serve others' requests."""
        self.streams.remote = self
        self.streams.listener = self
        self._loops = [
            asyncio.create_task(self._publish_forever()),
            asyncio.create_task(self._serve_forever()),
        ]

    async def stop(self) -> None:
        """Leave the cluster at once (a graceful shutdown), after the connections closed."""
        # redis-py may swallow a cancellation that lands in a command, so the loops also end
        # on ``_stopping``, and they are waited for a bounded time only.
        self._stopping = True
        self._changed.set()
        if self._pending:  # what the closed connections still had to say (ends, releases)
            await asyncio.wait(self._pending, timeout=STOP_TIMEOUT)
        for task in self._loops:
            task.cancel()
        if self._loops:
            await asyncio.wait(self._loops, timeout=STOP_TIMEOUT)
        claims = list(self._claims.items())
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline() as pipe:
                pipe.delete(conns_key(self.replica))
                pipe.srem(REPLICAS, self.replica)
                if claims:
                    await self._release(
                        keys=[claim_key(i) for i, _ in claims],
                        args=[c.value for _, c in claims],
                        client=pipe,
                    )
                await pipe.execute()
        await self.redis.aclose()

    # -- what the local layer tells (Listener) ----------------------------------------------

    def changed(self) -> None:
        self._changed.set()

    def output(self, connection_id: str, outputs: AdditionalOutputs) -> None:
        self._spawn(self._append(connection_id, self._encode(outputs)))

    def closed(self, connection_id: str) -> None:
        self._spawn(self._append(connection_id, None))
        self.release(connection_id)

    # -- what the local layer asks (Remote) -------------------------------------------------

    async def claim(self, connection_id: str) -> bool:
        """Take the id for this replica, cluster-wide; False if another replica holds it."""
        claim = self._claims[connection_id] = Claim(
            replica=self.replica, token=secrets.token_hex(8)
        )
        try:
            taken = await self._claim(
                keys=[claim_key(connection_id)],
                args=[claim.value, f"{self.replica} ", int(self.ttl * 1000)],
            )
        except (RedisError, OSError) as exc:
            # Taken all the same (the ids clients make are random); the claim is made when
            # Redis is back, at the next publication.
            logger.warning("cluster: cannot claim %r: %s", connection_id, exc)
            return True
        if not taken and self._claims.get(connection_id) is claim:
            del self._claims[connection_id]
        return bool(taken)

    def release(self, connection_id: str) -> None:
        """Give back the id's claim, if this replica still holds it."""
        claim = self._claims.pop(connection_id, None)
        if claim is not None:
            self._spawn(self._release_claims({connection_id: claim}))

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
            if not await self._view_complete():
                raise IncompleteViewError
            for replica in await self._others():
                found += await self._listing(replica)
        except (RedisError, OSError, IncompleteViewError) as exc:
            raise ClusterUnavailableError(exc) from exc
        return found

    async def owner_of(self, connection_id: str) -> str | None:
        """The other replica that holds the connection, if one does."""
        try:
            value = await self.redis.get(claim_key(connection_id))
            if value is None and not await self._view_complete():
                raise IncompleteViewError
        except (RedisError, OSError, IncompleteViewError) as exc:
            raise ClusterUnavailableError(exc) from exc
        claim = Claim.parse(value)
        if claim is None or claim.replica == self.replica:
            return None
        return claim.replica

    async def request(self, replica: str, op: str, connection_id: str, arg: Any = None) -> Any:
        """Have ``replica`` run ``op`` on its connection; its result, or its error raised here."""
        reply_key = f"{PREFIX}:reply:{secrets.token_hex(12)}"
        command = COMMAND.validate_python(
            {"op": op, "id": connection_id, "reply": reply_key}
            | ({} if arg is None else {"arg": arg})
        )
        try:
            if not await self.redis.publish(commands_channel(replica), _dump(command)):
                # It holds the id but does not listen: dead (its claims expire within the
                # ttl), or taking requests again after Redis came back.
                raise ClusterUnavailableError(RuntimeError(f"replica {replica} does not listen"))
            answer = await self.redis.blpop([reply_key], timeout=REQUEST_TIMEOUT)
        except (RedisError, OSError) as exc:
            raise ClusterUnavailableError(exc) from exc
        if answer is None:
            raise ClusterUnavailableError(TimeoutError(f"replica {replica} did not answer"))
        try:
            reply = Reply.model_validate_json(answer[1])
        except ValidationError as exc:
            logger.warning("cluster: replica %s answered %r", replica, answer[1][:SHOWN])
            raise ClusterUnavailableError(RuntimeError(f"replica {replica}: bad answer")) from exc
        if reply.error is not None:
            raise _ERRORS[reply.error](connection_id, reply.detail)
        return reply.value

    async def outputs(self, connection_id: str, owner: str) -> AsyncIterator[AdditionalOutputs]:
        """Every output the owner's connection emits from now on, until it closes."""
        key, last = outputs_key(connection_id), "$"
        try:
            while True:
                read = cast(Entries, await self.redis.xread({key: last}, block=1000, count=16))
                if not read:
                    holder = Claim.parse(await self.redis.get(claim_key(connection_id)))
                    if holder is None or holder.replica != owner:
                        return
                    continue
                for entry_id, fields in read[0][1]:
                    last = entry_id
                    entry = self._entry(key, fields)
                    if entry is None:
                        continue
                    if entry.end is not None:
                        return
                    outputs = self._decode(key, entry)
                    if outputs is not None:
                        yield outputs
        except (RedisError, OSError) as exc:
            raise ClusterUnavailableError(exc) from exc

    async def latest_output(self, connection_id: str) -> AdditionalOutputs | None:
        """The connection's last valid output (entries that are none are skipped)."""
        key = outputs_key(connection_id)
        try:
            entries = await self.redis.xrevrange(key, count=OUTPUTS_KEPT)
        except (RedisError, OSError) as exc:
            raise ClusterUnavailableError(exc) from exc
        for _, fields in cast(list[tuple[str, dict[str, str]]], entries):
            entry = self._entry(key, fields)
            outputs = self._decode(key, entry) if entry is not None else None
            if outputs is not None:
                return outputs
        return None

    # -- internals --------------------------------------------------------------------------

    async def _others(self) -> list[str]:
        """The other replicas that joined (some may have died since)."""
        members = cast(set[str], await self.redis.smembers(REPLICAS))
        others = []
        for member in sorted(members - {self.replica}):
            if REPLICA_NAME.fullmatch(member):
                others.append(member)
            else:
                logger.warning("cluster: skipped a replica that is none: %r", member[:SHOWN])
        return others

    async def _listing(self, replica: str) -> list[ConnectionInfo]:
        """What ``replica`` lists; its entries that are none are skipped (and logged)."""
        try:
            listed = cast(dict[str, str], await self.redis.hgetall(conns_key(replica)))
        except ResponseError as exc:  # not a hash: nothing that replica wrote
            logger.warning("cluster: skipped the listing of %s: %s", replica, exc)
            return []
        if not listed:  # expired: the replica died or left
            await self.redis.srem(REPLICAS, replica)
        found: list[ConnectionInfo] = []
        for field, value in listed.items():
            try:
                entry = ListedConnection.model_validate_json(value)
            except ValidationError:
                entry = None
            if entry is None or entry.id != field:
                logger.warning(
                    "cluster: skipped a listing entry of %s that is none: %r: %r",
                    replica,
                    field[:SHOWN],
                    value[:SHOWN],
                )
                continue
            found.append(ConnectionInfo(**(entry.model_dump() | {"replica": replica})))
        return found

    async def _view_complete(self) -> bool:
        """Whether every live replica has published since Redis last lost the state."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(VIEW)
            pipe.exists(SETTLING)
            marked, settling = await pipe.execute()
        return bool(marked) and not settling

    def _entry(self, key: str, fields: dict[str, str]) -> OutputEntry | None:
        try:
            entry = OutputEntry.model_validate(fields)
        except ValidationError:
            entry = None
        if entry is None or (entry.data is None) == (entry.end is None):
            logger.warning("cluster: skipped an entry of %s that is none: %r", key, fields)
            return None
        return entry

    def _encode(self, outputs: AdditionalOutputs) -> str:
        (value,) = outputs.args
        return self.output_model.model_validate(value).model_dump_json()

    def _decode(self, key: str, entry: OutputEntry) -> AdditionalOutputs | None:
        if entry.data is None:
            return None
        try:
            return AdditionalOutputs(self.output_model.model_validate_json(entry.data))
        except ValidationError:
            logger.warning("cluster: skipped an output of %s that is none: %r", key, entry.data)
            return None

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _append(self, connection_id: str, data: str | None) -> None:
        key = outputs_key(connection_id)
        fields: dict[FieldT, EncodableT] = {"end": "1"} if data is None else {"data": data}
        with contextlib.suppress(RedisError, OSError):  # outputs are best effort
            async with self.redis.pipeline() as pipe:
                pipe.xadd(key, fields, maxlen=OUTPUTS_KEPT, approximate=True)
                pipe.pexpire(key, int(self.ttl * 1000) if data is None else 3_600_000)
                await pipe.execute()

    async def _release_claims(self, claims: dict[str, Claim]) -> None:
        try:
            await self._release(
                keys=[claim_key(i) for i in claims], args=[c.value for c in claims.values()]
            )
        except (RedisError, OSError) as exc:  # they expire within the ttl
            logger.warning("cluster: cannot release %s: %s", sorted(claims), exc)

    async def _publish(self) -> None:
        """Write this replica's listing, keep its claims, and mark the view as published."""
        key = conns_key(self.replica)
        connections = self.streams.list_connections()
        listed: dict[FieldT, EncodableT] = {
            c.id: c.model_copy(update={"replica": self.replica}).model_dump_json()
            for c in connections
        }
        # A claim whose connection is gone (no longer listed) was missed by ``release``.
        stale = {i: c for i, c in self._claims.items() if i not in listed}
        for connection_id in stale:
            del self._claims[connection_id]
        claims = {c.id: self._claims[c.id] for c in connections if c.id in self._claims}
        ttl_ms = int(self.ttl * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if listed:
                pipe.hset(key, mapping=listed)
                pipe.pexpire(key, ttl_ms)
            pipe.sadd(REPLICAS, self.replica)
            await self._refresh(
                keys=[claim_key(i) for i in claims],
                args=[ttl_ms, f"{self.replica} ", *(c.value for c in claims.values())],
                client=pipe,
            )
            await self._mark_view(
                keys=[VIEW, SETTLING],
                args=[int(self.settle_time * 1000), int(self._published)],
                client=pipe,
            )
            *_, lost, wiped = await pipe.execute()
        if stale:
            await self._release_claims(stale)
        if lost:
            logger.warning("cluster: ids held by another replica too: %s", lost)
        if wiped and self._published:
            logger.warning(
                "cluster: Redis lost the cluster's state; the view is rebuilt within %.1f s",
                self.settle_time,
            )
        self._published = True

    async def _publish_forever(self) -> None:
        """Publish the listing when it changes, and every ttl/3 s so that it does not expire."""
        while not self._stopping:
            self._changed.clear()
            try:
                await self._publish()
            except (RedisError, OSError) as exc:
                logger.warning("cluster: cannot publish connections: %s", exc)
            except Exception:
                logger.exception("cluster: publishing connections failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.ttl / 3)

    async def _serve_forever(self) -> None:
        """Run what other replicas ask of this replica's connections; start again after any
        failure (Redis gone, a connection dropped), with backoff."""
        failures = 0
        while not self._stopping:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(commands_channel(self.replica))
                    failures = 0
                    async for message in pubsub.listen():
                        self._take(message["data"])
            except (RedisError, OSError) as exc:
                logger.warning("cluster: cannot take requests: %s", exc)
            except Exception:
                logger.exception("cluster: taking requests failed")
            failures += 1
            await asyncio.sleep(RESTART_BACKOFF.compute(failures))

    def _take(self, data: object) -> None:
        """Serve one message of this replica's channel, if it is a request."""
        try:
            command = COMMAND.validate_json(data if isinstance(data, str | bytes) else "")
        except ValidationError:
            logger.warning("cluster: skipped a request that is none: %r", str(data)[:SHOWN])
            return
        self._spawn(self._serve(command))

    async def _serve(self, command: Command) -> None:
        try:
            value: Any = None
            match command:
                case InputCommand():
                    self.streams.set_input(command.id, *command.arg)
                case ResponseCommand():
                    await self.streams.trigger_response(command.id)
                case CloseCommand():
                    await self.streams.close(command.id)
                case CandidateCommand():
                    value = await self.streams.add_candidate(command.arg)
            reply = Reply(value=value)
        except StreamError as exc:
            reply = Reply(error=_CODES.get(type(exc), "unknown_connection"), detail=str(exc))
        except Exception as exc:
            logger.exception("cluster: request %s on %r failed", command.op, command.id)
            reply = Reply(error="failed", detail=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline() as pipe:
                pipe.rpush(command.reply, reply.model_dump_json())
                pipe.expire(command.reply, 30)
                await pipe.execute()


def _dump(command: Command) -> str:
    return COMMAND.dump_json(command).decode()


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
