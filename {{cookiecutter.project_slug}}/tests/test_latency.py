"""The cuts in the media path's delays and costs take effect, through every door: the pause
before an offer's answer, the output pacing held back by a late first frame, aiortc's slow
measure of audio levels (the server's audio buffer: ``test_audio_buffer.py``). ``make bench``
(the template's BENCHMARKS.md) measures what they save."""

from __future__ import annotations

import asyncio
import time
import timeit
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
{%- if cookiecutter.__modality != "video" and cookiecutter.__mode == "send-receive" %}
from aiortc import RTCPeerConnection
{%- endif %}
from aiortc import rtp as aiortc_rtp
from av import AudioFrame

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.media import AppStreams
from {{ cookiecutter.package_name }}.services.streams._fastrtc.latency import (
    AIORTC_AUDIO_LEVEL,
    CATCH_UP_FRAMES,
    CaughtUpQueue,
    audio_level_dbov,
)

from .conftest import DOORS, Connect

FASTRTC_OFFER_DELAY_S = 0.1
"""What fastrtc sleeps in every offer, before its answer is returned."""
PACKET_SAMPLES = 960
"""RTP timestamp units in one 20 ms audio packet (Opus counts at 48 kHz)."""


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


{%- if cookiecutter.__modality != "video" and cookiecutter.__mode == "send-receive" %}


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
