"""The agent's settings (``APP_`` variables, ``.env``): which provider each stage uses, and
their options. The defaults run offline, with nothing to download and no server."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SpeechToTextName = Literal["pocketsphinx", "moonshine", "openai"]
LanguageModelName = Literal["parrot", "openai"]
TextToSpeechName = Literal["espeak", "kokoro", "openai"]

OPENAI_BASE_URL = "https://api.openai.com/v1"


class VoiceSettings(BaseSettings):
    """The voice agent's settings."""

    model_config = SettingsConfigDict(env_prefix="APP_", env_file=".env", extra="ignore")

    stt: SpeechToTextName = "pocketsphinx"
    """Speech to text: ``pocketsphinx`` (offline, English, in its wheel), ``moonshine``
    (fastrtc's ``get_stt_model()``: ``uv add "fastrtc[stt]"``, downloads its weights once) or
    ``openai`` (any OpenAI-compatible ``/audio/transcriptions``)."""
    llm: LanguageModelName = "parrot"
    """Language model: ``parrot`` (offline, no model: repeats what it understood) or ``openai``
    (any OpenAI-compatible chat completions: OpenAI, Groq, Ollama, vLLM, llama.cpp)."""
    tts: TextToSpeechName = "espeak"
    """Text to speech: ``espeak`` (offline, eSpeak NG in its wheel), ``kokoro`` (fastrtc's
    ``get_tts_model()``: ``uv add "fastrtc[tts]"``, downloads its weights once) or ``openai``
    (any OpenAI-compatible ``/audio/speech``)."""

    openai_base_url: str = OPENAI_BASE_URL
    """Base URL of the OpenAI-compatible server of every stage set to ``openai``, e.g.
    ``http://127.0.0.1:11434/v1`` for Ollama; each stage can have its own (below)."""
    openai_api_key: SecretStr | None = None
    """Key for that server; each stage can have its own (below)."""
    stt_base_url: str | None = None
    stt_api_key: SecretStr | None = None
    stt_model: str = "gpt-4o-mini-transcribe"
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_max_tokens: int = Field(default=200, ge=1)
    """Most tokens in one reply."""
    tts_base_url: str | None = None
    tts_api_key: SecretStr | None = None
    tts_model: str = "gpt-4o-mini-tts"
    provider_timeout: float = Field(default=15.0, gt=0)
    """Seconds a request to a provider's server may take before the turn reports an error."""

    history_turns: int = Field(default=8, ge=0, le=100)
    """Turns of conversation each connection keeps for the language model (older ones are
    dropped)."""
