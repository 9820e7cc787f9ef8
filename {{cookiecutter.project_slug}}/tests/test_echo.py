"""The echo handler: the audio comes back at once, scaled by the gain, with stats twice a second."""

from __future__ import annotations

from typing import cast

import httpx
import numpy as np
import pytest
from fastrtc import AdditionalOutputs

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.handlers.echo import STATS_EVERY, EchoHandler
from {{ cookiecutter.package_name }}.handlers.io import SAMPLE_RATE, AudioFrame, Input
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect, next_stats, stats_of


async def test_every_frame_comes_back_scaled_with_stats_between() -> None:
    handler = EchoHandler()
    handler.input = Input(gain=0.5)  # as the layer sets it from the UI's slider or the API
    tone = np.full((1, 960), 1000, dtype=np.int16)

    for _ in range(STATS_EVERY):
        await handler.receive((SAMPLE_RATE, tone))
    sent = [await handler.emit() for _ in range(STATS_EVERY)]

    assert all(isinstance(item, tuple) for item in sent)
    (rate, audio), outputs = cast(tuple[AudioFrame, AdditionalOutputs], sent[-1])
    assert rate == SAMPLE_RATE
    assert np.all(audio == 500)
    stats = stats_of(outputs)
    assert (stats.frames, stats.gain) == (STATS_EVERY, 0.5)


async def test_the_echo_cannot_be_triggered(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(DOORS[-1])
    response = await http.post(f"/connections/{client.connection_id}/response")
    assert response.status_code == 409
    assert response.json()["error"] == "response_not_supported"


@pytest.mark.parametrize("door", DOORS)
async def test_the_tone_comes_back_scaled_by_the_gain(
    streams: AppStreams, peer: Connect, door: Door
) -> None:
    client = await peer(door)
    await client.wait_frames(25)
    assert client.last_level_dbfs > -30  # the tone (-13.5 dBFS), not silence

    streams.set_input(client.connection_id, Input(gain=0.0))
    await next_stats(streams, client.connection_id, gain=0.0)
    await client.wait_frames(25)
    assert client.last_level_dbfs < -60  # silenced by the handler
