"""Fixtures: the app in-process (ASGI), real aiortc peers, and the app as a real server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection
from fastapi import FastAPI
from fastrtc import AdditionalOutputs

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.client import Door, Peer, Speech, connect
from {{ cookiecutter.package_name }}.handlers.io import Stats
from {{ cookiecutter.package_name }}.media import AppStreams
from {{ cookiecutter.package_name }}.settings import Settings

Connect = Callable[..., Awaitable[Peer]]
pytest_plugins = [
    "tests.doors_support",
    "tests.turn_support",
{%- if cookiecutter.include_cluster %}
    "tests.cluster_support",
{%- endif %}
{%- if cookiecutter.handler == "voice-agent" %}
    "tests.model_server",
    "tests.voice_support",
{%- endif %}
]
"""Fixtures of some tests only: the doors tests' server, coturn (the TURN tests'){% if cookiecutter.include_cluster %},
and cluster mode's (a real redis-server, replicas sharing it){% endif %}."""

DOORS = [Door.API{% if cookiecutter.include_ui %}, Door.UI{% endif %}]
"""The ways in which this app takes connections: every test of the layer goes through each."""

SERVER_CLOSED = ("closed", "failed")
"""What a client's peer becomes once the server closed it: "closed" when the close reaches it
(at once, as a rule), else "failed" when its consent checks go unanswered."""

SPEECH: Speech | None = {{ {"reply-on-pause": "Speech()", "voice-agent": "Speech(pause_s=3.2)"}.get(cookiecutter.handler, "None") }}
"""How test peers talk: steadily, or in turns with pauses for a handler that waits for them{% if cookiecutter.handler == "voice-agent" %}
(long enough for the agent to answer: talking over a reply, or its making, stops it){% endif %}."""

MEDIA: dict[str, Any] = {
    "audio": {{ cookiecutter.__modality != "video" }},
    "video": {{ cookiecutter.__modality != "audio" }},
    "direction": "{{ {"send-receive": "sendrecv", "send": "sendonly", "receive": "recvonly"}[cookiecutter.__mode] }}",
}
"""What test peers offer: this app's media ({{ cookiecutter.__modality }}), in its direction ({{ cookiecutter.__mode }})."""
NO_MEDIA: dict[str, Any] = {"audio": False, "video": False}
"""A peer that offers only its data channel."""
CLIENT_SENDS = MEDIA["direction"] != "recvonly"
"""Whether the app's media starts with the client's (send, send-receive) or with the app's."""
CLIENT_RECEIVES = MEDIA["direction"] != "sendonly"
"""Whether media comes back to the client (send-receive, receive)."""
WEBSOCKET = MEDIA["audio"] and not MEDIA["video"] and CLIENT_SENDS
"""Whether the app opens fastrtc's websocket door: it carries the client's audio to a stream
handler (and its audio back), so audio apps have it, except in receive mode."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of a door this app does not have (``websocket_door``, ``ui_door``) are left out:
    deselected, as there is nothing for them to test, rather than skipped."""
    absent = {"websocket_door": not WEBSOCKET, "ui_door": Door.UI not in DOORS}
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        markers = {marker.name for marker in item.iter_markers()}
        (left_out if any(absent[m] for m in markers & absent.keys()) else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


async def next_stats(
    streams: AppStreams, connection_id: str, gain: float | None = None, within: float = 10.0
) -> Stats:
    """The first ``Stats`` the connection reports from now on (with ``gain`` in force, if given).

    Every handler reports ``Stats`` while its media flows, whichever way it goes: this is how
    the generic tests see that it does.
    """
    async with asyncio.timeout(within):
        async for item in streams.subscribe(connection_id):
            stats = item
            if gain is None or stats.gain == gain:
                return stats
    raise AssertionError("the outputs ended first")


def stats_of(outputs: AdditionalOutputs) -> Stats:
    """The ``Stats`` a handler put in an output it emitted."""
    (stats,) = outputs.args
    assert isinstance(stats, Stats), stats
    return stats


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> Settings:
    """The app's settings; a test's own over them with ``indirect`` parametrization."""
    overrides = getattr(request, "param", {})
    return Settings(_env_file=None, concurrency_limit=4, **overrides)  # type: ignore[call-arg]


@pytest.fixture
def server_peers(monkeypatch: pytest.MonkeyPatch) -> list[RTCPeerConnection]:
    """The server's peer of each connection made from now on: the one given the offer."""
    found: list[RTCPeerConnection] = []
    apply = RTCPeerConnection.setRemoteDescription

    async def recorded(pc: RTCPeerConnection, description: Any) -> None:
        if description.type == "offer":
            found.append(pc)
        await apply(pc, description)

    monkeypatch.setattr(RTCPeerConnection, "setRemoteDescription", recorded)
    return found


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    yield app
    await streams_of(app).close_all()


def streams_of(app: FastAPI) -> AppStreams:
    streams: AppStreams = app.state.streams
    return streams


@pytest.fixture
def streams(app: FastAPI) -> AppStreams:
    return streams_of(app)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        yield client


@pytest.fixture
async def peer(http: httpx.AsyncClient) -> AsyncIterator[Connect]:
    """Connect real aiortc peers to the in-process app; each is closed after the test."""
    opened: list[Peer] = []

    async def open_peer(door: Door, **kwargs: object) -> Peer:
        new = await connect(http, door, **{"speech": SPEECH, **MEDIA, **kwargs})
        opened.append(new)
        await new.wait_connected()
        return new

    yield open_peer
    for p in opened:
        await p.close()


SERVERS: dict[str, subprocess.Popen[bytes]] = {}
"""The processes ``serve`` has running, by base URL."""


@contextmanager
def serve(log: Path, **settings: str) -> Iterator[str]:
    """Serve the app with ``python -m {{ cookiecutter.package_name }}`` on 127.0.0.1; yield its URL.

    ``settings`` are environment variables (``APP_...``) over the defaults. The server picks
    a free port itself (``APP_PORT=0``) and the URL is read from its log, so that servers
    started at once by parallel test runs never race for a port.
    """
    env = {
        **os.environ,
        "APP_HOST": "127.0.0.1",
        "APP_PORT": "0",
        "APP_ICE_SERVERS": "[]",
        **settings,
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "{{ cookiecutter.package_name }}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).parent,  # no .env from the project directory
        )
    base = ""
    try:
        base = wait_until_serving(process, log)
        SERVERS[base] = process
        yield base
    finally:
        SERVERS.pop(base, None)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app as users run it, for the whole session; its base URL."""
    with serve(tmp_path_factory.mktemp("server") / "server.log") as base:
        yield base


SERVING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


def wait_until_serving(process: subprocess.Popen[bytes], log: Path) -> str:
    """The base URL of the server once it answers ``/health``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        found = SERVING.search(log.read_text())
        if found:
            try:
                if httpx.get(f"{found[1]}/health", timeout=1).status_code == 200:
                    return found[1]
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"server not serving after 60 s:\n{log.read_text()}")


async def first_output(http: httpx.AsyncClient, connection_id: str, **expected: Any) -> Any:
    """The first server-sent output of the connection that has the ``expected`` values."""
    async with http.stream("GET", f"/connections/{connection_id}/outputs") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if all(event[key] == value for key, value in expected.items()):
                    return event
    raise AssertionError("the output stream ended first")


# -- the Gradio UI's queue API, which anyone can call (test_doors, test_browser)


async def listen(http: httpx.AsyncClient, connection_id: str, session: str) -> None:
    """Start the UI's outputs listener for ``connection_id`` through Gradio's queue API, as a
    page does when its connection has outputs (and as anyone can, with any id)."""
    config = (await http.get("/ui/config")).json()
    types = {c["id"]: c.get("type") for c in config["components"]}
    for index, dependency in enumerate(config["dependencies"]):
        for target, event in dependency["targets"]:
            if event == "state_change" and types.get(target) == "webrtc":
                body = {
                    "data": [connection_id] + [None] * (len(dependency["inputs"]) - 1),
                    "fn_index": index,
                    "trigger_id": target,
                    "session_hash": session,
                    "event_data": None,
                }
                response = await http.post("/ui/gradio_api/queue/join", json=body)
                assert response.status_code == 200, response.text
                return
    raise AssertionError("the UI has no outputs listener")


async def queue_messages(http: httpx.AsyncClient, session: str) -> AsyncIterator[dict[str, Any]]:
    async with http.stream("GET", f"/ui/gradio_api/queue/data?session_hash={session}") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                yield json.loads(line[5:])
