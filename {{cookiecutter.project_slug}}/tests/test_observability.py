"""Metrics, connection logs and the registry diagnostic, with real peers."""

from __future__ import annotations

import logging

import httpx
import pytest

from {{ cookiecutter.package_name }}.client import Door
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, Connect, next_stats


def sample(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.rsplit(" ", 1)[1])


async def test_metrics_count_connections_by_source(
    http: httpx.AsyncClient, peer: Connect, streams: AppStreams
) -> None:
    opened = [Door.API, DOORS[-1], DOORS[-1]]
    api, *_ = [await peer(door) for door in opened]

    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for door in DOORS:
        count = opened.count(door)
        by_source = '{source="' + door.value + '"}'
        assert sample(text, "app_connections_active" + by_source) == count
        assert sample(text, "app_connections_total" + by_source) == count

    await streams.close(api.connection_id)
    text = (await http.get("/metrics")).text
    assert sample(text, 'app_connections_active{source="api"}') == opened.count(Door.API) - 1
    assert sample(text, 'app_connections_total{source="api"}') == opened.count(Door.API)


async def test_connect_and_disconnect_are_logged_with_id_source_and_duration(
    peer: Connect, streams: AppStreams, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=AppStreams.__module__)
    client = await peer(DOORS[-1])
    await streams.close(client.connection_id)

    events = {r.__dict__["event"]: r.__dict__ for r in caplog.records if "event" in r.__dict__}
    assert events["connect"]["connection_id"] == client.connection_id
    assert events["connect"]["source"] == DOORS[-1].value
    assert events["disconnect"]["connection_id"] == client.connection_id
    assert events["disconnect"]["duration_s"] >= 0


async def test_registries_are_empty_after_connections_close(
    peer: Connect, streams: AppStreams
) -> None:
    for door in DOORS:
        client = await peer(door)
        await next_stats(streams, client.connection_id)  # its media flowed
        await streams.close(client.connection_id)

    assert set(streams.registry_sizes().values()) == {0}, streams.registry_sizes()
