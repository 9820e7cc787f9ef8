"""The default handler for audio and video both ways: sends both back, scaled by a gain.

The gain scales the audio's volume and the video's brightness; twice a second the handler
reports the audio it sent back as ``Stats``, to the UI and the API's outputs. Replace it with
your model and keep ``Input`` and ``Stats`` (or change them in ``io.py``).
"""

from __future__ import annotations

import asyncio

from fastrtc import AdditionalOutputs, AsyncAudioVideoStreamHandler
from fastrtc.tracks import EmitType

from .io import (
    DEFAULT_INPUT,
    SAMPLE_RATE,
    AudioFrame,
    Input,
    Stats,
    VideoFrame,
    apply_brightness,
    apply_gain,
    level_dbfs,
)

STATS_EVERY = 25
"""Audio frames between two stats outputs (aiortc frames are 20 ms: twice a second)."""
VIDEO_BACKLOG = 2
"""Images held for sending back at most: a late one is dropped, not delayed."""


class AudioVideoEcho(AsyncAudioVideoStreamHandler):
    input: Input = DEFAULT_INPUT
    """This connection's input: the layer sets it when the UI's controls or the API change it."""

    def __init__(self) -> None:
        super().__init__(
            expected_layout="mono", output_sample_rate=SAMPLE_RATE, input_sample_rate=SAMPLE_RATE
        )
        self._audio: asyncio.Queue[tuple[AudioFrame, float]] = asyncio.Queue()
        """Audio to send back, each with the gain it was scaled by (the one its stats report)."""
        self._video: asyncio.Queue[VideoFrame] = asyncio.Queue(VIDEO_BACKLOG)
        self._count = 0

    def copy(self) -> AudioVideoEcho:
        return AudioVideoEcho()

    async def receive(self, frame: AudioFrame) -> None:
        rate, audio = frame
        gain = self.input.gain
        await self._audio.put(((rate, apply_gain(audio, gain)), gain))

    async def emit(self) -> EmitType:
        (rate, audio), gain = await self._audio.get()
        self._count += 1
        if self._count % STATS_EVERY:
            return (rate, audio)
        # The gain this audio was scaled by: a new one may be in force for audio still queued.
        stats = Stats(frames=self._count, level_dbfs=level_dbfs(audio), gain=gain)
        return ((rate, audio), AdditionalOutputs(stats))

    async def video_receive(self, frame: VideoFrame) -> None:  # type: ignore[override]
        if self._video.full():
            self._video.get_nowait()
        self._video.put_nowait(apply_brightness(frame, self.input.gain))

    async def video_emit(self) -> VideoFrame:
        return await self._video.get()


def build_handler() -> AudioVideoEcho:
    """The handler the stream copies for each connection."""
    return AudioVideoEcho()
