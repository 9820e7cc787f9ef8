"""What the agent's three stages are: small protocols that each provider implements.

A provider is built once at start-up (``build`` in ``settings.py``) and shared by every
connection, so it must be safe to call from several turns at once. Building one that cannot
work (a model it cannot load, a server it cannot reach) raises ``ProviderUnavailable``, which
the app prints as one line; a call that fails mid-conversation raises ``ProviderError``, which
the turn reports to the client and logs, and the connection stays open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ..io import AudioFrame, HandlerUnavailable

Stage = Literal["stt", "llm", "tts"]
"""The stages of a turn, by the name of the setting that chooses their provider."""


@dataclass(frozen=True)
class Message:
    """One message of a conversation, as chat models take it."""

    role: Literal["system", "user", "assistant"]
    content: str


class ProviderUnavailable(HandlerUnavailable):
    """A provider cannot work here; the message names the setting and what it needs."""


class ProviderError(RuntimeError):
    """A provider failed during a turn; the message says what happened, for the client."""

    def __init__(self, stage: Stage, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


class SpeechToText(Protocol):
    """Speech to text: the words of one utterance."""

    async def transcribe(self, audio: AudioFrame) -> str:
        """The text spoken in ``audio`` (mono, any sample rate); "" if nothing was understood."""
        ...


class LanguageModel(Protocol):
    """The reply to a conversation, streamed."""

    def reply(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """The reply to ``messages`` (system prompt first, the user's last), piece by piece."""
        ...


class TextToSpeech(Protocol):
    """Text to speech, streamed."""

    def synthesize(self, text: str, voice: str) -> AsyncIterator[AudioFrame]:
        """``text`` spoken by ``voice`` ("" for the provider's default), chunk by chunk, mono
        16-bit; the first chunk as soon as the provider has it."""
        ...
