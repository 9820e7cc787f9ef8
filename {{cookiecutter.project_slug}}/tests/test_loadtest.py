"""The load generator: its echo timing is a measurement, and its report holds real numbers{% if cookiecutter.handler == "voice-agent" %}:
every spoken turn timed, by the peer and by the server's stages{% endif %}."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import time
from collections.abc import AsyncIterator
{%- if cookiecutter.handler != "voice-agent" %}
from dataclasses import asdict
{%- endif %}
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
{%- if cookiecutter.handler != "voice-agent" %}
import pytest
{%- endif %}
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from {{ cookiecutter.package_name }}.client import Door, connect
from {{ cookiecutter.package_name }}.loadtest import {% if cookiecutter.handler == "voice-agent" %}STAGES, {% endif %}doors_for, main, percentile{% if cookiecutter.handler != "voice-agent" %}, run{% endif %}
from {{ cookiecutter.package_name }}.loadtest_network import (
    LOOPBACK,
    NETWORKS,
    EmulatedLink,
    Impairment,
    Network,
    Socket,
    sockets_of,
)
from {{ cookiecutter.package_name }}.loadtest_peer import EchoTimer, PulseTrack
{%- if cookiecutter.handler == "voice-agent" %}
from {{ cookiecutter.package_name }}.loadtest_voice import TURN_TIMEOUT_S
{%- endif %}

from .conftest import DOORS, SERVERS


async def play_back(delay: float, drop: set[int]) -> EchoTimer:
    """Two seconds of a ``PulseTrack`` played back ``delay`` s late, less the frames ``drop``."""
    track = PulseTrack()
    timer = EchoTimer(track)
    loop = asyncio.get_running_loop()
    for n in range(100):  # bursts at frames 0, 25, 50 and 75
        frame = await track.recv()
        if n not in drop:
            loop.call_later(delay, timer.on_frame, frame)
    await asyncio.sleep(delay + 0.1)
    track.stop()
    return timer


async def test_echo_timer_measures_a_known_delay_and_loss() -> None:
    """No network between: the timer must find the delay and the frames left out."""
    timer = await play_back(0.12, drop={10, 30, 31})

    assert len(timer.round_trips) == 4
    median = percentile(timer.round_trips, 50)
    assert median is not None
    assert 0.115 < median < 0.18  # the delay, plus what the event loop adds when busy
    assert timer.lost() == (75, 3)  # from the first burst to the last, three frames short


def test_doors_are_mixed_on_request() -> None:
    assert doors_for(4, 0.0) == [Door.API] * 4
    assert doors_for(4, 0.5).count(Door.UI) == 2
    assert doors_for(3, 1.0) == [Door.UI] * 3


def test_the_networks_are_data_and_each_datagram_s_fate_is_drawn_from_a_seed() -> None:
    figures = {n.name: (n.delay_ms, n.jitter_ms, n.loss_percent) for n in NETWORKS.values()}
    assert figures == {"loopback": (0, 0, 0), "lan": (2, 1, 0), "internet": (40, 15, 1)}
    assert not LOOPBACK.impairs
    assert NETWORKS["internet"].describe() == "internet: 40 ± 15 ms, 1 % loss, each way"

    def fates(network: Network, seed: int) -> list[float | None]:
        impairment = Impairment(network, random.Random(seed))
        return [impairment.delay_or_drop() for _ in range(20_000)]

    internet = fates(NETWORKS["internet"], seed=1)
    assert internet == fates(NETWORKS["internet"], seed=1)  # a run is reproducible
    assert internet != fates(NETWORKS["internet"], seed=2)
    delays = [delay for delay in internet if delay is not None]
    assert 0.8 < 100 * internet.count(None) / len(internet) < 1.2
    assert 0.025 <= min(delays) < 0.026  # 40 ms ± 15 ms
    assert 0.054 < max(delays) <= 0.055
    assert 0.0395 < statistics.mean(delays) < 0.0405
    lan = [delay for delay in fates(NETWORKS["lan"], seed=1) if delay is not None]
    assert len(lan) == 20_000  # none lost
    assert min(lan) >= 0.001  # 2 ms ± 1 ms
    assert max(lan) <= 0.003


class Recorder(asyncio.DatagramProtocol):
    """A UDP socket that records the datagrams it receives (numbers) and when."""

    transport: asyncio.DatagramTransport

    def __init__(self) -> None:
        self.arrivals: list[tuple[int, float]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.arrivals.append((int(data), time.monotonic()))


async def test_a_socket_s_datagrams_are_delayed_jittered_and_lost_both_ways() -> None:
    """Thousands of datagrams each way between two sockets, one of them impaired: each way,
    about 1 % lost, the rest 40 ms ± 15 ms late, and so out of order."""
    loop = asyncio.get_running_loop()
    _, near = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
    _, far = await loop.create_datagram_endpoint(Recorder, local_addr=("127.0.0.1", 0))
    link = EmulatedLink(NETWORKS["internet"], seed=1)
    link.impair(near)
    count, sent_at = 2000, []
    for n in range(count):
        sent_at.append(time.monotonic())
        near.transport.sendto(b"%d" % n, far.transport.get_extra_info("sockname"))
        far.transport.sendto(b"%d" % n, near.transport.get_extra_info("sockname"))
        if n % 20 == 19:  # 2000 a second each way: no socket buffer overflows
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    near.transport.close()
    far.transport.close()

    for received, impairment in ((far, link.outgoing), (near, link.incoming)):
        lost = count - len(received.arrivals)
        assert lost == impairment.dropped  # what the emulation dropped, and nothing else
        assert 0.5 < 100 * lost / count < 1.5
        delays = [at - sent_at[n] for n, at in received.arrivals]
        assert min(delays) >= 0.024
        assert 0.036 < statistics.median(delays) < 0.048
        assert np.percentile(delays, 95) - np.percentile(delays, 5) > 0.02  # jittered
        order = [n for n, _ in received.arrivals]
        assert order != sorted(order)  # jitter reorders, as with netem


@contextlib.asynccontextmanager
async def echoing_peer() -> AsyncIterator[httpx.AsyncClient]:
    """A client for ``connect`` whose offers a plain aiortc peer in this process answers, and
    which sends back the audio it receives: two peers and no app between them."""
    answerers: list[RTCPeerConnection] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        answerers.append(pc)
        pc.on("track", pc.addTrack)
        offer = json.loads(request.content)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return httpx.Response(200, json={"type": "answer", "sdp": pc.localDescription.sdp})

    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=transport, base_url="http://peer") as http:
        try:
            yield http
        finally:
            for pc in answerers:
                await pc.close()


async def echo_through(network: Network) -> tuple[float, EchoTimer, EmulatedLink, list[Socket]]:
    """Stream a ``PulseTrack`` to an echoing peer for 2.5 s through ``network``: the time to
    connect, the echoes, the link, and every socket the peer connection gathered."""
    link, track = EmulatedLink(network, seed=1), PulseTrack()
    timer, gathered = EchoTimer(track), []

    def on_gathered(pc: RTCPeerConnection) -> None:
        gathered.extend(sockets_of(pc))
        link.apply(pc)

    async with echoing_peer() as http:
        started = time.monotonic()
        peer = await connect(
            http, Door.API, track=track, on_frame=timer.on_frame, on_gathered=on_gathered
        )
        try:
            await peer.wait_connected()
            connect_s = time.monotonic() - started
            await asyncio.sleep(2.5)
        finally:
            await peer.close()
    return connect_s, timer, link, gathered


def wrapped(socket: Socket) -> bool:
    """Whether a socket's sending or receiving is replaced."""
    return "sendto" in vars(socket.transport) or "datagram_received" in vars(socket)


async def test_two_peers_through_the_internet_profile_connect_and_echo_later() -> None:
    """A real peer connection's every socket is impaired, both ways; with loopback, none."""
    _, plain, untouched, plain_sockets = await echo_through(LOOPBACK)
    connect_s, impaired, link, sockets = await echo_through(NETWORKS["internet"])

    assert plain_sockets
    assert not any(wrapped(s) for s in plain_sockets)
    assert untouched.sockets == 0
    assert untouched.outgoing.passed == untouched.incoming.passed == 0
    assert sockets
    assert all(wrapped(s) for s in sockets)
    assert link.sockets == len(sockets)
    assert link.outgoing.passed > 100  # audio, both ways
    assert link.incoming.passed > 100
    # an ICE check and the DTLS handshake: three round trips, each of 2 x 25 ms at least
    assert connect_s > 0.15
    plain_echo, echo = percentile(plain.round_trips, 50), percentile(impaired.round_trips, 50)
    assert plain_echo is not None
    assert echo is not None
    assert echo > plain_echo + 0.06
{%- if cookiecutter.handler == "voice-agent" %}


def test_a_voice_run_against_the_live_server_times_every_turn(
    live_server: str, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    ui_share = 0.5 if Door.UI in DOORS else 0.0
    peers, turns = 2, 2

    code = main(
        [
            "--url",
            live_server,
            "--peers",
            str(peers),
            "--turns",
            str(turns),
            "--pause",
            "0.5",
            "--ui-share",
            str(ui_share),
            "--out",
            str(out),
            "--quiet",
        ]
    )

    report = json.loads(out.read_text())
    assert code == 0, report["errors"]
    assert report["errors"] == []
    assert {p["door"] for p in report["per_peer"]} == {door.value for door in DOORS}
    taken = report["turns"]
    assert (taken["planned"], taken["completed"], taken["failed"]) == (4, 4, 0)
    assert 0 <= taken["misheard"] <= 4  # the offline recognizer may miss a word under load
    assert report["connect_ms"]["count"] == peers
    # each turn timed by the peer: from the end of its speech to the reply it heard
    reply = report["reply_ms"]
    assert reply["count"] == peers * turns
    assert 0 < reply["p50"] <= reply["p95"] < TURN_TIMEOUT_S * 1000
    stages = report["stages_ms"]
    assert [stages[stage]["count"] for stage in STAGES] == [peers * turns] * len(STAGES)
    for peer in report["per_peer"]:
        for turn in peer["turns"]:
            latency = turn["latency"]
            assert 0 < latency["transcribed"] <= latency["first_token"]
            assert latency["first_token"] <= latency["first_synthesized"] <= latency["first_audio"]
            # the peer's end of speech comes before the pause the server detects
            assert turn["reply_s"] > latency["first_audio"]
            assert turn["reply"]  # spoken, and heard
    server = report["server"]
    assert server["pid"] == SERVERS[live_server].pid  # found by its port
    assert server["cpu_percent"] > 0
    assert server["rss_mib_peak"] > 50
{%- else %}


def test_a_run_against_the_live_server_reports_every_number(
    live_server: str, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    ui_share = 0.5 if Door.UI in DOORS else 0.0
    peers, duration = 2, 3.0

    code = main(
        [
            "--url",
            live_server,
            "--peers",
            str(peers),
            "--duration",
            str(duration),
            "--ui-share",
            str(ui_share),
            "--out",
            str(out),
            "--quiet",
        ]
    )

    report = json.loads(out.read_text())
    assert code == 0, report["errors"]
    assert report["errors"] == []
    assert {p["door"] for p in report["per_peer"]} == {door.value for door in DOORS}
    assert report["connect_ms"]["count"] == peers
    assert 0 < report["connect_ms"]["p50"] <= report["connect_ms"]["p95"] < 10_000
    # a burst every 0.5 s, each timed by its echo: the echo of real audio through the server
    assert report["echo_ms"]["count"] >= peers * (duration / 0.5 - 1)
    assert 20 < report["echo_ms"]["p50"] <= report["echo_ms"]["p95"] < 1_000
    frames = report["frames"]
    assert frames["sent"] >= peers * duration * 50 * 0.9  # 20 ms frames
    assert frames["counted"] >= peers * (duration - 1) * 50  # from the first echo to the last
    assert frames["lost_percent"] < 5
    server = report["server"]
    assert server["pid"] == SERVERS[live_server].pid  # found by its port
    assert server["cpu_percent"] > 0
    assert server["rss_mib_peak"] > 50


def test_a_run_through_the_internet_profile_says_so_and_takes_longer(
    live_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    plain = asyncio.run(run(live_server, 1, 3.0, progress=False))

    code = main(
        [
            "--url",
            live_server,
            "--peers",
            "1",
            "--duration",
            "3",
            "--network",
            "internet",
            "--out",
            str(out),
            "--quiet",
        ]
    )

    report = json.loads(out.read_text())
    assert code == 0, report["errors"]
    assert plain["network"] == asdict(LOOPBACK)
    assert report["network"] == asdict(NETWORKS["internet"])
    assert "internet: 40 ± 15 ms, 1 % loss, each way" in capsys.readouterr().out
    # each peer's datagrams 40 ms ± 15 ms late each way: its round trips take 80 ms more
    assert report["connect_ms"]["p50"] > 150  # an ICE check and the DTLS handshake: 3 of them
    assert report["echo_ms"]["p50"] > plain["echo_ms"]["p50"] + 60
{%- endif %}
