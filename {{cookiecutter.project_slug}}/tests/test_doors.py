"""Every door of the app, tried as an attacker would, against the app as users run it.

fastrtc mounts more doors than its HTTP offer route and the Gradio UI: a websocket door,
telephone doors and Gradio's own queue API. Each test names the defect it guards against:
whatever the door, a connection goes through the layer's one admission (a valid id, one id
space, one limit), is listed, and is freed when it ends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websocket_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from {{ cookiecutter.package_name }}.client import (
    Door,
    OfferRefused,
    Peer,
    connect,
    new_connection_id,
    ui_component_id,
    wait_until,
)
from {{ cookiecutter.package_name }}.services.streams import (
    MAX_MEDIA_SECTIONS,
    MAX_SDP_BYTES,
    WEBSOCKET_PATH,
)

from .conftest import DOORS, MEDIA, SPEECH, WEBSOCKET, listen, queue_messages, serve

LIMIT = 4
TOKEN = "doors-admin-token"
PEER_TIMEOUT = 2.0
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
POLICY_VIOLATION = 1008


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app with a small limit, the admin token set and a short peer timeout."""
    log = tmp_path_factory.mktemp("doors") / "server.log"
    with serve(
        log,
        APP_CONCURRENCY_LIMIT=str(LIMIT),
        APP_ADMIN_TOKEN=TOKEN,
        APP_PEER_TIMEOUT=str(PEER_TIMEOUT),
    ) as base:
        yield base


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the server; what a test leaves open is closed after it."""
    async with httpx.AsyncClient(base_url=server, timeout=20, headers=ADMIN) as client:
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


pytestmark = pytest.mark.timeout(120)


# -- the websocket door --------------------------------------------------------------------


@pytest.mark.websocket_door
async def test_a_websocket_is_admitted_listed_counted_and_freed(
    http: httpx.AsyncClient, server: str
) -> None:
    connection_id = new_connection_id()
    async with websocket_connect(websocket_url(server)) as socket:
        await socket.send(start(connection_id))
        await socket.send(SILENCE)
        await wait_for_count(http, 1)
        assert await listed(http) == {connection_id: "websocket"}
        state = (await http.get(f"/connections/{connection_id}")).json()["state"]
        assert state == "connected"
        metrics = (await http.get("/metrics")).text
        assert metric(metrics, 'app_connections_total{source="websocket"}') >= 1
    await wait_for_count(http, 0, within=2)


@pytest.mark.websocket_door
async def test_one_socket_carries_one_connection(http: httpx.AsyncClient, server: str) -> None:
    # Defect: several starts on one socket were each accepted, and only the last id freed,
    # so one socket filled the limit for good.
    first = new_connection_id()
    async with websocket_connect(websocket_url(server)) as socket:
        await socket.send(start(first))
        for _ in range(LIMIT):
            await socket.send(start(new_connection_id()))
        assert await closing_code(socket) == POLICY_VIOLATION
    await wait_for_count(http, 0, within=2)
    # Its first id is gone with it: closing it answered 500 when it was left behind.
    assert (await http.delete(f"/connections/{first}")).status_code == 404
    peer = await connect(http, Door.API, speech=SPEECH, **MEDIA)
    await peer.close()


@pytest.mark.websocket_door
@pytest.mark.parametrize(
    "connection_id",
    ["../../etc/passwd", "\N{GRINNING FACE}", "x" * 20_000, "", "a b"],
    ids=["path", "emoji", "long", "empty", "space"],
)
async def test_websocket_ids_are_validated(
    http: httpx.AsyncClient, server: str, connection_id: str
) -> None:
    async with websocket_connect(websocket_url(server)) as socket:
        await socket.send(start(connection_id))
        assert await refusal_of(socket) == "invalid_connection_id"
        assert await closing_code(socket) == POLICY_VIOLATION
    assert await listed(http) == {}


@pytest.mark.websocket_door
@pytest.mark.parametrize(
    "message",
    ["not json", json.dumps({"no": "event"}), json.dumps({"event": "media"}), SILENCE],
    ids=["not-json", "no-event", "media-without-payload", "media-before-start"],
)
async def test_a_message_the_door_cannot_read_closes_the_socket(
    http: httpx.AsyncClient, server: str, message: str
) -> None:
    async with websocket_connect(websocket_url(server)) as socket:
        await socket.send(message)
        assert await closing_code(socket) in (1007, POLICY_VIOLATION)
    assert await listed(http) == {}
    assert (await http.get("/health")).status_code == 200


@pytest.mark.websocket_door
async def test_deleting_a_websocket_connection_closes_its_socket(
    http: httpx.AsyncClient, server: str
) -> None:
    # Defect: DELETE of a websocket connection answered 500.
    connection_id = new_connection_id()
    async with websocket_connect(websocket_url(server)) as socket:
        await socket.send(start(connection_id))
        await wait_for_count(http, 1)
        response = await http.delete(f"/connections/{connection_id}")
        assert response.status_code == 204, response.text
        assert await closing_code(socket) is not None
    assert await listed(http) == {}


@pytest.mark.websocket_door
async def test_a_websocket_cannot_take_a_live_peer_s_id(
    http: httpx.AsyncClient, server: str
) -> None:
    # Defect: the socket took the API peer's id; when it closed, the peer vanished from the
    # listing and the limit while it kept streaming.
    peer = await connect(http, Door.API, speech=SPEECH, **MEDIA)
    try:
        await peer.wait_connected()
        async with websocket_connect(websocket_url(server)) as socket:
            await socket.send(start(peer.connection_id))
            assert await refusal_of(socket) == "connection_already_exists"
        await asyncio.sleep(0.5)
        assert await listed(http) == {peer.connection_id: "api"}
        assert (await http.get(f"/connections/{peer.connection_id}")).status_code == 200
    finally:
        await peer.close()


@pytest.mark.websocket_door
async def test_a_websocket_counts_against_the_one_limit(
    http: httpx.AsyncClient, server: str
) -> None:
    peers = [await connect(http, DOORS[-1], speech=SPEECH, **MEDIA) for _ in range(LIMIT)]
    try:
        async with websocket_connect(websocket_url(server)) as socket:
            await socket.send(start(new_connection_id()))
            assert await refusal_of(socket) == "concurrency_limit_reached"
        assert await count(http) == LIMIT
    finally:
        for peer in peers:
            await peer.close()


async def test_the_websocket_door_is_mounted_where_fastrtc_s_can_carry_the_media(
    server: str,
) -> None:
    if WEBSOCKET:
        async with websocket_connect(websocket_url(server)) as socket:
            await socket.send(json.dumps({"event": "ping"}))
            assert json.loads(await socket.recv()) == {"event": "pong"}
        return
    with pytest.raises(InvalidStatus):
        async with websocket_connect(websocket_url(server)):
            pass


# -- the telephone doors -------------------------------------------------------------------


async def test_the_telephone_doors_are_not_mounted(http: httpx.AsyncClient, server: str) -> None:
    # Defect: they were mounted, ungated and outside the limit; one answered a plain 500.
    incoming = await http.post("/telephone/incoming", content=b"CallSid=x")
    assert incoming.status_code == 404
    assert incoming.json()["error"] == "not_found"
    with pytest.raises(InvalidStatus):
        async with websocket_connect(websocket_url(server, "/telephone/handler")):
            pass


# -- Gradio's own API -------------------------------------------------------------------


@pytest.mark.ui_door
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/ui/gradio_api/run/predict"),
        ("POST", "/ui/gradio_api/call/predict"),
        ("POST", "/ui/gradio_api/upload"),
        ("POST", "/ui/gradio_api/stream/0/close"),
        ("GET", "/ui/gradio_api/proxy=http://127.0.0.1/"),
        ("POST", "/ui/gradio_api/vibe-code"),
    ],
)
async def test_gradio_routes_the_page_does_not_use_are_not_mounted(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    # Defect: each was a door around the layer (one answered 500 on any body).
    response = await http.request(method, path, json={"data": []})
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"


@pytest.mark.ui_door
async def test_gradio_s_websocket_route_is_not_mounted(server: str) -> None:
    with pytest.raises(InvalidStatus):
        async with websocket_connect(websocket_url(server, "/ui/gradio_api/stream/0")):
            pass


# -- offers that cost the server more than a peer needs ------------------------------------

SECTIONS = 2 * MAX_MEDIA_SECTIONS


def with_many_sections(sdp: str, count: int) -> str:
    """The offer with its first media section repeated ``count`` times, bundled."""
    head, *sections = sdp.split("\r\nm=")
    first = "m=" + sections[0]
    copies = [first.replace("a=mid:0", f"a=mid:{n}") for n in range(count)]
    head = head.replace("a=group:BUNDLE", "a=group:BUNDLE " + " ".join(map(str, range(count))))
    return "\r\n".join([head, *copies]) + "\r\n"


@pytest.mark.parametrize("door", DOORS)
async def test_an_offer_with_many_media_sections_is_refused_at_once(
    http: httpx.AsyncClient, door: Door
) -> None:
    # Defect: 3,000 bundled audio sections through the UI door took 7.4 s of the event loop.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for kind in ("audio", "video"):
        if MEDIA[kind]:
            pc.addTransceiver(kind, direction=MEDIA["direction"])
    await pc.setLocalDescription(await pc.createOffer())
    sdp = with_many_sections(pc.localDescription.sdp, SECTIONS)
    await pc.close()
    assert len(sdp) < MAX_SDP_BYTES  # within the size bound: refused for its sections
    offer = {"type": "offer", "sdp": sdp, "webrtc_id": new_connection_id()}

    async with asyncio.timeout(1):
        if door is Door.API:
            reply = (await http.post("/webrtc/offer", json=offer)).json()
        else:
            body = {
                "data": offer,
                "component_id": await ui_component_id(http),
                "fn_name": "offer",
                "session_hash": secrets.token_hex(8),
            }
            reply = (await http.post("/ui/gradio_api/component_server/", json=body)).json()
    assert OfferRefused(0, reply).reason == "invalid_offer", reply
    assert await count(http) == 0


# -- a peer that never connects ----------------------------------------------------------


async def test_a_peer_that_never_connects_is_freed_after_the_peer_timeout(
    http: httpx.AsyncClient,
) -> None:
    # Defect: its slot was held for fastrtc's fixed 30 s.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("text")
    for kind in ("audio", "video"):
        if MEDIA[kind]:
            pc.addTransceiver(kind, direction=MEDIA["direction"])
    await pc.setLocalDescription(await pc.createOffer())
    offer = {"type": "offer", "sdp": pc.localDescription.sdp, "webrtc_id": new_connection_id()}
    await pc.close()  # the answer is never applied: nothing answers the server's checks
    response = await http.post("/webrtc/offer", json=offer)
    assert response.status_code == 200, response.text
    assert await count(http) == 1
    await wait_for_count(http, 0, within=PEER_TIMEOUT + 2)


# -- Gradio's queue API --------------------------------------------------------------------


async def queue_message(http: httpx.AsyncClient, session: str, kind: str, count: int = 1) -> None:
    """Wait, 10 s at most, until the session's queue stream has sent ``count`` of ``kind``."""
    seen = 0
    async with asyncio.timeout(10):
        async for message in queue_messages(http, session):
            seen += message.get("msg") == kind
            if seen == count:
                return
    raise AssertionError(f"the queue stream ended after {seen} of {count} {kind!r}")


@pytest.mark.ui_door
async def test_output_listeners_for_no_live_connection_end_at_once(
    http: httpx.AsyncClient,
) -> None:
    # Defect: each looped forever in fastrtc's output_stream, holding one of the listener's
    # slots, so real pages got no outputs long after the attacker left.
    closed = await connect(http, Door.UI, speech=SPEECH, **MEDIA)
    await closed.wait_connected()
    await closed.close()
    await wait_for_count(http, 0)
    session = secrets.token_hex(8)
    bogus = [closed.connection_id] + [f"bogus-{n}" for n in range(2 * LIMIT)] + ["x" * 5000]
    for connection_id in bogus:
        await listen(http, connection_id, session)
    await queue_message(http, session, "process_completed", count=len(bogus))

    peer = await connect(http, Door.UI, speech=SPEECH, **MEDIA)
    try:
        await peer.wait_connected()
        page = secrets.token_hex(8)
        await listen(http, peer.connection_id, page)
        await queue_message(http, page, "process_generating")
    finally:
        await peer.close()
    metrics = (await http.get("/metrics")).text
    assert 'app_registry_entries{registry="ui.additional_outputs"} 0.0' in metrics


# -- the server closing a connection -------------------------------------------------------


@pytest.mark.ui_door
async def test_a_page_is_told_when_the_server_closes_its_connection(
    http: httpx.AsyncClient,
) -> None:
    # Defect: the page kept showing its connection live for seconds after a DELETE.
    peer = await connect(http, Door.UI, speech=SPEECH, **MEDIA)
    await peer.wait_connected()
    await wait_until(lambda: peer.messages, within=10)  # its data channel is open
    assert (await http.delete(f"/connections/{peer.connection_id}")).status_code == 204

    def told() -> bool:
        messages = [m for m in peer.messages if isinstance(m, str) and m.startswith("{")]
        return any(json.loads(m).get("type") == "update_connection" for m in messages)

    await wait_until(told, within=2)
    await peer.close()


# -- every door at once --------------------------------------------------------------------

ROUNDS = 5
OFFERS = 30


async def offer_through(
    http: httpx.AsyncClient, server: str, door: str, connection_id: str
) -> bool:
    """Whether an offer (or a websocket start) with this id was admitted; its peer stays open."""
    if door == "websocket":
        socket = await websocket_connect(websocket_url(server))
        await socket.send(start(connection_id))
        try:
            async with asyncio.timeout(1.5):
                message = json.loads(await socket.recv())
            await socket.close()
            assert message.get("status") == "failed", message
            return False
        except TimeoutError:
            SOCKETS.append(socket)
            return True
        except ConnectionClosed:
            return False
    try:
        PEERS.append(
            await connect(http, Door(door), connection_id=connection_id, speech=SPEECH, **MEDIA)
        )
    except OfferRefused as refused:
        REFUSALS.append(refused.reason)
        return False
    return True


PEERS: list[Peer] = []
SOCKETS: list[ClientConnection] = []
REFUSALS: list[str] = []


async def test_racing_offers_through_every_door_never_pass_the_limit_nor_share_an_id(
    http: httpx.AsyncClient, server: str
) -> None:
    doors = [door.value for door in DOORS] + (["websocket"] if WEBSOCKET else [])
    for _ in range(ROUNDS):
        ids = [new_connection_id() for _ in range(OFFERS // 2)]
        attempts = [(doors[n % len(doors)], ids[n % len(ids)]) for n in range(OFFERS)]
        try:
            admitted = await asyncio.gather(
                *(offer_through(http, server, door, cid) for door, cid in attempts)
            )
            taken = [cid for (_, cid), ok in zip(attempts, admitted, strict=True) if ok]
            assert len(taken) <= LIMIT, taken
            assert len(set(taken)) == len(taken), taken
            assert set(REFUSALS) <= {"concurrency_limit_reached", "connection_already_exists"}
            now = await listed(http)
            assert len(now) <= LIMIT
            assert set(now) == set(taken)
        finally:
            for peer in PEERS:
                await peer.close()
            for socket in SOCKETS:
                await socket.close()
            PEERS.clear()
            SOCKETS.clear()
            REFUSALS.clear()
        await wait_for_count(http, 0)
