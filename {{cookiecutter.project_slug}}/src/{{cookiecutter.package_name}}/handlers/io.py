"""The handler's typed contract: what a client may set (``Input``) and what it reports (``Stats``).

The API's input route, the UI's controls, the layer and the tests all speak these models: the
layer hands a handler its connection's ``Input`` (a stream handler reads ``self.input``, a
function gets it as an argument) and takes its ``Stats`` from ``AdditionalOutputs(stats)``.
When you bring your own model, change them here and the rest of the app follows.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

AudioFrame = tuple[int, npt.NDArray[np.int16]]
"""Audio as fastrtc hands it over: ``(sample_rate, samples)``."""

VideoFrame = npt.NDArray[np.uint8]
"""Video as fastrtc hands it over: one image, ``height x width x 3`` (BGR), 8 bits."""

SAMPLE_RATE = 48_000


class Input(BaseModel):
    """What a client may change while connected."""

    model_config = ConfigDict(frozen=True)

    gain: float = Field(
        default=1.0,
        ge=0.0,
        le=4.0,
        description="Factor of the audio's volume, the video's brightness.",
    )


DEFAULT_INPUT = Input()
"""The input of a connection until a client sets one."""


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
