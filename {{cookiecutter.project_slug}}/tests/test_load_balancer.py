"""``deploy/nginx.conf`` in front of two replicas: clients see one app through it.

The shipped config runs under Debian's nginx (``apt-get install nginx-light``), with only its
upstream addresses and port pointed at replicas on 127.0.0.1, as docker-compose.yml points
them at its containers.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from {{ cookiecutter.package_name }}.client import Door, Peer, connect, wait_until

from .cluster_support import RedisServer, free_port, listing, replica
from .conftest import DOORS, SPEECH, first_output

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"


@contextmanager
def nginx(directory: Path, upstreams: list[str]) -> Iterator[str]:
    """The shipped nginx.conf, serving on a free port of 127.0.0.1 in front of ``upstreams``."""
    executable = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(executable).exists():
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    port = free_port()
    config = CONFIG.read_text()
    for name, upstream in zip(("app1:7860", "app2:7860"), upstreams, strict=True):
        config = config.replace(f"server {name};", f"server {upstream.removeprefix('http://')};")
    config = config.replace("listen 80;", f"listen 127.0.0.1:{port};")
    config = config.replace("http {", "http {\n    access_log off;", 1)
    (directory / "nginx.conf").write_text(config)
    settings = f"daemon off; pid {directory}/nginx.pid; error_log stderr;"
    process = subprocess.Popen(
        [executable, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", settings],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start: {process.stderr}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_through_the_load_balancer_the_replicas_are_one_app(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    opened: list[Peer] = []
    with (
        replica(tmp_path, "a", redis_server.url) as a,
        replica(tmp_path, "b", redis_server.url) as b,
        nginx(tmp_path, [a, b]) as lb,
    ):
        async with httpx.AsyncClient(base_url=lb, timeout=10) as http:
            try:
                # Offers land on either replica; every door works through the balancer.
                for door in [Door.API, *DOORS, Door.API]:
                    opened.append(await connect(http, door, speech=SPEECH))
                for peer in opened:
                    await peer.wait_connected()
                ids = {peer.connection_id for peer in opened}

                async def all_listed() -> bool:
                    return set(await listing(http)) == ids

                await wait_until(all_listed, within=5)
                # Round robin spreads them: the listing names both replicas.
                assert {c["replica"] for c in (await listing(http)).values()} == {"a", "b"}

                # Whichever replica each request lands on, it reaches the connection.
                for peer in opened:
                    url = f"/connections/{peer.connection_id}"
                    assert (await http.post(f"{url}/input", json={"gain": 0})).status_code == 204
                    async with asyncio.timeout(10):
                        event = await first_output(http, peer.connection_id, gain=0.0)
                    assert event["level_dbfs"] == -120.0
                    assert (await http.delete(url)).status_code == 204

                async def none_listed() -> bool:
                    return await listing(http) == {}

                await wait_until(none_listed, within=5)
            finally:
                for peer in opened:
                    await peer.close()
