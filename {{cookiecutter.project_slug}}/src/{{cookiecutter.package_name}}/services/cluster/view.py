"""The cluster as Redis shows it: who holds an id, one connection, every replica's listing.

Each replica writes its connections to a hash (``fastrtc:conns:<replica>``: id -> entry) that
expires ``ttl`` seconds after its last publication. A lookup by id reads that id alone: its
claim, then that one field of the holder's hash. Entries that do not validate are skipped.

A Redis that lost its state (restarted) shows an incomplete view until every live replica has
published again: meanwhile what the view cannot find is unavailable (503), not unknown (404).
"""

from __future__ import annotations

import logging
from typing import cast

import redis.asyncio as redis
from pydantic import ValidationError
from redis.exceptions import ResponseError

from ..streams.errors import UnknownConnectionError
from ..streams.interface import ConnectionInfo
from .errors import IncompleteViewError, reaching_redis
from .wire import (
    REPLICA_NAME,
    REPLICAS,
    SETTLING,
    SHOWN,
    VIEW,
    Claim,
    ListedConnection,
    claim_key,
    conns_key,
)

logger = logging.getLogger(__name__)


class View:
    """What the other replicas hold, read from Redis (every failure is a 503)."""

    def __init__(self, client: redis.Redis, replica: str) -> None:
        self.redis = client
        self.replica = replica

    async def owner_of(self, connection_id: str) -> str | None:
        """The other replica that holds the connection, if one does."""
        with reaching_redis():
            value = await self.redis.get(claim_key(connection_id))
            if value is None and not await self.complete():
                raise IncompleteViewError
        claim = Claim.parse(value)
        if claim is None or claim.replica == self.replica:
            return None
        return claim.replica

    async def get(self, owner: str, connection_id: str) -> ConnectionInfo:
        """The connection as ``owner`` lists it: the one field of its listing."""
        with reaching_redis():
            try:
                value = cast(str | None, await self.redis.hget(conns_key(owner), connection_id))
            except ResponseError as exc:  # not a hash: nothing that replica wrote
                logger.warning("cluster: skipped the listing of %s: %s", owner, exc)
                value = None
            if value is None and not await self.complete():
                raise IncompleteViewError
        found = None if value is None else self._entry(owner, connection_id, value)
        if found is None:  # claimed, but not listed (yet, or any more)
            raise UnknownConnectionError(connection_id)
        return found

    async def others(self) -> list[ConnectionInfo]:
        """Every other replica's connections."""
        found: list[ConnectionInfo] = []
        with reaching_redis():
            if not await self.complete():
                raise IncompleteViewError
            for replica in await self._replicas():
                found += await self._listing(replica)
        return found

    async def complete(self) -> bool:
        """Whether every live replica has published since Redis last lost the state."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(VIEW)
            pipe.exists(SETTLING)
            marked, settling = await pipe.execute()
        return bool(marked) and not settling

    async def _replicas(self) -> list[str]:
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
        entries = (self._entry(replica, field, value) for field, value in listed.items())
        return [entry for entry in entries if entry is not None]

    def _entry(self, replica: str, field: str, value: str) -> ConnectionInfo | None:
        """The listing entry ``field: value`` of ``replica``; None if it is none (logged)."""
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
            return None
        return ConnectionInfo(**(entry.model_dump() | {"replica": replica}))
