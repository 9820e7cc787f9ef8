"""The default handler for audio the server sends: a 440 Hz tone, at the connection's gain.

fastrtc calls ``generate`` once per connection with its ``Input`` (the layer starts it
again when they change) and plays what it yields; ``Stats`` beside a frame reach the UI and
the API's outputs. Replace the tone with your own source (text to speech, a stream, ...).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from fastrtc import AdditionalOutputs

from .io import DEFAULT_INPUT, SAMPLE_RATE, AudioFrame, Input, Stats, apply_gain, level_dbfs

HZ = 440.0
AMPLITUDE = 0.3
"""Of full scale: -13.5 dBFS at gain 1."""
FRAME_SAMPLES = 960
"""20 ms, as aiortc sends audio."""
STATS_EVERY = 25
"""Frames between two stats outputs (twice a second)."""


def generate(
    value: Input = DEFAULT_INPUT,
) -> Iterator[AudioFrame | tuple[AudioFrame, AdditionalOutputs]]:
    """The tone, 20 ms at a time and in real time, scaled by the connection's gain.

    fastrtc runs this in a worker thread, so it
    may block: it sleeps to keep pace with real time, not ahead of it, since fastrtc buffers
    whatever is made (without limit) and a new gain would wait behind it.
    """
    gain = value.gain
    start = time.monotonic()
    for count in itertools.count(1):
        due = start + (count - 1) * FRAME_SAMPLES / SAMPLE_RATE
        if (delay := due - time.monotonic()) > 0:
            time.sleep(delay)
        t = (np.arange(FRAME_SAMPLES) + (count - 1) * FRAME_SAMPLES) / SAMPLE_RATE
        wave = (AMPLITUDE * 32767 * np.sin(2 * math.pi * HZ * t)).astype(np.int16)
        audio = apply_gain(wave, gain).reshape(1, -1)
        if count % STATS_EVERY:
            yield (SAMPLE_RATE, audio)
        else:
            stats = Stats(frames=count, level_dbfs=level_dbfs(audio), gain=gain)
            yield ((SAMPLE_RATE, audio), AdditionalOutputs(stats))


def build_handler() -> Any:
    """The generator function fastrtc calls for each connection."""
    return generate
