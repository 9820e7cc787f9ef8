"""The custom handler skeleton: it runs as it is, so the app works before the model is in."""

from __future__ import annotations

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.handlers.custom import MODEL, CustomHandler, Model, build_handler
from {{ cookiecutter.package_name }}.handlers.io import SAMPLE_RATE, Input
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect, next_stats


def test_the_placeholder_model_sends_the_audio_back_scaled() -> None:
    audio = np.full(960, 1000, dtype=np.int16)
    assert np.all(Model().process(audio, Input(gain=0.25)) == 250)


async def test_each_frame_goes_through_the_model_with_the_connection_s_input() -> None:
    seen: list[Input] = []

    class Recording(Model):
        def process(self, audio: npt.NDArray[np.int16], inputs: Input) -> npt.NDArray[np.int16]:
            seen.append(inputs)
            return audio

    handler = CustomHandler(Recording()).copy()
    handler.input = Input(gain=2.0)  # as the layer sets it
    await handler.receive((SAMPLE_RATE, np.ones((1, 960), dtype=np.int16)))
    assert await handler.emit() is not None
    assert seen == [Input(gain=2.0)]


def test_every_connection_shares_the_one_model() -> None:
    handler = build_handler()
    assert handler.copy().model is handler.model is MODEL


async def test_it_cannot_be_triggered(http: httpx.AsyncClient, peer: Connect) -> None:
    client = await peer(DOORS[-1])
    response = await http.post(f"/connections/{client.connection_id}/response")
    assert response.status_code == 409
    assert response.json()["error"] == "response_not_supported"


@pytest.mark.parametrize("door", DOORS)
async def test_the_tone_comes_back_through_the_model(
    streams: AppStreams, peer: Connect, door: Door
) -> None:
    client = await peer(door)
    await client.wait_frames(25)
    assert client.last_level_dbfs > -30  # the tone (-13.5 dBFS), not silence

    streams.set_input(client.connection_id, Input(gain=0.0))
    await next_stats(streams, client.connection_id, gain=0.0)
    await client.wait_frames(25)
    assert client.last_level_dbfs < -60  # silenced by the placeholder model
