"""Speech to text: PocketSphinx offline (``APP_STT=pocketsphinx``, the default), or fastrtc's
Moonshine model (``APP_STT=moonshine``)."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from fastrtc import get_stt_model

from ... import _speech_worker
from ..io import AudioFrame, level_dbfs
from .providers import ProviderError, ProviderUnavailable

SILENT_DBFS = -55.0
"""Audio quieter than this holds no speech: it is not decoded."""
MOONSHINE_RATE = 16_000
"""The rate of the audio Moonshine takes."""


def resampled(audio: AudioFrame, rate: int) -> npt.NDArray[np.int16]:
    """``audio`` as mono 16-bit samples at ``rate`` (PyAV's resampler, as aiortc uses)."""
    source, samples = audio
    samples = samples.reshape(1, -1)
    if samples.dtype != np.int16:  # float audio in [-1, 1]
        samples = np.clip(samples * 32767, -32768, 32767).astype(np.int16)
    if samples.size == 0:
        return np.zeros(0, dtype=np.int16)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = source
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    out = [*resampler.resample(frame), *resampler.resample(None)]
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.int16)


def one_line(exc: BaseException) -> str:
    """``exc`` as one line, for a message that must be one."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


@cache
def decoders() -> ProcessPoolExecutor:
    """The worker process that decodes (one for the app: the machine's cores serve the media
    too), started fresh (``spawn``: the server's threads are not copied) with the model loaded.
    It takes one utterance at a time, so turns that end together wait for each other."""
    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_speech_worker.load,
    )
    pool.submit(int).result()  # started, model loaded
    return pool


class PocketSphinx:
    """CMU PocketSphinx with the English model inside its wheel: no download, no server.

    It holds the GIL while it decodes, so it decodes in a process of its own
    (``_speech_worker``), which every connection shares."""

    def __init__(self) -> None:
        try:
            decoders()
        except Exception as exc:
            raise ProviderUnavailable(
                f"APP_STT=pocketsphinx could not start its decoder ({one_line(exc)})"
            ) from exc

    async def transcribe(self, audio: AudioFrame) -> str:
        samples = resampled(audio, _speech_worker.SAMPLE_RATE)
        if samples.size == 0 or level_dbfs(samples) < SILENT_DBFS:
            return ""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(decoders(), _speech_worker.decode, samples.tobytes())
        except Exception as exc:  # the worker died: the next turn starts another
            decoders.cache_clear()
            raise ProviderError("stt", f"the speech decoder failed ({one_line(exc)})") from exc


class Moonshine:
    """fastrtc's Moonshine model (``get_stt_model()``): ``uv add "fastrtc[stt]"``; its weights
    are downloaded once from the Hugging Face Hub. It runs in ONNX Runtime, which lets go of
    the GIL and may run for several turns at once."""

    def __init__(self) -> None:
        try:
            self.model: Any = get_stt_model()
        except Exception as exc:
            raise ProviderUnavailable(
                f"APP_STT=moonshine could not load fastrtc's Moonshine model ({one_line(exc)}): "
                'it needs `uv add "fastrtc[stt]"` and, once, the Hugging Face Hub to download '
                "its weights"
            ) from exc

    async def transcribe(self, audio: AudioFrame) -> str:
        samples = resampled(audio, MOONSHINE_RATE)
        if samples.size == 0:
            return ""
        try:
            text = await asyncio.to_thread(self.model.stt, (MOONSHINE_RATE, samples))
        except Exception as exc:
            raise ProviderError("stt", f"Moonshine failed ({one_line(exc)})") from exc
        return str(text).strip()
