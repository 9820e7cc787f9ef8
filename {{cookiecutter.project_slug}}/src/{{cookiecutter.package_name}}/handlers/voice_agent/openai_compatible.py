"""The three stages through any OpenAI-compatible server (``APP_STT``, ``APP_LLM``, ``APP_TTS``
set to ``openai``): OpenAI itself, Groq, Ollama, vLLM, llama.cpp, Speaches, Kokoro-FastAPI...

Each stage talks to its own server (``APP_<STAGE>_BASE_URL``, ``APP_<STAGE>_API_KEY``) or to the
shared one (``APP_OPENAI_BASE_URL``, ``APP_OPENAI_API_KEY``) through the official ``openai``
client. At start-up each checks that its server answers and accepts the key (``GET /models``),
else the app stops with one line saying why; during a turn a failure becomes a
``ProviderError`` with a message for the client. The key never appears in either.
"""

from __future__ import annotations

import asyncio
import io
import wave
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar, Self

import httpx
import httpx2  # the openai client's HTTP library: its errors reach us from streamed bodies
import numpy as np
from openai import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncOpenAI,
    AuthenticationError,
    DefaultAsyncHttpxClient,
    NotFoundError,
    OpenAIError,
    PermissionDeniedError,
    RateLimitError,
    omit,
)
from openai.types.audio import Transcription
from openai.types.chat import ChatCompletionMessageParam
from pydantic import SecretStr

from ..io import AudioFrame
from .providers import Message, ProviderError, ProviderUnavailable, Stage
from .settings import VoiceSettings

MAX_RETRIES = 0
"""Retries of a failed request: none, a turn reports the failure at once (the speaker is
waiting) and the next turn tries again."""
SPEECH_SAMPLE_RATE = 24_000
"""The sample rate of ``/audio/speech`` with ``response_format="pcm"``: mono, 16-bit."""
DEFAULT_VOICE = "alloy"
"""The voice of ``/audio/speech`` when the client chose none."""
OPENAI_HOST = "api.openai.com"
"""OpenAI's own API takes ``max_completion_tokens`` (its reasoning models refuse
``max_tokens``); other servers take ``max_tokens``."""
LONGEST_SERVER_MESSAGE = 200
"""Characters of a server's own explanation (of a 400, say) passed on to the client."""
NOT_UNDERSTOOD = "the server's answer was not understood"


def seconds(value: float) -> str:
    return f"{value:g} s"


def shown(url: str) -> str:
    """``url`` without user name and password, for messages."""
    try:
        return str(httpx.URL(url).copy_with(username=None, password=None))
    except httpx.InvalidURL:
        return url


def connection_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words: "connection refused", "unknown host"..."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(error) for error in chain).lower()
    if any(isinstance(error, ConnectionRefusedError) for error in chain) or "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    if "ssl" in text or "certificate" in text:
        return "TLS failed"
    return "connection failed"


class Endpoint:
    """One stage's server: its URL, its key, how long to wait, and a client for it."""

    def __init__(self, stage: Stage, settings: VoiceSettings) -> None:
        self.stage: Stage = stage
        own_url: str | None = getattr(settings, f"{stage}_base_url")
        own_key: SecretStr | None = getattr(settings, f"{stage}_api_key")
        self.base_url = (own_url or settings.openai_base_url).rstrip("/")
        self.key = own_key or settings.openai_api_key
        self.timeout = settings.provider_timeout
        self.setting = f"APP_{stage.upper()}=openai"
        self.key_settings = f"APP_{stage.upper()}_API_KEY or APP_OPENAI_API_KEY"
        self.url_setting = f"APP_{stage.upper()}_BASE_URL" if own_url else "APP_OPENAI_BASE_URL"
        # Without a key no Authorization header is sent (a local server wants none).
        self.headers = {} if self.key else {"Authorization": omit}
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def is_openai(self) -> bool:
        return httpx.URL(self.base_url).host == OPENAI_HOST

    def client(self) -> AsyncOpenAI:
        """The client of the running event loop: its connections belong to that loop (one in
        the app; one per test in the tests)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = AsyncOpenAI(
                base_url=self.base_url,
                # The client insists on a key; without one, ``headers`` leaves it out.
                api_key=self.key.get_secret_value() if self.key else "none",
                timeout=self.timeout,
                max_retries=MAX_RETRIES,
                # The default one, when dropped, closes itself on whichever loop then runs.
                http_client=DefaultAsyncHttpxClient(timeout=self.timeout),
            )
            self._clients[loop] = client
        return client

    def check(self) -> None:
        """Raise ``ProviderUnavailable`` unless the server answers ``GET /models`` and takes
        the key."""
        url = shown(self.base_url)
        headers = {"Authorization": f"Bearer {self.key.get_secret_value()}"} if self.key else {}
        try:
            response = httpx.get(f"{self.base_url}/models", headers=headers, timeout=self.timeout)
        except httpx.TimeoutException:
            raise ProviderUnavailable(
                f"{self.setting}: no answer from {url} within {seconds(self.timeout)}"
            ) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            raise ProviderUnavailable(
                f"{self.setting}: {self.url_setting} is not an http(s) URL: {url!r}"
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                f"{self.setting}: cannot reach {url} ({connection_reason(exc)})"
            ) from None
        status = response.status_code
        if status in (401, 403):
            what = "refused the key" if self.key else "wants a key"
            raise ProviderUnavailable(
                f"{self.setting}: {url} {what} ({status}); set {self.key_settings}"
            )
        if status >= 500:
            raise ProviderUnavailable(f"{self.setting}: {url} is failing ({status})")
        # Other answers (a server without /models: 404) show that it is there.

    def error(self, exc: Exception, *, cut: str | None = None) -> ProviderError:
        """The ``ProviderError`` for ``exc``, raised by the client; ``cut`` names what was
        streaming when it happened, if anything was."""
        return ProviderError(self.stage, self._reason(exc, cut))

    def _reason(self, exc: Exception, cut: str | None) -> str:
        if isinstance(exc, AuthenticationError | PermissionDeniedError):
            if not self.key:
                return f"the server wants a key ({exc.status_code})"
            return f"the server refused the key ({exc.status_code})"
        if isinstance(exc, RateLimitError):
            return "rate limited (429), try again later"
        if isinstance(exc, APITimeoutError | httpx2.TimeoutException):
            return f"no answer within {seconds(self.timeout)}"
        if isinstance(exc, APIConnectionError | httpx2.TransportError):
            if cut:
                return f"{cut} was cut off"
            return f"cannot reach {shown(self.base_url)} ({connection_reason(exc)})"
        if isinstance(exc, NotFoundError):
            return "not found (404): check the model name and the base URL"
        if isinstance(exc, APIResponseValidationError):
            return NOT_UNDERSTOOD
        if isinstance(exc, APIStatusError):
            status = exc.status_code
            if status >= 500:
                return f"the server failed ({status})"
            explained = self._server_message(exc.body)
            return f"the server rejected the request ({status})" + (
                f": {explained}" if explained else ""
            )
        if isinstance(exc, ValueError):  # a body that is not JSON
            return NOT_UNDERSTOOD
        return f"the request failed ({type(exc).__name__})"

    def _server_message(self, body: object) -> str:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str):
            return ""
        if self.key:
            message = message.replace(self.key.get_secret_value(), "***")
        return message[:LONGEST_SERVER_MESSAGE]


ERRORS = (OpenAIError, httpx2.HTTPError, ValueError)
"""What a request through the client may raise: its own errors, its HTTP library's (while a
streamed body is read) and JSON's (a body that is not JSON)."""


def wav(audio: AudioFrame) -> bytes:
    """``audio`` as a WAV file: mono, 16-bit, at its own sample rate."""
    rate, samples = audio
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(np.ascontiguousarray(samples.reshape(-1), dtype="<i2").tobytes())
    return out.getvalue()


class EndpointProvider:
    """A stage served by an OpenAI-compatible server, which is checked at start-up."""

    stage: ClassVar[Stage]

    def __init__(self, endpoint: Endpoint, settings: VoiceSettings) -> None:
        self.endpoint = endpoint
        self.model: str = getattr(settings, f"{self.stage}_model")

    @classmethod
    def from_settings(cls, settings: VoiceSettings) -> Self:
        endpoint = Endpoint(cls.stage, settings)
        endpoint.check()
        return cls(endpoint, settings)


class OpenAITranscription(EndpointProvider):
    """Speech to text through ``/audio/transcriptions`` (Whisper and its kin)."""

    stage = "stt"

    async def transcribe(self, audio: AudioFrame) -> str:
        if audio[1].size == 0:
            return ""
        try:
            result = await self.endpoint.client().audio.transcriptions.create(
                model=self.model,
                file=("speech.wav", wav(audio), "audio/wav"),
                extra_headers=self.endpoint.headers,
            )
        except ERRORS as exc:
            raise self.endpoint.error(exc) from exc
        if not isinstance(result, Transcription) or not isinstance(result.text, str):
            raise ProviderError("stt", NOT_UNDERSTOOD)
        return result.text.strip()


def chat_message(message: Message) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "assistant":
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}


class OpenAIChat(EndpointProvider):
    """A language model through ``/chat/completions``, streamed."""

    stage = "llm"

    def __init__(self, endpoint: Endpoint, settings: VoiceSettings) -> None:
        super().__init__(endpoint, settings)
        self.max_tokens = settings.llm_max_tokens

    async def reply(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        openai = self.endpoint.is_openai
        finished = False
        streaming: str | None = None
        try:
            stream = await self.endpoint.client().chat.completions.create(
                model=self.model,
                messages=[chat_message(message) for message in messages],
                stream=True,
                max_completion_tokens=self.max_tokens if openai else omit,
                max_tokens=omit if openai else self.max_tokens,
                extra_headers=self.endpoint.headers,
            )
            streaming = "the reply stream"
            async with stream:
                async for chunk in stream:
                    # The client checks no types: a field the server left out is None.
                    if not isinstance(chunk.choices, list):
                        raise ProviderError("llm", NOT_UNDERSTOOD)
                    for choice in chunk.choices:
                        finished = finished or bool(choice.finish_reason)
                        content = choice.delta.content if choice.delta is not None else None
                        if isinstance(content, str) and content:
                            yield content
        except ERRORS as exc:
            raise self.endpoint.error(exc, cut=streaming) from exc
        if not finished:  # the stream ended before the model said it was done
            raise ProviderError("llm", "the reply stream was cut off")


class OpenAISpeech(EndpointProvider):
    """Text to speech through ``/audio/speech``, as raw 24 kHz PCM streamed as it is made."""

    stage = "tts"

    async def synthesize(self, text: str, voice: str) -> AsyncIterator[AudioFrame]:
        if not text.strip():
            return
        streaming: str | None = None
        odd = b""  # a sample's first byte, its second in the next chunk
        try:
            async with self.endpoint.client().audio.speech.with_streaming_response.create(
                model=self.model,
                voice=voice or DEFAULT_VOICE,
                input=text,
                response_format="pcm",
                extra_headers=self.endpoint.headers,
            ) as response:
                kind = response.headers.get("content-type", "")
                if kind.startswith(("application/json", "text/")):
                    raise ProviderError("tts", f"the server sent no audio but {kind.split(';')[0]}")
                streaming = "the audio stream"
                async for data in response.iter_bytes():
                    data = odd + data
                    whole = len(data) - len(data) % 2
                    odd = data[whole:]
                    if whole:
                        samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.int16)
                        yield SPEECH_SAMPLE_RATE, samples
        except ERRORS as exc:
            raise self.endpoint.error(exc, cut=streaming) from exc
