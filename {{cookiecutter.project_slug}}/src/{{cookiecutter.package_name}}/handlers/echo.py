"""The default handler: sends each connection's audio back, scaled by a gain, and reports levels.

Replace it with your model: keep the ``Input`` and ``Stats`` models (or your own) so the API,
the UI and the tests keep their typed contract.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import numpy.typing as npt
from fastrtc import AdditionalOutputs, AsyncStreamHandler
from fastrtc.tracks import EmitType
from pydantic import BaseModel, Field, ValidationError

from ..services.streams import handler_inputs

AudioFrame = tuple[int, npt.NDArray[np.int16]]

SAMPLE_RATE = 48_000
STATS_EVERY = 25
"""Frames between two stats outputs (aiortc frames are 20 ms: twice a second)."""


class Input(BaseModel):
    """What a client may change while connected."""

    gain: float = Field(default=1.0, ge=0.0, le=4.0, description="Echo volume factor.")


class Stats(BaseModel):
    """What the handler reports while connected (its additional output)."""

    frames: int = Field(description="Audio frames echoed so far.")
    level_dbfs: float = Field(description="Level of the last frame, dB below full scale.")
    gain: float = Field(description="Gain in force.")


def level_dbfs(audio: npt.NDArray[np.int16]) -> float:
    """RMS level of ``audio`` in dBFS, floored at -120."""
    if audio.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(audio.astype(np.float64) / 32768.0))))
    return max(-120.0, 20.0 * math.log10(rms)) if rms > 0 else -120.0


class EchoHandler(AsyncStreamHandler):
    def __init__(self) -> None:
        super().__init__(
            expected_layout="mono", output_sample_rate=SAMPLE_RATE, input_sample_rate=SAMPLE_RATE
        )
        self._frames: asyncio.Queue[AudioFrame] = asyncio.Queue()
        self._count = 0

    def copy(self) -> EchoHandler:
        return EchoHandler()

    def current_input(self) -> Input:
        """The last input set on this connection (by the UI's slider or the API)."""
        inputs = handler_inputs(self.latest_args)
        try:
            return Input(gain=inputs[0]) if inputs else Input()
        except ValidationError:
            return Input()

    async def receive(self, frame: AudioFrame) -> None:
        rate, audio = frame
        gain = self.current_input().gain
        scaled = np.clip(audio.astype(np.float32) * gain, -32768, 32767).astype(np.int16)
        await self._frames.put((rate, scaled))

    async def emit(self) -> EmitType:
        rate, audio = await self._frames.get()
        self._count += 1
        if self._count % STATS_EVERY:
            return (rate, audio)
        stats = Stats(
            frames=self._count, level_dbfs=level_dbfs(audio), gain=self.current_input().gain
        )
        return ((rate, audio), AdditionalOutputs(stats))


def stats_from(outputs: AdditionalOutputs) -> Stats:
    """The ``Stats`` an ``EchoHandler`` put in its additional output."""
    (stats,) = outputs.args
    if not isinstance(stats, Stats):
        raise TypeError(f"expected Stats, got {type(stats).__name__}")
    return stats
