"""The voice agent: a spoken question gets a spoken answer through every door, talking over a
reply stops it, and every turn is reported and timed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from fastrtc import AdditionalOutputs

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.handlers.io import SAMPLE_RATE, Input, Stats
from {{ cookiecutter.package_name }}.handlers.voice_agent import VoiceAgent, build_providers
from {{ cookiecutter.package_name }}.handlers.voice_agent.agent import (
    FRAMES_PER_SECOND,
    NOT_UNDERSTOOD,
    Conversation,
    Providers,
)
from {{ cookiecutter.package_name }}.handlers.voice_agent.language_model import Parrot
from {{ cookiecutter.package_name }}.handlers.voice_agent.providers import Message
from {{ cookiecutter.package_name }}.handlers.voice_agent.settings import VoiceSettings
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect, stats_of
from .doors_support import metric
from .voice_support import KEY_WORDS, Ear, SpeakingTrack, spoken

INTERRUPTED_WITHIN_S = 0.3
"""How soon the reply's audio must stop once the speaker talks over it, as the peer hears."""
QUIET_S = 0.3
"""Silence this long counts as the reply's audio having stopped."""
IDLE_S = 2.0
MOST_POLLS_PER_S = 60
"""How often fastrtc may poll an idle connection's handler for a reply (one poll per audio
frame is 50 a second; fastrtc alone polls some 700 times)."""


async def outputs_of(streams: AppStreams, connection_id: str, found: list[Stats]) -> None:
    """Collect the connection's outputs into ``found`` until it ends."""
    async for stats in streams.subscribe(connection_id):
        found.append(stats)


async def listening(
    streams: AppStreams, connection_id: str
) -> tuple[list[Stats], asyncio.Task[None]]:
    found: list[Stats] = []
    task = asyncio.create_task(outputs_of(streams, connection_id, found))
    await asyncio.sleep(0.05)  # subscribed
    return found, task


def heard(turn: int) -> Callable[[Stats], bool]:
    """Whether an output holds the transcript of turn ``turn``."""
    return lambda stats: stats.turn == turn and bool(stats.transcript)


def finished(turn: int) -> Callable[[Stats], bool]:
    """Whether an output is the end of turn ``turn``."""
    return lambda stats: stats.turn == turn and stats.done


async def until(
    found: list[Stats], condition: Callable[[Stats], object], within: float = 40.0
) -> Stats:
    """The first output in ``found`` (now or to come) that meets ``condition``."""
    async with asyncio.timeout(within):
        while True:
            for stats in found:
                if condition(stats):
                    return stats
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("door", DOORS)
async def test_a_spoken_question_gets_a_spoken_answer(
    streams: AppStreams,
    http: httpx.AsyncClient,
    peer: Connect,
    door: Door,
    sentence: npt.NDArray[np.int16],
) -> None:
    mic, ear = SpeakingTrack(), Ear()
    client = await peer(door, track=mic, on_frame=ear)
    found, task = await listening(streams, client.connection_id)

    mic.say(sentence)
    ended = await mic.finished()
    transcribed = await until(found, heard(1))
    done = await until(found, finished(1))

    assert set(KEY_WORDS) <= set(transcribed.transcript.split()), transcribed.transcript
    assert done.reply.startswith("You said: what"), done.reply
    assert done.error is None
    latency = done.latency
    assert latency is not None
    assert latency.first_audio is not None
    assert 0 < latency.transcribed <= latency.first_audio
    await ear.hears(25, since=ended)  # half a second of the spoken reply
    assert client.state == "connected"
    metrics = (await http.get("/metrics")).text
    assert metric(metrics, 'app_voice_turn_seconds_count{stage="first_audio"}') >= 1
    task.cancel()


async def test_speech_during_a_reply_stops_its_audio_within_300_ms(
    streams: AppStreams, peer: Connect, sentence: npt.NDArray[np.int16]
) -> None:
    mic, ear = SpeakingTrack(), Ear()
    client = await peer(DOORS[0], track=mic, on_frame=ear)
    found, task = await listening(streams, client.connection_id)
    mic.say(sentence)
    ended = await mic.finished()
    await ear.hears(10, since=ended)  # 0.2 s into the reply

    mic.say(sentence)  # talk over it
    await ear.wait(lambda: mic.started_at is not None)
    talked = mic.started_at
    assert talked is not None
    await ear.wait(lambda: ear.stopped_after(talked, QUIET_S) is not None, within=5)
    stopped = ear.stopped_after(talked, QUIET_S)
    assert stopped is not None

    assert stopped - talked <= INTERRUPTED_WITHIN_S
    second_ended = await mic.finished()
    assert not [at for at in ear.loud_since(stopped) if at < second_ended]  # none of it left
    first = await until(found, heard(1))
    whole = await spoken(f"You said: {first.transcript}.")  # what the reply would have been
    heard_of_it = len([at for at in ear.loud_since(ended) if at < stopped]) / FRAMES_PER_SECOND
    assert heard_of_it < whole.size / SAMPLE_RATE - 0.5  # stopped: half a second or more unsaid
    transcribed = await until(found, heard(2))  # what interrupted it
    assert set(KEY_WORDS) <= set(transcribed.transcript.split())
    await until(found, finished(2))
    assert client.state == "connected"
    task.cancel()


async def test_an_idle_connection_polls_its_handler_sparingly(
    peer: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls = 0
    emit: Callable[[VoiceAgent], Any] = VoiceAgent.emit

    def counted(self: VoiceAgent) -> Any:
        nonlocal polls
        polls += 1
        return emit(self)

    monkeypatch.setattr(VoiceAgent, "emit", counted)
    client = await peer(DOORS[0], track=SpeakingTrack())  # connected, silent
    await asyncio.sleep(1)

    before = polls
    await asyncio.sleep(IDLE_S)
    assert (polls - before) / IDLE_S <= MOST_POLLS_PER_S
    assert client.state == "connected"


async def test_a_response_asked_for_mid_sentence_answers_what_was_said_so_far(
    streams: AppStreams, http: httpx.AsyncClient, peer: Connect, sentence: npt.NDArray[np.int16]
) -> None:
    mic, ear = SpeakingTrack(), Ear()
    client = await peer(DOORS[0], track=mic, on_frame=ear)
    found, task = await listening(streams, client.connection_id)
    url = f"/connections/{client.connection_id}/response"
    assert (await http.post(url)).status_code == 409  # nothing said yet

    mic.say(sentence[: int(SAMPLE_RATE * 1.3)])  # "what is the weather"
    await mic.finished()
    # Once the app has heard it all (speech still arriving would stop the reply), and before
    # it detects the pause (0.4 s with no speech):
    await asyncio.sleep(0.25)
    response = await http.post(url)

    assert response.status_code == 202
    done = await until(found, finished(1))
    assert "weather" in done.transcript.split()
    assert done.reply.startswith("You said: "), done.reply
    await ear.hears(10, since=0)
    task.cancel()


async def test_what_it_did_not_understand_it_says_so() -> None:
    providers = build_providers(VoiceSettings(_env_file=None))  # type: ignore[call-arg]
    silence = (SAMPLE_RATE, np.zeros(SAMPLE_RATE, dtype=np.int16))

    said = [output async for output in Conversation(providers, 2).reply(silence, "id", Input())]

    reports = [stats_of(output) for output in said if isinstance(output, AdditionalOutputs)]
    assert (reports[-1].transcript, reports[-1].reply, reports[-1].done) == (
        "",
        NOT_UNDERSTOOD,
        True,
    )
    assert any(isinstance(output, tuple) for output in said)  # spoken


class Recorded(Parrot):
    """The offline model, keeping what it was asked."""

    def __init__(self) -> None:
        self.asked: list[list[Message]] = []

    async def reply(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        self.asked.append(list(messages))
        async for piece in super().reply(messages):
            yield piece


async def test_each_connection_keeps_a_bounded_history_with_its_system_prompt(
    sentence: npt.NDArray[np.int16],
) -> None:
    offline = build_providers(VoiceSettings(_env_file=None))  # type: ignore[call-arg]
    model = Recorded()
    providers = Providers(stt=offline.stt, llm=model, tts=offline.tts)
    conversation = Conversation(providers, history_turns=2)
    value = Input(system_prompt="Answer like a pirate.")

    for _ in range(4):
        async for _output in conversation.reply((SAMPLE_RATE, sentence), "id", value):
            pass

    assert [len(asked) for asked in model.asked] == [2, 4, 6, 6]  # prompt, history, question
    last = model.asked[-1]
    assert last[0] == Message("system", "Answer like a pirate.")
    assert [m.role for m in last[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert last[2].content.startswith("You said: what")
    assert len(Conversation(providers, 2).history) == 0  # another connection's is its own


def test_a_provider_that_cannot_work_stops_the_start_with_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "APP_PORT": "0",
        "APP_LLM": "openai",
        "APP_OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # nothing listens on port 9
        "APP_OPENAI_API_KEY": "sk-secret-never-shown",
    }
    run = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: APP_LLM=openai"), lines[0]
    assert "127.0.0.1:9" in lines[0]
    assert "sk-secret" not in run.stderr + run.stdout
