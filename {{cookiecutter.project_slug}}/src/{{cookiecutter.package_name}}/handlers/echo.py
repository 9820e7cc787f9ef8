"""The default handler: sends each connection's audio back, scaled by a gain, and reports levels.

Replace it with your model and keep the ``Input`` and ``Stats`` models of ``io.py`` (or change
them there) so the API, the UI and the tests keep their typed contract.
"""

from __future__ import annotations

import asyncio

from fastrtc import AdditionalOutputs, AsyncStreamHandler
from fastrtc.tracks import EmitType

from .io import DEFAULT_INPUT, SAMPLE_RATE, AudioFrame, Input, Stats, apply_gain, level_dbfs

STATS_EVERY = 25
"""Frames between two stats outputs (aiortc frames are 20 ms: twice a second)."""


class EchoHandler(AsyncStreamHandler):
    input: Input = DEFAULT_INPUT
    """This connection's input: the layer sets it when the UI's controls or the API change it."""

    def __init__(self) -> None:
        super().__init__(
            expected_layout="mono", output_sample_rate=SAMPLE_RATE, input_sample_rate=SAMPLE_RATE
        )
        self._frames: asyncio.Queue[tuple[AudioFrame, float]] = asyncio.Queue()
        """Audio to send back, each with the gain it was scaled by (the one its stats report)."""
        self._count = 0

    def copy(self) -> EchoHandler:
        return EchoHandler()

    async def receive(self, frame: AudioFrame) -> None:
        rate, audio = frame
        gain = self.input.gain
        await self._frames.put(((rate, apply_gain(audio, gain)), gain))

    async def emit(self) -> EmitType:
        (rate, audio), gain = await self._frames.get()
        self._count += 1
        if self._count % STATS_EVERY:
            return (rate, audio)
        # The gain this audio was scaled by: a new one may be in force for audio still queued.
        stats = Stats(frames=self._count, level_dbfs=level_dbfs(audio), gain=gain)
        return ((rate, audio), AdditionalOutputs(stats))


def build_handler() -> EchoHandler:
    """The handler the stream copies for each connection."""
    return EchoHandler()
