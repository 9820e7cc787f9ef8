"""The default handler for video sent to the server: it measures what each connection sends.

Nothing goes back to the client: twice a second the handler reports the brightness it saw
(scaled by the gain: a sensitivity) as ``Stats``, to the UI and the API's outputs. The layer
gives each connection its own ``copy`` (fastrtc would share one between all), so the handler
may keep per-connection state such as its frame count. Replace the measurement with your model
(a detector, a recorder, ...) and keep ``Stats`` or change it in ``io.py``.
"""

from __future__ import annotations

from fastrtc import AdditionalOutputs

from .io import DEFAULT_INPUT, Input, Stats, VideoFrame, apply_brightness, brightness_dbfs

STATS_EVERY = 15
"""Frames between two stats outputs (twice a second at 30 frames a second)."""


class VideoMeter:
    def __init__(self) -> None:
        self.frames = 0

    def copy(self) -> VideoMeter:
        return VideoMeter()

    def __call__(self, image: VideoFrame, value: Input = DEFAULT_INPUT) -> AdditionalOutputs | None:
        """What ``image`` is worth reporting, at the connection's gain."""
        self.frames += 1
        if self.frames % STATS_EVERY:
            return None
        gain = value.gain
        level = brightness_dbfs(apply_brightness(image, gain))
        return AdditionalOutputs(Stats(frames=self.frames, level_dbfs=level, gain=gain))


def build_handler() -> VideoMeter:
    """The handler the layer copies for each connection."""
    return VideoMeter()
