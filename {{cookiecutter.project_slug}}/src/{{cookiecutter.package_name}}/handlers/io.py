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


class HandlerUnavailable(RuntimeError):
    """The handler cannot work here (a model it cannot load, a server it cannot reach); its
    message is one line naming the setting and what it needs, and the app exits with it."""
{%- if cookiecutter.handler == "voice-agent" %}


SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Answer in one to three short sentences of plain text, "
    "with no lists or markup: your words are spoken."
)
"""The system prompt of a connection until a client sets another."""
{%- endif %}


class Input(BaseModel):
    """What a client may change while connected."""

    model_config = ConfigDict(frozen=True)

    gain: float = Field(
        default=1.0,
        ge=0.0,
        le=4.0,
        description="Factor of the audio's volume, the video's brightness.",
    )
{%- if cookiecutter.handler == "voice-agent" %}
    system_prompt: str = Field(
        default=SYSTEM_PROMPT,
        min_length=1,
        max_length=4000,
        description="What the language model is told before the conversation.",
    )
    voice: str = Field(
        default="",
        max_length=64,
        pattern=r"^[\w.+-]*$",
        description="The synthesizer's voice (e.g. 'en-us', 'alloy'); empty: its default.",
    )
{%- endif %}


DEFAULT_INPUT = Input()
"""The input of a connection until a client sets one."""
{%- if cookiecutter.handler == "voice-agent" %}


class TurnLatency(BaseModel):
    """Seconds from the end of the speaker's speech to each stage's first result."""

    transcribed: float = Field(description="Speech to text done.")
    first_token: float | None = Field(description="The language model's first words.")
    first_synthesized: float | None = Field(description="The synthesizer's first audio.")
    first_audio: float | None = Field(description="The reply's first audio sent.")
{%- endif %}


class Stats(BaseModel):
    """What the handler reports while connected (its additional output)."""

    frames: int = Field(description="Frames handled (audio or video): so far, or in a reply.")
    level_dbfs: float = Field(
        description="Level of the media last handled, in dBFS (video: mean brightness to white)."
    )
    gain: float = Field(description="Gain in force.")
{%- if cookiecutter.handler == "voice-agent" %}
    turn: int = Field(default=0, ge=0, description="The turn reported on: 1, 2, ... (0: none).")
    transcript: str = Field(default="", description="What the agent heard in this turn.")
    reply: str = Field(default="", description="The agent's reply in this turn, so far.")
    done: bool = Field(default=False, description="Whether the reply is over.")
    latency: TurnLatency | None = Field(
        default=None, description="How long each stage took (set once the reply is over)."
    )
    error: str | None = Field(
        default=None, description="What failed in this turn; the connection stays open."
    )

{%- endif %}


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
