"""The color bars: the app shows them to each connection at its gain, from the first frame."""

from __future__ import annotations

import itertools
from typing import cast

import httpx
import numpy as np
import pytest
from fastrtc import AdditionalOutputs

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.handlers.color_bars import (
    HEIGHT,
    STATS_EVERY,
    WIDTH,
    color_bars,
    generate,
)
from {{ cookiecutter.package_name }}.handlers.io import Input, VideoFrame
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect, next_stats, stats_of


def test_it_yields_moving_bars_at_the_gain_with_stats_between() -> None:
    sent = list(itertools.islice(generate(Input(gain=0.5)), STATS_EVERY))

    assert all(isinstance(item, np.ndarray) for item in sent[:-1])
    first = cast(VideoFrame, sent[0])
    assert first.shape == (HEIGHT, WIDTH, 3)
    assert first.dtype == np.uint8
    assert np.array_equal(first, (color_bars(4) * 0.5).astype(np.uint8))
    assert not np.array_equal(first, cast(VideoFrame, sent[1]))  # they move
    image, outputs = cast(tuple[VideoFrame, AdditionalOutputs], sent[-1])
    stats = stats_of(outputs)
    assert (stats.frames, stats.gain) == (STATS_EVERY, 0.5)
    assert image.max() == 127


@pytest.mark.parametrize("door", DOORS)
async def test_the_bars_show_at_once_without_any_input(peer: Connect, door: Door) -> None:
    # fastrtc's track waits for inputs before showing anything: the layer gives the defaults.
    client = await peer(door)

    await client.wait_frames(15, within=5)
    assert client.last_level_dbfs > -10  # bright bars, not black


@pytest.mark.parametrize("door", DOORS)
async def test_every_new_gain_is_seen(streams: AppStreams, peer: Connect, door: Door) -> None:
    # fastrtc calls the generator once, with the first inputs: the layer starts it again.
    client = await peer(door)
    await client.wait_frames(10)

    for gain in (0.0, 1.0):
        streams.set_input(client.connection_id, Input(gain=gain))
        assert (await next_stats(streams, client.connection_id, gain=gain)).gain == gain
        await client.wait_frames(15)
        level = client.last_level_dbfs
        assert level < -20 if gain == 0 else level > -10, (gain, level)  # dark, then bright


async def test_it_cannot_be_triggered(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(DOORS[-1])
    response = await http.post(f"/connections/{client.connection_id}/response")
    assert response.status_code == 409
    assert response.json()["error"] == "response_not_supported"
