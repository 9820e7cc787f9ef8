"""The video echo: each connection's images come back, their brightness scaled by the gain."""

from __future__ import annotations

from typing import cast

import httpx
import numpy as np
import pytest
from fastrtc import AdditionalOutputs

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.handlers.io import Input, VideoFrame
from {{ cookiecutter.package_name }}.handlers.video_echo import STATS_EVERY, VideoEcho, build_handler
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect, next_stats, stats_of


def test_every_image_comes_back_scaled_with_stats_between() -> None:
    handler = build_handler().copy()
    image = np.full((240, 320, 3), 200, dtype=np.uint8)

    sent = [handler(image, Input(gain=0.5)) for _ in range(STATS_EVERY)]

    assert all(isinstance(item, np.ndarray) for item in sent[:-1])
    reply, outputs = cast(tuple[VideoFrame, AdditionalOutputs], sent[-1])
    assert np.all(reply == 100)
    stats = stats_of(outputs)
    assert (stats.frames, stats.gain) == (STATS_EVERY, 0.5)
    assert stats.level_dbfs == pytest.approx(20 * np.log10(100 / 255), abs=0.01)
    assert np.array_equal(cast(VideoFrame, VideoEcho()(image)), image)  # no inputs: gain 1


@pytest.mark.parametrize("door", DOORS)
async def test_images_go_through_the_handler_at_once_and_follow_the_gain(
    streams: AppStreams, peer: Connect, door: Door
) -> None:
    # fastrtc passes images through untouched until inputs are set: the layer sets defaults.
    client = await peer(door)
    stats = await next_stats(streams, client.connection_id, within=5)
    assert stats.level_dbfs > -10  # the client's bright stripes
    await client.wait_frames(15)
    assert client.last_level_dbfs > -10

    streams.set_input(client.connection_id, Input(gain=0.0))
    await next_stats(streams, client.connection_id, gain=0.0)
    await client.wait_frames(15)
    assert client.last_level_dbfs < -20  # dark


async def test_each_connection_has_its_own_handler(streams: AppStreams, peer: Connect) -> None:
    # fastrtc shares one video handler between all connections: the layer copies it for each.
    first, second = await peer(DOORS[0]), await peer(DOORS[-1])
    await first.wait_frames(60)
    await second.wait_frames(60)

    stats = await next_stats(streams, first.connection_id)

    # Frames handled for this connection are about the frames it got back, not both peers'.
    assert stats.frames < first.frames_received * 1.3 + STATS_EVERY


async def test_it_cannot_be_triggered(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(DOORS[-1])
    response = await http.post(f"/connections/{client.connection_id}/response")
    assert response.status_code == 409
    assert response.json()["error"] == "response_not_supported"
