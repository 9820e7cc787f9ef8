"""The OpenAI-compatible providers against a real HTTP server speaking the API's wire format
(the stand-in in ``model_server.py``): what they send, what they make of the answers, and how
they fail: one line at start-up, a ``ProviderError`` with a clear message during a turn."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time
import wave
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.handlers.io import AudioFrame, level_dbfs
from {{ cookiecutter.package_name }}.handlers.voice_agent.openai_compatible import (
    OpenAIChat,
    OpenAISpeech,
    OpenAITranscription,
)
from {{ cookiecutter.package_name }}.handlers.voice_agent.providers import (
    Message,
    ProviderError,
    ProviderUnavailable,
)
from {{ cookiecutter.package_name }}.handlers.voice_agent.settings import VoiceSettings

if TYPE_CHECKING:  # imported by pytest, as a plugin: its asserts rewritten
    from .model_server import Failure, ModelServer, Route

pytest_plugins = ["tests.model_server"]

TIMEOUT = 2.0
"""The providers' timeout in these tests: a hung server is noticed quickly."""
PROMPTLY = 5.0
"""Seconds within which any failure must be reported."""
KEY = "sk-test-0123456789abcdef"
CONVERSATION = [
    Message("system", "Answer briefly."),
    Message("user", "Hello."),
    Message("assistant", "Hi, how can I help?"),
    Message("user", "What is the weather like?"),
]
REPLY = "It is sunny. Anything else?"
"""The stand-in's chat reply."""
SPOKEN = "It is sunny."

Provider = OpenAITranscription | OpenAIChat | OpenAISpeech


def voice_settings(**values: Any) -> VoiceSettings:
    """Every stage set to ``openai``, with a short timeout, ``values`` over that."""
    defaults: dict[str, Any] = {"stt": "openai", "llm": "openai", "tts": "openai"}
    defaults["provider_timeout"] = TIMEOUT
    return VoiceSettings(_env_file=None, **{**defaults, **values})  # type: ignore[call-arg]


def on(server: ModelServer, **values: Any) -> VoiceSettings:
    """Settings for every stage on ``server``, with the key ``KEY``."""
    return voice_settings(openai_base_url=server.url, openai_api_key=KEY, **values)


def speech(seconds: float = 0.5, rate: int = 48_000) -> AudioFrame:
    """An utterance as fastrtc hands it over: a tone, shape (1, samples)."""
    t = np.arange(int(seconds * rate)) / rate
    return rate, np.asarray(6000 * np.sin(2 * np.pi * 220 * t), dtype=np.int16).reshape(1, -1)


async def synthesized(tts: OpenAISpeech, text: str, voice: str = "") -> list[AudioFrame]:
    return [chunk async for chunk in tts.synthesize(text, voice)]


async def replied(llm: OpenAIChat, messages: list[Message] = CONVERSATION) -> list[str]:
    return [piece async for piece in llm.reply(messages)]


def dead_url() -> str:
    """The URL of a port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# -- what they send and what they make of the answers


async def test_transcription_sends_the_audio_as_wav_and_returns_the_text(
    model_server: ModelServer,
) -> None:
    model_server.api_key = KEY
    model_server.transcript = " Turn on the lights. "
    stt = OpenAITranscription.from_settings(on(model_server, stt_model="whisper-small"))
    audio = speech()

    assert await stt.transcribe(audio) == "Turn on the lights."

    sent = model_server.last("transcriptions")
    assert sent.body["model"] == "whisper-small"
    assert sent.authorization == f"Bearer {KEY}"
    with wave.open(io.BytesIO(sent.body["file"])) as file:
        assert (file.getnchannels(), file.getsampwidth(), file.getframerate()) == (1, 2, 48_000)
        samples = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
    np.testing.assert_array_equal(samples, audio[1].reshape(-1))


async def test_chat_streams_the_reply_in_pieces_as_they_arrive(model_server: ModelServer) -> None:
    llm = OpenAIChat.from_settings(on(model_server, llm_model="llama3.2", llm_max_tokens=77))
    arrivals: list[float] = []
    pieces: list[str] = []
    async for piece in llm.reply(CONVERSATION):
        arrivals.append(time.monotonic())
        pieces.append(piece)

    assert "".join(pieces) == REPLY
    assert len(pieces) == len(REPLY.split(" "))
    assert arrivals[-1] - arrivals[0] > 0.03  # one by one, not all at the end
    sent = model_server.last("chat").body
    assert sent["model"] == "llama3.2"
    assert sent["stream"] is True
    assert sent["max_tokens"] == 77
    assert sent["messages"] == [{"role": m.role, "content": m.content} for m in CONVERSATION]


async def test_chat_serves_several_turns_at_once(model_server: ModelServer) -> None:
    model_server.reply = lambda messages: f"You said {messages[-1]['content']}"
    llm = OpenAIChat.from_settings(on(model_server))
    questions = [[Message("user", f"question {n}")] for n in range(4)]

    answers = await asyncio.gather(*(replied(llm, q) for q in questions))

    assert ["".join(a) for a in answers] == [f"You said question {n}" for n in range(4)]


async def test_speech_streams_audible_24_khz_pcm(model_server: ModelServer) -> None:
    tts = OpenAISpeech.from_settings(on(model_server, tts_model="tts-1"))

    chunks = await synthesized(tts, SPOKEN, "nova")

    assert len(chunks) > 1
    assert {rate for rate, _ in chunks} == {24_000}
    assert all(samples.dtype == np.int16 for _, samples in chunks)
    audio = np.concatenate([samples.reshape(-1) for _, samples in chunks])
    # Every sample arrives whole, though the server's chunks have an odd number of bytes.
    np.testing.assert_array_equal(audio, np.frombuffer(model_server.speech(SPOKEN), dtype="<i2"))
    assert level_dbfs(audio) > -20
    sent = model_server.last("speech").body
    assert (sent["model"], sent["voice"], sent["input"]) == ("tts-1", "nova", SPOKEN)
    assert sent["response_format"] == "pcm"


async def test_speech_without_a_voice_asks_for_the_default(model_server: ModelServer) -> None:
    tts = OpenAISpeech.from_settings(on(model_server))

    await synthesized(tts, "Hello.")

    assert model_server.last("speech").body["voice"] == "alloy"


async def test_longer_text_makes_longer_speech(model_server: ModelServer) -> None:
    tts = OpenAISpeech.from_settings(on(model_server))

    short = sum(s.size for _, s in await synthesized(tts, "Yes."))
    long = sum(s.size for _, s in await synthesized(tts, "Yes, and a good deal more than that."))

    assert long > 3 * short


async def test_each_stage_can_have_its_own_server_and_key(model_server: ModelServer) -> None:
    settings = voice_settings(
        openai_base_url=dead_url(),
        openai_api_key="shared-key",
        stt_base_url=model_server.url,
        stt_api_key="stt-key",
        llm_base_url=model_server.url,
    )
    stt = OpenAITranscription.from_settings(settings)
    llm = OpenAIChat.from_settings(settings)

    await stt.transcribe(speech())
    await replied(llm)

    assert model_server.last("transcriptions").authorization == "Bearer stt-key"
    assert model_server.last("chat").authorization == "Bearer shared-key"
    with pytest.raises(ProviderUnavailable, match="APP_TTS=openai: cannot reach"):
        OpenAISpeech.from_settings(settings)  # the shared server, which is down


async def test_without_a_key_no_authorization_is_sent(model_server: ModelServer) -> None:
    llm = OpenAIChat.from_settings(voice_settings(openai_base_url=model_server.url))

    assert "".join(await replied(llm)) == REPLY

    assert [r.authorization for r in model_server.requests] == [None, None]


# -- start-up: one line naming the setting, the URL and the reason

PROVIDERS: list[tuple[str, type[Provider]]] = [
    ("APP_STT", OpenAITranscription),
    ("APP_LLM", OpenAIChat),
    ("APP_TTS", OpenAISpeech),
]


@pytest.mark.parametrize(("setting", "provider"), PROVIDERS)
def test_a_server_that_is_down_stops_the_start(setting: str, provider: type[Provider]) -> None:
    url = dead_url()

    with pytest.raises(ProviderUnavailable) as failed:
        provider.from_settings(voice_settings(openai_base_url=url, openai_api_key=KEY))

    assert str(failed.value) == f"{setting}=openai: cannot reach {url} (connection refused)"


@pytest.mark.parametrize(("setting", "provider"), PROVIDERS)
def test_a_refused_key_stops_the_start(
    model_server: ModelServer, setting: str, provider: type[Provider]
) -> None:
    model_server.api_key = "the-right-key"

    with pytest.raises(ProviderUnavailable) as failed:
        provider.from_settings(on(model_server))

    message = str(failed.value)
    assert message == (
        f"{setting}=openai: {model_server.url} refused the key (401); "
        f"set {setting}_API_KEY or APP_OPENAI_API_KEY"
    )
    assert KEY not in message


def test_a_missing_key_is_named_at_start(model_server: ModelServer) -> None:
    model_server.api_key = "the-right-key"

    with pytest.raises(ProviderUnavailable, match=r"wants a key \(401\); set APP_LLM_API_KEY"):
        OpenAIChat.from_settings(voice_settings(openai_base_url=model_server.url))


def test_a_server_that_does_not_answer_stops_the_start_promptly(
    model_server: ModelServer,
) -> None:
    model_server.fail_next("hang", "models")
    started = time.monotonic()

    with pytest.raises(ProviderUnavailable) as failed:
        OpenAIChat.from_settings(on(model_server))

    expected = f"APP_LLM=openai: no answer from {model_server.url} within {TIMEOUT:g} s"
    assert str(failed.value) == expected
    assert time.monotonic() - started < PROMPTLY


def test_a_base_url_that_is_no_url_is_named(model_server: ModelServer) -> None:
    with pytest.raises(ProviderUnavailable) as failed:
        OpenAISpeech.from_settings(on(model_server, tts_base_url="localhost:8000"))

    assert str(failed.value).startswith("APP_TTS=openai: APP_TTS_BASE_URL is not an http(s) URL")


# -- during a turn: a ProviderError with a clear message, promptly; the next turn works

UNAUTHORIZED = "the server refused the key (401)"
RATE_LIMITED = "rate limited (429), try again later"
NO_ANSWER = f"no answer within {TIMEOUT:g} s"
NOT_UNDERSTOOD = "the server's answer was not understood"


async def transcribe(server: ModelServer) -> object:
    return await OpenAITranscription.from_settings(on(server)).transcribe(speech())


async def reply(server: ModelServer) -> object:
    return await replied(OpenAIChat.from_settings(on(server)))


async def synthesize(server: ModelServer) -> object:
    return await synthesized(OpenAISpeech.from_settings(on(server)), SPOKEN)


Turn: TypeAlias = "Callable[[ModelServer], Awaitable[object]]"

FAILURES: list[tuple[Turn, Route, Failure, str]] = [
    (transcribe, "transcriptions", "unauthorized", f"stt: {UNAUTHORIZED}"),
    (transcribe, "transcriptions", "rate_limited", f"stt: {RATE_LIMITED}"),
    (transcribe, "transcriptions", "hang", f"stt: {NO_ANSWER}"),
    (transcribe, "transcriptions", "malformed", f"stt: {NOT_UNDERSTOOD}"),
    (reply, "chat", "unauthorized", f"llm: {UNAUTHORIZED}"),
    (reply, "chat", "rate_limited", f"llm: {RATE_LIMITED}"),
    (reply, "chat", "hang", f"llm: {NO_ANSWER}"),
    (reply, "chat", "stall", f"llm: {NO_ANSWER}"),
    (reply, "chat", "cut", "llm: the reply stream was cut off"),
    (reply, "chat", "truncate", "llm: the reply stream was cut off"),
    (reply, "chat", "malformed", f"llm: {NOT_UNDERSTOOD}"),
    (synthesize, "speech", "unauthorized", f"tts: {UNAUTHORIZED}"),
    (synthesize, "speech", "rate_limited", f"tts: {RATE_LIMITED}"),
    (synthesize, "speech", "hang", f"tts: {NO_ANSWER}"),
    (synthesize, "speech", "stall", f"tts: {NO_ANSWER}"),
    (synthesize, "speech", "cut", "tts: the audio stream was cut off"),
    (synthesize, "speech", "malformed", "tts: the server sent no audio but application/json"),
]


@pytest.mark.parametrize(
    ("turn", "route", "failure", "message"),
    FAILURES,
    ids=[f"{route}-{failure}" for _, route, failure, _ in FAILURES],
)
async def test_a_failure_during_a_turn_is_a_clear_provider_error(
    model_server: ModelServer, turn: Turn, route: Route, failure: Failure, message: str
) -> None:
    model_server.fail_next(failure, route)
    started = time.monotonic()

    with pytest.raises(ProviderError) as failed:
        await turn(model_server)

    assert str(failed.value) == message
    assert failed.value.stage == message.split(":")[0]
    assert time.monotonic() - started < PROMPTLY
    assert model_server.received(route)
    await turn(model_server)  # the next turn works


async def test_the_first_words_arrive_before_a_cut(model_server: ModelServer) -> None:
    llm = OpenAIChat.from_settings(on(model_server))
    model_server.fail_next("cut", "chat")
    pieces: list[str] = []

    async def listen() -> None:
        async for piece in llm.reply(CONVERSATION):
            pieces.append(piece)

    with pytest.raises(ProviderError, match="cut off"):
        await listen()

    assert "".join(pieces) == "It is sunny. "  # the chunks before the cut


async def test_a_server_gone_during_the_conversation_is_named(model_server: ModelServer) -> None:
    tts = OpenAISpeech.from_settings(on(model_server))
    model_server.stop()

    with pytest.raises(ProviderError) as failed:
        await synthesized(tts, SPOKEN)

    assert str(failed.value) == f"tts: cannot reach {model_server.url} (connection refused)"


async def test_the_key_appears_in_no_message_or_log(
    model_server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    llm = OpenAIChat.from_settings(on(model_server))
    tts = OpenAISpeech.from_settings(on(model_server))
    model_server.api_key = "another-key"  # every request is now refused

    errors: list[BaseException] = []
    for attempt in (replied(llm), synthesized(tts, SPOKEN)):
        with pytest.raises(ProviderError) as failed:
            await attempt
        errors.append(failed.value)
    with pytest.raises(ProviderUnavailable) as refused:
        OpenAISpeech.from_settings(on(model_server))
    errors.append(refused.value)

    assert [str(e) for e in errors[:2]] == [f"llm: {UNAUTHORIZED}", f"tts: {UNAUTHORIZED}"]
    assert caplog.records  # the client logged its requests
    for text in [*map(str, errors), caplog.text]:
        assert KEY not in text
