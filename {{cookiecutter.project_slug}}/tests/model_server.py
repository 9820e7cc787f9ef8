"""A stand-in for an OpenAI-compatible model server (a plugin: add ``tests.model_server`` to
``pytest_plugins`` for its ``model_server`` fixture).

The voice agent's ``openai`` providers talk to a model server: OpenAI, Groq, Ollama, vLLM,
llama.cpp. None can run here (no internet, no model weights), so the tests start this one
instead: a real HTTP server (uvicorn, on 127.0.0.1, a free port) that speaks the same wire
format, with canned answers:

- ``GET /v1/models``: the models it has;
- ``POST /v1/chat/completions``: ``reply``, streamed word by word as server-sent events
  (``data: {chat.completion.chunk}`` lines, then ``data: [DONE]``), or in one answer;
- ``POST /v1/audio/transcriptions`` (multipart, a WAV file): ``{"text": transcript}``;
- ``POST /v1/audio/speech``: a tone as raw PCM (24 kHz, mono, 16-bit), as long as the text,
  streamed in chunks of an odd number of bytes.

A test tells it to fail (``fail_next``: 401, 429, hang, cut the stream...), sets the key it
wants (``api_key``) and reads what it was sent (``requests``).
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

Failure = Literal["unauthorized", "rate_limited", "hang", "stall", "cut", "truncate", "malformed"]
"""How the server fails a request: ``unauthorized`` (401), ``rate_limited`` (429), ``hang``
(no answer until ``hang_seconds`` pass); in a streamed answer (chat, speech), after a few
chunks: ``stall`` (no more until ``hang_seconds`` pass), ``cut`` (the connection dropped),
``truncate`` (the answer ends early: a chat stream without its end); ``malformed``: an answer
that is not what the API says (not JSON, or JSON instead of audio)."""
Route = Literal["models", "chat", "transcriptions", "speech"]

SPEECH_RATE = 24_000
"""The sample rate of ``/audio/speech`` PCM."""
SPEECH_SECONDS_PER_CHARACTER = 0.06
"""How long the tone is for each character of text: about the pace of speech."""
TONE_HZ = 440.0
TONE_AMPLITUDE = 8000
"""About -12 dBFS: audible."""
SPEECH_CHUNK_BYTES = 4801
"""The speech is streamed in chunks of this many bytes: odd, so that samples straddle chunks
as they may from a real server."""
CHUNKS_BEFORE_CUT = 3
"""Chunks of a streamed answer sent before its failure (``stall``, ``cut``, ``truncate``)."""
CHUNK_INTERVAL = 0.01
"""Seconds between the chunks of a streamed answer: they arrive one by one."""
DEFAULT_REPLY = "It is sunny. Anything else?"
DEFAULT_TRANSCRIPT = "What is the weather like?"


class Cut(Exception):
    """Raised in a streamed body to drop the connection mid-answer."""


@dataclass(frozen=True)
class Received:
    """One request the server got."""

    route: Route
    headers: dict[str, str]
    """Lower-case names."""
    body: dict[str, Any] = field(default_factory=dict)
    """The JSON body, or the multipart fields (the file's bytes under ``file``)."""

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


def speech_pcm(text: str) -> bytes:
    """The PCM the server answers ``text`` with: a tone as long as the text would take to say."""
    count = max(1, round(len(text) * SPEECH_SECONDS_PER_CHARACTER * SPEECH_RATE))
    t = np.arange(count) / SPEECH_RATE
    tone = TONE_AMPLITUDE * np.sin(2 * math.pi * TONE_HZ * t)
    return np.asarray(tone, dtype="<i2").tobytes()


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """An error as OpenAI's API answers it."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class ModelServer:
    """The stand-in server, running while its ``with`` block lasts; ``url`` ends in ``/v1``."""

    def __init__(self) -> None:
        self.models = ["stand-in-chat", "stand-in-transcribe", "stand-in-speech"]
        self.reply: str | Callable[[list[dict[str, Any]]], str] = DEFAULT_REPLY
        """The chat reply, or how to make it from the messages."""
        self.transcript = DEFAULT_TRANSCRIPT
        self.api_key: str | None = None
        """The key it wants (``Authorization: Bearer <key>``); any, or none, if ``None``."""
        self.hang_seconds = 30.0
        self.requests: list[Received] = []
        self._failures: list[tuple[Failure, Route | None]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        config = uvicorn.Config(
            self._app(), log_level="critical", lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, args=([self._socket],))

    # -- what a test controls

    def fail_next(self, failure: Failure, route: Route | None = None, times: int = 1) -> None:
        """Fail the next ``times`` requests (to ``route`` only, if given) with ``failure``."""
        with self._lock:
            self._failures.extend([(failure, route)] * times)

    def received(self, route: Route) -> list[Received]:
        """The requests to ``route`` so far, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.route == route]

    def speech(self, text: str) -> bytes:
        """The PCM it answers ``text`` with (``speech_pcm``)."""
        return speech_pcm(text)

    def last(self, route: Route) -> Received:
        """The last request to ``route``."""
        found = self.received(route)
        assert found, f"the model server got no {route} request"
        return found[-1]

    # -- running

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the model server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving (as a server that goes away mid-conversation); idempotent."""
        self._stopping.set()
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()

    # -- the app

    def _failure(self, route: Route) -> Failure | None:
        with self._lock:
            for index, (failure, only) in enumerate(self._failures):
                if only in (None, route):
                    del self._failures[index]
                    return failure
        return None

    async def _hang(self) -> None:
        """Wait ``hang_seconds``, or until the server stops."""
        await asyncio.to_thread(self._stopping.wait, self.hang_seconds)

    async def _receive(self, route: Route, request: Request) -> tuple[Received, Failure | None]:
        """Record ``request``; how to fail it, if it is to fail."""
        body: dict[str, Any] = {}
        if request.method == "POST":
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                async with request.form() as form:
                    for name, value in form.items():
                        body[name] = value if isinstance(value, str) else await value.read()
            else:
                body = await request.json()
        received = Received(route, {k.lower(): v for k, v in request.headers.items()}, body)
        with self._lock:
            self.requests.append(received)
        if self.api_key is not None and received.authorization != f"Bearer {self.api_key}":
            return received, "unauthorized"
        return received, self._failure(route)

    async def _failed(self, route: Route, failure: Failure | None) -> Response | None:
        """The answer of a request that fails before its answer starts, if it does."""
        if failure == "unauthorized":
            body = error_body("Incorrect API key.", "invalid_request_error", "invalid_api_key")
            return JSONResponse(body, status_code=401)
        if failure == "rate_limited":
            body = error_body("Rate limit reached.", "requests", "rate_limit_exceeded")
            return JSONResponse(body, status_code=429, headers={"retry-after": "1"})
        if failure == "hang":
            await self._hang()
            return Response(status_code=504)
        if failure == "malformed" and route == "speech":
            return JSONResponse({"unexpected": True})
        if failure == "malformed" and route != "chat":
            return Response("{not json", media_type="application/json")
        return None  # a streamed answer's failures come later, in its stream

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models(request: Request) -> Response:
            _, failure = await self._receive("models", request)
            if failed := await self._failed("models", failure):
                return failed
            data = [
                {"id": name, "object": "model", "created": 0, "owned_by": "stand-in"}
                for name in self.models
            ]
            return JSONResponse({"object": "list", "data": data})

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            received, failure = await self._receive("chat", request)
            if failed := await self._failed("chat", failure):
                return failed
            messages: list[dict[str, Any]] = received.body["messages"]
            text = self.reply if isinstance(self.reply, str) else self.reply(messages)
            model = received.body["model"]
            if not received.body.get("stream"):
                if failure == "malformed":
                    return Response("{not json", media_type="application/json")
                return JSONResponse(completion(model, text))
            events = chat_events(model, text, failure, self._hang)
            return StreamingResponse(events, media_type="text/event-stream")

        @app.post("/v1/audio/transcriptions")
        async def transcriptions(request: Request) -> Response:
            _, failure = await self._receive("transcriptions", request)
            if failed := await self._failed("transcriptions", failure):
                return failed
            return JSONResponse({"text": self.transcript})

        @app.post("/v1/audio/speech")
        async def speech(request: Request) -> Response:
            received, failure = await self._receive("speech", request)
            if failed := await self._failed("speech", failure):
                return failed
            pcm = speech_pcm(received.body["input"])
            chunks = speech_chunks(pcm, failure, self._hang)
            return StreamingResponse(chunks, media_type="audio/pcm")

        return app


def completion(model: str, text: str) -> dict[str, Any]:
    """A ``chat.completion``: the whole reply at once."""
    return {
        "id": "chatcmpl-stand-in",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    """One server-sent ``chat.completion.chunk``."""
    data = {
        "id": "chatcmpl-stand-in",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(data)}\n\n".encode()


async def chat_events(
    model: str, text: str, failure: Failure | None, hang: Callable[[], Awaitable[None]]
) -> AsyncIterator[bytes]:
    """The reply as the server-sent events of a streamed chat completion, word by word."""
    words = text.split(" ")
    pieces = [word + " " for word in words[:-1]] + [words[-1]]
    yield chunk(model, {"role": "assistant", "content": ""})
    for index, piece in enumerate(pieces):
        if index == CHUNKS_BEFORE_CUT:
            await fail_stream(failure, hang)
            if failure == "truncate":
                return
            if failure == "malformed":
                yield b"data: {not json\n\n"
        await asyncio.sleep(CHUNK_INTERVAL)
        yield chunk(model, {"content": piece})
    yield chunk(model, {}, finish_reason="stop")
    yield b"data: [DONE]\n\n"


async def speech_chunks(
    pcm: bytes, failure: Failure | None, hang: Callable[[], Awaitable[None]]
) -> AsyncIterator[bytes]:
    """The speech's PCM in chunks of ``SPEECH_CHUNK_BYTES``."""
    for index, start in enumerate(range(0, len(pcm), SPEECH_CHUNK_BYTES)):
        if index == CHUNKS_BEFORE_CUT:
            await fail_stream(failure, hang)
            if failure == "truncate":
                return
        await asyncio.sleep(CHUNK_INTERVAL)
        yield pcm[start : start + SPEECH_CHUNK_BYTES]


async def fail_stream(failure: Failure | None, hang: Callable[[], Awaitable[None]]) -> None:
    """Midway through a streamed answer: drop the connection (``cut``) or stall (``stall``)."""
    if failure == "cut":
        raise Cut
    if failure == "stall":
        await hang()


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    """The stand-in model server, for one test."""
    with ModelServer() as server:
        yield server
