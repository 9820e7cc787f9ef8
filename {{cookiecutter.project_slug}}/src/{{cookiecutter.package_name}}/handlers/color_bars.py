"""The default handler for video the server sends: moving color bars, at the connection's gain.

fastrtc calls ``generate`` once per connection with its ``Input`` (the layer starts it
again when they change) and shows what it yields, one image per frame (30 a second);
``Stats`` beside an image reach the UI and the API's outputs. Replace the bars with your own
source (a camera, a renderer, ...).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
from fastrtc import AdditionalOutputs

from .io import DEFAULT_INPUT, Input, Stats, VideoFrame, apply_brightness, brightness_dbfs

WIDTH, HEIGHT = 320, 240
STATS_EVERY = 15
"""Frames between two stats outputs (fastrtc sends 30 a second: twice a second)."""
BARS = np.array(
    [[255, 255, 255], [0, 255, 255], [255, 255, 0], [0, 255, 0], [255, 0, 255], [0, 0, 255]],
    dtype=np.uint8,
)
"""White, yellow, cyan, green, magenta, red (BGR): bright, so the gain shows."""


def color_bars(shift: int) -> VideoFrame:
    """The bars, moved ``shift`` pixels to the left."""
    columns = (np.arange(WIDTH) + shift) % WIDTH * len(BARS) // WIDTH
    return np.ascontiguousarray(np.broadcast_to(BARS[columns], (HEIGHT, WIDTH, 3)))


def generate(
    value: Input = DEFAULT_INPUT,
) -> Iterator[VideoFrame | tuple[VideoFrame, AdditionalOutputs]]:
    """The bars, one image per call, scaled by the connection's gain.

    fastrtc paces the calls itself (on its event loop: do not block here).
    """
    gain = value.gain
    for count in itertools.count(1):
        image = apply_brightness(color_bars(4 * count), gain)
        if count % STATS_EVERY:
            yield image
        else:
            stats = Stats(frames=count, level_dbfs=brightness_dbfs(image), gain=gain)
            yield (image, AdditionalOutputs(stats))


def build_handler() -> Any:
    """The generator function fastrtc calls for each connection."""
    return generate
