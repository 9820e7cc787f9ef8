"""This replica's side of the cluster: the loops that publish its connections and serve the
other replicas' requests, and the outputs it appends.

- publishing: the listing (``fastrtc:conns:<replica>``) is written at once when a connection
  opens or closes, and every ``ttl / 3`` seconds; with it the claims are kept and the view is
  marked as published, in one transaction;
- serving: requests on ``fastrtc:cmd:<replica>`` are validated, run by ``run_here`` (the one
  dispatch of the stream layer) and answered on the list the request names;
- outputs: each is appended to the connection's Redis stream, and its end when it closes.

Both loops start again after any failure (Redis gone, a connection dropped), with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, Generic

import redis.asyncio as redis
from pydantic import ValidationError
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from ..streams.directory import run_here
from ..streams.errors import AppError
from ..streams.interface import InputT, Operation, OutputT
from ..streams.service import StreamService
from .claims import IdClaims
from .errors import ClusterUnavailableError
from .wire import (
    OUTPUTS_KEPT,
    REPLICAS,
    SETTLING,
    SHOWN,
    VIEW,
    Command,
    Reply,
    commands_channel,
    conns_key,
    outputs_key,
)

logger = logging.getLogger(__name__)

RESTART_BACKOFF = ExponentialWithJitterBackoff(cap=1.0, base=0.1)
"""Pause before a failed loop (publishing, serving requests) starts again."""
REPLY_KEPT = 30
"""Seconds an answer waits for its requester (who gave up after ``REQUEST_TIMEOUT``)."""
OUTPUTS_LIVE_MS = 3_600_000
"""Milliseconds a live connection's outputs stream lasts after its last output."""

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


class Background:
    """Redis work that no caller waits for (outputs, releases, answers), awaited on leaving."""

    def __init__(self) -> None:
        self.pending: set[asyncio.Task[None]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)


class Serving(Generic[InputT, OutputT]):
    """What this replica publishes, and how it serves what the others ask of it."""

    def __init__(
        self,
        client: redis.Redis,
        streams: StreamService[InputT, OutputT],
        claims: IdClaims,
        background: Background,
        *,
        socket_timeout: float,
    ) -> None:
        self.redis = client
        self.streams = streams
        self.claims = claims
        self.replica = claims.replica
        self.period = claims.ttl_ms / 3000
        """Seconds between publications when nothing changes: a third of the ttl."""
        self.settle_time = self.period + socket_timeout
        """Seconds within which every live replica publishes again once Redis is back: its
        publication period, and one attempt that was waiting for Redis meanwhile."""
        self.background = background
        self.changed = asyncio.Event()
        """Set when a connection opens or closes: the listing is published at once."""
        self.stopping = False
        self._published = False
        self._mark_view = client.register_script(MARK_VIEW)

    # -- outputs --------------------------------------------------------------------------

    async def append(self, connection_id: str, output: OutputT | None) -> None:
        """Append ``output`` (None: the end) to the connection's stream; best effort."""
        key = outputs_key(connection_id)
        fields: dict[FieldT, EncodableT] = (
            {"end": "1"} if output is None else {"data": output.model_dump_json()}
        )
        expires = self.claims.ttl_ms if output is None else OUTPUTS_LIVE_MS
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline() as pipe:
                pipe.xadd(key, fields, maxlen=OUTPUTS_KEPT, approximate=True)
                pipe.pexpire(key, expires)
                await pipe.execute()

    # -- publishing -----------------------------------------------------------------------

    async def publish(self) -> None:
        """Write this replica's listing, keep its claims, and mark the view as published."""
        key = conns_key(self.replica)
        connections = self.streams.list_connections()
        listed: dict[FieldT, EncodableT] = {
            c.id: c.model_copy(update={"replica": self.replica}).model_dump_json()
            for c in connections
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if listed:
                pipe.hset(key, mapping=listed)
                pipe.pexpire(key, self.claims.ttl_ms)
            pipe.sadd(REPLICAS, self.replica)
            stale = await self.claims.keep(pipe, {c.id for c in connections})
            await self._mark_view(
                keys=[VIEW, SETTLING],
                args=[int(self.settle_time * 1000), int(self._published)],
                client=pipe,
            )
            *_, lost, wiped = await pipe.execute()
        if stale:
            await self.claims.release_now(stale)
        if lost:
            logger.warning("cluster: ids held by another replica too: %s", lost)
        if wiped and self._published:
            logger.warning(
                "cluster: Redis lost the cluster's state; the view is rebuilt within %.1f s",
                self.settle_time,
            )
        self._published = True

    async def publish_forever(self) -> None:
        """Publish the listing when it changes, and every ttl/3 s so that it does not expire."""
        while not self.stopping:
            self.changed.clear()
            try:
                await self.publish()
            except (RedisError, OSError) as exc:
                logger.warning("cluster: cannot publish connections: %s", exc)
            except Exception:
                logger.exception("cluster: publishing connections failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), self.period)

    # -- serving --------------------------------------------------------------------------

    async def serve_forever(self) -> None:
        """Run what other replicas ask of this replica's connections; start again after any
        failure, with backoff."""
        failures = 0
        while not self.stopping:
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
            command = Command.model_validate_json(data if isinstance(data, str | bytes) else "")
            if command.op is Operation.INPUT:
                self.streams.input_model.model_validate(command.arg)
        except ValidationError:
            logger.warning("cluster: skipped a request that is none: %r", str(data)[:SHOWN])
            return
        self.background.spawn(self._serve(command))

    async def _serve(self, command: Command) -> None:
        try:
            value = await run_here(self.streams, command.op, command.id, command.arg)
            answer = Reply(value=value).model_dump_json()
        except AppError as exc:
            answer = Reply.failure(exc).model_dump_json()
        except Exception as exc:
            logger.exception("cluster: request %s on %r failed", command.op, command.id)
            failed = f"replica {self.replica}: {type(exc).__name__}: {exc}"
            answer = Reply.failure(ClusterUnavailableError.because(failed)).model_dump_json()
        with contextlib.suppress(RedisError, OSError):
            async with self.redis.pipeline() as pipe:
                pipe.rpush(command.reply, answer)
                pipe.expire(command.reply, REPLY_KEPT)
                await pipe.execute()
