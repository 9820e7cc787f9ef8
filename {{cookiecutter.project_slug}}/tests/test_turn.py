{%- set echo = cookiecutter.__handler_module == "echo" -%}
{#- fastrtc's receive-mode page starts before its configuration comes: see the README's TURN relay #}
{%- set page = cookiecutter.include_ui and cookiecutter.__mode != "receive" -%}
"""Media through a real TURN relay (coturn, see ``turn_support.py``) with the credentials the
app mints: each peer's own and short-lived, checked by coturn against the shared secret, which
the app never shows anyone. Without TURN settings nothing changes: the other tests cover that.
"""

from __future__ import annotations

import asyncio
import json
{%- if page %}
import os
{%- endif %}
import re
import secrets
{%- if echo %}
import statistics
{%- endif %}
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aioice import stun
from aioice.ice import CandidatePair
from aioice.turn import create_turn_endpoint
from aiortc import RTCConfiguration, RTCPeerConnection
{%- if page %}
from playwright.async_api import async_playwright
{%- endif %}
from pydantic import SecretStr

from {{ cookiecutter.package_name }}.client import Door, Peer, connect{% if cookiecutter.include_ui %}, ui_component_id{% endif %}, wait_until
from {{ cookiecutter.package_name }}.ice import IceConfiguration, IceConfigurations, turn_password
{%- if echo %}
from {{ cookiecutter.package_name }}.loadtest_peer import EchoTimer, PulseTrack
{%- endif %}
from {{ cookiecutter.package_name }}.settings import Settings

from .conftest import (
{%- if not echo or page %}
    CLIENT_RECEIVES,
{%- endif %}
{%- if page %}
    CLIENT_SENDS,
{%- endif %}
    DOORS,
    MEDIA,
{%- if not echo %}
    SPEECH,
    first_output,
{%- endif %}
    serve,
)
{%- if page %}
from .test_browser import (
    CHROMIUM,
    FLAGS,
    KEEP_PEERS,
    MEDIA_PACKETS,
    no_connections,
    start_streaming,
)
{%- endif %}
from .turn_support import HOST, Coturn

EXPIRED_S = 60
"""How long ago the stale credential expired."""
CONNECT_WITHIN_S = 20.0
"""How long ICE may take through the relay."""
MEDIA_WITHIN_S = 15.0
"""How long the media may take to flow once connected."""
{%- if echo %}
ECHOES = 6
"""Echoed tone bursts to time (one every 0.5 s)."""
{%- else %}
FRAMES_BACK = 25
"""Frames that must come back through the relay."""
{%- endif %}
CANDIDATE_TYPE = re.compile(r"^a=candidate:.* typ (\w+)", re.MULTILINE)


@dataclass
class Served:
    """The app as users run it, with coturn as its TURN server."""

    url: str
    log: Path


@contextmanager
def serve_with(coturn: Coturn, directory: Path, **settings: str) -> Iterator[Served]:
    log = directory / "server.log"
    turn = {"APP_TURN_URLS": json.dumps([coturn.url]), "APP_TURN_SECRET": coturn.secret}
    with serve(log, **turn, **settings) as url:
        yield Served(url, log)


@pytest.fixture(scope="module")
def served(coturn: Coturn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Its peers free to take any path (the default policy)."""
    with serve_with(coturn, tmp_path_factory.mktemp("turn-all")) as server:
        yield server


@pytest.fixture(scope="module")
def relay_only(coturn: Coturn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``APP_ICE_TRANSPORT_POLICY=relay``, logging everything (debug)."""
    directory = tmp_path_factory.mktemp("turn-relay")
    policy = {"APP_ICE_TRANSPORT_POLICY": "relay", "APP_LOG_LEVEL": "debug"}
    with serve_with(coturn, directory, **policy) as server:
        yield server


class Relayed(asyncio.DatagramProtocol):
    """What a TURN allocation delivers to; notes when the allocation is gone."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def allocate(coturn: Coturn, username: str, password: str) -> tuple[str, int]:
    """Allocate a relay on coturn with the credential and delete it; the relayed address."""
    transport, relayed = await create_turn_endpoint(Relayed, coturn.address, username, password)
    address: tuple[str, int] = transport.get_extra_info("sockname")
    transport.close()
    async with asyncio.timeout(5):
        await relayed.closed
    return address


def credential(configuration: IceConfiguration) -> tuple[str, str]:
    """The username and password of the configuration's TURN server."""
    (server,) = [s for s in configuration.iceServers if s.username is not None]
    assert server.username is not None
    assert server.credential is not None
    return server.username, server.credential


async def test_coturn_takes_a_fresh_credential_and_refuses_a_stale_or_forged_one(
    coturn: Coturn,
) -> None:
    secret = SecretStr(coturn.secret)
    settings = Settings(_env_file=None, turn_urls=[coturn.url], turn_secret=secret)  # type: ignore[call-arg]
    long_ago = time.time() - settings.turn_ttl - EXPIRED_S
    fresh = credential(IceConfigurations(settings).for_peer("api"))
    stale = credential(IceConfigurations(settings, clock=lambda: long_ago).for_peer("api"))
    forged = fresh[0], turn_password(secrets.token_urlsafe(24), fresh[0])
    allocated, refused = coturn.allocations(), coturn.refusals()

    host, port = await allocate(coturn, *fresh)
    assert host == HOST
    assert port in coturn.relay_ports
    await wait_until(lambda: coturn.allocations() == allocated + 1, within=2)

    for username, password in (stale, forged):
        with pytest.raises(stun.TransactionFailed) as failed:
            await allocate(coturn, username, password)
        assert failed.value.response.error_code == 401
    await wait_until(lambda: coturn.refusals() == refused + 2, within=2)
    assert coturn.allocations() == allocated + 1


def selected_pair(pc: RTCPeerConnection) -> CandidatePair:
    """The candidate pair that carries an aiortc peer's media: aioice's nominated pair (of its
    one component: aiortc bundles every medium and multiplexes RTCP)."""
    assert pc.sctp is not None
    (pair,) = pc.sctp.transport.transport._connection._nominated.values()
    return pair


def candidate_types(sdp: str) -> set[str]:
    """The types of the candidates in ``sdp``: host, srflx, relay."""
    return set(CANDIDATE_TYPE.findall(sdp))


async def configuration_of(http: httpx.AsyncClient) -> IceConfiguration:
    """What the app gives an API client to connect with: ``GET /webrtc/configuration``."""
    response = await http.get("/webrtc/configuration")
    assert response.status_code == 200, response.text
    return IceConfiguration.model_validate(response.json())


@asynccontextmanager
async def streaming(
    http: httpx.AsyncClient, door: Door, configuration: RTCConfiguration
) -> AsyncIterator[Peer]:
    """A peer connected through ``door`` with ``configuration``, closed after: yielded once
    its media flows{% if echo %} and its echo is timed{% endif %}."""
{%- if echo %}
    track = PulseTrack()
    timer = EchoTimer(track)
    peer = await connect(
        http, door, configuration=configuration, track=track, on_frame=timer.on_frame, **MEDIA
    )
{%- else %}
    peer = await connect(http, door, configuration=configuration, speech=SPEECH, **MEDIA)
{%- endif %}
    try:
        await peer.wait_connected(within=CONNECT_WITHIN_S)
{%- if echo %}
        await wait_until(lambda: len(timer.round_trips) >= ECHOES, within=MEDIA_WITHIN_S)
        echo_ms = [1000 * seconds for seconds in timer.round_trips]
        print(
            f"{door} door through the relay: echo p50 {statistics.median(echo_ms):.0f} ms, "
            f"max {max(echo_ms):.0f} ms ({len(echo_ms)} bursts)"
        )
{%- else %}
        async with asyncio.timeout(MEDIA_WITHIN_S):
            event = await first_output(http, peer.connection_id, gain=1.0)
        assert event["level_dbfs"] > -30  # the media reached the handler: a tone or images
        if CLIENT_RECEIVES:
            await peer.wait_frames(FRAMES_BACK, within=MEDIA_WITHIN_S)
{%- endif %}
        yield peer
    finally:
        await peer.close()


async def test_an_api_client_forced_to_relay_streams_through_coturn(
    coturn: Coturn, served: Served
) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        offered = await configuration_of(http)
        assert offered.iceTransportPolicy == "all"
        relay = offered.model_copy(update={"iceTransportPolicy": "relay"})
        allocated = coturn.allocations()

        async with streaming(http, Door.API, relay.to_aiortc()) as peer:
            assert candidate_types(peer.pc.localDescription.sdp) == {"relay"}
            local = selected_pair(peer.pc).local_candidate
            assert local.type == "relay", selected_pair(peer.pc)
            assert (local.host, local.port in coturn.relay_ports) == (HOST, True)

    assert coturn.allocations() > allocated
    print(f"coturn allocations: {coturn.allocations() - allocated}")


@pytest.mark.parametrize("door", DOORS)
async def test_with_the_relay_policy_the_server_s_peer_streams_through_coturn_too(
    coturn: Coturn, relay_only: Served, door: Door
) -> None:
    async with httpx.AsyncClient(base_url=relay_only.url, timeout=10) as http:
        configuration = await configuration_of(http)
        assert configuration.iceTransportPolicy == "relay"
        allocated = coturn.allocations()

        async with streaming(http, door, configuration.to_aiortc()) as peer:
            assert candidate_types(peer.pc.remoteDescription.sdp) == {"relay"}  # the server's
            pair = selected_pair(peer.pc)
            assert (pair.local_candidate.type, pair.remote_candidate.type) == ("relay", "relay")

    assert coturn.allocations() >= allocated + 2  # the client's and the server's
    print(f"coturn allocations: {coturn.allocations() - allocated}")
{%- if page %}


# The page's connected peer: its configuration's policy, and its selected candidate pair's
# candidate types and round trip (s; none until a connectivity check has been answered).
PAGE_PAIR = """async () => {
  const pc = window.__peers.find((p) => p.connectionState === "connected");
  if (!pc) return null;
  const stats = new Map();
  (await pc.getStats()).forEach((r) => stats.set(r.id, r));
  const transport = [...stats.values()].find((r) => r.type === "transport");
  const pair = transport && stats.get(transport.selectedCandidatePairId);
  if (!pair) return null;
  return {
    policy: pc.getConfiguration().iceTransportPolicy,
    local: stats.get(pair.localCandidateId).candidateType,
    remote: stats.get(pair.remoteCandidateId).candidateType,
    rtt: pair.currentRoundTripTime ?? null,
  };
}"""


@pytest.mark.browser
@pytest.mark.ui_door
@pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK) and os.environ.get("REQUIRE_BROWSER") != "1",
    reason=f"no Chromium at {CHROMIUM}: install it with 'sudo apt-get install chromium'",
)
async def test_a_browser_streams_through_coturn_with_the_relay_policy(
    coturn: Coturn, relay_only: Served, tmp_path: Path
) -> None:
    allocated = coturn.allocations()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        await browser.add_init_script(KEEP_PEERS)
        try:
            page = await start_streaming(browser, relay_only.url)
            flowing = " && ".join(
                ["c.received > 50"] * CLIENT_RECEIVES + ["c.sent > 50"] * CLIENT_SENDS
            )
            await page.wait_for_function(
                f"({MEDIA_PACKETS})().then((c) => {flowing})", timeout=MEDIA_WITHIN_S * 1000
            )
            await page.wait_for_function(
                f"({PAGE_PAIR})().then((p) => p && p.rtt !== null)", timeout=10_000
            )
            pair = await page.evaluate(PAGE_PAIR)
            await page.close()  # releases its connection at once
        finally:
            await browser.close()

    assert pair["policy"] == "relay", pair
    assert (pair["local"], pair["remote"]) == ("relay", "relay"), pair
    assert coturn.allocations() >= allocated + 2  # the page's and the server's
    print(
        f"browser through the relay: round trip {1000 * pair['rtt']:.1f} ms, "
        f"coturn allocations: {coturn.allocations() - allocated}"
    )
    async with httpx.AsyncClient(base_url=relay_only.url, timeout=10) as http:
        await wait_until(lambda: no_connections(http), within=5)
{%- endif %}


async def test_the_secret_is_never_shown(coturn: Coturn, relay_only: Served) -> None:
    shown: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=relay_only.url, timeout=10) as http:
        configuration = await configuration_of(http)
        shown["/webrtc/configuration"] = configuration.model_dump_json()
        assert credential(configuration)[0].split(":")[1].startswith("api.")
        for door in DOORS:
            async with streaming(http, door, configuration.to_aiortc()):
                pass
{%- if cookiecutter.include_ui %}
        call = {"data": [], "component_id": await ui_component_id(http), "fn_name": "turn"}
        call["session_hash"] = secrets.token_hex(8)
        page_configuration = await http.post("/ui/gradio_api/component_server/", json=call)
        shown["the UI's turn"] = page_configuration.text
        page_credential = credential(IceConfiguration.model_validate(page_configuration.json()))
        assert page_credential[0].split(":")[1].startswith("ui.")
{%- endif %}
        for path in ["/metrics", "/openapi.json"{% if cookiecutter.include_ui %}, "/ui/config"{% endif %}]:
            response = await http.get(path)
            assert response.status_code == 200, path
            shown[path] = response.text
    shown["the server's log"] = relay_only.log.read_text()

    assert [where for where, text in shown.items() if coturn.secret in text] == []
