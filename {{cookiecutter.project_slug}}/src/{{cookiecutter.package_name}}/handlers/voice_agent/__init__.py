"""The voice agent: speech in, a spoken answer back.

Each connection is a ``VoiceAgent``: fastrtc's ``ReplyOnPause`` with the offline pause detector,
replying through its own ``Conversation`` (``agent.py``). The three stages are providers chosen
by settings (``settings.py``); the defaults run offline, with nothing to download.
"""

from __future__ import annotations

from fastrtc import AlgoOptions, ReplyOnPause

from ...settings import load
from ..io import SAMPLE_RATE
from ..pauses import PauseSettings, pause_detector
from .agent import Conversation, Providers
from .language_model import Parrot
from .openai_compatible import OpenAIChat, OpenAISpeech, OpenAITranscription
from .providers import LanguageModel, SpeechToText, TextToSpeech
from .settings import VoiceSettings
from .speech_to_text import Moonshine, PocketSphinx
from .text_to_speech import ESpeak, Kokoro

ALGO_OPTIONS = AlgoOptions(audio_chunk_duration=0.4, started_talking_threshold=0.2)
"""Pause detection in 0.4 s steps: a pause is 0.4 s with under 0.1 s of speech."""


class VoiceAgent(ReplyOnPause):
    """fastrtc's ``ReplyOnPause`` with a conversation of its own for each connection."""

    def __init__(self, providers: Providers, settings: VoiceSettings) -> None:
        self.providers = providers
        self.settings = settings
        self.conversation = Conversation(providers, settings.history_turns)
        super().__init__(
            self.conversation.reply,
            model=pause_detector(load(PauseSettings).pause_detector),
            algo_options=ALGO_OPTIONS,
            expected_layout="mono",
            input_sample_rate=SAMPLE_RATE,
            output_sample_rate=SAMPLE_RATE,
        )

    def copy(self) -> VoiceAgent:
        """A new connection's agent: the same providers, a new conversation."""
        return VoiceAgent(self.providers, self.settings)


def speech_to_text(settings: VoiceSettings) -> SpeechToText:
    if settings.stt == "pocketsphinx":
        return PocketSphinx()
    if settings.stt == "moonshine":
        return Moonshine()
    return OpenAITranscription.from_settings(settings)


def language_model(settings: VoiceSettings) -> LanguageModel:
    if settings.llm == "parrot":
        return Parrot()
    return OpenAIChat.from_settings(settings)


def text_to_speech(settings: VoiceSettings) -> TextToSpeech:
    if settings.tts == "espeak":
        return ESpeak()
    if settings.tts == "kokoro":
        return Kokoro()
    return OpenAISpeech.from_settings(settings)


def build_providers(settings: VoiceSettings) -> Providers:
    """The providers the settings choose; raises ``ProviderUnavailable`` (one line naming the
    setting) for one that cannot work here."""
    return Providers(
        stt=speech_to_text(settings), llm=language_model(settings), tts=text_to_speech(settings)
    )


def build_handler() -> VoiceAgent:
    """The handler the stream copies for each connection."""
    settings = load(VoiceSettings)
    return VoiceAgent(build_providers(settings), settings)
