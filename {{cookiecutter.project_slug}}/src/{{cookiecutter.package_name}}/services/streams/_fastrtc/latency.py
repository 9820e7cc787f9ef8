"""The workarounds on the media path's delays and costs: fastrtc's pause before it answers an
offer, its output pacing held back by a late first frame, aiortc's slow measure of audio
levels. The audio the server peer holds back before its handler hears it is
``audio_buffer.py``'s."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Protocol

import numpy as np
from aiortc import rtp
from av import AudioFrame
from fastrtc import webrtc_connection_mixin
from fastrtc.tracks import AudioCallback

from .marks import workaround

FASTRTC_OFFER_DELAY_S = 0.1
"""What fastrtc's offer handler sleeps after its answer is ready, before it returns it."""
MAX_SAMPLE = 32767
"""Full scale of a 16-bit sample."""
MIN_LEVEL_DBOV = -127
"""The quietest level RFC 6465 can say."""
AIORTC_AUDIO_LEVEL = rtp.compute_audio_level_dbov
"""aiortc's own measure, which ``measure_levels_at_once`` replaces (kept to compare with)."""
CATCH_UP_FRAMES = 50
"""Frames (a second), from when fastrtc starts pacing a connection's audio, in which a late
start is caught up; after them, pacing is fastrtc's alone."""

_ANSWERING: contextvars.ContextVar[tuple[asyncio.Task[Any] | None, float] | None] = (
    contextvars.ContextVar("answering", default=None)
)
"""The task answering an offer, and the delay it takes instead of fastrtc's."""


class _OfferDelay(ModuleType):
    """``asyncio`` as fastrtc's offer handler sees it: the same, but for its fixed sleep."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def sleep(delay: float, result: Any = None) -> Any:
        answering = _ANSWERING.get()
        if (
            answering is not None
            and answering[0] is asyncio.current_task()
            and delay == FASTRTC_OFFER_DELAY_S
        ):
            delay = answering[1]
        return await asyncio.sleep(delay, result)


@workaround(
    "fastrtc sleeps a fixed 100 ms in every offer after its answer is ready",
    "tests/test_latency.py::test_the_offer_delay_setting_takes_effect",
    "tests/test_streams.py::test_every_door_is_listed_with_its_source",
    "tests/test_browser.py::test_a_ui_connection_is_first_class",
)
def replace_offer_delay() -> None:
    """Let ``offer_delay`` choose that pause, in fastrtc's offer handler alone."""
    if not isinstance(vars(webrtc_connection_mixin)["asyncio"], _OfferDelay):
        setattr(webrtc_connection_mixin, "asyncio", _OfferDelay("asyncio"))  # noqa: B010


@contextlib.contextmanager
def offer_delay(seconds: float | None) -> Iterator[None]:
    """While the current task answers an offer, fastrtc pauses ``seconds`` (``None``: its
    own 100 ms) before returning the answer; no other sleep changes."""
    if seconds is None:
        yield
        return
    token = _ANSWERING.set((asyncio.current_task(), seconds))
    try:
        yield
    finally:
        _ANSWERING.reset(token)


class Paced(Protocol):
    """What fastrtc's output track paces by: the time its first frame was due."""

    _start: float | None


class CaughtUpQueue(asyncio.Queue[Any]):
    """An output track's queue of audio frames that catches up its track's pacing.

    fastrtc sends each frame at the time of the first frame plus the audio between them:
    when that first frame came late, or with a backlog behind it (audio heard before the
    handler started), every later frame waits as long. Here, in the first ``CATCH_UP_FRAMES``
    frames, a frame that would wait while the handler makes audio as fast as it is played
    (the queue as full as at the frame before) moves that start earlier instead. A handler
    that makes audio ahead of time fills the queue, then drains it: it is paced as before.
    """

    def __init__(self, track: Paced) -> None:
        super().__init__()
        self._track = track
        self._start: float | None = None
        self._paced = 0
        self._queued = 0
        """Frames in the queue when the last one was asked for."""

    async def get(self) -> Any:
        queued, self._queued = self._queued, self.qsize()
        frame = await super().get()
        track, at = self._track, getattr(frame, "time", None)
        if track._start is None or at is None:
            return frame
        if track._start != self._start:  # fastrtc starts pacing anew
            self._start, self._paced = track._start, 0
        self._paced += 1
        early = track._start + at - time.time()
        if early > 0 and self._paced <= CATCH_UP_FRAMES and self._queued == queued:
            track._start = self._start = track._start - early
        return frame


@workaround(
    "fastrtc paces a connection's audio from its first frame: when that one came late, or "
    "with a backlog behind it, every later frame waits as long",
    "tests/test_latency.py::test_a_late_first_frame_holds_no_later_one_back",
    "tests/test_latency.py::test_a_handler_ahead_of_time_is_paced_as_before",
{%- if cookiecutter.__modality != "video" and cookiecutter.__mode == "send-receive" %}
    "tests/test_latency.py::test_every_door_s_audio_catches_up_a_late_start",
{%- endif %}
)
def catch_up_pacing(track: object) -> None:
    """Let an output track of fastrtc's catch up a late start (``CaughtUpQueue``); call it
    before the track starts."""
    if isinstance(track, AudioCallback) and not isinstance(track.queue, CaughtUpQueue):
        track.queue = CaughtUpQueue(track)


@workaround(
    "aiortc's sender measures each audio frame's level (RFC 6465) in a Python loop over its "
    "samples: half a millisecond a frame, a sixth of an echo server's CPU",
    "tests/test_latency.py::test_audio_levels_are_aiortc_s_measured_at_once",
)
def measure_levels_at_once() -> None:
    """Measure them with numpy instead: the same figure."""
    rtp.compute_audio_level_dbov = audio_level_dbov


def audio_level_dbov(frame: AudioFrame) -> int:
    """A frame's level in dBov, as RFC 6465 Appendix A and aiortc's sender compute it."""
    samples = np.frombuffer(bytes(frame.planes[0]), dtype=np.int16).astype(np.int64)
    energy = float(np.dot(samples, samples)) / (frame.samples * MAX_SAMPLE**2)
    if energy <= 0:
        return MIN_LEVEL_DBOV
    return round(min(max(10 * math.log10(energy), MIN_LEVEL_DBOV), 0))
