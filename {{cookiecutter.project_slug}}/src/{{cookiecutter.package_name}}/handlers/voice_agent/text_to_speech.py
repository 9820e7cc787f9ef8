"""Text to speech: eSpeak NG offline (``APP_TTS=espeak``, the default), or fastrtc's Kokoro
model (``APP_TTS=kokoro``)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import numpy.typing as npt
from fastrtc import KokoroTTSOptions, get_tts_model

from ..io import AudioFrame
from . import _espeak
from .providers import ProviderError, ProviderUnavailable
from .speech_to_text import one_line

DEFAULT_VOICE = "en-us"
"""eSpeak's voice when the connection names none."""
WORDS_PER_MINUTE = 160
"""A little slower than eSpeak's 175: clearer, and speech to text hears it better."""


class ESpeak:
    """eSpeak NG, from the ``espeakng-loader`` wheel: no download, no server. Its voices are
    eSpeak's languages (``en-us``, ``en`` for British English, ``fr``, ...; with a variant as
    ``en-us+f3``)."""

    def __init__(self) -> None:
        try:
            self.library = _espeak.library()
        except Exception as exc:
            raise ProviderUnavailable(
                f"APP_TTS=espeak could not load eSpeak NG ({one_line(exc)})"
            ) from exc

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[AudioFrame]:
        """The audio of ``text``, piece by piece as eSpeak makes it (in a thread: the library
        lets go of the GIL); a reply that stops early stops the synthesis."""
        if not text.strip():
            return
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[npt.NDArray[np.int16] | None] = asyncio.Queue()
        stopped = threading.Event()

        def hand_over(piece: npt.NDArray[np.int16]) -> bool:
            loop.call_soon_threadsafe(pieces.put_nowait, piece)
            return not stopped.is_set()

        def run() -> None:
            try:
                self.library.synthesize(text, voice or DEFAULT_VOICE, WORDS_PER_MINUTE, hand_over)
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, None)

        done = loop.run_in_executor(None, run)
        try:
            while (piece := await pieces.get()) is not None:
                yield self.library.sample_rate, piece
            try:
                await done
            except LookupError as exc:
                raise ProviderError(
                    "tts",
                    f"unknown voice {voice!r}: eSpeak's voices are languages such as 'en-us', "
                    "'en' (British), 'fr' or 'de', with a variant as 'en-us+f3'",
                ) from exc
            except Exception as exc:
                raise ProviderError("tts", f"eSpeak failed ({one_line(exc)})") from exc
        finally:
            stopped.set()
            with contextlib.suppress(Exception):
                await done  # a stopped reply: the synthesis ends (at its next piece) first


class Kokoro:
    """fastrtc's Kokoro model (``get_tts_model()``): ``uv add "fastrtc[tts]"``; its weights
    are downloaded once from the Hugging Face Hub. Its voices: ``af_heart`` (the default),
    ``am_michael``, ``bf_emma``, ..."""

    def __init__(self) -> None:
        try:
            self.model: Any = get_tts_model("kokoro")
        except Exception as exc:
            raise ProviderUnavailable(
                f"APP_TTS=kokoro could not load fastrtc's Kokoro model ({one_line(exc)}): it "
                'needs `uv add "fastrtc[tts]"` and, once, the Hugging Face Hub to download its '
                "weights"
            ) from exc

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[AudioFrame]:
        if not text.strip():
            return
        options = KokoroTTSOptions(voice=voice) if voice else KokoroTTSOptions()
        async with contextlib.aclosing(self.model.stream_tts(text, options)) as pieces:
            while True:
                try:
                    rate, samples = await anext(pieces)
                except StopAsyncIteration:
                    return
                except Exception as exc:  # e.g. a voice it does not have
                    raise ProviderError(
                        "tts", f"Kokoro failed with voice {options.voice!r} ({one_line(exc)})"
                    ) from exc
                audio = np.clip(np.asarray(samples) * 32767, -32768, 32767).astype(np.int16)
                yield int(rate), audio
