"""Connection ids, unique across the cluster: this replica's claims.

An offer's id is claimed for the replica that admits it (``fastrtc:id:<id>``: the replica's
name and a token of that claim's own), by a Lua script that sets it only if no other replica
holds it, atomically. A claim is kept while its connection lives (every publication makes it
last ``ttl`` more seconds, or makes it again if Redis lost it), and released when it closes:
only if it is still this claim, so a release that comes late never frees a newer holder's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Coroutine
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from .wire import Claim, claim_key

logger = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None]], None]
"""Runs a coroutine in the background (``Background.spawn``)."""

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


class IdClaims:
    """This replica's claims: of its connections, and of the offers it is admitting."""

    def __init__(self, client: redis.Redis, replica: str, ttl: float, spawn: Spawn) -> None:
        self.replica = replica
        self.ttl_ms = int(ttl * 1000)
        self.held: dict[str, Claim] = {}
        self._spawn = spawn
        self._claim = client.register_script(CLAIM)
        self._release = client.register_script(RELEASE)
        self._refresh = client.register_script(REFRESH)

    @property
    def mine(self) -> str:
        """How every claim of this replica starts: its name and a space."""
        return f"{self.replica} "

    async def claim(self, connection_id: str) -> bool:
        """Take the id for this replica, cluster-wide; False if another replica holds it."""
        claim = self.held[connection_id] = Claim.new(self.replica)
        try:
            taken = await self._claim(
                keys=[claim_key(connection_id)], args=[claim.value, self.mine, self.ttl_ms]
            )
        except (RedisError, OSError) as exc:
            # Taken all the same (the ids clients make are random); the claim is made when
            # Redis is back, at the next publication.
            logger.warning("cluster: cannot claim %r: %s", connection_id, exc)
            return True
        if not taken and self.held.get(connection_id) is claim:
            del self.held[connection_id]
        return bool(taken)

    def release(self, connection_id: str) -> None:
        """Give back the id's claim, if this replica still holds it (in the background)."""
        claim = self.held.pop(connection_id, None)
        if claim is not None:
            self._spawn(self.release_now({connection_id: claim}))

    async def release_now(self, claims: dict[str, Claim]) -> None:
        """Delete ``claims`` from Redis, those that are still theirs."""
        try:
            await self._release(
                keys=[claim_key(i) for i in claims], args=[c.value for c in claims.values()]
            )
        except (RedisError, OSError) as exc:  # they expire within the ttl
            logger.warning("cluster: cannot release %s: %s", sorted(claims), exc)

    async def release_all(self, pipe: Pipeline) -> None:
        """Queue, on ``pipe``, the release of every claim this replica holds (it leaves)."""
        if self.held:
            await self._release(
                keys=[claim_key(i) for i in self.held],
                args=[c.value for c in self.held.values()],
                client=pipe,
            )

    async def keep(self, pipe: Pipeline, live: Collection[str]) -> dict[str, Claim]:
        """Queue, on ``pipe``, keeping the claims of the ``live`` connections (its result: the
        keys another replica holds); forget the others, and return them for ``release_now``.

        A claim whose connection is gone (no longer live) was missed by ``release``.
        """
        stale = {i: c for i, c in self.held.items() if i not in live}
        for connection_id in stale:
            del self.held[connection_id]
        kept = {i: c for i, c in self.held.items() if i in live}
        await self._refresh(
            keys=[claim_key(i) for i in kept],
            args=[self.ttl_ms, self.mine, *(c.value for c in kept.values())],
            client=pipe,
        )
        return stale
