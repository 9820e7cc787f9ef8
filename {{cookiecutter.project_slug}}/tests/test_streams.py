"""The layer: API-path and UI-path connections through the same functions, with real peers."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aioice import stun

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.client import Door, OfferRefused, connect, wait_until
from {{ cookiecutter.package_name }}.handlers.io import Input
from {{ cookiecutter.package_name }}.media import AppStreams
from {{ cookiecutter.package_name }}.services.streams import (
    ConnectionInfo,
    ConnectionNotReadyError,
    ResponseNotSupportedError,
    Source,
    UnknownConnectionError,
)
from {{ cookiecutter.package_name }}.settings import IceServer, Settings

from .conftest import CLIENT_SENDS, DOORS, MEDIA, NO_MEDIA, SERVER_CLOSED, Connect, next_stats


async def test_every_door_is_listed_with_its_source(streams: AppStreams, peer: Connect) -> None:
    clients = {door: await peer(door) for door in DOORS}
    # The client can see "connected" a moment before the server does.
    await wait_until(lambda: {c.state for c in streams.list_connections()} == {"connected"})

    listed = {c.id: c for c in streams.list_connections()}

    assert listed == {
        client.connection_id: ConnectionInfo(
            id=client.connection_id, source=Source(door.value), state="connected"
        )
        for door, client in clients.items()
    }
    for door, client in clients.items():
        assert streams.get(client.connection_id).source == Source(door.value)
    assert len(streams) == len(DOORS)


@pytest.mark.parametrize("door", DOORS)
async def test_the_media_starts_at_once(streams: AppStreams, peer: Connect, door: Door) -> None:
    client = await peer(door)  # it never sets an input: the handler runs on the defaults

    stats = await next_stats(streams, client.connection_id)

    assert stats.frames > 0
    assert stats.gain == Input().gain
    assert stats.level_dbfs > -30  # the media (a tone or bright images), not silence


@pytest.mark.parametrize("door", DOORS)
async def test_input_reaches_the_handler(streams: AppStreams, peer: Connect, door: Door) -> None:
    client = await peer(door)
    await next_stats(streams, client.connection_id, gain=1.0)

    streams.set_input(client.connection_id, Input(gain=0.0))

    stats = await next_stats(streams, client.connection_id, gain=0.0)
    assert stats.level_dbfs == -120.0
    streams.set_input(client.connection_id, Input(gain=2.0))  # and every later change too
    assert (await next_stats(streams, client.connection_id, gain=2.0)).level_dbfs > -30


@pytest.mark.parametrize("door", DOORS)
async def test_outputs_stream_to_every_subscriber_and_end_on_close(
    streams: AppStreams, peer: Connect, door: Door
) -> None:
    client = await peer(door)
    first = streams.subscribe(client.connection_id)
    second = streams.subscribe(client.connection_id)

    async with asyncio.timeout(10):
        a = await anext(aiter(first))
        b = await anext(aiter(second))
    assert a.frames == b.frames > 0
    latest = streams.latest_output(client.connection_id)
    assert latest is not None

    await streams.close(client.connection_id)

    async with asyncio.timeout(5):
        rest = [item async for item in first]
    assert all(s.frames > 0 for s in rest)


@pytest.mark.parametrize("door", DOORS)
async def test_close_removes_it_everywhere(streams: AppStreams, peer: Connect, door: Door) -> None:
    client = await peer(door)

    await streams.close(client.connection_id)

    assert client.connection_id not in streams
    assert streams.list_connections() == []
    with pytest.raises(UnknownConnectionError):
        streams.get(client.connection_id)
    await wait_until(lambda: client.state in SERVER_CLOSED, within=15)


@pytest.mark.parametrize("door", DOORS)
async def test_client_closing_removes_it(streams: AppStreams, peer: Connect, door: Door) -> None:
    client = await peer(door)

    await client.close()

    await wait_until(lambda: client.connection_id not in streams, within=5)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("closer", ["client", "server"])
async def test_a_closed_connection_leaves_no_task_running(
    streams: AppStreams, peer: Connect, door: Door, closer: str
) -> None:
    """Nothing of a connection runs on once it is closed: a task left waiting on the handler
    would keep the handler, its track and the whole peer connection in memory."""
    before = asyncio.all_tasks()
    client = await peer(door)
    await next_stats(streams, client.connection_id)  # its media flows

    if closer == "client":
        await client.close()
    else:
        await streams.close(client.connection_id)
        await client.close()

    await wait_until(lambda: client.connection_id not in streams, within=5)
    await wait_until(lambda: not asyncio.all_tasks() - before, within=5)


@pytest.mark.parametrize("door", DOORS)
async def test_a_connection_closed_before_its_media_leaves_no_task_running(
    streams: AppStreams, http: httpx.AsyncClient, door: Door
) -> None:
    before = asyncio.all_tasks()
    if not CLIENT_SENDS:
        # The app makes the media: an offer that does not ask for it is refused, leaving nothing.
        with pytest.raises(OfferRefused):
            await connect(http, door, **NO_MEDIA)
        await wait_until(lambda: not asyncio.all_tasks() - before, within=5)
        return
    client = await connect(http, door, **NO_MEDIA)  # a data channel and no media track
    try:
        await client.wait_connected()
        # fastrtc starts waiting for a media track as soon as it registers the data channel
        await wait_until(lambda: streams.registry_sizes()[f"{door.value}.data_channels"] == 1)
    finally:
        await client.close()

    await wait_until(lambda: client.connection_id not in streams, within=5)
    await wait_until(lambda: not asyncio.all_tasks() - before, within=5)


async def test_unknown_ids_raise_and_create_nothing(streams: AppStreams) -> None:
    for call in (
        lambda: streams.get("nope"),
        lambda: streams.set_input("nope", Input(gain=1.0)),
        lambda: streams.latest_output("nope"),
        lambda: streams.subscribe("nope"),
    ):
        with pytest.raises(UnknownConnectionError) as caught:
            call()
        assert caught.value.connection_id == "nope"
    with pytest.raises(UnknownConnectionError):
        await streams.close("nope")
    with pytest.raises(UnknownConnectionError):
        await streams.trigger_response("nope")
    assert "nope" not in streams
    assert streams.list_connections() == []


async def test_trigger_response_needs_a_pause_detecting_handler(
    streams: AppStreams, peer: Connect
) -> None:
    client = await peer(DOORS[-1])
    with pytest.raises(ResponseNotSupportedError):
        await streams.trigger_response(client.connection_id)


async def test_one_concurrency_limit_for_both_doors(
    streams: AppStreams, peer: Connect, http: httpx.AsyncClient, settings: Settings
) -> None:
    assert settings.concurrency_limit == 4
    for n in range(4):
        await peer(DOORS[n % len(DOORS)])

    for door in DOORS:
        with pytest.raises(OfferRefused) as refused:
            await connect(http, door)
        assert refused.value.reason == "concurrency_limit_reached"
        assert refused.value.status_code == (429 if door is Door.API else 200)
        reply = refused.value.reply
        assert (reply if door is Door.API else reply["meta"])["limit"] == 4
    assert len(streams) == 4


@pytest.mark.parametrize(("first", "second"), [(a, b) for a in DOORS for b in DOORS])
async def test_an_id_is_taken_once_whatever_the_door(
    streams: AppStreams,
    peer: Connect,
    http: httpx.AsyncClient,
    first: Door,
    second: Door,
) -> None:
    taken = await peer(first)

    with pytest.raises(OfferRefused) as refused:
        await connect(http, second, connection_id=taken.connection_id)

    assert refused.value.reason == "connection_already_exists"
    assert streams.get(taken.connection_id).source == Source(first.value)


async def test_input_before_media(
    streams: AppStreams, peer: Connect, http: httpx.AsyncClient
) -> None:
    if not CLIENT_SENDS:
        # The app makes the media: an offer that does not ask for it is refused.
        for door in DOORS:
            with pytest.raises(OfferRefused) as refused:
                await connect(http, door, **NO_MEDIA)
            assert refused.value.reason == "invalid_offer"
        assert streams.list_connections() == []
        return
    client = await peer(DOORS[-1], **NO_MEDIA)

    # The handler starts with the client's first track: there is nothing to give it to.
    with pytest.raises(ConnectionNotReadyError):
        streams.set_input(client.connection_id, Input(gain=1.0))
    assert streams.latest_output(client.connection_id) is None


class StunServer(asyncio.DatagramProtocol):
    """Answers STUN binding requests on 127.0.0.1 and counts them."""

    def __init__(self) -> None:
        self.requests = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = stun.parse_message(data)
        if request.message_method != stun.Method.BINDING:
            return
        self.requests += 1
        response = stun.Message(
            stun.Method.BINDING,
            stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
            attributes={"XOR-MAPPED-ADDRESS": addr},
        )
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)


async def test_server_ice_configuration_applies_to_both_doors() -> None:
    loop = asyncio.get_running_loop()
    transport, stun_server = await loop.create_datagram_endpoint(
        StunServer, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, ice_servers=[IceServer(urls=f"stun:127.0.0.1:{port}")]
    )
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://app"
        ) as http:
            for door in DOORS:
                before = stun_server.requests
                client = await connect(http, door, **MEDIA)
                await client.close()
                assert stun_server.requests > before, f"{door} peer did not use the STUN server"
    finally:
        await app.state.streams.close_all()
        transport.close()
