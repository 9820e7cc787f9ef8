"""eSpeak NG's C library, as the ``espeakng-loader`` wheel ships it (with its voice data).

No maintained binding plays the wheel's library into memory (``espeakng`` on PyPI runs the
``espeak-ng`` program of the system), so this calls its C API with ctypes: ``espeak_Initialize``
(synchronous output), ``espeak_SetSynthCallback``, ``espeak_SetVoiceByName``,
``espeak_SetParameter`` (the rate) and ``espeak_Synth``, whose callback hands over the audio a
piece at a time. The library keeps one state for the process and is not thread-safe: one call
at a time (``LOCK``).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

import espeakng_loader  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

AUDIO_OUTPUT_SYNCHRONOUS = 2
"""``espeak_AUDIO_OUTPUT``: the audio goes to the callback, and ``espeak_Synth`` returns when
all of it has."""
DEFAULT_BUFFER_MS = 0
"""``espeak_Initialize``'s ``buflength``: the callback gets 60 ms of audio at a time."""
INITIALIZE_DONT_EXIT = 0x8000
"""``espeakINITIALIZE_DONT_EXIT``: a failure is returned, not the process exited."""
ESPEAK_RATE = 1
"""``espeak_PARAMETER``: words a minute."""
POS_CHARACTER = 1
"""``espeak_POSITION_TYPE``: the text is spoken from its first character."""
CHARS_UTF8 = 1
"""``espeak_Synth`` flag: the text is UTF-8."""
ENDPAUSE = 0x1000
"""``espeak_Synth`` flag: a sentence's pause at the end (the agent speaks a sentence a call)."""
EE_OK = 0
CONTINUE, ABORT = 0, 1
"""What the callback returns: go on, or stop the synthesis."""

LOCK = threading.Lock()
"""eSpeak's state is the process's: one call into it at a time."""

SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
"""``t_espeak_callback``: samples, their count, the events (unused)."""
Sink = Callable[[npt.NDArray[np.int16]], bool]
"""Takes each piece of audio as it is made; returns False to stop the synthesis."""


class ESpeakLibrary:
    """The library, initialized (``library()``)."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, DEFAULT_BUFFER_MS, data, INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate})")
        self.sample_rate: int = rate
        """The rate of the audio it makes (22050 Hz)."""
        self.sink: Sink | None = None
        self.failure: BaseException | None = None
        self.callback = SynthCallback(self._received)  # kept: the library holds a pointer
        lib.espeak_SetSynthCallback(self.callback)
        self.lib = lib

    def _received(self, samples: object, count: int, events: object) -> int:
        """The synth callback: a piece of audio for the sink (none on the last call)."""
        if count <= 0 or not samples or self.sink is None:
            return CONTINUE
        try:
            piece = np.ctypeslib.as_array(samples, shape=(count,)).astype(np.int16)  # a copy
            return CONTINUE if self.sink(piece) else ABORT
        except BaseException as exc:  # it cannot go through the C library: raised after it
            self.failure = exc
            return ABORT

    def synthesize(self, text: str, voice: str, words_per_minute: int, sink: Sink) -> None:
        """Speak ``text`` in ``voice``, handing each piece of audio to ``sink`` as it is made,
        until done or ``sink`` returns False. Raises ``LookupError`` if there is no such voice."""
        encoded = text.encode()
        with LOCK:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
                raise LookupError(f"eSpeak NG has no voice {voice!r}")
            self.lib.espeak_SetParameter(ESPEAK_RATE, words_per_minute, 0)
            self.sink, self.failure = sink, None
            try:
                flags = CHARS_UTF8 | ENDPAUSE
                code = self.lib.espeak_Synth(
                    encoded, len(encoded) + 1, 0, POS_CHARACTER, 0, flags, None, None
                )
                if self.failure is not None:
                    raise self.failure
                if code != EE_OK:
                    raise RuntimeError(f"espeak_Synth failed ({code})")
            finally:
                self.sink, self.failure = None, None


_library: ESpeakLibrary | None = None


def library() -> ESpeakLibrary:
    """The library, loaded and initialized once (a second ``espeak_Initialize`` would take the
    callback from the first)."""
    global _library
    with LOCK:
        if _library is None:
            _library = ESpeakLibrary()
        return _library
