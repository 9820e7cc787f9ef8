"""The audio-video echo: each connection's sound and images come back, scaled by the gain."""

from __future__ import annotations

import asyncio
from typing import cast

import httpx
import numpy as np
import pytest
from fastrtc import AdditionalOutputs

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.handlers.av_echo import STATS_EVERY, AudioVideoEcho
from {{ cookiecutter.package_name }}.handlers.io import SAMPLE_RATE, AudioFrame, Input
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect, next_stats, stats_of


async def test_both_come_back_scaled_with_stats_between() -> None:
    handler = AudioVideoEcho().copy()
    handler.input = Input(gain=0.5)  # as the layer sets it
    tone = np.full((1, 960), 1000, dtype=np.int16)
    image = np.full((240, 320, 3), 200, dtype=np.uint8)

    for _ in range(STATS_EVERY):
        await handler.receive((SAMPLE_RATE, tone))
    sent = [await handler.emit() for _ in range(STATS_EVERY)]
    await handler.video_receive(image)
    shown = await asyncio.wait_for(handler.video_emit(), 1)

    (_, audio), outputs = cast(tuple[AudioFrame, AdditionalOutputs], sent[-1])
    assert np.all(audio == 500)
    assert (stats_of(outputs).frames, stats_of(outputs).gain) == (STATS_EVERY, 0.5)
    assert np.all(shown == 100)


@pytest.mark.parametrize("door", DOORS)
async def test_sound_and_images_come_back_and_follow_the_gain(
    streams: AppStreams, peer: Connect, door: Door
) -> None:
    client = await peer(door)
    await client.wait_frames(25, kind="audio")
    await client.wait_frames(15, kind="video")
    assert client.level_by_kind["audio"] > -30  # the tone (-13.5 dBFS)
    assert client.level_by_kind["video"] > -10  # the bright stripes

    streams.set_input(client.connection_id, Input(gain=0.0))
    await next_stats(streams, client.connection_id, gain=0.0)
    await client.wait_frames(25, kind="audio")
    await client.wait_frames(15, kind="video")
    assert client.level_by_kind["audio"] < -60
    assert client.level_by_kind["video"] < -20


async def test_it_cannot_be_triggered(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(DOORS[-1])
    response = await http.post(f"/connections/{client.connection_id}/response")
    assert response.status_code == 409
    assert response.json()["error"] == "response_not_supported"
