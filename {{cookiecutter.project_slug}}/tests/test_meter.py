"""The meter: it hears each connection's audio, reports its level, and sends nothing back."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from fastrtc import AdditionalOutputs

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.handlers.io import SAMPLE_RATE, Input
from {{ cookiecutter.package_name }}.handlers.meter import STATS_EVERY, MeterHandler
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect, next_stats, stats_of


async def test_it_reports_what_it_heard_with_the_gain_and_emits_no_audio() -> None:
    handler = MeterHandler()
    handler.input = Input(gain=0.5)  # as the layer sets it
    tone = np.full((1, 960), 1000, dtype=np.int16)

    for _ in range(STATS_EVERY):
        await handler.receive((SAMPLE_RATE, tone))
    emitted = await asyncio.wait_for(handler.emit(), 1)

    assert isinstance(emitted, AdditionalOutputs)  # fastrtc would queue audio for nobody
    stats = stats_of(emitted)
    assert (stats.frames, stats.gain) == (STATS_EVERY, 0.5)
    assert stats.level_dbfs == pytest.approx(20 * np.log10(500 / 32768), abs=0.01)


@pytest.mark.parametrize("door", DOORS)
async def test_it_measures_the_client_s_tone_and_sends_nothing_back(
    streams: AppStreams, peer: Connect, door: Door
) -> None:
    client = await peer(door)

    heard = await next_stats(streams, client.connection_id)
    # The tone (-13.5 dBFS), 3 dB down once fastrtc has mixed Opus's stereo down to mono.
    assert heard.level_dbfs == pytest.approx(-16.5, abs=2)

    streams.set_input(client.connection_id, Input(gain=0.0))
    assert (await next_stats(streams, client.connection_id, gain=0.0)).level_dbfs == -120.0
    assert client.frames_received == 0


async def test_it_cannot_be_triggered(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(DOORS[-1])
    response = await http.post(f"/connections/{client.connection_id}/response")
    assert response.status_code == 409
    assert response.json()["error"] == "response_not_supported"
