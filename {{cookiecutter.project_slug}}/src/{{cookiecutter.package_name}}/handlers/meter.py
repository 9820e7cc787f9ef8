"""The default handler for audio sent to the server: it measures what each connection sends.

Nothing goes back to the client: twice a second the handler reports the level it heard
(scaled by the gain: a sensitivity) as ``Stats``, to the UI and the API's outputs. Replace the
measurement with your model (speech to text, a recorder, ...) and keep ``Stats`` or change it
in ``io.py``.
"""

from __future__ import annotations

import asyncio

from fastrtc import AdditionalOutputs, AsyncStreamHandler

from .io import DEFAULT_INPUT, SAMPLE_RATE, AudioFrame, Input, Stats, apply_gain, level_dbfs

STATS_EVERY = 25
"""Frames between two stats outputs (aiortc frames are 20 ms: twice a second)."""


class MeterHandler(AsyncStreamHandler):
    input: Input = DEFAULT_INPUT
    """This connection's input: the layer sets it when the UI's controls or the API change it."""

    def __init__(self) -> None:
        super().__init__(
            expected_layout="mono", output_sample_rate=SAMPLE_RATE, input_sample_rate=SAMPLE_RATE
        )
        self._stats: asyncio.Queue[Stats] = asyncio.Queue()
        self._count = 0

    def copy(self) -> MeterHandler:
        return MeterHandler()

    async def receive(self, frame: AudioFrame) -> None:
        _, audio = frame
        self._count += 1
        if self._count % STATS_EVERY == 0:
            gain = self.input.gain
            level = level_dbfs(apply_gain(audio, gain))
            await self._stats.put(Stats(frames=self._count, level_dbfs=level, gain=gain))

    async def emit(self) -> AdditionalOutputs:
        # fastrtc runs this in send mode too, into a queue no track reads: only outputs, never
        # audio, may come out of it.
        return AdditionalOutputs(await self._stats.get())


def build_handler() -> MeterHandler:
    """The handler the stream copies for each connection."""
    return MeterHandler()
