"""Cluster mode's test support: a real redis-server, replicas of the app sharing it, and the
clients the cluster tests use (conftest loads it as a plugin, so its fixtures are everyone's).

Used by test_cluster.py, test_cluster_attacks.py, test_cluster_requests.py and
test_load_balancer.py; a project made without cluster mode has none of them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis

from {{ cookiecutter.package_name }}.client import Door, Peer, connect, wait_until

from .conftest import MEDIA, SPEECH, serve

TTL = 3.0
"""APP_CLUSTER_TTL of the test replicas: a dead replica's connections leave within it."""
LIMIT = 4
"""APP_CONCURRENCY_LIMIT of the replicas of the shared ``cluster``."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A real redis-server on 127.0.0.1 that a test can stop and start again (same port)."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.executable = executable
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def replica(tmp_path: Path, name: str, redis_url: str, **settings: str) -> Iterator[str]:
    """Replica ``name`` of the app on ``redis_url``; ``settings`` as for ``serve``."""
    with serve(
        tmp_path / f"{name}.log",
        APP_REDIS_URL=redis_url,
        APP_REPLICA_ID=name,
        APP_CLUSTER_TTL=str(TTL),
        **settings,
    ) as base:
        yield base


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """A redis-server and replicas ``a`` and ``b`` (limit ``LIMIT``), for a whole test module:
    Redis's URL, a's, b's."""
    directory = tmp_path_factory.mktemp("cluster")
    server = RedisServer(directory)
    server.start()
    try:
        with (
            replica(directory, "a", server.url, APP_CONCURRENCY_LIMIT=str(LIMIT)) as a,
            replica(directory, "b", server.url, APP_CONCURRENCY_LIMIT=str(LIMIT)) as b,
        ):
            yield server.url, a, b
    finally:
        server.stop()


@pytest.fixture
async def store(cluster: tuple[str, str, str]) -> AsyncIterator[redis.Redis]:
    """A redis-py client of the replicas' Redis: what an attacker with access to it writes."""
    client = redis.Redis.from_url(cluster[0])
    yield client
    await client.aclose()


@pytest.fixture
async def https(
    cluster: tuple[str, str, str],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """HTTP clients of the ``cluster``'s replicas ``a`` and ``b``."""
    async with (
        httpx.AsyncClient(base_url=cluster[1], timeout=10) as http_a,
        httpx.AsyncClient(base_url=cluster[2], timeout=10) as http_b,
    ):
        yield http_a, http_b


@pytest.fixture
async def peers() -> AsyncIterator[list[Peer]]:
    """Peers a test opens; each is closed after it."""
    opened: list[Peer] = []
    yield opened
    for peer in opened:
        await peer.close()


@pytest.fixture
async def on_a(https: tuple[httpx.AsyncClient, httpx.AsyncClient], peers: list[Peer]) -> Peer:
    """A peer of the ``cluster``'s replica ``a``, connected, once ``b`` lists it too."""
    http_a, http_b = https
    peer = await open_peer(http_a)
    peers.append(peer)
    await peer.wait_connected()
    await wait_until(lambda: listed_on(http_b, peer.connection_id), within=TTL + 2)
    return peer


async def open_peer(http: httpx.AsyncClient, door: Door = Door.API, **kwargs: Any) -> Peer:
    """A peer of this app's media through ``door`` of the replica ``http`` reaches."""
    return await connect(http, door, **{"speech": SPEECH, **MEDIA, **kwargs})


async def listing(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await http.get("/connections")
    assert response.status_code == 200, response.text
    return {c["id"]: c for c in response.json()}


async def listed_on(http: httpx.AsyncClient, connection_id: str) -> bool:
    return connection_id in await listing(http)
