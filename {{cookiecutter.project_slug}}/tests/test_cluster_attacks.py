"""Cluster mode under attack: offers racing across replicas, garbage written into Redis's
listings and outputs, Redis restarting, a replica that cannot start (garbage requests:
test_cluster_requests.py).

Replicas are real servers (``python -m``) on a real ``redis-server``; the garbage is written by a
redis-py client of the test, into the keys and channels the replicas use.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis
from redis.typing import EncodableT, FieldT
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websocket_connect
from websockets.exceptions import ConnectionClosed

from {{ cookiecutter.package_name }}.client import (
    Door,
    OfferRefused,
    Peer,
    new_connection_id,
    wait_until,
)

from .cluster_support import (
    LIMIT,
    TTL,
    RedisServer,
    listed_on,
    listing,
    open_peer,
    replica,
)
from .conftest import DOORS, WEBSOCKET
from .doors_support import start, websocket_url

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

ROUNDS = 5
IDS_PER_ROUND = 16
"""Ids offered at once in a round, each to both replicas: 32 offers, for 2 x LIMIT slots."""
WEBSOCKET_ANSWER_S = 3.0
"""How long a refusal of a websocket start may take; a socket not refused by then is admitted."""
SETTLE = TTL / 3 + 2 + 2
"""Seconds within which a restarted Redis has the whole view again: a publication period, one
attempt that waited for Redis (2 s), and slack."""
OUTAGE = 1.0
"""Seconds Redis stays down when it restarts."""


# -- offers racing across replicas ---------------------------------------------------------


class Socket:
    """A websocket connection the door admitted, as the race test holds its peers."""

    def __init__(self, socket: ClientConnection, connection_id: str) -> None:
        self.socket = socket
        self.connection_id = connection_id

    async def close(self) -> None:
        await self.socket.close()


async def test_simultaneous_offers_never_pass_a_replicas_limit_nor_share_an_id(
    https: tuple[httpx.AsyncClient, httpx.AsyncClient], peers: list[Peer]
) -> None:
    replicas = dict(zip("ab", https, strict=True))
    refused: Counter[str] = Counter()
    doors: list[Door | str] = [*DOORS, *(["websocket"] if WEBSOCKET else [])]

    async def through_websocket(name: str, connection_id: str) -> Socket | None:
        socket = await websocket_connect(websocket_url(str(replicas[name].base_url).rstrip("/")))
        await socket.send(start(connection_id))
        try:
            async with asyncio.timeout(WEBSOCKET_ANSWER_S):
                message = json.loads(await socket.recv())
        except TimeoutError:
            return Socket(socket, connection_id)
        except ConnectionClosed:
            return None
        await socket.close()
        assert message.get("status") == "failed", message
        refused[str(message["meta"]["error"])] += 1
        return None

    async def offer(
        name: str, door: Door | str, connection_id: str
    ) -> tuple[str, Peer | Socket | None]:
        if door == "websocket":
            return name, await through_websocket(name, connection_id)
        try:
            return name, await open_peer(replicas[name], Door(door), connection_id=connection_id)
        except OfferRefused as exc:
            refused[exc.reason] += 1
            return name, None

    for round_ in range(ROUNDS):
        refused.clear()
        ids = [new_connection_id() for _ in range(IDS_PER_ROUND)]
        # Each id goes to both replicas at once, through different doors (the websocket's too).
        offers = [
            offer(name, doors[(i + r) % len(doors)], connection_id)
            for i, connection_id in enumerate(ids)
            for r, name in enumerate(replicas)
        ]
        results = await asyncio.gather(*offers)
        accepted = [(name, peer) for name, peer in results if peer is not None]
        peers += [peer for _, peer in accepted if isinstance(peer, Peer)]
        by_replica = Counter(name for name, _ in accepted)
        by_id = Counter(peer.connection_id for _, peer in accepted)
        by_door = Counter(
            "websocket" if isinstance(peer, Socket) else "webrtc" for _, peer in accepted
        )
        print(
            f"round {round_}: accepted {dict(by_replica)} ({dict(by_door)}),"
            f" refused {dict(refused)}"
        )
        assert all(count <= LIMIT for count in by_replica.values()), by_replica
        assert by_id, "no offer was admitted"
        assert max(by_id.values()) == 1, [i for i, n in by_id.items() if n > 1]
        assert set(refused) <= {"concurrency_limit_reached", "connection_already_exists"}, refused
        # The replicas agree: each lists at most LIMIT of its own.
        for name, http in replicas.items():
            response = await http.get("/connections")
            assert response.status_code == 200, response.text
            own = [c["id"] for c in response.json() if c.get("replica") == name]
            assert len(own) <= LIMIT, own

        for _, peer in accepted:
            await peer.close()

        async def all_gone() -> bool:
            for http in replicas.values():
                if await listing(http):
                    return False
            return True

        await wait_until(all_gone, within=TTL + 5)


async def test_an_id_stays_taken_while_its_connection_lives_and_is_free_once_it_closes(
    https: tuple[httpx.AsyncClient, httpx.AsyncClient], peers: list[Peer]
) -> None:
    http_a, http_b = https
    on_a = await open_peer(http_a)
    peers.append(on_a)
    await on_a.wait_connected()
    await asyncio.sleep(TTL + 1)  # longer than a claim lasts unless it is kept

    with pytest.raises(OfferRefused) as refused:
        peers.append(await open_peer(http_b, connection_id=on_a.connection_id))
    assert refused.value.reason == "connection_already_exists"

    await on_a.close()

    async def closed_on_a() -> bool:
        return not await listed_on(http_a, on_a.connection_id)

    await wait_until(closed_on_a, within=5)
    again = await open_peer(http_b, connection_id=on_a.connection_id)
    peers.append(again)
    await again.wait_connected()


# -- garbage in Redis ------------------------------------------------------------------------


async def test_garbage_listing_entries_are_skipped_on_every_replica(
    https: tuple[httpx.AsyncClient, httpx.AsyncClient],
    store: redis.Redis,
    peers: list[Peer],
) -> None:
    http_a, http_b = https
    on_a = await open_peer(http_a)
    on_b = await open_peer(http_b)
    peers += [on_a, on_b]
    await on_a.wait_connected()
    await on_b.wait_connected()
    live = {on_a.connection_id, on_b.connection_id}

    async def both_listed() -> bool:
        return set(await listing(http_a)) == live and set(await listing(http_b)) == live

    await wait_until(both_listed, within=TTL + 2)
    try:
        # A replica that never was, with garbage only; and garbage in b's own listing.
        async with store.pipeline() as pipe:
            pipe.sadd("fastrtc:replicas", "mallory", "not a name!")
            pipe.hset(
                "fastrtc:conns:mallory",
                mapping={
                    "x1": "not json",
                    "x2": b"\xff\xfe",
                    "x3": '{"id": "x3", "source": "carrier pigeon", "state": "connected"}',
                    "x4": '{"id": "../../etc", "source": "api", "state": "connected"}',
                    "x5": '{"id": "other", "source": "api", "state": "connected"}',
                },
            )
            pipe.hset("fastrtc:conns:b", "evil", "{not json")
            await pipe.execute()

        for http in (http_a, http_b):
            response = await http.get("/connections")
            assert response.status_code == 200, response.text
            assert {c["id"] for c in response.json()} == live
    finally:
        await store.delete("fastrtc:conns:mallory")
        await store.srem("fastrtc:replicas", "mallory", "not a name!")


async def test_garbage_outputs_neither_cut_remote_event_streams_nor_fail_latest(
    https: tuple[httpx.AsyncClient, httpx.AsyncClient], store: redis.Redis, on_a: Peer
) -> None:
    _, http_b = https
    key = f"fastrtc:outputs:{on_a.connection_id}"
    garbage: list[dict[FieldT, EncodableT]] = [
        {"data": "not json"},
        {"data": b"\xff\xfe"},
        {"data": '{"frames": "many"}'},
        {"something": "else"},
        {"data": '{"frames": 1, "level_dbfs": 0, "gain": 1}', "end": "1"},
    ]

    async def events_through_b(count: int) -> int:
        """Read ``count`` events of a's connection through b, garbage written after the first."""
        seen = 0
        url = f"/connections/{on_a.connection_id}/outputs"
        async with http_b.stream("GET", url) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    seen += 1
                    if seen == 1:
                        for fields in garbage:
                            await store.xadd(key, fields)
                    if seen == count:
                        return seen
        return seen

    async with asyncio.timeout(30):
        assert await events_through_b(3) == 3  # the stream went on after the garbage

    for fields in garbage:
        await store.xadd(key, fields)
        latest = await http_b.get(f"/connections/{on_a.connection_id}/outputs/latest")
        assert latest.status_code in (200, 404), latest.text
        if latest.status_code == 404:
            assert latest.json()["error"] == "no_output_yet"


async def test_an_id_claimed_with_garbage_outputs_only_has_no_output_yet(
    https: tuple[httpx.AsyncClient, httpx.AsyncClient], store: redis.Redis
) -> None:
    """Outputs are read only for a connection the cluster holds; all garbage means none yet."""
    _, http_b = https
    connection_id = new_connection_id()
    await store.set(f"fastrtc:id:{connection_id}", "a " + "0" * 16, px=int(TTL * 1000))
    await store.xadd(f"fastrtc:outputs:{connection_id}", {"data": "not json"})
    try:
        latest = await http_b.get(f"/connections/{connection_id}/outputs/latest")
        assert (latest.status_code, latest.json()["error"]) == (404, "no_output_yet")
    finally:
        await store.delete(f"fastrtc:id:{connection_id}", f"fastrtc:outputs:{connection_id}")


# -- Redis restarting --------------------------------------------------------------------------


async def test_after_redis_restarts_remote_commands_are_unavailable_until_the_view_is_back(
    tmp_path: Path, redis_server: RedisServer, peers: list[Peer]
) -> None:
    with (
        replica(tmp_path, "a", redis_server.url) as a,
        replica(tmp_path, "b", redis_server.url) as b,
    ):
        async with AsyncExitStack() as stack:
            http_a = await stack.enter_async_context(httpx.AsyncClient(base_url=a, timeout=10))
            http_b = await stack.enter_async_context(httpx.AsyncClient(base_url=b, timeout=10))
            on_a = await open_peer(http_a)
            peers.append(on_a)
            await on_a.wait_connected()
            await wait_until(lambda: listed_on(http_b, on_a.connection_id), within=TTL + 2)
            url = f"/connections/{on_a.connection_id}"

            redis_server.stop()
            await asyncio.sleep(OUTAGE)  # longer than redis-py's own retries: the loops restart
            redis_server.start()  # empty: every key and subscription is gone
            restarted = time.monotonic()

            # Every answer on a's connection through b: (seconds after the restart, input's
            # status, lookup's status).
            seen: list[tuple[float, int, int]] = []
            served_in_a_row = 0
            async with asyncio.timeout(SETTLE + 10):
                while served_in_a_row < 5:
                    sent = await http_b.post(f"{url}/input", json={"gain": 0.5})
                    got = await http_b.get(url)
                    seen.append((time.monotonic() - restarted, sent.status_code, got.status_code))
                    for response in (sent, got):
                        assert response.status_code in (200, 204, 503), seen
                        if response.status_code == 503:
                            assert response.json()["error"] == "cluster_unavailable"
                    served = seen[-1][1:] == (204, 200)
                    served_in_a_row = served_in_a_row + 1 if served else 0
                    await asyncio.sleep(0.05)
            unavailable = [s[0] for s in seen if 503 in s[1:]]
            print(f"503 until {max(unavailable, default=0):.2f} s after the restart")
            assert time.monotonic() - restarted < SETTLE + 5


# -- a replica that cannot start ------------------------------------------------------------


BIND_FAILED = "address already in use"


def start_replica(log: Path, port: int, redis_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(port),
        "APP_ICE_SERVERS": "[]",
        "APP_REDIS_URL": redis_url,
        "APP_REPLICA_ID": log.stem,
        "APP_CLUSTER_TTL": str(TTL),
    }
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "{{ cookiecutter.package_name }}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).parent,
        )


async def wait_for_log(process: subprocess.Popen[bytes], log: Path, text: str) -> None:
    def logged() -> bool:
        return text in log.read_text() or process.poll() is not None

    await wait_until(logged, within=60)


async def exit_code(process: subprocess.Popen[bytes], within: float) -> int | None:
    """The process's exit code once it exits, or None if it is still running after ``within``."""
    try:
        await wait_until(lambda: process.poll() is not None, within=within)
    except TimeoutError:
        return None
    return process.returncode


async def test_a_replica_on_a_taken_port_exits_non_zero(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        # One is left alone, the other is sent SIGTERM as soon as it serves its lifespan.
        alone = start_replica(tmp_path / "alone.log", port, redis_server.url)
        termed = start_replica(tmp_path / "termed.log", port, redis_server.url)
        try:
            await wait_for_log(alone, tmp_path / "alone.log", BIND_FAILED)
            await wait_for_log(termed, tmp_path / "termed.log", "Waiting for application startup")
            termed.send_signal(signal.SIGTERM)
            codes = {
                "alone": await exit_code(alone, within=5),
                "termed": await exit_code(termed, within=5),
            }
            logs = {name: (tmp_path / f"{name}.log").read_text()[-2000:] for name in codes}
            assert BIND_FAILED in logs["alone"], logs["alone"]
            assert codes["alone"] not in (None, 0), logs["alone"]
            assert codes["termed"] not in (None, 0), logs["termed"]
        finally:
            for process in (alone, termed):
                if process.poll() is None:
                    process.kill()
                process.wait()
