"""The default handler for video both ways: sends each image back, its brightness scaled by a gain.

fastrtc calls the handler with every image a connection sends, then its ``Input``, and
sends back what it returns; ``Stats`` beside an image reach the UI and the API's outputs. The
layer gives each connection its own ``copy`` (fastrtc would share one between all), so the
handler may keep per-connection state such as its frame count. Replace it with your model and
keep ``Input`` and ``Stats`` (or change them in ``io.py``).
"""

from __future__ import annotations

from fastrtc import AdditionalOutputs

from .io import DEFAULT_INPUT, Input, Stats, VideoFrame, apply_brightness, brightness_dbfs

STATS_EVERY = 15
"""Frames between two stats outputs (twice a second at 30 frames a second)."""


class VideoEcho:
    def __init__(self) -> None:
        self.frames = 0

    def copy(self) -> VideoEcho:
        return VideoEcho()

    def __call__(
        self, image: VideoFrame, value: Input = DEFAULT_INPUT
    ) -> VideoFrame | tuple[VideoFrame, AdditionalOutputs]:
        """What to send back for ``image``, at the connection's gain."""
        gain = value.gain
        reply = apply_brightness(image, gain)
        self.frames += 1
        if self.frames % STATS_EVERY:
            return reply
        stats = Stats(frames=self.frames, level_dbfs=brightness_dbfs(reply), gain=gain)
        return (reply, AdditionalOutputs(stats))


def build_handler() -> VideoEcho:
    """The handler the layer copies for each connection."""
    return VideoEcho()
