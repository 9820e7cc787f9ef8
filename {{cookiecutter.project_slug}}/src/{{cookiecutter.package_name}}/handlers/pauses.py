"""Pause detection for the handlers that reply when the speaker pauses.

``APP_PAUSE_DETECTOR`` chooses it: ``energy`` (the default) is a loudness threshold that runs
offline; ``silero`` is fastrtc's voice activity model, better on real speech, which needs
``uv add "fastrtc[vad]"`` and downloads its weights once from the Hugging Face Hub (the Docker
build can fetch them ahead: ``docker build --build-arg PAUSE_DETECTOR=silero``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from fastrtc import get_silero_model
from fastrtc.pause_detection import PauseDetectionModel
from pydantic_settings import BaseSettings, SettingsConfigDict

from .io import HandlerUnavailable, level_dbfs

FRAME_SECONDS = 0.02
"""The reply is sent in 20 ms frames, as aiortc sends audio."""


@dataclass(frozen=True)
class EnergyPauseDetector:
    """Counts as speech every 20 ms louder than ``threshold_dbfs`` (fastrtc's ``vad`` protocol)."""

    threshold_dbfs: float = -40.0

    def vad(self, audio: tuple[int, npt.NDArray[Any]], options: object) -> tuple[float, list[Any]]:
        """Seconds of speech in ``audio``, and no speech chunks (fastrtc does not need them)."""
        return FRAME_SECONDS * int(self.voiced(*audio).sum()), []

    def voiced(self, rate: int, audio: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """For each 20 ms of ``audio``, whether it is louder than the threshold."""
        samples = audio.reshape(-1)
        if samples.dtype != np.int16:  # float audio in [-1, 1]
            samples = (samples.astype(np.float64) * 32767).astype(np.int16)
        size = int(rate * FRAME_SECONDS)
        frames = samples[: samples.size // size * size].reshape(-1, size)
        return np.array([level_dbfs(frame) > self.threshold_dbfs for frame in frames], dtype=bool)

    def warmup(self) -> None:
        """Nothing to load."""


DETECTOR = EnergyPauseDetector()

PauseDetector = Literal["energy", "silero"]


class PauseSettings(BaseSettings):
    """This handler's setting, read like the app's (``APP_`` variables, ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="APP_", env_file=".env", extra="ignore")

    pause_detector: PauseDetector = "energy"
    """``energy`` (offline) or ``silero`` (fastrtc's model: ``uv add "fastrtc[vad]"``)."""


def pause_detector(name: PauseDetector) -> PauseDetectionModel:
    """The pause detector called ``name``; loading ``silero`` may download its weights once."""
    if name == "energy":
        return DETECTOR
    try:
        return get_silero_model()
    except Exception as exc:
        raise HandlerUnavailable(
            f"APP_PAUSE_DETECTOR=silero could not load fastrtc's silero model ({exc}): it needs "
            '`uv add "fastrtc[vad]"` and, once, access to the Hugging Face Hub to download '
            "its weights (or a Docker image built with --build-arg PAUSE_DETECTOR=silero)"
        ) from exc
