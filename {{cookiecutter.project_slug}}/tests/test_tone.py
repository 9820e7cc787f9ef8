"""The tone: the app plays it to each connection at the connection's gain, from the first frame."""

from __future__ import annotations

import itertools
from typing import cast

import httpx
import numpy as np
import pytest
from fastrtc import AdditionalOutputs

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.handlers.io import SAMPLE_RATE, AudioFrame, Input
from {{ cookiecutter.package_name }}.handlers.tone import AMPLITUDE, STATS_EVERY, generate
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect, next_stats, stats_of


def test_it_yields_the_tone_at_the_gain_with_stats_between() -> None:
    sent = list(itertools.islice(generate(Input(gain=0.5)), STATS_EVERY))

    assert all(isinstance(item[0], int) for item in sent[:-1])
    (rate, audio), outputs = cast(tuple[AudioFrame, AdditionalOutputs], sent[-1])
    assert rate == SAMPLE_RATE
    assert audio.shape == (1, 960)
    assert np.abs(audio).max() == pytest.approx(0.5 * AMPLITUDE * 32767, rel=0.01)
    stats = stats_of(outputs)
    assert (stats.frames, stats.gain) == (STATS_EVERY, 0.5)


def test_without_inputs_it_plays_at_the_default_gain() -> None:
    (_, audio), *_ = itertools.islice(generate(), 1)
    assert np.abs(cast(np.ndarray, audio)).max() == pytest.approx(AMPLITUDE * 32767, rel=0.01)


@pytest.mark.parametrize("door", DOORS)
async def test_the_tone_plays_at_once_without_any_input(peer: Connect, door: Door) -> None:
    # fastrtc's track waits for inputs before playing: the layer gives it the defaults.
    client = await peer(door)

    await client.wait_frames(25, within=5)
    assert client.last_level_dbfs > -20  # the tone (-16.5 dBFS in stereo), not silence


@pytest.mark.parametrize("door", DOORS)
async def test_every_new_gain_is_heard(streams: AppStreams, peer: Connect, door: Door) -> None:
    # fastrtc calls the generator once, with the first inputs: the layer starts it again.
    client = await peer(door)
    await client.wait_frames(10)

    for gain in (0.0, 2.0):
        streams.set_input(client.connection_id, Input(gain=gain))
        assert (await next_stats(streams, client.connection_id, gain=gain)).gain == gain
        await client.wait_frames(25)
        level = client.last_level_dbfs
        # Silent, then louder than at gain 1 (-16.5 dBFS once fastrtc has made it stereo).
        assert level < -60 if gain == 0 else level > -13, (gain, level)


async def test_it_cannot_be_triggered(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(DOORS[-1])
    response = await http.post(f"/connections/{client.connection_id}/response")
    assert response.status_code == 409
    assert response.json()["error"] == "response_not_supported"
