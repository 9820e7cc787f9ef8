"""What the voice agent's tests talk and listen with: the offline synthesizer's sentence as a
peer's microphone (the load generator's, ``loadtest_voice.py``), and an ear that times the
audio that comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import numpy as np
import numpy.typing as npt
import pytest

from {{ cookiecutter.package_name }}.client import FRAME_SAMPLES, SAMPLE_RATE, rms_dbfs, wait_until
from {{ cookiecutter.package_name }}.loadtest_voice import (
    AUDIBLE_DBFS,
    KEY_WORDS,
    SENTENCE,
    SpeakingTrack,
    resampled,
    spoken,
)

__all__ = [
    "AUDIBLE_DBFS",
    "KEY_WORDS",
    "SENTENCE",
    "Ear",
    "SpeakingTrack",
    "resampled",
    "sentence",
    "spoken",
]
"""The names the voice tests take from here: the load generator's sentence, clip and
microphone, and this module's ear and fixture."""


@pytest.fixture(scope="session")
def sentence() -> npt.NDArray[np.int16]:
    """``SENTENCE``, spoken, at 48 kHz."""
    return asyncio.run(spoken(SENTENCE))


@dataclass
class Ear:
    """The level of every audio frame that comes back, with when it came."""

    heard: list[tuple[float, float]] = field(default_factory=list)

    def __call__(self, frame: av.AudioFrame) -> None:
        self.heard.append((time.monotonic(), rms_dbfs(frame.to_ndarray())))

    def loud_since(self, since: float) -> list[float]:
        """When the audible frames since ``since`` came."""
        return [at for at, level in self.heard if at >= since and level > AUDIBLE_DBFS]

    async def wait(self, condition: Callable[[], object], within: float = 30.0) -> None:
        await wait_until(condition, within)

    async def hears(self, frames: int, since: float, within: float = 30.0) -> None:
        """Wait until ``frames`` audible frames have come since ``since``."""
        await self.wait(lambda: len(self.loud_since(since)) >= frames, within)

    def stopped_after(self, since: float, quiet_s: float) -> float | None:
        """When the audio that comes back after ``since`` stopped: the start of the first
        ``quiet_s`` with nothing audible (the app sends nothing between replies); None if
        that has not come yet."""
        loud = self.loud_since(since)
        starts = [since, *(at + FRAME_SAMPLES / SAMPLE_RATE for at in loud)]
        for start, end in zip(starts, [*loud, time.monotonic()], strict=True):
            if end - start >= quiet_s:
                return start
        return None
