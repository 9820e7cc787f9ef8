"""The app as users run it (``python -m``, uvicorn, 127.0.0.1) with real peers over the network."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from {{ cookiecutter.package_name }}.client import Peer, connect, wait_until

from .conftest import DOORS, MEDIA, SERVER_CLOSED, SPEECH, first_output


async def test_peers_of_every_door_are_one_set(live_server: str) -> None:
    async with httpx.AsyncClient(base_url=live_server, timeout=10) as http:
        peers: list[Peer] = []
        try:
            for door in DOORS:
                peers.append(await connect(http, door, speech=SPEECH, **MEDIA))
            for peer in peers:
                await peer.wait_connected()
                async with asyncio.timeout(10):
                    event = await first_output(http, peer.connection_id, gain=1.0)
                assert event["level_dbfs"] > -30  # the media flows: a tone or bright images

            listed = (await http.get("/connections")).json()
            assert {(c["id"], c["source"], c["state"]) for c in listed} == {
                (peer.connection_id, door.value, "connected")
                for door, peer in zip(DOORS, peers, strict=True)
            }

            for peer in peers:
                response = await http.post(
                    f"/connections/{peer.connection_id}/input", json={"gain": 0}
                )
                assert response.status_code == 204
                async with asyncio.timeout(10):
                    event = await first_output(http, peer.connection_id, gain=0.0)
                assert event["frames"] > 0
                assert event["level_dbfs"] == -120.0  # the handler applied the input

            # The first is closed by the server, the others by their clients.
            closed_by_server, *closed_by_client = peers
            url = f"/connections/{closed_by_server.connection_id}"
            assert (await http.delete(url)).status_code == 204
            for peer in closed_by_client:
                await peer.close()

            async def nothing_listed() -> bool:
                return bool((await http.get("/connections")).json() == [])

            await wait_until(nothing_listed, within=5)
            await wait_until(lambda: closed_by_server.state in SERVER_CLOSED, within=15)
        finally:
            for peer in peers:
                await peer.close()


IDLE_S = 6.0
"""Longer than uvicorn's own keep-alive (5 s), which pooling clients such as httpx match."""


async def test_an_idle_connection_outlives_a_pooling_client_s_keep_alive(live_server: str) -> None:
    # Defect: the server closed idle connections after 5 s, as httpx's pool keeps them, so a
    # request on a reused connection could meet the close and get a reset instead of an answer.
    host, port = live_server.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))

    async def health() -> bytes:
        writer.write(f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            sizes = [line for line in head.lower().split(b"\r\n") if b"content-length" in line]
            await reader.readexactly(int(sizes[0].split(b":")[1]))
        return head

    try:
        assert (await health()).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(IDLE_S)
        assert (await health()).startswith(b"HTTP/1.1 200")  # the same connection, still open
    finally:
        writer.close()


PACKAGE = "{{ cookiecutter.package_name }}"


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` in ``cwd``, with no ``APP_*`` setting from this environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_settings_module_prints_a_setting_of_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("APP_PORT=8123\n")

    printed = run_module(f"{PACKAGE}.settings", "port", cwd=tmp_path)

    assert (printed.returncode, printed.stdout, printed.stderr) == (0, "8123\n", "")


def test_a_bad_setting_stops_the_settings_module_naming_it(tmp_path: Path) -> None:
    """What make loadtest and make docker-run ask; the app's own start: tests/test_settings.py."""
    (tmp_path / ".env").write_text("APP_PORT=eighty\n")

    refused = run_module(f"{PACKAGE}.settings", "port", cwd=tmp_path)

    assert refused.returncode == 1
    assert refused.stderr.startswith("error: APP_PORT='eighty': should be a valid integer")
    assert "Traceback" not in refused.stderr
