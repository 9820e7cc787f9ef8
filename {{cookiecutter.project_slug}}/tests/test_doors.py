"""Every door of the app, tried as an attacker would, against the app as users run it.

fastrtc mounts more doors than its HTTP offer route and the Gradio UI: a websocket door,
telephone doors and Gradio's own queue API. Each test names the defect it guards against:
whatever the door, a connection goes through the layer's one admission (a valid id, one id
space, one limit), is listed, and is freed when it ends.
"""

from __future__ import annotations

import asyncio
import json
import secrets

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
)

from .conftest import DOORS, MEDIA, SPEECH, WEBSOCKET, listen, queue_messages
from .doors_support import (
    LIMIT,
    PEER_TIMEOUT,
    connected_page,
    count,
    listed,
    start,
    wait_for_count,
    websocket_url,
)

pytestmark = pytest.mark.timeout(120)


async def test_the_telephone_doors_are_not_mounted(admin: httpx.AsyncClient, app_url: str) -> None:
    # Defect: they were mounted, ungated and outside the limit; one answered a plain 500.
    incoming = await admin.post("/telephone/incoming", content=b"CallSid=x")
    assert incoming.status_code == 404
    assert incoming.json()["error"] == "not_found"
    with pytest.raises(InvalidStatus):
        async with websocket_connect(websocket_url(app_url, "/telephone/handler")):
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
    admin: httpx.AsyncClient, method: str, path: str
) -> None:
    # Defect: each was a door around the layer (one answered 500 on any body).
    response = await admin.request(method, path, json={"data": []})
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"


@pytest.mark.ui_door
async def test_gradio_s_websocket_route_is_not_mounted(app_url: str) -> None:
    with pytest.raises(InvalidStatus):
        async with websocket_connect(websocket_url(app_url, "/ui/gradio_api/stream/0")):
            pass


# -- offers that cost the app_url more than a peer needs ------------------------------------

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
    admin: httpx.AsyncClient, door: Door
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
            reply = (await admin.post("/webrtc/offer", json=offer)).json()
        else:
            body = {
                "data": offer,
                "component_id": await ui_component_id(admin),
                "fn_name": "offer",
                "session_hash": secrets.token_hex(8),
            }
            reply = (await admin.post("/ui/gradio_api/component_server/", json=body)).json()
    assert OfferRefused(0, reply).reason == "invalid_offer", reply
    assert await count(admin) == 0


# -- a peer that never connects ----------------------------------------------------------


async def test_a_peer_that_never_connects_is_freed_after_the_peer_timeout(
    admin: httpx.AsyncClient,
) -> None:
    # Defect: its slot was held for fastrtc's fixed 30 s.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("text")
    for kind in ("audio", "video"):
        if MEDIA[kind]:
            pc.addTransceiver(kind, direction=MEDIA["direction"])
    await pc.setLocalDescription(await pc.createOffer())
    offer = {"type": "offer", "sdp": pc.localDescription.sdp, "webrtc_id": new_connection_id()}
    await pc.close()  # the answer is never applied: nothing answers the app_url's checks
    response = await admin.post("/webrtc/offer", json=offer)
    assert response.status_code == 200, response.text
    assert await count(admin) == 1
    await wait_for_count(admin, 0, within=PEER_TIMEOUT + 2)


# -- Gradio's queue API --------------------------------------------------------------------


async def queue_message(admin: httpx.AsyncClient, session: str, kind: str, count: int = 1) -> None:
    """Wait, 30 s at most, until the session's queue stream has sent ``count`` of ``kind``."""
    seen = 0
    async with asyncio.timeout(30):
        async for message in queue_messages(admin, session):
            seen += message.get("msg") == kind
            if seen == count:
                return
    raise AssertionError(f"the queue stream ended after {seen} of {count} {kind!r}")


@pytest.mark.ui_door
async def test_output_listeners_for_no_live_connection_end_at_once(
    admin: httpx.AsyncClient,
) -> None:
    # Defect: each looped forever in fastrtc's output_stream, holding one of the listener's
    # slots, so real pages got no outputs long after the attacker left.
    closed = await connected_page(admin)
    await closed.close()
    await wait_for_count(admin, 0)
    session = secrets.token_hex(8)
    bogus = [closed.connection_id] + [f"bogus-{n}" for n in range(2 * LIMIT)] + ["x" * 5000]
    for connection_id in bogus:
        await listen(admin, connection_id, session)
    await queue_message(admin, session, "process_completed", count=len(bogus))

    peer = await connect(admin, Door.UI, speech=SPEECH, **MEDIA)
    try:
        await peer.wait_connected()
        page = secrets.token_hex(8)
        await listen(admin, peer.connection_id, page)
        await queue_message(admin, page, "process_generating")
    finally:
        await peer.close()
    metrics = (await admin.get("/metrics")).text
    assert 'app_registry_entries{registry="ui.additional_outputs"} 0.0' in metrics


# -- the app_url closing a connection -------------------------------------------------------


@pytest.mark.ui_door
async def test_a_page_is_told_when_the_server_closes_its_connection(
    admin: httpx.AsyncClient,
) -> None:
    # Defect: the page kept showing its connection live for seconds after a DELETE.
    peer = await connected_page(admin)
    await wait_until(lambda: peer.messages, within=10)  # its data channel is open
    assert (await admin.delete(f"/connections/{peer.connection_id}")).status_code == 204

    def told() -> bool:
        messages = [m for m in peer.messages if isinstance(m, str) and m.startswith("{")]
        return any(json.loads(m).get("type") == "update_connection" for m in messages)

    await wait_until(told, within=2)
    await peer.close()


# -- every door at once --------------------------------------------------------------------

ROUNDS = 5
OFFERS = 30


async def offer_through(
    admin: httpx.AsyncClient, app_url: str, door: str, connection_id: str
) -> bool:
    """Whether an offer (or a websocket start) with this id was admitted; its peer stays open."""
    if door == "websocket":
        socket = await websocket_connect(websocket_url(app_url))
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
            await connect(admin, Door(door), connection_id=connection_id, speech=SPEECH, **MEDIA)
        )
    except OfferRefused as refused:
        REFUSALS.append(refused.reason)
        return False
    return True


PEERS: list[Peer] = []
SOCKETS: list[ClientConnection] = []
REFUSALS: list[str] = []


async def test_racing_offers_through_every_door_never_pass_the_limit_nor_share_an_id(
    admin: httpx.AsyncClient, app_url: str
) -> None:
    doors = [door.value for door in DOORS] + (["websocket"] if WEBSOCKET else [])
    for _ in range(ROUNDS):
        ids = [new_connection_id() for _ in range(OFFERS // 2)]
        # Each id twice at once, through two different doors (where the app has two).
        attempts = [
            (doors[(i + r) % len(doors)], connection_id)
            for r in range(2)
            for i, connection_id in enumerate(ids)
        ]
        assert len(attempts) == OFFERS
        try:
            admitted = await asyncio.gather(
                *(offer_through(admin, app_url, door, cid) for door, cid in attempts)
            )
            taken = [cid for (_, cid), ok in zip(attempts, admitted, strict=True) if ok]
            assert len(taken) <= LIMIT, taken
            assert len(set(taken)) == len(taken), taken
            assert set(REFUSALS) <= {"concurrency_limit_reached", "connection_already_exists"}
            now = await listed(admin)
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
        await wait_for_count(admin, 0)
