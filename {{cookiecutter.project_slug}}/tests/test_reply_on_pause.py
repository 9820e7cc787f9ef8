"""The reply-on-pause handler: it finds pauses offline and replies at each, on every door."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import cast

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from fastrtc import AdditionalOutputs
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.handlers.io import SAMPLE_RATE, AudioFrame, Input, Stats
from {{ cookiecutter.package_name }}.handlers.pauses import DETECTOR, PauseSettings, pause_detector
from {{ cookiecutter.package_name }}.handlers.reply_on_pause import build_handler, reply
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect, stats_of


def tone(seconds: float, amplitude: float = 0.3) -> npt.NDArray[np.int16]:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (amplitude * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def silence(seconds: float) -> npt.NDArray[np.int16]:
    return np.zeros(int(SAMPLE_RATE * seconds), dtype=np.int16)


def test_the_detector_counts_loud_audio_as_speech() -> None:
    speech, _ = DETECTOR.vad((SAMPLE_RATE, np.concatenate([tone(0.4), silence(0.2)])), None)
    assert speech == pytest.approx(0.4)
    assert DETECTOR.vad((SAMPLE_RATE, silence(0.6)), None)[0] == 0.0
    assert DETECTOR.vad((SAMPLE_RATE, tone(0.3, amplitude=0.001)), None)[0] == 0.0  # a hiss
    as_float = tone(0.2).astype(np.float32) / 32768
    assert DETECTOR.vad((SAMPLE_RATE, as_float), None)[0] == pytest.approx(0.2)


def test_the_reply_says_back_what_was_said_with_the_gain() -> None:
    said = np.concatenate([silence(0.2), tone(0.4), silence(0.4)]).reshape(1, -1)

    sent = list(reply((SAMPLE_RATE, said), "connection-id", Input(gain=0.5)))

    assert len(sent) == 20  # 0.4 s of 20 ms frames: the silence is left out
    (rate, audio), outputs = cast(tuple[AudioFrame, AdditionalOutputs], sent[-1])
    assert rate == SAMPLE_RATE
    assert np.abs(audio).max() == pytest.approx(0.5 * 0.3 * 32767, rel=0.01)
    stats = stats_of(outputs)
    assert (stats.frames, stats.gain) == (20, 0.5)


def test_nothing_said_gets_no_reply() -> None:
    assert list(reply((SAMPLE_RATE, silence(1.0).reshape(1, -1)), "connection-id")) == []


async def replies(streams: AppStreams, connection_id: str, count: int) -> list[Stats]:
    """The stats of the next count replies of the connection."""
    found: list[Stats] = []
    async with asyncio.timeout(8 * count):
        async for item in streams.subscribe(connection_id):
            found.append(item)
            if len(found) == count:
                return found
    raise AssertionError("the outputs ended first")


@pytest.mark.parametrize("door", DOORS)
async def test_it_replies_at_every_pause_without_the_client_answering(
    streams: AppStreams, peer: Connect, door: Door
) -> None:
    # After each pause the handler asks the client for its inputs and fastrtc waits for them;
    # this client never answers, so every reply after the first proves the layer does.
    client = await peer(door)
    first, second, third = await replies(streams, client.connection_id, 3)
    assert all(stats.frames > 20 for stats in (first, second, third))

    streams.set_input(client.connection_id, Input(gain=0.0))
    later = await replies(streams, client.connection_id, 2)
    assert later[-1].gain == 0.0
    await client.wait_frames(20)
    assert client.last_level_dbfs < -60  # the reply is silenced by the gain


async def test_a_response_can_be_asked_for_once_something_was_said(
    http: httpx.AsyncClient, peer: Connect
) -> None:
    client = await peer(DOORS[0])
    url = f"/connections/{client.connection_id}/response"
    await asyncio.sleep(0.5)  # talking, not yet paused

    assert (await http.post(url)).status_code == 202


def test_the_silero_option_says_what_it_needs_when_it_cannot_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # fastrtc's silero model needs onnxruntime ("fastrtc[vad]") and the Hugging Face Hub, which
    # this project does not install by default: choosing it must fail at start, saying so.
    if importlib.util.find_spec("onnxruntime") is not None:
        pytest.skip("onnxruntime is installed: the model would load (or download) here")
    with pytest.raises(RuntimeError, match=r"APP_PAUSE_DETECTOR=silero .*fastrtc\[vad\]"):
        pause_detector("silero")
    monkeypatch.setenv("APP_PAUSE_DETECTOR", "silero")
    with pytest.raises(RuntimeError, match="APP_PAUSE_DETECTOR=silero"):
        build_handler()


def test_the_detector_is_chosen_by_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_PAUSE_DETECTOR", "energy")
    assert build_handler().model is DETECTOR
    monkeypatch.setenv("APP_PAUSE_DETECTOR", "loud")
    with pytest.raises(ValidationError, match="pause_detector"):
        PauseSettings(_env_file=None)  # type: ignore[call-arg]
