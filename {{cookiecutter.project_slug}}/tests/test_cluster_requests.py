"""Cluster mode's requests between replicas: what one replica asks of another's connection.

Replicas are real servers (``python -m``) on a real ``redis-server``: errors the holder raises
come back by their registry code, a lookup by id reads that id alone, and garbage published on
a replica's channel is skipped.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis

from {{ cookiecutter.package_name }}.client import Peer, new_connection_id, wait_until

from .cluster_support import LIMIT, TTL, listed_on, open_peer, replica

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

REPLY_KEY = "fastrtc:reply:" + "0" * 24
"""A key a request may name for its answer."""


def outcome(response: httpx.Response) -> tuple[int, str | None]:
    """A route's status, and its error code if it failed."""
    failed = response.status_code >= 400
    return response.status_code, response.json()["error"] if failed else None


async def test_the_holders_errors_come_back_through_another_replica_as_they_were_raised(
    https: tuple[httpx.AsyncClient, httpx.AsyncClient], store: redis.Redis, on_a: Peer
) -> None:
    http_a, http_b = https

    # Whatever a's layer answers, b answers alike (a handler that cannot respond: 409).
    response = f"/connections/{on_a.connection_id}/response"
    assert outcome(await http_b.post(response)) == outcome(await http_a.post(response))

    # An id a holds (its claim) without a connection: a's own 404 comes back through b.
    claimed = new_connection_id()
    await store.set(f"fastrtc:id:{claimed}", "a " + "0" * 16, px=int(TTL * 1000))
    try:
        sent = await http_b.post(f"/connections/{claimed}/input", json={"gain": 1})
        assert outcome(sent) == (404, "unknown_connection"), sent.text
    finally:
        await store.delete(f"fastrtc:id:{claimed}")


async def test_a_lookup_by_id_reads_that_id_alone(
    https: tuple[httpx.AsyncClient, httpx.AsyncClient], store: redis.Redis, on_a: Peer
) -> None:
    _, http_b = https
    await store.config_resetstat()
    found = await http_b.get(f"/connections/{on_a.connection_id}")
    commands = await store.info("commandstats")

    assert found.status_code == 200, found.text
    assert (found.json()["id"], found.json()["replica"]) == (on_a.connection_id, "a")
    # Its claim and its one field of a's listing; never a whole listing, nor the replicas.
    assert commands["cmdstat_hget"]["calls"] == 1, commands
    assert "cmdstat_hgetall" not in commands, commands
    assert "cmdstat_smembers" not in commands, commands


GARBAGE_REQUESTS: list[bytes | str] = [
    "not json",
    b"\xff\xfe\x00 not utf-8",
    "[]",
    '{"op": "input"}',
    '{"op": "explode", "id": "x", "reply": "' + REPLY_KEY + '"}',
    '{"op": "input", "id": "x", "arg": "not an object", "reply": "' + REPLY_KEY + '"}',
    '{"op": "input", "id": "x", "arg": {"gain": "loud"}, "reply": "' + REPLY_KEY + '"}',
    '{"op": "close", "id": "x", "arg": {"extra": 1}, "reply": "' + REPLY_KEY + '"}',
    # A request whose answer would go into another replica's listing.
    '{"op": "close", "id": "x", "reply": "fastrtc:conns:b"}',
]


async def test_garbage_requests_neither_stop_a_replica_serving_others_nor_keep_it_registered(
    cluster: tuple[str, str, str],
    tmp_path: Path,
    https: tuple[httpx.AsyncClient, httpx.AsyncClient],
    store: redis.Redis,
    peers: list[Peer],
) -> None:
    url, _, _ = cluster
    _, http_b = https
    with replica(tmp_path, "c", url, APP_CONCURRENCY_LIMIT=str(LIMIT)) as c:
        async with httpx.AsyncClient(base_url=c, timeout=10) as http_c:
            on_c = await open_peer(http_c)
            peers.append(on_c)
            await on_c.wait_connected()
            await wait_until(lambda: listed_on(http_b, on_c.connection_id), within=TTL + 2)
            remote_input = f"/connections/{on_c.connection_id}/input"

            for garbage in GARBAGE_REQUESTS:
                assert await store.publish("fastrtc:cmd:c", garbage) == 1
            # c still serves b's requests.
            response = await http_b.post(remote_input, json={"gain": 0.5})
            assert response.status_code == 204, response.text
            assert await store.type("fastrtc:conns:b") in (b"hash", b"none")
    # SIGTERM: c left the cluster, garbage and all.
    assert not await store.sismember("fastrtc:replicas", "c")
    assert not await store.exists("fastrtc:conns:c")
    assert not await store.exists(f"fastrtc:id:{on_c.connection_id}")
