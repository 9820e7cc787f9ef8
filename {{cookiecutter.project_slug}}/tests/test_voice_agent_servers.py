"""The voice agent end to end on a model server (the OpenAI-compatible stand-in of
``model_server.py``, for a server that cannot run here), with real peers: the connection's
inputs reach the server, and each failure of the server is logged, told to the client, and
leaves the connection open for the next turn."""

from __future__ import annotations

import logging

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.media import AppStreams
from {{ cookiecutter.package_name }}.settings import Settings

from .conftest import DOORS, Connect
from .model_server import DEFAULT_REPLY, Failure, ModelServer
from .test_voice_agent import finished, listening, until
from .voice_support import Ear, SpeakingTrack

KEY = "sk-stand-in-key"
TIMEOUT_S = 1.0
"""The providers' timeout here: a hung server fails the turn this soon."""
HEARD = "what is the weather like today"
"""What the stand-in transcribes every utterance to."""


@pytest.fixture
def settings(model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The app with every stage on the stand-in server (read when the app is built)."""
    for stage in ("STT", "LLM", "TTS"):
        monkeypatch.setenv(f"APP_{stage}", "openai")
    monkeypatch.setenv("APP_OPENAI_BASE_URL", model_server.url)
    monkeypatch.setenv("APP_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("APP_PROVIDER_TIMEOUT", str(TIMEOUT_S))
    model_server.api_key = KEY
    model_server.transcript = HEARD
    return Settings(_env_file=None, concurrency_limit=4)  # type: ignore[call-arg]


@pytest.mark.parametrize("door", DOORS)
async def test_the_connection_s_prompt_voice_and_history_reach_the_server(
    streams: AppStreams,
    http: httpx.AsyncClient,
    peer: Connect,
    door: Door,
    model_server: ModelServer,
    sentence: npt.NDArray[np.int16],
) -> None:
    mic, ear = SpeakingTrack(), Ear()
    client = await peer(door, track=mic, on_frame=ear)
    found, task = await listening(streams, client.connection_id)
    chosen = {"gain": 1.0, "system_prompt": "Answer in French.", "voice": "nova"}
    url = f"/connections/{client.connection_id}/input"
    assert (await http.post(url, json=chosen)).status_code == 204

    for turn in (1, 2):
        mic.say(sentence)
        ended = await mic.finished()
        done = await until(found, finished(turn))
        assert (done.transcript, done.reply, done.error) == (HEARD, DEFAULT_REPLY, None)
        await ear.hears(10, since=ended)

    first, second = (request.body["messages"] for request in model_server.received("chat"))
    assert first == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": HEARD},
    ]
    assert second[1:] == [*first[1:], {"role": "assistant", "content": DEFAULT_REPLY}, second[-1]]
    assert {request.body["voice"] for request in model_server.received("speech")} == {"nova"}
    assert model_server.last("chat").authorization == f"Bearer {KEY}"
    task.cancel()


FAILURES: list[tuple[Failure, str]] = [
    ("unauthorized", "llm: the server refused the key (401)"),
    ("rate_limited", "llm: rate limited (429), try again later"),
    ("hang", f"llm: no answer within {TIMEOUT_S:g} s"),
    ("cut", "llm: the reply stream was cut off"),
]


@pytest.mark.parametrize(("failure", "message"), FAILURES, ids=[f for f, _ in FAILURES])
async def test_a_failing_server_is_logged_told_and_the_connection_stays(
    streams: AppStreams,
    peer: Connect,
    model_server: ModelServer,
    sentence: npt.NDArray[np.int16],
    caplog: pytest.LogCaptureFixture,
    failure: Failure,
    message: str,
) -> None:
    mic = SpeakingTrack()
    client = await peer(DOORS[0], track=mic)
    found, task = await listening(streams, client.connection_id)
    model_server.fail_next(failure, "chat")

    with caplog.at_level(logging.ERROR):
        mic.say(sentence)
        failed = await until(found, finished(1))

    assert failed.error is not None
    assert message in failed.error, failed.error
    assert [r for r in caplog.records if message in r.getMessage()], "not logged"
    assert client.state == "connected"
    await mic.finished()
    mic.say(sentence)  # the next turn is answered
    done = await until(found, finished(2))
    assert (done.reply, done.error) == (DEFAULT_REPLY, None)
    assert KEY not in caplog.text
    task.cancel()
