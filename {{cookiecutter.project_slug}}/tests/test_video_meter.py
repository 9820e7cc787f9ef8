"""The video meter: it sees each connection's images, reports their brightness, sends nothing."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from fastrtc import AdditionalOutputs

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.handlers.io import Input
from {{ cookiecutter.package_name }}.handlers.video_meter import STATS_EVERY, build_handler
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect, next_stats, stats_of


def test_it_reports_the_brightness_it_saw_with_the_gain() -> None:
    handler = build_handler().copy()
    image = np.full((240, 320, 3), 200, dtype=np.uint8)

    seen = [handler(image, Input(gain=0.5)) for _ in range(STATS_EVERY)]

    assert seen[:-1] == [None] * (STATS_EVERY - 1)
    assert isinstance(seen[-1], AdditionalOutputs)
    stats = stats_of(seen[-1])
    assert (stats.frames, stats.gain) == (STATS_EVERY, 0.5)
    assert stats.level_dbfs == pytest.approx(20 * np.log10(100 / 255), abs=0.01)


@pytest.mark.parametrize("door", DOORS)
async def test_it_measures_the_client_s_images_at_once_and_sends_nothing_back(
    streams: AppStreams, peer: Connect, door: Door
) -> None:
    # fastrtc does not call the handler until inputs are set: the layer sets the defaults.
    client = await peer(door)

    seen = await next_stats(streams, client.connection_id, within=5)
    assert seen.level_dbfs > -10  # the client's bright stripes

    streams.set_input(client.connection_id, Input(gain=0.0))
    assert (await next_stats(streams, client.connection_id, gain=0.0)).level_dbfs == -120.0
    assert client.frames_received == 0


async def test_each_connection_has_its_own_count(streams: AppStreams, peer: Connect) -> None:
    # fastrtc shares one video handler between all connections: the layer copies it for each.
    first = await peer(DOORS[0])
    await next_stats(streams, first.connection_id)
    second = await peer(DOORS[-1])

    assert (await next_stats(streams, second.connection_id)).frames == STATS_EVERY


async def test_it_cannot_be_triggered(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(DOORS[-1])
    response = await http.post(f"/connections/{client.connection_id}/response")
    assert response.status_code == 409
    assert response.json()["error"] == "response_not_supported"
