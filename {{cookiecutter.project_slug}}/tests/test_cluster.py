"""Cluster mode: two replicas (``python -m``, uvicorn) sharing a real ``redis-server`` act as one.

Each test starts its own redis-server on 127.0.0.1 and its replicas, and stops them after.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from {{ cookiecutter.package_name }}.client import Door, OfferRefused, Peer, connect, wait_until

from .cluster_support import TTL, RedisServer, listed_on, listing, replica
from .conftest import DOORS, SERVERS, SPEECH, first_output

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


@pytest.fixture
async def two_replicas(
    tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Replicas ``a`` and ``b`` on one Redis, each with an HTTP client."""
    with (
        replica(tmp_path, "a", redis_server.url) as a,
        replica(tmp_path, "b", redis_server.url) as b,
    ):
        async with (
            httpx.AsyncClient(base_url=a, timeout=10) as http_a,
            httpx.AsyncClient(base_url=b, timeout=10) as http_b,
        ):
            yield http_a, http_b


async def test_two_replicas_act_as_one(
    two_replicas: tuple[httpx.AsyncClient, httpx.AsyncClient], peers: list[Peer]
) -> None:
    http_a, http_b = two_replicas
    on_a = await connect(http_a, Door.API, speech=SPEECH)
    on_b = await connect(http_b, DOORS[-1], speech=SPEECH)
    peers += [on_a, on_b]
    await on_a.wait_connected()
    await on_b.wait_connected()

    # Either replica lists both, each with the replica that holds it.
    async def both_listed() -> bool:
        for http in (http_a, http_b):
            found = await listing(http)
            if {i: c.get("replica") for i, c in found.items()} != {
                on_a.connection_id: "a",
                on_b.connection_id: "b",
            }:
                return False
        return True

    await wait_until(both_listed, within=TTL + 2)
    assert (await http_b.get(f"/connections/{on_a.connection_id}")).json()["replica"] == "a"

    # Input sent through b reaches a's handler; a's outputs stream through b.
    url = f"/connections/{on_a.connection_id}"
    assert (await http_b.post(f"{url}/input", json={"gain": 0})).status_code == 204
    async with asyncio.timeout(10):
        event = await first_output(http_b, on_a.connection_id, gain=0.0)
    assert event["level_dbfs"] == -120.0
    latest = await http_b.get(f"{url}/outputs/latest")
    assert latest.status_code == 200

    # Errors of a's layer come back through b as they are.
    bad = await http_b.post("/connections/nope_not_here/input", json={"gain": 1})
    assert (bad.status_code, bad.json()["error"]) == (404, "unknown_connection")

    # An id taken on one replica cannot be taken on the other.
    with pytest.raises(Exception, match="connection_already_exists"):
        await connect(http_b, Door.API, connection_id=on_a.connection_id)

    # DELETE through b closes a's peer.
    assert (await http_b.delete(url)).status_code == 204
    await wait_until(lambda: on_a.state == "closed", within=5)

    async def gone_everywhere() -> bool:
        return not await listed_on(http_a, on_a.connection_id) and not await listed_on(
            http_b, on_a.connection_id
        )

    await wait_until(gone_everywhere, within=5)


async def test_a_trickled_candidate_reaches_the_replica_that_took_the_offer(
    two_replicas: tuple[httpx.AsyncClient, httpx.AsyncClient], peers: list[Peer]
) -> None:
    http_a, http_b = two_replicas
    on_a = await connect(http_a, Door.API, speech=SPEECH)
    peers.append(on_a)
    await on_a.wait_connected()
    await wait_until(lambda: listed_on(http_b, on_a.connection_id), within=TTL + 2)
    candidate = {
        "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }
    body = {"type": "ice-candidate", "webrtc_id": on_a.connection_id, "candidate": candidate}

    response = await http_b.post("/webrtc/offer", json=body)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "success"}
    unknown = await http_b.post("/webrtc/offer", json={**body, "webrtc_id": "nobody_has_it"})
    assert unknown.status_code == 404


async def test_a_killed_replica_leaves_the_listing_within_the_ttl(
    tmp_path: Path, redis_server: RedisServer, peers: list[Peer]
) -> None:
    with replica(tmp_path, "b", redis_server.url) as b:
        async with AsyncExitStack() as stack:
            http_b = await stack.enter_async_context(httpx.AsyncClient(base_url=b, timeout=10))
            with replica(tmp_path, "a", redis_server.url) as a:
                http_a = await stack.enter_async_context(httpx.AsyncClient(base_url=a, timeout=10))
                on_a = await connect(http_a, Door.API, speech=SPEECH)
                peers.append(on_a)
                await on_a.wait_connected()
                await wait_until(lambda: listed_on(http_b, on_a.connection_id), within=TTL + 2)

                os.kill(SERVERS[a].pid, signal.SIGKILL)
                killed = time.monotonic()

                async def gone() -> bool:
                    return not await listed_on(http_b, on_a.connection_id)

                await wait_until(gone, within=TTL + 2)
                print(f"killed replica left the listing in {time.monotonic() - killed:.2f} s")
                assert time.monotonic() - killed <= TTL + 1

                # Its ids went with it: the same id is taken on b.
                async def taken_on_b() -> bool:
                    try:
                        again = await connect(
                            http_b, Door.API, speech=SPEECH, connection_id=on_a.connection_id
                        )
                    except OfferRefused as exc:
                        if exc.reason != "connection_already_exists":
                            raise
                        return False
                    peers.append(again)
                    return True

                await wait_until(taken_on_b, within=1)


async def test_a_replica_that_stops_leaves_the_listing_at_once(
    tmp_path: Path, redis_server: RedisServer, peers: list[Peer]
) -> None:
    with replica(tmp_path, "b", redis_server.url) as b:
        async with httpx.AsyncClient(base_url=b, timeout=10) as http_b:
            with replica(tmp_path, "a", redis_server.url) as a:
                async with httpx.AsyncClient(base_url=a, timeout=10) as http_a:
                    on_a = await connect(http_a, Door.API, speech=SPEECH)
                    peers.append(on_a)
                    await on_a.wait_connected()
                    await wait_until(lambda: listed_on(http_b, on_a.connection_id), within=TTL + 2)
            stopped = time.monotonic()  # SIGTERM: a closed its peers and left
            assert not await listed_on(http_b, on_a.connection_id)
            assert time.monotonic() - stopped < 1


async def test_without_redis_the_cluster_routes_answer_503_and_local_work_goes_on(
    two_replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
    redis_server: RedisServer,
    peers: list[Peer],
) -> None:
    http_a, http_b = two_replicas
    on_a = await connect(http_a, Door.API, speech=SPEECH)
    on_b = await connect(http_b, Door.API, speech=SPEECH)
    peers += [on_a, on_b]
    await on_a.wait_connected()
    await on_b.wait_connected()

    redis_server.stop()

    response = await http_b.get("/connections")
    assert response.status_code == 503
    assert response.json()["error"] == "cluster_unavailable"
    remote = await http_b.post(f"/connections/{on_a.connection_id}/input", json={"gain": 1})
    assert (remote.status_code, remote.json()["error"]) == (503, "cluster_unavailable")
    # b's own connection is served as before.
    local = f"/connections/{on_b.connection_id}"
    assert (await http_b.post(f"{local}/input", json={"gain": 0})).status_code == 204
    async with asyncio.timeout(10):
        await first_output(http_b, on_b.connection_id, gain=0.0)
    assert (await http_b.get("/health")).status_code == 200
    # and it takes new connections.
    newcomer = await connect(http_b, Door.API, speech=SPEECH)
    peers.append(newcomer)
    await newcomer.wait_connected()

    redis_server.start()

    async def listed_again() -> bool:
        response = await http_b.get("/connections")
        if response.status_code != 200:
            return False
        listed = {c["id"] for c in response.json()}
        return listed == {on_a.connection_id, on_b.connection_id, newcomer.connection_id}

    await wait_until(listed_again, within=TTL + 5)
