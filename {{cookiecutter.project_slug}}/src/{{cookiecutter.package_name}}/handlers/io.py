"""The handler's typed contract: what a client may set (``Input``) and what it reports (``Stats``).

The API's input route, the UI's controls and the tests all speak these models. When you bring
your own model, change them here and the rest of the app follows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from fastrtc import AdditionalOutputs
from pydantic import BaseModel, Field, ValidationError

from ..services.streams import handler_inputs

AudioFrame = tuple[int, npt.NDArray[np.int16]]
"""Audio as fastrtc hands it over: ``(sample_rate, samples)``."""

VideoFrame = npt.NDArray[np.uint8]
"""Video as fastrtc hands it over: one image, ``height x width x 3`` (BGR), 8 bits."""

SAMPLE_RATE = 48_000


class Input(BaseModel):
    """What a client may change while connected."""

    gain: float = Field(
        default=1.0,
        ge=0.0,
        le=4.0,
        description="Factor of the audio's volume, the video's brightness.",
    )

    @classmethod
    def from_inputs(cls, inputs: Sequence[Any]) -> Input:
        """The input from the UI controls' values, in field order; defaults if they are invalid."""
        try:
            return cls(**dict(zip(cls.model_fields, inputs, strict=False)))
        except ValidationError:
            return cls()

    @classmethod
    def from_args(cls, latest_args: Sequence[Any]) -> Input:
        """The input last set on a handler (``handler.latest_args``)."""
        return cls.from_inputs(handler_inputs(latest_args))


class Stats(BaseModel):
    """What the handler reports while connected (its additional output)."""

    frames: int = Field(description="Frames handled (audio or video): so far, or in a reply.")
    level_dbfs: float = Field(
        description="Level of the media last handled, in dBFS (video: mean brightness to white)."
    )
    gain: float = Field(description="Gain in force.")


def level_dbfs(audio: npt.NDArray[np.int16]) -> float:
    """RMS level of ``audio`` in dBFS, floored at -120."""
    if audio.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(audio.astype(np.float64) / 32768.0))))
    return max(-120.0, 20.0 * math.log10(rms)) if rms > 0 else -120.0


def apply_gain(audio: npt.NDArray[np.int16], gain: float) -> npt.NDArray[np.int16]:
    """``audio`` scaled by ``gain``, clipped to 16 bits."""
    return np.asarray(np.clip(audio * np.float32(gain), -32768, 32767), dtype=np.int16)


def brightness_dbfs(image: VideoFrame) -> float:
    """Mean brightness of ``image`` relative to white, in dB (the video ``level_dbfs``), floored at
    -120."""
    mean = float(image.mean()) if image.size else 0.0
    return max(-120.0, 20.0 * math.log10(mean / 255.0)) if mean > 0 else -120.0


def apply_brightness(image: VideoFrame, gain: float) -> VideoFrame:
    """``image`` with every pixel scaled by ``gain``, clipped to 8 bits."""
    return np.asarray(np.clip(image * np.float32(gain), 0, 255), dtype=np.uint8)


def stats_from(outputs: AdditionalOutputs) -> Stats:
    """The ``Stats`` a handler put in its additional output."""
    (stats,) = outputs.args
    if not isinstance(stats, Stats):
        raise TypeError(f"expected Stats, got {type(stats).__name__}")
    return stats
