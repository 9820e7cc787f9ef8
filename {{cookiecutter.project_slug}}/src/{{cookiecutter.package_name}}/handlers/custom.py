"""Your handler, to fill in. It runs as it is, sending the audio back, so that the app and its
tests work from the first ``make test``; each ``TODO`` marks where your model goes.

fastrtc calls ``receive`` with every 20 ms of a connection's audio and ``emit`` whenever it can
send: what ``emit`` returns is played to the client, and an ``AdditionalOutputs`` beside it
reaches the UI's output components and the API's ``/connections/{id}/outputs``.
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt
from fastrtc import AdditionalOutputs, AsyncStreamHandler
from fastrtc.tracks import EmitType

from .io import DEFAULT_INPUT, SAMPLE_RATE, AudioFrame, Input, Stats, apply_gain, level_dbfs

STATS_EVERY = 25
"""Frames between two ``Stats`` outputs (twice a second)."""


class Model:
    """Your model. One instance serves every connection, so load weights once, in ``load``."""

    def load(self) -> None:
        """Load weights and warm up. Runs once, in a thread, before the first connection.

        TODO: load your model here, from a local path in ``Settings`` (bake the file into the
        image rather than downloading it while serving).
        """

    def process(self, audio: npt.NDArray[np.int16], inputs: Input) -> npt.NDArray[np.int16]:
        """What to send back for 20 ms of ``audio`` (mono, 16 bit, ``SAMPLE_RATE``).

        TODO: call your model. It runs in a worker thread, so it may block.
        """
        return apply_gain(audio, inputs.gain)


MODEL = Model()


class CustomHandler(AsyncStreamHandler):
    """One connection's handler: fastrtc makes one per connection with ``copy``."""

    input: Input = DEFAULT_INPUT
    """This connection's input: the layer sets it when the UI's controls or the API change it."""

    def __init__(self, model: Model) -> None:
        super().__init__(
            expected_layout="mono", output_sample_rate=SAMPLE_RATE, input_sample_rate=SAMPLE_RATE
        )
        self.model = model
        self._replies: asyncio.Queue[tuple[AudioFrame, Input]] = asyncio.Queue()
        """Replies to send, each with the input it was made with (the one its stats report)."""
        self._count = 0

    def copy(self) -> CustomHandler:
        return CustomHandler(self.model)

    async def receive(self, frame: AudioFrame) -> None:
        rate, audio = frame
        inputs = self.input  # the UI's controls or the API's input
        reply = await asyncio.to_thread(self.model.process, audio, inputs)
        await self._replies.put(((rate, reply), inputs))

    async def emit(self) -> EmitType:
        (rate, audio), inputs = await self._replies.get()
        self._count += 1
        if self._count % STATS_EVERY:
            return (rate, audio)
        # TODO: report what your users should see; change ``Stats`` in io.py to match.
        gain = inputs.gain  # the reply's input: a new one may be in force for replies queued
        stats = Stats(frames=self._count, level_dbfs=level_dbfs(audio), gain=gain)
        return ((rate, audio), AdditionalOutputs(stats))


def build_handler() -> CustomHandler:
    """The handler the stream copies for each connection; loads the model first."""
    MODEL.load()
    return CustomHandler(MODEL)
