"""Metrics, connection logs and the registry diagnostic, with real peers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from {{ cookiecutter.package_name }}.client import Door, connect
from {{ cookiecutter.package_name }}.media import AppStreams

from .conftest import DOORS, MEDIA, SPEECH, Connect, next_stats, wait_until_serving

RECORD_START = re.compile(r"^(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} )", re.M)
"""Where a text record starts: its time (a record's message may run over several lines, e.g.
aiortc's warnings that hold a traceback)."""
TEXT_RECORD = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+ \S.*",
    re.S,
)
"""``<time> <level> <logger> <message> key=value ...``: the one text format."""
JSON_KEYS = {"time", "level", "logger", "message"}


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


def run_and_log(tmp_path: Path, log_format: str) -> tuple[str, str]:
    """Serve the app with ``APP_LOG_FORMAT=log_format``, answer a request and a connection,
    stop it; its stderr, and the connection's id."""
    log = tmp_path / "stderr.log"
    env = {
        **os.environ,
        "APP_HOST": "127.0.0.1",
        "APP_PORT": "0",
        "APP_ICE_SERVERS": "[]",
        "APP_LOG_FORMAT": log_format,
    }
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "{{ cookiecutter.package_name }}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=Path(__file__).parent,  # no .env from the project directory
        )
    try:
        base = wait_until_serving(process, log)  # requests /health

        async def one_connection() -> str:
            async with httpx.AsyncClient(base_url=base) as http:
                peer = await connect(http, Door.API, **{"speech": SPEECH, **MEDIA})
                await peer.wait_connected()
                await peer.close()
                return peer.connection_id

        connection_id = asyncio.run(one_connection())
    finally:
        process.terminate()
        process.wait(timeout=30)
    return log.read_text(), connection_id


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_app_and_uvicorn_log_one_format_with_their_fields(
    tmp_path: Path, log_format: str
) -> None:
    text, connection_id = run_and_log(tmp_path, log_format)

    records: list[dict[str, Any]] = []
    if log_format == "json":
        for line in text.splitlines():
            record = json.loads(line)
            assert isinstance(record, dict), line
            assert record.keys() >= JSON_KEYS, line
            records.append(record)
    else:
        stray, *chunks = RECORD_START.split(text)
        assert not stray, stray  # every line belongs to a record
        for chunk in chunks:
            assert TEXT_RECORD.fullmatch(chunk.rstrip("\n")), chunk
            records.append({"logger": chunk.split(" ", 4)[3], "line": chunk})

    loggers = {record["logger"] for record in records}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers, loggers
    if log_format == "json":
        assert any(
            r.get("event") == "request"
            and r["method"] == "GET"
            and r["path"] == "/health"
            and r["status_code"] == 200
            and r["client"].startswith("127.0.0.1:")
            for r in records
        ), text
        connects = [r for r in records if r.get("event") == "connect"]
        assert [(r["connection_id"], r["source"]) for r in connects] == [
            (connection_id, Door.API.value)
        ], text
    else:
        access = r"request event=request client=127\.0\.0\.1:\d+ method=GET path=/health "
        assert re.search(access + r"http_version=1\.1 status_code=200\n", text), text
        connect_fields = f"event=connect connection_id={connection_id} source={Door.API.value}"
        assert f"connection opened {connect_fields}\n" in text, text
