"""The doors tests' server and helpers: the app as users run it, with a small limit, the
admin token set and a short peer timeout (a plugin: see ``pytest_plugins`` in conftest)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websocket_connect
from websockets.exceptions import ConnectionClosed

from {{ cookiecutter.package_name }}.client import Door, Peer, connect, wait_until
from {{ cookiecutter.package_name }}.services.streams import WEBSOCKET_PATH

from .conftest import MEDIA, SPEECH, serve

LIMIT = 4
TOKEN = "doors-admin-token"
PEER_TIMEOUT = 2.0
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
POLICY_VIOLATION = 1008


@pytest.fixture(scope="session")
def doors_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's log."""
    return tmp_path_factory.mktemp("doors") / "server.log"


@pytest.fixture(scope="session")
def app_url(doors_log: Path) -> Iterator[str]:
    """The app with a small limit, the admin token set and a short peer timeout, for every
    doors test."""
    with serve(
        doors_log,
        APP_CONCURRENCY_LIMIT=str(LIMIT),
        APP_ADMIN_TOKEN=TOKEN,
        APP_PEER_TIMEOUT=str(PEER_TIMEOUT),
    ) as base:
        yield base


@pytest.fixture
async def admin(app_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the server; what a test leaves open is closed after it."""
    async with httpx.AsyncClient(base_url=app_url, timeout=20, headers=ADMIN) as client:
        yield client
        for connection in (await client.get("/connections")).json():
            await client.delete(f"/connections/{connection['id']}")
        await wait_for_count(client, 0)


async def count(http: httpx.AsyncClient) -> int:
    return int((await http.get("/ready")).json()["connections"])


async def wait_for_count(http: httpx.AsyncClient, expected: int, within: float = 5.0) -> None:
    """Wait until the server counts ``expected`` connections; fail after ``within`` s."""

    async def counted() -> bool:
        return await count(http) == expected

    await wait_until(counted, within=within)


async def listed(http: httpx.AsyncClient) -> dict[str, str]:
    response = await http.get("/connections")
    assert response.status_code == 200, response.text
    return {c["id"]: c["source"] for c in response.json()}


def metric(metrics: str, name: str) -> float:
    """The value of one sample in Prometheus' text format."""
    line = next(line for line in metrics.splitlines() if line.startswith(name + " "))
    return float(line.rsplit(" ", 1)[1])


def websocket_url(base: str, path: str = WEBSOCKET_PATH) -> str:
    return base.replace("http://", "ws://") + path


def start(connection_id: str) -> str:
    return json.dumps({"event": "start", "websocket_id": connection_id})


@asynccontextmanager
async def started(app_url: str, connection_id: str) -> AsyncIterator[ClientConnection]:
    """A socket on the websocket door that has sent its ``start``."""
    async with websocket_connect(websocket_url(app_url)) as socket:
        await socket.send(start(connection_id))
        yield socket


SILENCE = json.dumps(
    {"event": "media", "media": {"payload": base64.b64encode(b"\xff" * 160).decode()}}
)
"""20 ms of mu-law silence at 8 kHz, as fastrtc's websocket clients send audio."""


async def closing_code(socket: ClientConnection, within: float = 5.0) -> int | None:
    """The close code the server ends the socket with (messages before it are skipped)."""
    async with asyncio.timeout(within):
        try:
            while True:
                await socket.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


async def refusal_of(socket: ClientConnection) -> str:
    """The error of fastrtc's refusal message, the first message after a refused start."""
    async with asyncio.timeout(5):
        message = json.loads(await socket.recv())
    assert message["status"] == "failed", message
    return str(message["meta"]["error"])


async def connected_page(admin: httpx.AsyncClient) -> Peer:
    """A peer through the UI's door, as a page connects, once it is connected."""
    peer = await connect(admin, Door.UI, speech=SPEECH, **MEDIA)
    await peer.wait_connected()
    return peer
