"""The websocket door, tried as an attacker would: one admission, one connection per socket,
every message checked, and mounted only where fastrtc's door can carry the media."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as websocket_connect
from websockets.exceptions import InvalidStatus

from {{ cookiecutter.package_name }}.client import (
    Door,
    connect,
    new_connection_id,
)

from .conftest import DOORS, MEDIA, SPEECH, WEBSOCKET
from .doors_support import (
    LIMIT,
    POLICY_VIOLATION,
    SILENCE,
    closing_code,
    count,
    listed,
    metric,
    refusal_of,
    start,
    started,
    wait_for_count,
    websocket_url,
)

pytestmark = pytest.mark.timeout(120)


@pytest.mark.websocket_door
async def test_a_websocket_is_admitted_listed_counted_and_freed(
    admin: httpx.AsyncClient, app_url: str
) -> None:
    connection_id = new_connection_id()
    async with started(app_url, connection_id) as socket:
        await socket.send(SILENCE)
        await wait_for_count(admin, 1)
        assert await listed(admin) == {connection_id: "websocket"}
        state = (await admin.get(f"/connections/{connection_id}")).json()["state"]
        assert state == "connected"
        metrics = (await admin.get("/metrics")).text
        assert metric(metrics, 'app_connections_total{source="websocket"}') >= 1
    await wait_for_count(admin, 0, within=2)


@pytest.mark.websocket_door
async def test_one_socket_carries_one_connection(admin: httpx.AsyncClient, app_url: str) -> None:
    # Defect: several starts on one socket were each accepted, and only the last id freed,
    # so one socket filled the limit for good.
    first = new_connection_id()
    async with started(app_url, first) as socket:
        for _ in range(LIMIT):
            await socket.send(start(new_connection_id()))
        assert await closing_code(socket) == POLICY_VIOLATION
    await wait_for_count(admin, 0, within=2)
    # Its first id is gone with it: closing it answered 500 when it was left behind.
    assert (await admin.delete(f"/connections/{first}")).status_code == 404
    peer = await connect(admin, Door.API, speech=SPEECH, **MEDIA)
    await peer.close()


@pytest.mark.websocket_door
@pytest.mark.parametrize(
    "connection_id",
    ["../../etc/passwd", "\N{GRINNING FACE}", "x" * 20_000, "", "a b"],
    ids=["path", "emoji", "long", "empty", "space"],
)
async def test_websocket_ids_are_validated(
    admin: httpx.AsyncClient, app_url: str, connection_id: str
) -> None:
    async with started(app_url, connection_id) as socket:
        assert await refusal_of(socket) == "invalid_connection_id"
        assert await closing_code(socket) == POLICY_VIOLATION
    assert await listed(admin) == {}


@pytest.mark.websocket_door
@pytest.mark.parametrize(
    "message",
    ["not json", json.dumps({"no": "event"}), json.dumps({"event": "media"}), SILENCE],
    ids=["not-json", "no-event", "media-without-payload", "media-before-start"],
)
async def test_a_message_the_door_cannot_read_closes_the_socket(
    admin: httpx.AsyncClient, app_url: str, message: str
) -> None:
    async with websocket_connect(websocket_url(app_url)) as socket:
        await socket.send(message)
        assert await closing_code(socket) in (1007, POLICY_VIOLATION)
    assert await listed(admin) == {}
    assert (await admin.get("/health")).status_code == 200


@pytest.mark.websocket_door
async def test_deleting_a_websocket_connection_closes_its_socket(
    admin: httpx.AsyncClient, app_url: str
) -> None:
    # Defect: DELETE of a websocket connection answered 500.
    async with started(app_url, connection_id := new_connection_id()) as socket:
        await wait_for_count(admin, 1)
        response = await admin.delete(f"/connections/{connection_id}")
        assert response.status_code == 204, response.text
        assert await closing_code(socket) is not None
    assert await listed(admin) == {}


@pytest.mark.websocket_door
async def test_a_websocket_cannot_take_a_live_peer_s_id(
    admin: httpx.AsyncClient, app_url: str
) -> None:
    # Defect: the socket took the API peer's id; when it closed, the peer vanished from the
    # listing and the limit while it kept streaming.
    peer = await connect(admin, Door.API, speech=SPEECH, **MEDIA)
    try:
        await peer.wait_connected()
        async with started(app_url, peer.connection_id) as socket:
            assert await refusal_of(socket) == "connection_already_exists"
        await asyncio.sleep(0.5)
        assert await listed(admin) == {peer.connection_id: "api"}
        assert (await admin.get(f"/connections/{peer.connection_id}")).status_code == 200
    finally:
        await peer.close()


@pytest.mark.websocket_door
async def test_a_websocket_counts_against_the_one_limit(
    admin: httpx.AsyncClient, app_url: str
) -> None:
    peers = [await connect(admin, DOORS[-1], speech=SPEECH, **MEDIA) for _ in range(LIMIT)]
    try:
        async with websocket_connect(websocket_url(app_url)) as socket:
            await socket.send(start(new_connection_id()))
            assert await refusal_of(socket) == "concurrency_limit_reached"
        assert await count(admin) == LIMIT
    finally:
        for peer in peers:
            await peer.close()


async def test_the_websocket_door_is_mounted_where_fastrtc_s_can_carry_the_media(
    app_url: str,
) -> None:
    if WEBSOCKET:
        async with websocket_connect(websocket_url(app_url)) as socket:
            await socket.send(json.dumps({"event": "ping"}))
            assert json.loads(await socket.recv()) == {"event": "pong"}
        return
    with pytest.raises(InvalidStatus):
        async with websocket_connect(websocket_url(app_url)):
            pass


# -- the telephone doors -------------------------------------------------------------------


@pytest.mark.websocket_door
async def test_a_socket_that_ends_before_its_start_leaves_no_error(
    app_url: str, doors_log: Path
) -> None:
    # Defect: fastrtc's handler read a start-up task that only a start makes, so every socket
    # refused or gone before its start logged an exception of the ASGI application.
    for message in (b"binary", "not json", SILENCE):
        async with websocket_connect(websocket_url(app_url)) as socket:
            await socket.send(message)
            assert await closing_code(socket) is not None
    async with websocket_connect(websocket_url(app_url)):
        pass  # gone without a word
    await asyncio.sleep(1)  # for the server to finish with them
    assert "Exception in ASGI application" not in await asyncio.to_thread(doors_log.read_text)
