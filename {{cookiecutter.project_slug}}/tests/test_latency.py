"""The cuts in the media path's delays and costs take effect, through every door: the pause
before an offer's answer, the output pacing held back by a late first frame, aiortc's slow
measure of audio levels{% if cookiecutter.modality != "video" and cookiecutter.mode != "receive" %}, and the audio the server holds back before its handler hears it{% endif %}.
``make bench`` (the template's BENCHMARKS.md) measures what they save."""

from __future__ import annotations

import asyncio
import time
import timeit
{%- if cookiecutter.modality != "video" and cookiecutter.mode != "receive" %}
from collections.abc import Callable
{%- endif %}
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
{%- if cookiecutter.modality != "video" and cookiecutter.mode != "receive" %}
from aiortc import RTCPeerConnection
{%- endif %}
from aiortc import rtp as aiortc_rtp
{%- if cookiecutter.modality != "video" and cookiecutter.mode != "receive" %}
from aiortc.rtp import RtpPacket
{%- endif %}
from av import AudioFrame

from {{ cookiecutter.package_name }}.client import Door{% if cookiecutter.modality != "video" and cookiecutter.mode != "receive" %}, Peer, wait_until{% endif %}
from {{ cookiecutter.package_name }}.media import AppStreams
{%- if cookiecutter.modality != "video" and cookiecutter.mode != "receive" %}
from {{ cookiecutter.package_name }}.services.streams._fastrtc.audio_buffer import (
    RESTART_PACKETS,
    AudioBuffer,
)
{%- endif %}
from {{ cookiecutter.package_name }}.services.streams._fastrtc.latency import (
    AIORTC_AUDIO_LEVEL,
    CATCH_UP_FRAMES,
    CaughtUpQueue,
    audio_level_dbov,
)
from {{ cookiecutter.package_name }}.settings import Settings

from .conftest import DOORS, Connect

FASTRTC_OFFER_DELAY_S = 0.1
"""What fastrtc sleeps in every offer, before its answer is returned."""
PACKET_SAMPLES = 960
"""RTP timestamp units in one 20 ms audio packet (Opus counts at 48 kHz)."""


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> Settings:
    """The app's settings, with the test's own over the defaults."""
    return Settings(_env_file=None, concurrency_limit=4, **request.param)  # type: ignore[call-arg]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every delay ``asyncio.sleep`` is asked for from now on."""
    asked: list[float] = []
    sleep = asyncio.sleep

    async def recorded(delay: float, result: Any = None) -> Any:
        asked.append(delay)
        return await sleep(delay, result)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    return asked


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    ("settings", "pause_s"),
    [({}, 0.0), ({"offer_delay_ms": 400}, 0.4)],
    indirect=["settings"],
    ids=["default", "400ms"],
)
async def test_the_offer_delay_setting_takes_effect(
    peer: Connect, door: Door, pause_s: float, sleeps: list[float]
) -> None:
    started = time.monotonic()
    await peer(door)

    assert FASTRTC_OFFER_DELAY_S not in sleeps  # fastrtc's own pause is never taken
    assert pause_s in sleeps
    assert time.monotonic() - started >= pause_s
{%- if cookiecutter.modality != "video" and cookiecutter.mode != "receive" %}


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


def dropping_every(peer: Peer, nth: int) -> Callable[[], int]:
    """From now on the peer drops every ``nth`` audio packet it sends, as a lossy network
    would; returns a count of those it still sends."""
    (sender,) = [t.sender for t in peer.pc.getTransceivers() if t.kind == "audio"]
    transport = sender.transport
    send = transport._send_rtp
    sent = 0

    async def lossy(data: bytes) -> None:
        nonlocal sent
        if 192 <= data[1] <= 223 or RtpPacket.parse(data).ssrc != sender._ssrc:
            return await send(data)  # RTCP (RFC 5761), or another track's
        sent += 1
        if sent % nth:
            await send(data)

    transport._send_rtp = lossy  # type: ignore[method-assign]
    return lambda: sent - sent // nth


def heard_by(pc: RTCPeerConnection) -> Callable[[], int]:
    """From now on, a count of the audio frames the server's peer hands its handler."""
    (track,) = [r.track for r in pc.getReceivers() if r.track.kind == "audio"]
    recv = track.recv
    heard = 0

    async def counted() -> Any:
        nonlocal heard
        frame = await recv()
        heard += 1
        return frame

    track.recv = counted  # type: ignore[method-assign]
    return lambda: heard


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    ("settings", "wait"),
    [({}, 3), ({"audio_buffer_ms": 0}, 0)],
    indirect=["settings"],
    ids=["default", "0ms"],
)
async def test_the_server_hears_audio_at_once_and_gives_up_lost_packets(
    peer: Connect, door: Door, wait: int, server_peers: list[RTCPeerConnection]
) -> None:
    client = await peer(door)
    (pc,) = server_peers
    heard = heard_by(pc)
    sent = dropping_every(client, 10)

    await asyncio.sleep(1.0)  # five packets lost
    # aiortc's own buffer would stay 15 packets behind for good after the first loss.
    await wait_until(lambda: sent() - heard() <= wait + 3, within=5)


def rtp(number: int) -> RtpPacket:
    """Audio packet ``number`` (mod 2**16), 20 ms apart, as aiortc's receiver has it."""
    packet = RtpPacket(payload_type=111, sequence_number=number % 2**16)
    packet.timestamp = number * PACKET_SAMPLES % 2**32
    packet._data = bytes([number % 256])  # type: ignore[attr-defined]
    return packet


class Released:
    """What an ``AudioBuffer`` hands on, packet numbers in order, as the receiver drains it."""

    def __init__(self, buffer: AudioBuffer) -> None:
        self.buffer = buffer
        self.numbers: list[int] = []

    def add(self, number: int) -> list[int]:
        """Add a packet; the numbers it releases."""
        _, first = self.buffer.add(rtp(number))
        frames = ([first] if first is not None else []) + list(self.buffer.ready)
        self.buffer.ready.clear()
        released = [frame.data[0] for frame in frames]
        self.numbers += released
        return released


@pytest.mark.parametrize("wait", [0, 1, 3])
@pytest.mark.parametrize("start", [0, 2**16 - 12], ids=["from-0", "wrapping"])
def test_the_audio_buffer_waits_as_set_behind_a_lost_packet(wait: int, start: int) -> None:
    released = Released(AudioBuffer(wait))
    for n in range(start, start + 10):
        assert released.add(n) == [n % 256]  # in order: each one at once

    lost = start + 10  # never comes in time: held behind, then given up
    behind = [lost + 1 + k for k in range(wait)]
    for n in behind:
        assert released.add(n) == []
    assert released.add(lost + 1 + wait) == [n % 256 for n in [*behind, lost + 1 + wait]]
    assert released.buffer.given_up == 1
    assert released.add(lost) == []  # too late: given up already

    after = lost + 2 + wait  # two packets swapped on the way
    first, second = released.add(after + 1), released.add(after)
    if wait:  # the first is held for the second
        assert (first, second) == ([], [after % 256, (after + 1) % 256])
    else:  # no wait: the second is given up before it comes
        assert (first, second) == ([(after + 1) % 256], [])
    assert released.buffer.given_up == (1 if wait else 2)


def test_the_audio_buffer_starts_anew_after_a_jump() -> None:
    released = Released(AudioBuffer(3))
    released.add(5)
    released.add(7)  # 6 missing: 7 held
    assert released.add(5 + RESTART_PACKETS + 10) == [7, (15 + RESTART_PACKETS) % 256]
    assert released.add(16 + RESTART_PACKETS) == [(16 + RESTART_PACKETS) % 256]
{%- endif %}


def audio_frame(number: int) -> AudioFrame:
    """The ``number``th 20 ms frame of a connection's output, as fastrtc queues it."""
    frame = AudioFrame(format="s16", layout="mono", samples=PACKET_SAMPLES)
    frame.sample_rate, frame.pts = 48_000, number * PACKET_SAMPLES
    frame.time_base = Fraction(1, 48_000)
    return frame


class Track:
    """fastrtc's output track as the queue sees it: when its first frame was due."""

    _start: float | None = None


async def asked_then_put(queue: CaughtUpQueue, frame: AudioFrame) -> AudioFrame:
    """``frame``, got from ``queue`` by a track that asked for it before it came."""
    asked = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    await queue.put(frame)
    got: AudioFrame = await asked
    return got


async def test_a_late_first_frame_holds_no_later_one_back() -> None:
    track = Track()
    queue = CaughtUpQueue(track)
    track._start = time.time()  # fastrtc paces from frame 0, which came 15 ms late:
    frame = await asked_then_put(queue, audio_frame(1))  # frame 1 comes on time

    assert track._start + float(frame.time or 0) - time.time() <= 0.001  # sent now: no wait

    # A backlog behind a late start: one frame comes for each that leaves.
    track._start = time.time()
    for number in (2, 3, 4):
        await queue.put(audio_frame(number))
    for number in (5, 6):
        await queue.get()
        await queue.put(audio_frame(number))
    frame = await queue.get()  # as many queued as at the frame before: caught up
    assert track._start + float(frame.time) - time.time() <= 0.001


async def test_a_handler_ahead_of_time_is_paced_as_before() -> None:
    track = Track()
    queue = CaughtUpQueue(track)
    track._start = time.time()
    for number in range(1, 2 + CATCH_UP_FRAMES):
        await queue.put(audio_frame(number))
    for _ in range(CATCH_UP_FRAMES):
        await queue.get()  # the queue drains: paced from the start

    assert track._start == pytest.approx(time.time(), abs=0.01)
    # Past the first frames, a frame that would wait stays paced, whatever the queue.
    started = track._start
    await queue.get()
    await asked_then_put(queue, audio_frame(2 + CATCH_UP_FRAMES))
    assert track._start == started


{%- if cookiecutter.modality != "video" and cookiecutter.mode == "send-receive" %}


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("settings", [{}], indirect=True)
async def test_every_door_s_audio_catches_up_a_late_start(
    peer: Connect, door: Door, server_peers: list[RTCPeerConnection]
) -> None:
    await peer(door)
    (pc,) = server_peers
    (sent,) = [s.track for s in pc.getSenders() if s.track is not None and s.track.kind == "audio"]

    assert isinstance(getattr(sent, "queue", None), CaughtUpQueue)
{%- endif %}


@pytest.mark.parametrize("settings", [{}], indirect=True)
def test_audio_levels_are_aiortc_s_measured_at_once(streams: AppStreams) -> None:
    """The layer (built with the app) measures levels with numpy; the same figures as
    aiortc's own loop, in a fraction of its time."""
    assert aiortc_rtp.compute_audio_level_dbov is audio_level_dbov
    rng = np.random.default_rng(1)
    samples = [np.zeros((1, 1920)), np.full((1, 1920), 32767), np.full((1, 1920), -32768)]
    samples += [rng.integers(-(2**k), 2**k, (1, 1920)) for k in range(1, 16)]
    for chunk in samples:
        frame = AudioFrame.from_ndarray(chunk.astype(np.int16), format="s16", layout="stereo")
        assert audio_level_dbov(frame) == AIORTC_AUDIO_LEVEL(frame), chunk[0, :4]

    frame = AudioFrame.from_ndarray(samples[-1].astype(np.int16), format="s16", layout="stereo")
    ours = timeit.timeit(lambda: audio_level_dbov(frame), number=200)
    assert ours < timeit.timeit(lambda: AIORTC_AUDIO_LEVEL(frame), number=200) / 4
